namespace BlockOverlay.Exports;

/// <summary>
/// What a client is told when an export refuses an operation: the closed list of expected
/// failures. Anything an export throws that is not one of these is a bug (see
/// <see cref="ExportFailures.Classify"/>). The protocol layer picks the wire error, in one place.
/// </summary>
public enum ExportError
{
    /// <summary>The device failed (also any <see cref="IOException"/>).</summary>
    IoError,
    /// <summary>No space left (also a quota being exceeded).</summary>
    NoSpace,
    /// <summary>The request makes no sense for this export.</summary>
    InvalidArgument,
    /// <summary>The export cannot do this (for example, a zero that would not be fast).</summary>
    NotSupported,
    /// <summary>The export is read-only.</summary>
    ReadOnly,
}

/// <summary>An operation on an export failed for a reason the client should be told.</summary>
public sealed class ExportException : Exception
{
    public ExportException(ExportError error, string message) : base(message) => Error = error;

    public ExportException(ExportError error, string message, Exception inner) : base(message, inner) => Error = error;

    public ExportError Error { get; }
}

/// <summary>The one rule for what an exception that left an export means.</summary>
public static class ExportFailures
{
    /// <summary>
    /// The reason the client is told, or null when <paramref name="failure"/> is a bug: an
    /// <see cref="ExportException"/> says its own reason, an <see cref="IOException"/> is a
    /// device failure (devices and files report failures that way), anything else (an
    /// argument, state or disposal exception, a null dereference) is a bug, which the caller
    /// logs with its stack trace.
    /// </summary>
    public static ExportError? Classify(Exception failure) => failure switch
    {
        ExportException told => told.Error,
        IOException => ExportError.IoError,
        _ => null,
    };
}
