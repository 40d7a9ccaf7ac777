using System.CommandLine;

namespace BlockOverlay.Host;

/// <summary>
/// How a command that fails ends, decided in one place for every verb. An operator failure
/// (<see cref="OperatorFailures"/>) is one line on standard error, <c>blockoverlay COMMAND:
/// reason</c>, and exit code 1, so scripts can rely on 0 meaning done and 1 meaning refused
/// with nothing half-done. Anything else is a bug: printed with its stack trace and exit code
/// <see cref="Bug"/>, so it is reported rather than taken for bad input. Commands therefore
/// throw their failures and catch nothing but what they clean up after.
/// </summary>
internal static class CommandErrors
{
    /// <summary>A failure the operator is told in one line: bad input, or the system or the store refused.</summary>
    public const int Refused = 1;

    /// <summary>A bug (EX_SOFTWARE of sysexits.h: an internal software error).</summary>
    public const int Bug = 70;

    /// <summary>Runs the command the command line names; its failures go to <paramref name="error"/>.</summary>
    public static async Task<int> InvokeAsync(ParseResult parse, TextWriter error)
    {
        try
        {
            return await parse.InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false, Error = error });
        }
        catch (Exception e) when (OperatorFailures.MessageFor(e) is { } message)
        {
            await error.WriteLineAsync($"blockoverlay {CommandPath(parse)}: {message}");
            return Refused;
        }
#pragma warning disable CA1031 // The end of the line for a bug: printed whole, with its stack, never swallowed.
        catch (Exception e)
#pragma warning restore CA1031
        {
            await error.WriteLineAsync($"blockoverlay {CommandPath(parse)}: internal error, a bug (please report it with what follows):{Environment.NewLine}{e}");
            return Bug;
        }
    }

    /// <summary>The verbs that were run, as typed: "instance create", "serve".</summary>
    private static string CommandPath(ParseResult parse)
    {
        var names = new List<string>();
        for (var command = parse.CommandResult; command.Parent is System.CommandLine.Parsing.CommandResult parent; command = parent)
        {
            names.Insert(0, command.Command.Name);
        }

        return string.Join(' ', names);
    }
}
