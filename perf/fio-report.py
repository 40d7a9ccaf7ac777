#!/usr/bin/env python3
"""Summarises one run of perf/fio-memory.sh.

Reads the directory the script wrote (meta, fio JSON per run, server CPU seconds per run),
prints the per-round table to stdout and writes the Markdown section that perf/run-all
puts into perf/RESULTS.md (OUT_DIR/section.md). Exits non-zero when a verify pass did not
read back everything it wrote, so a run that checked nothing cannot pass as verified.
"""
import json
import statistics
import sys
from pathlib import Path

SERVERS = ("blockoverlay", "nbdkit")


def load_meta(out_dir):
    meta = {}
    for line in (out_dir / "meta").read_text().splitlines():
        key, _, value = line.partition("=")
        meta[key] = value
    return meta


def load_job(path):
    """The one job of a fio JSON file (numjobs=1)."""
    jobs = json.loads(path.read_text())["jobs"]
    if len(jobs) != 1:
        raise SystemExit(f"{path}: expected one fio job, found {len(jobs)}")
    return jobs[0]


def percentile_us(clat, pct):
    return clat["percentile"][f"{pct:.6f}"] / 1000.0


def run_summary(out_dir, label):
    job = load_job(out_dir / f"{label}.json")
    write = job["write"]
    server_cpu = float((out_dir / f"{label}.server-cpu").read_text())
    ios = write["total_ios"]
    return {
        "iops": write["iops"],
        "p50_us": percentile_us(write["clat_ns"], 50),
        "p99_us": percentile_us(write["clat_ns"], 99),
        "server_cpu_s": server_cpu,
        "server_cpu_us_per_io": server_cpu * 1e6 / ios if ios else float("nan"),
        "fio_cpu_pct": job["usr_cpu"] + job["sys_cpu"],
    }


def verify_summary(out_dir, server):
    job = load_job(out_dir / f"verify-{server}.json")
    written = job["write"]["io_kbytes"]
    read = job["read"]["io_kbytes"]
    passed = job["error"] == 0 and written > 0 and read == written
    return {"passed": passed, "error": job["error"], "written_kib": written, "read_kib": read,
            "write_iops": job["write"]["iops"]}


def median_of(runs, key):
    return statistics.median(r[key] for r in runs)


