using System.CommandLine;
using BlockOverlay.Host;

// The blockoverlay command: one verb per job; each verb lives in its own file.
var root = new RootCommand("BlockOverlay: an NBD server of copy-on-write disks for containers and micro-VMs.")
{
    ServeCommand.Create(),
    StoreCommands.Create(),
    InstanceCommands.Create(),
    BaseCommands.Create(),
};
StoreDevices.AddCephOptions(root);
var parse = root.Parse(args);
StoreDevices.UseCephOptions(parse);
return await CommandErrors.InvokeAsync(parse, Console.Error);
