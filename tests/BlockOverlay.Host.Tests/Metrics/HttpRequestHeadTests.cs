using System.Text;
using BlockOverlay.Host.Metrics;

namespace BlockOverlay.Host.Tests.Metrics;

/// <summary>The request heads the endpoint takes as HTTP, and the ones it answers with 400.</summary>
public class HttpRequestHeadTests
{
    private static HttpRequestHead? Parse(string head) => HttpRequestHead.TryParse(Encoding.Latin1.GetBytes(head));

    [TestCase("GET /metrics HTTP/1.1", "GET", "/metrics")]
    [TestCase("GET /metrics HTTP/1.0", "GET", "/metrics")]
    [TestCase("HEAD /metrics?name[]=up HTTP/1.1\r\nHost: x", "HEAD", "/metrics")]
    [TestCase("POST / HTTP/1.1\r\nHost: 127.0.0.1:9810\r\nUser-Agent: Prometheus/2.45\r\nX-Empty:", "POST", "/")]
    [TestCase("BREW /pot HTTP/1.1\r\nAccept: text/plain;version=0.0.4;q=1,*/*;q=0.1", "BREW", "/pot")]
    public void Well_formed_heads_give_method_and_path(string head, string method, string path)
    {
        Assert.That(Parse(head), Is.EqualTo(new HttpRequestHead(method, path)));
    }

    [TestCase("")]
    [TestCase("GET")]
    [TestCase("GET /metrics")]
    [TestCase("GET  /metrics HTTP/1.1")]
    [TestCase("GET /metrics  HTTP/1.1")]
    [TestCase("GET /me trics HTTP/1.1")]
    [TestCase("GET metrics HTTP/1.1")]
    [TestCase("GET * HTTP/1.1")]
    [TestCase("GET /metrics http/1.1")]
    [TestCase("GET /metrics HTTP/2.0")]
    [TestCase("G(T /metrics HTTP/1.1")]
    [TestCase("GET /m\u00e9trics HTTP/1.1")]
    [TestCase("GET /metrics HTTP/1.1\r\nno colon here")]
    [TestCase("GET /metrics HTTP/1.1\r\n: no name")]
    [TestCase("GET /metrics HTTP/1.1\r\nHost : x")]
    [TestCase("GET /metrics HTTP/1.1\r\nHost: x\r\n folded")]
    [TestCase("\u0016\u0003\u0001\u0002\u0000\u0001\u0000\u0001\u00fc\u0003\u0003")]
    public void Anything_else_is_refused(string head)
    {
        Assert.That(Parse(head), Is.Null);
    }
}
