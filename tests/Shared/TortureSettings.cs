using System.Globalization;

namespace BlockOverlay;

/// <summary>
/// What <c>make torture</c> passes in the environment: BLOCKOVERLAY_TORTURE_SEEDS (how many seeds),
/// BLOCKOVERLAY_TORTURE_SEED (the first; a failure prints the one to pin with SEEDS=1) and
/// BLOCKOVERLAY_TORTURE_SECONDS (no new seed starts after that long, so a run stops by itself).
/// </summary>
internal static class TortureSettings
{
    public static int Seeds => Read("BLOCKOVERLAY_TORTURE_SEEDS", 4);

    public static int FirstSeed => Read("BLOCKOVERLAY_TORTURE_SEED", 1);

    public static TimeSpan Budget => TimeSpan.FromSeconds(Read("BLOCKOVERLAY_TORTURE_SECONDS", 120));

    public static int Read(string name, int fallback) =>
        int.TryParse(Environment.GetEnvironmentVariable(name), NumberStyles.Integer, CultureInfo.InvariantCulture, out int n) && n > 0 ? n : fallback;
}
