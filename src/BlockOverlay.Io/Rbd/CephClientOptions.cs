namespace BlockOverlay.Io.Rbd;

/// <summary>
/// Which Ceph cluster, as whom, by the usual Ceph conventions: a config file (null: librados
/// looks at $CEPH_CONF, then /etc/ceph/ceph.conf, ~/.ceph/config, ./ceph.conf), a client id
/// (null: admin, i.e. client.admin), and the keyring the config names. $CEPH_ARGS is applied
/// after the file, as the ceph and rbd tools do.
/// </summary>
public sealed record CephClientOptions(string? ConfigFile = null, string? Id = null)
{
    /// <summary>The id librados wants: without the "client." prefix a user may have written.</summary>
    internal string? RadosId => Id is { } id && id.StartsWith("client.", StringComparison.Ordinal) ? id["client.".Length..] : Id;

    /// <summary>How the cluster was chosen, for error messages.</summary>
    internal string Describe() =>
        $"config {ConfigFile ?? Environment.GetEnvironmentVariable("CEPH_CONF") ?? "/etc/ceph/ceph.conf (default)"}, client.{RadosId ?? "admin"}";
}
