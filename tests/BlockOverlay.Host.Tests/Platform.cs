// Tests of a Linux-only host run on Linux only.
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]
