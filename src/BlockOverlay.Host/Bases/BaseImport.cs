using Microsoft.Win32.SafeHandles;

namespace BlockOverlay.Host.Bases;

/// <summary>
/// <c>base add NAME IMAGE --import</c>: copies an image to <c>STORE.bases/NAME.raw</c> and
/// registers it, all or nothing.
/// </summary>
/// <remarks>
/// <para>
/// <b>Steps.</b> (1) Under the registry lock: the name is checked free, the directory made
/// and a temp file <c>.NAME.PID.part</c> created in it. (2) Without the lock, since an import
/// may take minutes and must not hold up other commands: the copy, then fsync. (3) Under the
/// lock again: the name checked free once more (another CLI may have taken it meanwhile), the
/// temp file renamed to <c>NAME.raw</c>, the directory fsynced, the registry written. The
/// image is durable before the registry names it, so a crash never leaves a name without
/// its image.
/// </para>
/// <para>
/// <b>Nothing left behind.</b> Any failure, Ctrl-C included (see <see cref="InterruptSignals"/>), deletes the temp file (or the
/// renamed image, if the registry write failed) and then the directory if it is empty. Only
/// a process killed outright leaves its <c>.part</c> file (named by its pid), and a crash
/// between the rename and the registry write leaves an unregistered <c>NAME.raw</c>, which
/// a later import of NAME refuses to overwrite and names.
/// </para>
/// <para>
/// <b>Sparse.</b> Runs the source reports as zeros are not read, and chunks read as all
/// zeros are not written: both stay holes in the copy, which is therefore about as sparse as
/// the source.
/// </para>
/// </remarks>
internal static class BaseImport
{
    private const int ChunkBytes = 4 << 20;

    /// <summary>Where the image went, its size, the bytes actually written and the time taken.</summary>
    public sealed record Result(string Path, long Size, long DataBytes, TimeSpan Elapsed);

    public static async Task<Result> RunAsync(BaseRegistry registry, string name, IImageSource source, CancellationToken cancel)
    {
        string target = registry.ImportPathFor(name);
        string temp = Path.Combine(registry.ImportDirectory, $".{name}.{Environment.ProcessId}.part");
        EnsureNoLeftover(target, name); // before locking too: a refused import creates no lock file
        using var interrupts = new InterruptSignals(cancel);
        var file = CreateTemp(registry, name, target, temp);
        var progress = ImportProgress.OnStandardError($"importing {name}", source.Size);
        try
        {
            long dataBytes;
            using (file)
            {
                dataBytes = await CopyAsync(source, file, progress, interrupts.Token);
            }

            await CommitAsync(registry, name, target, temp);
            progress.Complete();
            return new Result(target, source.Size, dataBytes, progress.Elapsed);
        }
        catch (Exception e)
        {
            progress.Abandon();
            Discard(registry, temp);
            if (e is OperationCanceledException && interrupts.Received is { } signal)
            {
                throw new IOException($"interrupted by {signal}; nothing was imported", e);
            }

            throw;
        }
    }

    private static SafeFileHandle CreateTemp(BaseRegistry registry, string name, string target, string temp)
    {
        using (registry.Lock())
        {
            BaseRegistry.EnsureFree(registry.Read(), name);
            EnsureNoLeftover(target, name);
            Directory.CreateDirectory(registry.ImportDirectory);
            return File.OpenHandle(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None);
        }
    }

    private static async Task<long> CopyAsync(IImageSource source, SafeFileHandle file, ImportProgress progress, CancellationToken cancel)
    {
        RandomAccess.SetLength(file, source.Size);
        var buffer = new byte[ChunkBytes];
        long dataBytes = 0;
        long offset = 0;
        while (offset < source.Size)
        {
            var run = await source.RunAtAsync(offset, source.Size - offset);
            long end = offset + run.Length;
            while (offset < end)
            {
                cancel.ThrowIfCancellationRequested();
                var chunk = buffer.AsMemory(0, (int)Math.Min(ChunkBytes, end - offset));
                if (!run.Zeros)
                {
                    dataBytes += await CopyChunkAsync(source, file, chunk, offset, cancel);
                }

                offset += chunk.Length;
                progress.Report(offset);
            }
        }

        RandomAccess.FlushToDisk(file);
        return dataBytes;
    }

    /// <summary>Copies one chunk unless it is all zeros (the file already reads as zeros there); returns the bytes written.</summary>
    private static async Task<long> CopyChunkAsync(IImageSource source, SafeFileHandle file, Memory<byte> chunk, long offset, CancellationToken cancel)
    {
        await source.ReadAsync(offset, chunk);
        if (!chunk.Span.ContainsAnyExcept((byte)0))
        {
            return 0;
        }

        await RandomAccess.WriteAsync(file, chunk, offset, cancel);
        return chunk.Length;
    }

    private static async Task CommitAsync(BaseRegistry registry, string name, string target, string temp)
    {
        using (registry.Lock())
        {
            var bases = registry.Read();
            BaseRegistry.EnsureFree(bases, name);
            EnsureNoLeftover(target, name);
            File.Move(temp, target);
            try
            {
                PosixFiles.SyncDirectory(registry.ImportDirectory);
                await registry.WriteAsync([.. bases, new RegisteredBase(name, target, Imported: true)]);
            }
            catch
            {
                File.Delete(target);
                throw;
            }
        }
    }

    /// <summary>An image file nobody registered is not ours to overwrite: say so and let the user decide.</summary>
    private static void EnsureNoLeftover(string target, string name)
    {
        if (File.Exists(target))
        {
            throw new IOException($"{target} exists but no base named '{name}' does (left by an interrupted import?); delete it or import under another name");
        }
    }

    /// <summary>Undoes steps 1 and 2; the failure being reported is the one that matters, so this one only tries.</summary>
    private static void Discard(BaseRegistry registry, string temp)
    {
        File.Delete(temp);
        try
        {
            using (registry.Lock())
            {
                registry.RemoveImportDirectoryIfEmpty();
            }
        }
        catch (IOException)
        {
            // The lock is held too long by another command: an empty directory is all that stays.
        }
    }
}
