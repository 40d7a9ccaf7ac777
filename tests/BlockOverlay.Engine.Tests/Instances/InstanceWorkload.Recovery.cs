using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using BlockOverlay.Engine.Cache;
using BlockOverlay.Engine.Instances;
using BlockOverlay.Io;
using BlockOverlay.Store;

namespace BlockOverlay.Engine.Tests.Instances;

/// <summary>The workload's check of a recovered store, and the words it uses to say what a block holds.</summary>
internal sealed partial class InstanceWorkload
{
    /// <summary>
    /// Opens the store on a crash image and checks every instance against the models: per block,
    /// one of the contents allowed since the last durable point. With <paramref name="adopt"/>, the
    /// models take what was read as their new durable state and the exports are replaced.
    /// </summary>
    public async Task<UpperStore> CheckRecoveredAsync(IBlockDevice image, string context, bool adopt)
    {
        UpperStore recovered;
        try
        {
            recovered = await UpperStore.OpenAsync(image);
        }
        catch (Exception e)
        {
            throw new AssertionException($"{context}: the store does not open after the crash: {e.GetType().Name}: {e.Message}\n{RecentOps()}", e);
        }

        var names = recovered.Instances.Select(i => i.Name).Order(StringComparer.Ordinal).ToArray();
        var expected = Models.Select(m => m.Name).Order(StringComparer.Ordinal).ToArray();
        var fresh = new InstanceExport?[Models.Length];
        var cache = new WriteBackCache(recovered, _cacheOptions);
        try
        {
            foreach (var model in Models)
            {
                var instance = recovered.Find(model.Name);
                if (instance is null)
                {
                    if (model.RecreatingFrom is not null)
                    {
                        continue; // deleted, not yet re-created: allowed while the re-create was in flight
                    }

                    throw new AssertionException($"{context}: instance {model.Name} is missing after recovery (store has: {string.Join(", ", names)})\n{RecentOps()}");
                }

                var export = await InstanceExport.OpenAsync(cache, instance);
                byte[] actual = new byte[model.Size];
                await export.ReadAsync(0, actual);
                bool recreated = model.RecreatingFrom is { } old && instance.Definition.Id != old;
                byte[] initial = recreated ? model.RecreatingAs ?? Base.InitialContent(model.Size) : [];
                if (model.RecreatingFrom is null && instance.Definition.Id != model.Id)
                {
                    throw new AssertionException($"{context}: instance {model.Name} has id {instance.Definition.Id} after recovery, expected {model.Id}");
                }

                for (long b = 0; b < model.Blocks; b++)
                {
                    var block = actual.AsSpan((int)(b * Block), Block);
                    if (recreated)
                    {
                        if (!block.SequenceEqual(initial.AsSpan((int)(b * Block), Block)))
                        {
                            throw new AssertionException($"{context}: re-created instance {model.Name} (id {instance.Definition.Id}) block {b} is neither the base's nor its clone source's: {DescribeBlock(model, b, block)}");
                        }

                        continue;
                    }

                    var allowed = model.Allowed(b);
                    bool ok = false;
                    foreach (var version in allowed)
                    {
                        if (block.SequenceEqual(version.Content))
                        {
                            ok = true;
                            break;
                        }
                    }

                    if (!ok)
                    {
                        throw new AssertionException(
                            $"{context}: instance {model.Name} block {b} (bytes {b * Block}..{(b + 1) * Block}) reads content it never had since its last durable point.\n" +
                            $"  actual: {DescribeBlock(model, b, block)}\n" +
                            $"  allowed ({allowed.Count}): {string.Join("; ", allowed.Select(v => $"{v.Label} [{DescribeBlock(model, b, v.Content)}]"))}\n{RecentOps()}");
                    }
                }

                if (adopt)
                {
                    if (recreated)
                    {
                        model.Reset(initial, instance.Definition.Id);
                    }
                    else
                    {
                        actual.CopyTo(model.Bytes, 0);
                    }

                    model.RecreatingFrom = null;
                    model.RecreatingAs = null;
                    fresh[model.Index - 1] = export;
                }
                else
                {
                    await export.DisposeAsync();
                }
            }
        }
        catch
        {
            // A failed check leaves the cache and its exports open: closed here, or they hold the image for good.
            await cache.DisposeAsync();
            throw;
        }

        if (!adopt)
        {
            await cache.DisposeAsync(); // its exports, which only read, are closed
            if (names.Length != expected.Length && Models.All(m => m.RecreatingFrom is null))
            {
                throw new AssertionException($"{context}: the store has instances [{string.Join(", ", names)}], expected [{string.Join(", ", expected)}]");
            }

            return recovered;
        }

        Assert.That(names, Is.EqualTo(expected), $"{context}: instances after recovery");
        Cache = cache;
        for (int i = 0; i < Models.Length; i++)
        {
            Exports[i] = fresh[i]!;
            Models[i].MarkDurable();
        }

        return recovered;
    }

