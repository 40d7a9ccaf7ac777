using System.Globalization;
using System.Text;

namespace BlockOverlay.Host.Metrics;

/// <summary>
/// One response of the metrics endpoint and its bytes on the wire. Every response carries
/// its Content-Length and <c>Connection: close</c>: the endpoint serves one request per
/// connection, which keeps it free of keep-alive state and costs a scraper one extra
/// connect per scrape at most. A reply to HEAD has the headers of the GET reply and no body.
/// </summary>
internal sealed record HttpResponse(int Status, string Reason, string ContentType, ReadOnlyMemory<byte> Body, string? Allow = null)
{
    public const string ExpositionContentType = "text/plain; version=0.0.4; charset=utf-8";

    public static HttpResponse Metrics(string exposition) =>
        new(200, "OK", ExpositionContentType, Encoding.UTF8.GetBytes(exposition));

    public static HttpResponse BadRequest { get; } = Text(400, "Bad Request", "not an HTTP/1.x request");

    public static HttpResponse NotFound { get; } = Text(404, "Not Found", "the metrics are at /metrics");

    public static HttpResponse MethodNotAllowed { get; } =
        Text(405, "Method Not Allowed", "/metrics answers GET and HEAD") with { Allow = "GET, HEAD" };

    public static HttpResponse HeadTooLarge(int limit) =>
        Text(431, "Request Header Fields Too Large", $"the request head is over {limit} bytes");

    /// <summary>A 500 whose one-line body says why; line breaks in the reason become spaces.</summary>
    public static HttpResponse ServerError(string reason) =>
        Text(500, "Internal Server Error", "metrics unavailable: " + reason.ReplaceLineEndings(" "));

    public byte[] Encode(bool headOnly)
    {
        var head = new StringBuilder()
            .Append(CultureInfo.InvariantCulture, $"HTTP/1.1 {Status} {Reason}\r\n")
            .Append(CultureInfo.InvariantCulture, $"Content-Type: {ContentType}\r\n")
            .Append(CultureInfo.InvariantCulture, $"Content-Length: {Body.Length}\r\n");
        if (Allow is not null)
        {
            head.Append(CultureInfo.InvariantCulture, $"Allow: {Allow}\r\n");
        }

        head.Append("Connection: close\r\n\r\n");
        byte[] headBytes = Encoding.ASCII.GetBytes(head.ToString());
        return headOnly ? headBytes : [.. headBytes, .. Body.Span];
    }

    private static HttpResponse Text(int status, string reason, string line) =>
        new(status, reason, "text/plain; charset=utf-8", Encoding.UTF8.GetBytes(line + "\n"));
}
