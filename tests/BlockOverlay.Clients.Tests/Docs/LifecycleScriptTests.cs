using BlockOverlay.Clients.Tests.Fixtures;

namespace BlockOverlay.Clients.Tests.Docs;

/// <summary>docs/lifecycle.sh runs as written: a container disk created, attached, fsynced, committed and deleted.</summary>
public class LifecycleScriptTests
{
    [Test]
    public void The_lifecycle_script_in_docs_runs_as_written()
    {
        string root = ServerProcess.RepositoryRoot;
        // From the repository root, as the script says it runs.
        var result = Tool.Run("/bin/bash", ["-c", "cd \"$0\" && bash docs/lifecycle.sh", root], TimeSpan.FromMinutes(2));

        Assert.That(result.ExitCode, Is.Zero, result.ToString);
        Assert.Multiple(() =>
        {
            Assert.That(result.Stdout, Does.Contain("flush bytes: data 65536,"), "the fsync wrote the instance's own 64 KiB");
            Assert.That(result.Stdout, Does.Contain("committed instance 'web1'"));
            Assert.That(result.Stdout, Does.Contain("deleted instance 'web1'"));
            Assert.That(result.Stdout.TrimEnd(), Does.EndWith("lifecycle: done"));
        });
    }
}