def main():
    out_dir = Path(sys.argv[1])
    meta = load_meta(out_dir)
    rounds = int(meta["rounds"])
    runs = {s: [run_summary(out_dir, f"round{r}-{s}") for r in range(1, rounds + 1)] for s in SERVERS}
    verify = {s: verify_summary(out_dir, s) for s in SERVERS}
    med = {s: {k: median_of(runs[s], k) for k in runs[s][0]} for s in SERVERS}
    ratio = med["blockoverlay"]["iops"] / med["nbdkit"]["iops"]
    round_ratios = [b["iops"] / n["iops"] for b, n in zip(runs["blockoverlay"], runs["nbdkit"])]
    cmd = {s: (out_dir / f"round1-{s}.cmd").read_text().strip() for s in SERVERS}
    vcmd = (out_dir / "verify-blockoverlay.cmd").read_text().strip()
    load_before = (out_dir / "load-before").read_text().split("load average:")[-1].strip()
    load_after = (out_dir / "load-after").read_text().split("load average:")[-1].strip()

    # Console summary.
    print(f"{'round':>6} {'blockoverlay':>13} {'nbdkit':>10} {'ratio':>6}")
    for r in range(rounds):
        b, n = runs["blockoverlay"][r]["iops"], runs["nbdkit"][r]["iops"]
        print(f"{r + 1:>6} {b:>13,.0f} {n:>10,.0f} {round_ratios[r]:>6.2f}")
    print(f"{'median':>6} {med['blockoverlay']['iops']:>13,.0f} {med['nbdkit']['iops']:>10,.0f} {ratio:>6.2f}"
          f"  (ratio of medians; median of per-round ratios {statistics.median(round_ratios):.2f})")
    for s in SERVERS:
        print(f"{s}: clat p50 {med[s]['p50_us']:.0f} us, p99 {med[s]['p99_us']:.0f} us, "
              f"server CPU {med[s]['server_cpu_us_per_io']:.1f} us/IO, "
              f"verify {'passed' if verify[s]['passed'] else 'FAILED'} "
              f"({verify[s]['written_kib'] // 1024} MiB written, {verify[s]['read_kib'] // 1024} MiB read back)")

    # Markdown section.
    lines = []
    add = lines.append
    add("## fio-memory: 4 KiB random writes, queue depth 32, memory export")
    add("")
    add(f"**blockoverlay / nbdkit = {ratio:.2f}×** (median IOPS {med['blockoverlay']['iops']:,.0f} vs "
        f"{med['nbdkit']['iops']:,.0f}); per-round ratios {min(round_ratios):.2f}–{max(round_ratios):.2f}, "
        f"their median {statistics.median(round_ratios):.2f}. "
        f"Verify: blockoverlay {'passed' if verify['blockoverlay']['passed'] else 'FAILED'}, "
        f"nbdkit {'passed' if verify['nbdkit']['passed'] else 'FAILED'}.")
    add("")
    add(f"- Produced by `make bench` (= `bash perf/run-all`, which runs `perf/fio-memory.sh`) "
        f"on {meta['date']}, {meta['elapsed']} s in all.")
    add(f"- Versions: {meta['fio']}, {meta['nbdkit']}, .NET runtime {meta['dotnet_runtime']}, "
        f"blockoverlay {meta['blockoverlay']}; Linux {meta['kernel']}, {meta['cpu']}.")
    add(f"- Load average (1, 5, 15 min) before: {load_before}; after: {load_after}.")
    add(f"- Servers, each on a unix socket in a temp dir `$TMP`, disks of {meta['size']}:")
    add(f"  `{meta['blockoverlay_cmd']}` and `{meta['nbdkit_cmd']}`.")
    add(f"- One IOPS run ({meta['runtime']} s; nbdkit's is the same but for the socket):")
    add("")
    add("  ```")
    add(f"  {cmd['blockoverlay']}")
    add("  ```")
    add("")
    add(f"- Verify pass, once per server before the rounds (every block of the {meta['fio_size']} "
        "region written once, then read back and checked):")
    add("")
    add("  ```")
    add(f"  {vcmd}")
    add("  ```")
    add("")
    add(f"- {rounds} rounds; within a round the servers run one after the other, and the one that goes "
        "first alternates (odd rounds blockoverlay first, even rounds nbdkit first).")
    add("")
    add("| round | blockoverlay IOPS | nbdkit IOPS | ratio |")
    add("|---:|---:|---:|---:|")
    for r in range(rounds):
        b, n = runs["blockoverlay"][r]["iops"], runs["nbdkit"][r]["iops"]
        add(f"| {r + 1} | {b:,.0f} | {n:,.0f} | {round_ratios[r]:.2f} |")
    add(f"| **median** | **{med['blockoverlay']['iops']:,.0f}** | **{med['nbdkit']['iops']:,.0f}** | "
        f"**{ratio:.2f}** |")
    add("")
    add("Medians over the rounds (completion latency as fio sees it, queue depth 32; server CPU from "
        "/proc/PID/stat over the run, all threads; fio CPU from fio's own usr+sys):")
    add("")
    add("| server | clat p50 | clat p99 | server CPU per IO | server CPU per run | fio CPU |")
    add("|---|---:|---:|---:|---:|---:|")
    for s in SERVERS:
        m = med[s]
        add(f"| {s} | {m['p50_us']:.0f} µs | {m['p99_us']:.0f} µs | {m['server_cpu_us_per_io']:.1f} µs | "
            f"{m['server_cpu_s']:.1f} s | {m['fio_cpu_pct']:.0f} % |")
    add("")
    add("Verify pass (crc32c, `--verify_fatal=1`; it passes only if fio reports no error and read back "
        "as much as it wrote; its IOPS include the read-back and are not comparable):")
    add("")
    add("| server | result | written | read back and checked |")
    add("|---|---|---:|---:|")
    for s in SERVERS:
        v = verify[s]
        add(f"| {s} | {'pass' if v['passed'] else 'FAIL (fio error ' + str(v['error']) + ')'} | "
            f"{v['written_kib'] // 1024} MiB | {v['read_kib'] // 1024} MiB |")
    add("")
    add("Limits of this comparison:")
    add("")
    add("- fio and both servers share the machine's 2 cores; fio alone takes a large part of one core "
        "(the fio CPU column), so a server's IOPS here is also capped by how much CPU it leaves to fio. "
        "Nothing is pinned.")
    add("- The machine is shared: other jobs run during the rounds (see the load average). Alternating "
        "the order spreads that noise over both servers but does not remove it; trust the ratio and "
        "its spread across rounds more than either absolute figure.")
    add("- One connection, one fio job: this measures per-connection request handling, not multi-conn "
        "scaling. Both memory disks are sparse; the verify pass touches every page of the region first, "
        "so the rounds measure overwrites of allocated memory only.")
    add("- Unix sockets only; TCP adds loopback costs to both sides.")
    add("")
    (out_dir / "section.md").write_text("\n".join(lines))

    if not all(v["passed"] for v in verify.values()):
        raise SystemExit("fio-report: a verify pass did not check everything it wrote")


if __name__ == "__main__":
    main()
