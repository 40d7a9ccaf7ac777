// The host serves on Linux only (O_DIRECT stores, unix sockets with file modes, systemd
// socket activation); saying so lets the analyzers check calls against it.
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]
