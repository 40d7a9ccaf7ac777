using System.Buffers;
using BlockOverlay.Nbd.Protocol;
using static BlockOverlay.Nbd.Tests.Protocol.WireBytes;

namespace BlockOverlay.Nbd.Tests.Protocol;

public class NbdParserTests
{
    private static readonly byte[] ValidRequest = Request(0x1, 1, 0x1122334455667788, 0x0102030405060708, 4096);
    private static readonly byte[] ValidOption = Option(7, [1, 2, 3]);

    [Test]
    public void Every_prefix_of_a_request_is_incomplete_and_consumes_nothing()
    {
        for (int n = 0; n < ValidRequest.Length; n++)
        {
            var buffer = new ReadOnlySequence<byte>(ValidRequest, 0, n);
            Assert.That(NbdParser.TryReadRequest(ref buffer, out _), Is.False, $"prefix of {n} bytes");
            Assert.That(buffer.Length, Is.EqualTo(n), $"prefix of {n} bytes was consumed");
        }
    }

    [Test]
    public void Every_prefix_of_an_option_header_and_of_client_flags_is_incomplete()
    {
        for (int n = 0; n < NbdWire.OptionHeaderSize; n++)
        {
            var buffer = new ReadOnlySequence<byte>(ValidOption, 0, n);
            Assert.That(NbdParser.TryReadOptionHeader(ref buffer, out _), Is.False);
            Assert.That(buffer.Length, Is.EqualTo(n));
        }

        for (int n = 0; n < 4; n++)
        {
            var buffer = new ReadOnlySequence<byte>(U32(3), 0, n);
            Assert.That(NbdParser.TryReadClientFlags(ref buffer, out _), Is.False);
            Assert.That(buffer.Length, Is.EqualTo(n));
        }
    }

    [Test]
    public void A_request_split_across_segments_at_every_point_parses_the_same()
    {
        var bytes = Concat(ValidRequest, [0xAA]);
        for (int cut1 = 1; cut1 < ValidRequest.Length; cut1++)
        {
            int cut2 = (cut1 * 7) % ValidRequest.Length;
            var buffer = Segments.Split(bytes, cut1, cut2);
            Assert.That(NbdParser.TryReadRequest(ref buffer, out var request), Is.True);
            Assert.That(request, Is.EqualTo(new NbdRequest(CommandFlags.Fua, 1, 0x1122334455667788, 0x0102030405060708, 4096)));
            Assert.That(buffer.Length, Is.EqualTo(1), "exactly the header is consumed, the payload is not");
        }
    }

    [Test]
    public void An_option_header_split_across_segments_parses_and_leaves_its_data()
    {
        for (int cut = 1; cut < NbdWire.OptionHeaderSize; cut++)
        {
            var buffer = Segments.Split(ValidOption, cut, cut + 5);
            Assert.That(NbdParser.TryReadOptionHeader(ref buffer, out var header), Is.True);
            Assert.That(header, Is.EqualTo(new OptionHeader(7, 3)));
            Assert.That(buffer.ToArray(), Is.EqualTo(new byte[] { 1, 2, 3 }));
        }
    }

    [Test]
    public void A_request_with_bad_magic_is_a_protocol_violation()
    {
        var bytes = (byte[])ValidRequest.Clone();
        bytes[0] ^= 0xFF;
        var buffer = new ReadOnlySequence<byte>(bytes);
        Assert.That(() => NbdParser.TryReadRequest(ref buffer, out _), Throws.TypeOf<NbdProtocolException>());
    }

    [Test]
    public void An_option_with_bad_magic_is_a_protocol_violation()
    {
        var bytes = Concat(U64(0x1234), U32(7), U32(0));
        var buffer = new ReadOnlySequence<byte>(bytes);
        Assert.That(() => NbdParser.TryReadOptionHeader(ref buffer, out _), Throws.TypeOf<NbdProtocolException>());
    }

    [TestCase(0u, true)]
    [TestCase(1u, true)]
    [TestCase(3u, true)]
    [TestCase(4u, false)]
    [TestCase(0x80000000u, false)]
    public void Unknown_client_flags_end_the_connection(uint flags, bool accepted)
    {
        var buffer = new ReadOnlySequence<byte>(U32(flags));
        if (accepted)
        {
            Assert.That(NbdParser.TryReadClientFlags(ref buffer, out var parsed), Is.True);
            Assert.That((uint)parsed, Is.EqualTo(flags));
        }
        else
        {
            Assert.That(() => NbdParser.TryReadClientFlags(ref buffer, out _), Throws.TypeOf<NbdProtocolException>());
        }
    }

    [Test]
    public void Go_data_parses_name_and_information_requests()
    {
        var parsed = NbdParser.ParseExportInfoRequest(GoData("disk-é", 3, 1));
        Assert.That(parsed.ExportName, Is.EqualTo("disk-é"));
        Assert.That(parsed.Requests, Is.EqualTo(new[] { InfoType.BlockSize, InfoType.Name }));
    }

    [Test]
    public void Every_truncation_of_go_data_is_invalid()
    {
        var data = GoData("disk", 3, 1);
        for (int n = 0; n < data.Length; n++)
        {
            var error = Assert.Throws<NbdOptionException>(() => NbdParser.ParseExportInfoRequest(data.AsSpan(0, n)));
            Assert.That(error!.Reply, Is.EqualTo(OptionReplyType.ErrInvalid), $"truncated to {n}");
        }

        Assert.That(() => NbdParser.ParseExportInfoRequest(Concat(data, [0])),
            Throws.TypeOf<NbdOptionException>(), "trailing bytes");
    }

    [Test]
    public void Names_that_are_too_long_not_utf8_or_contain_nul_are_invalid()
    {
        byte[][] bad =
        [
            GoData(new string('a', 4097)),
            Concat(U32(2), [0xC3, 0x28], U16(0)),
            Concat(U32(3), [(byte)'a', 0, (byte)'b'], U16(0)),
            Concat(U32(0xFFFFFFFF), U16(0)),
        ];
        foreach (var data in bad)
        {
            Assert.That(() => NbdParser.ParseExportInfoRequest(data),
                Throws.TypeOf<NbdOptionException>().With.Property("Reply").EqualTo(OptionReplyType.ErrInvalid));
        }

        Assert.That(NbdParser.ParseExportInfoRequest(GoData(new string('a', 4096))).ExportName, Has.Length.EqualTo(4096));
    }

    [Test]
    public void Meta_context_data_parses_queries_and_rejects_dishonest_counts()
    {
        var parsed = NbdParser.ParseMetaContextRequest(MetaData("d", "base:allocation", "x-foo:bar"));
        Assert.That(parsed.ExportName, Is.EqualTo("d"));
        Assert.That(parsed.Queries, Is.EqualTo(new[] { "base:allocation", "x-foo:bar" }));

        // A count of four billion with no bytes behind it must not allocate anything.
        Assert.That(() => NbdParser.ParseMetaContextRequest(Concat(String("d"), U32(0xFFFFFFFF))),
            Throws.TypeOf<NbdOptionException>());
        Assert.That(() => NbdParser.ParseMetaContextRequest(Concat(MetaData("d", "base:allocation"), [7])),
            Throws.TypeOf<NbdOptionException>());
        var data = MetaData("d", "base:allocation");
        for (int n = 0; n < data.Length; n++)
        {
            Assert.That(() => NbdParser.ParseMetaContextRequest(data.AsSpan(0, n).ToArray()),
                Throws.TypeOf<NbdOptionException>(), $"truncated to {n}");
        }
    }
}