    /// <summary>Names what a block holds: for stamped content, which operations' bytes, base bytes or zeros, in runs.</summary>
    public string DescribeBlock(InstanceModel model, long block, ReadOnlySpan<byte> content)
    {
        if (!content.ContainsAnyExcept((byte)0))
        {
            return "all zeros";
        }

        long start = block * Block;
        if (start < Base.Bytes.Length && content.SequenceEqual(Base.InitialContent(start + Block).AsSpan((int)start, Block)))
        {
            return "the base's block";
        }

        if (_mode == ContentMode.Random)
        {
            byte[] copy = content.ToArray();
            var other = Models.Where(m => m != model && m.Blocks > block && m.BlockSpan(block).SequenceEqual(copy)).Select(m => m.Name).ToList();
            string hash = Convert.ToHexString(SHA256.HashData(content))[..12];
            return $"sha256 {hash}, first bytes {Convert.ToHexString(content[..8])}" +
                (other.Count > 0 ? $", equal to the same block of instance {string.Join(",", other)} now" : "");
        }

        var runs = new List<(int From, int To, string What)>();
        for (int w = 0; w < Block; w += 8)
        {
            long position = start + w;
            ulong word = BinaryPrimitives.ReadUInt64LittleEndian(content[w..]);
            string what;
            if (Stamp.Decode(word, position) is { } s)
            {
                string owner = s.Instance == model.Index ? "" : $" OF INSTANCE {Models.FirstOrDefault(m => m.Index == s.Instance)?.Name ?? s.Instance.ToString(System.Globalization.CultureInfo.InvariantCulture)}";
                what = $"op {Describe(s.Op)}{owner}";
            }
            else if (word == 0)
            {
                what = "zeros";
            }
            else if (position + 8 <= Base.Bytes.Length && content.Slice(w, 8).SequenceEqual(Base.Bytes.AsSpan((int)position, 8)))
            {
                what = "base";
            }
            else
            {
                what = DescribeMixedWord(model, content, w, position);
            }

            if (runs.Count > 0 && runs[^1].What == what)
            {
                runs[^1] = (runs[^1].From, w + 8, what);
            }
            else
            {
                runs.Add((w, w + 8, what));
            }
        }

        var text = new StringBuilder();
        foreach (var (from, to, what) in runs.Take(12))
        {
            text.Append(System.Globalization.CultureInfo.InvariantCulture, $"[{from}..{to}) {what}; ");
        }

        if (runs.Count > 12)
        {
            text.Append(System.Globalization.CultureInfo.InvariantCulture, $"... {runs.Count - 12} more runs");
        }

        return text.ToString();
    }

    /// <summary>
    /// A word that is no whole stamp: the edge of an unaligned write, where each byte is a stamp
    /// byte of a neighbouring word's operation, a base byte or zero — or else unexplained.
    /// </summary>
    private string DescribeMixedWord(InstanceModel model, ReadOnlySpan<byte> content, int w, long position)
    {
        var candidates = new List<(int Instance, long Op)>();
        foreach (int n in new[] { w - 8, w + 8 })
        {
            if (n >= 0 && n + 8 <= content.Length && Stamp.Decode(BinaryPrimitives.ReadUInt64LittleEndian(content[n..]), position + n - w) is { } s)
            {
                candidates.Add(s);
            }
        }

        Span<byte> stamp = stackalloc byte[8];
        var parts = new SortedSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < 8; i++)
        {
            byte actual = content[w + i];
            string? part = null;
            foreach (var (instance, op) in candidates)
            {
                BinaryPrimitives.WriteUInt64LittleEndian(stamp, Stamp.Word(instance, op, position));
                if (stamp[i] == actual)
                {
                    part = $"op {Describe(op)}{(instance == model.Index ? "" : $" OF INSTANCE #{instance}")}";
                    break;
                }
            }

            if (part is null && position + i < Base.Bytes.Length && Base.Bytes[position + i] == actual)
            {
                part = "base";
            }

            part ??= actual == 0 ? "zeros" : null;
            if (part is null)
            {
                return "UNEXPLAINED bytes (garbage or a torn mix)";
            }

            parts.Add(part);
        }

        return "edge word: " + string.Join(" + ", parts);
    }
}
