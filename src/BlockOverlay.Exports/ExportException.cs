namespace BlockOverlay.Exports;

/// <summary>Why an export refused an operation; the protocol layer picks the wire error.</summary>
public enum ExportError
{
    /// <summary>The device failed.</summary>
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
