using System.CommandLine;
using BlockOverlay.Engine.Exports;
using BlockOverlay.Io;
using BlockOverlay.Store;

namespace BlockOverlay.Host;

/// <summary><c>blockoverlay store …</c>: making a store, showing it, checking it (<see cref="StoreCheckCommand"/>).</summary>
internal static class StoreCommands
{
    public static Command Create()
    {
        var path = new Argument<string>("PATH") { Description = "The store file, or rbd:POOL/IMAGE for an image in Ceph, to create (it must not exist)." };
        var size = new Option<string>("--size") { Description = "Its size, as 64G or 1T (binary units).", Required = true };
        var journal = new Option<string>("--journal")
        {
            Description = "Its metadata journal's size, as 1M (default: 1/64 of the store, 256K to 64M; at least 256K). " +
                "A start after a crash replays at most this much; a larger one lets more metadata wait for a checkpoint.",
        };
        var create = new Command("create", "Create an empty store file, written through once so every later write is in place.") { path, size, journal };
        create.SetAction(async (parse, _) =>
        {
            string file = parse.GetValue(path)!;
            var bytes = ByteSize.Parse(parse.GetValue(size)!);
            if (bytes.Bytes <= 0 || bytes.Bytes % UpperStore.BlockSize != 0)
            {
                throw new FormatException($"store size {bytes.Bytes} is not a positive multiple of {UpperStore.BlockSize} bytes");
            }

            var options = new StoreCreateOptions { JournalBlocks = JournalBlocks(parse.GetValue(journal)) };
            var device = await StoreDevices.CreateAsync(file, bytes.Bytes);
            try
            {
                await UpperStore.CreateAsync(device, options);
            }
            catch
            {
                // Nothing half-made stays behind: the file (or image) is ours, we just created it.
                await device.DisposeAsync();
                await StoreDevices.RemoveAsync(file);
                throw;
            }

            await device.DisposeAsync();

            Console.WriteLine($"created store {StoreDevices.Describe(file)} ({bytes})");
            return 0;
        });

        var infoPath = new Argument<string>("PATH") { Description = "The store file, or rbd:POOL/IMAGE." };
        var info = new Command("info", "Show a store's geometry, free space and metadata size (offline).") { infoPath };
        info.SetAction(async (parse, _) =>
        {
            await using var session = await StoreSession.OpenAsync(parse.GetValue(infoPath)!);
            var i = session.Store.Info;
            Console.WriteLine($"store id:         {i.StoreId}");
            Console.WriteLine($"size:             {i.DeviceBytes} bytes ({new ByteSize(i.DeviceBytes)})");
            Console.WriteLine($"journal:          {i.JournalBytes} bytes, {i.JournalUsedBytes} in use");
            Console.WriteLine($"data region:      {i.DataBytes} bytes, {i.FreeBytes} free");
            Console.WriteLine($"last checkpoint:  {i.CheckpointBytes} bytes");
            Console.WriteLine($"instances:        {i.Instances}, {i.Extents} map extents");
            Console.WriteLine($"last shutdown:    {(session.Store.WasClean ? "clean" : "unclean (recovered)")}");
            return 0;
        });

        return new Command("store", "Manage the upper extent store.") { create, info, StoreCheckCommand.Create() };
    }

    /// <summary>The journal size asked for, in blocks; null for the default. Checked before the store file is made.</summary>
    private static long? JournalBlocks(string? text)
    {
        if (text is null)
        {
            return null;
        }

        var bytes = ByteSize.Parse(text);
        long minimum = StoreCreateOptions.MinJournalBlocks * UpperStore.BlockSize;
        return bytes.Bytes % UpperStore.BlockSize != 0 || bytes.Bytes < minimum
            ? throw new FormatException($"journal size {bytes.Bytes} is not a multiple of {UpperStore.BlockSize} bytes of at least {new ByteSize(minimum)}")
            : bytes.Bytes / UpperStore.BlockSize;
    }
}
