namespace BlockOverlay.Engine.Tests.Instances;

/// <summary>One content a block may show after a crash, and which state or operation left it (for messages).</summary>
internal sealed record BlockVersion(byte[] Content, string Label);
