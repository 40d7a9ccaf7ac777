#!/usr/bin/python3
"""Summarises one run of perf/isolation.sh.

Reads OUT_DIR/meta, OUT_DIR/load-before, OUT_DIR/load-after and OUT_DIR/flushes.jsonl
(one JSON line per timed flush, written by isolation-driver.py), draws the curve with
gnuplot (OUT_DIR/curve.dat, OUT_DIR/isolation.gp, OUT_DIR/isolation.png) and writes the
Markdown section that perf/run-all puts into perf/RESULTS.md (OUT_DIR/section.md; also
printed).

Latencies are medians over the flushes of one point; p90 is by nearest rank. The bar
(issue 4, "Done when"): the isolated victim's median flush with 1 GiB of neighbours' dirty
data within 1.5x of its median with none, for every neighbour count. The peers (other
servers' victims, flush records whose mode is the peer's name) get the same curve columns,
with no bar.
"""
import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

KIB, MIB, GIB = 1024, 1024**2, 1024**3
BAR = 1.5
COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]
# Plot: one colour and line style per server's victim, one point type per neighbour count.
SERIES_STYLE = {"isolated": ("#1f77b4", 1), "global": ("#d62728", 2), "qemu-nbd": ("#2ca02c", 4),
                "nbd-server": ("#9467bd", 5)}
POINT_TYPES = [7, 5, 9, 11, 13, 15]
# What FLUSH is in each peer, for the section.
PEER_FLUSH = {
    "qemu-nbd": "qcow2 writes its cached metadata (L2 tables, refcounts) into the file, then "
                "`fdatasync` of that tenant's qcow2",
    "nbd-server": "`fsync` of that connection's copy-on-write diff file",
}


def load(out_dir):
    meta = dict(line.split("=", 1) for line in (out_dir / "meta").read_text().splitlines())
    meta.setdefault("peers", "")
    for when in ("before", "after"):
        meta[f"load_{when}"] = (out_dir / f"load-{when}").read_text().rsplit("load average:", 1)[1].strip()
    flushes = [json.loads(line) for line in (out_dir / "flushes.jsonl").read_text().splitlines()]
    if not flushes:
        raise SystemExit("isolation-report: flushes.jsonl is empty")
    return meta, flushes


def p90(values):
    ordered = sorted(values)
    return ordered[math.ceil(0.9 * len(ordered)) - 1]


def med(records, key):
    return statistics.median(key(r) for r in records)


def size(n):
    n = int(n)
    if n == 0:
        return "0"
    if n >= GIB and n % GIB == 0:
        return f"{n // GIB} GiB"
    if n >= MIB:
        return f"{n / MIB:,.4g} MiB"
    if n >= KIB:
        return f"{n / KIB:,.4g} KiB"
    return f"{n} B"


def ratio(x):
    return f"{x:,.2f}" if x < 100 else f"{x:,.0f}"


def ms(seconds):
    return f"{seconds * 1000:,.2f}"


def table(head, rows, align=None):
    align = align or ["---:"] * len(head)
    return ["| " + " | ".join(head) + " |", "|" + "|".join(align) + "|"] + \
           ["| " + " | ".join(row) + " |" for row in rows]


def group(flushes, phase):
    """{(neighbours, neighbour_target, victim_bytes, mode): [records]}."""
    groups = {}
    for r in flushes:
        if r["phase"] == phase:
            groups.setdefault((r["neighbours"], r["neighbour_target"], r["victim_bytes"], r["mode"]), []).append(r)
    return groups


def peer_names(meta, flushes):
    """The peers of the run that have curve flushes, in the order the run listed them."""
    modes = {r["mode"] for r in flushes if r["phase"] == "curve"}
    return [p for p in meta["peers"].split(",") if p and p in modes]


def curve_points(flushes, peers):
    """One row per (neighbour count, neighbours' dirty bytes), with both victims' flushes
    and each peer's victim's."""
    groups = group(flushes, "curve")
    rows = []
    for (count, target, victim, mode), recs in sorted(groups.items()):
        if mode != "isolated":
            continue
        glob = groups[(count, target, victim, "global")]
        row = {"count": count, "target": target, "iso": recs, "glob": glob,
               "iso_median": med(recs, lambda r: r["flush_s"]),
               "iso_p90": p90([r["flush_s"] for r in recs]),
               "glob_median": med(glob, lambda r: r["flush_s"]),
               "peer": {}, "peer_median": {}, "peer_p90": {}}
        for peer in peers:
            precs = groups.get((count, target, victim, peer), [])
            if precs:
                row["peer"][peer] = precs
                row["peer_median"][peer] = med(precs, lambda r: r["flush_s"])
                row["peer_p90"][peer] = p90([r["flush_s"] for r in precs])
        rows.append(row)
    for row in rows:
        row["base"] = next(r for r in rows if r["count"] == row["count"] and r["target"] == 0)
        row["ratio"] = row["iso_median"] / row["base"]["iso_median"]
        row["glob_ratio"] = row["glob_median"] / row["base"]["glob_median"]
        row["peer_ratio"] = {p: m / row["base"]["peer_median"][p] for p, m in row["peer_median"].items()
                             if p in row["base"]["peer_median"]}
    return rows


def curve_table(rows, peers):
    head = ["neighbours", "neighbours' dirty", "… at the isolated flush (median)", "isolated median ms",
            "isolated p90 ms", "isolated(x) / isolated(0)", "global median ms", "global / isolated",
            "written by one global flush (median)"]
    for peer in peers:
        head += [f"{peer} median ms", f"{peer} p90 ms", f"{peer}(x) / {peer}(0)"]
    cells = []
    for r in rows:
        cells.append([str(r["count"]), size(r["target"]), size(med(r["iso"], lambda f: f["neighbour_dirty"])),
                      ms(r["iso_median"]), ms(r["iso_p90"]), f"{r['ratio']:.2f}", ms(r["glob_median"]),
                      f"{r['glob_median'] / r['iso_median']:.1f}×",
                      size(med(r["glob"], lambda f: f["flush_data"] + f["flush_meta"]))])
        for peer in peers:
            if peer in r["peer_median"]:
                cells[-1] += [ms(r["peer_median"][peer]), ms(r["peer_p90"][peer]),
                              f"{r['peer_ratio'][peer]:.2f}" if peer in r["peer_ratio"] else "–"]
            else:
                cells[-1] += ["–", "–", "–"]
    return table(head, cells)


def p10(values):
    ordered = sorted(values)
    return ordered[max(math.ceil(0.1 * len(ordered)) - 1, 0)]


def disk_table(flushes, peers):
    """Every server's victim at every neighbours' dirty total, over all neighbour counts: its
    latency and spread, and what the disk and the page cache saw during its flushes."""
    curve = [r for r in flushes if r["phase"] == "curve"]
    targets = sorted({r["neighbour_target"] for r in curve})
    head = ["victim", "neighbours' dirty", "flushes (all neighbour counts)", "median ms", "p10–p90 ms",
            "disk: bytes written during the flush (median)", "disk: write requests during the flush (median)",
            "page cache Dirty just before the flush (median)", "… just after it (median)"]
    cells = []
    for mode in ["isolated", "global"] + peers:
        for target in targets:
            recs = [r for r in curve if r["mode"] == mode and r["neighbour_target"] == target]
            if not recs:
                continue
            times = [r["flush_s"] for r in recs]
            label = {"isolated": "BlockOverlay isolated", "global": "BlockOverlay global"}.get(mode, mode)
            cells.append([label, size(target), str(len(recs)), ms(statistics.median(times)),
                          f"{ms(p10(times))}–{ms(p90(times))}",
                          size(med(recs, lambda r: r["disk_write_bytes"])),
                          f"{med(recs, lambda r: r['disk_write_ios']):,.0f}",
                          size(med(recs, lambda r: r["page_dirty_before"])),
                          size(med(recs, lambda r: r["page_dirty_after"]))])
    return table(head, cells, ["---", "---:"] + ["---:"] * (len(head) - 2))


def beside_table(rows):
    """What ran beside the isolated flushes at 0 and at the top neighbours' dirty bytes."""
    top = max(r["target"] for r in rows)
    head = ["neighbours", "neighbours' dirty", "isolated median ms", "flushes with background write-back in them",
            "median ms of those", "median ms of the rest", "background bytes in a flush (median)",
            "server CPU in a flush (median ms)", "server run-queue wait in a flush (median ms)"]
    cells = []
    for r in (r for r in rows if r["target"] in (0, top)):
        busy = [f for f in r["iso"] if f["store"]["background"] > 0]
        quiet = [f for f in r["iso"] if f["store"]["background"] == 0]
        cells.append([str(r["count"]), size(r["target"]), ms(r["iso_median"]), f"{len(busy)} of {len(r['iso'])}",
                      ms(med(busy, lambda f: f["flush_s"])) if busy else "–",
                      ms(med(quiet, lambda f: f["flush_s"])) if quiet else "–",
                      size(med(r["iso"], lambda f: f["store"]["background"])),
                      ms(med(r["iso"], lambda f: f["server_cpu_s"])),
                      ms(med(r["iso"], lambda f: f["server_wait_s"]))])
    return table(head, cells)


def bytes_table(flushes):
    head = ["owner's dirty bytes", "mode", "owner's dirty at the flush", "data written", "metadata written",
            "data / owner's dirty", "store: journal in the flush", "store: background in the flush",
            "server write_bytes", "flush median ms"]
    cells = []
    for (_, _, owner, mode), recs in group(flushes, "bytes").items():
        data = med(recs, lambda r: r["flush_data"])
        cells.append([size(owner), mode, size(med(recs, lambda r: r["victim_dirty"])), size(data),
                      size(med(recs, lambda r: r["flush_meta"])), ratio(data / owner),
                      size(med(recs, lambda r: r["store"]["journal"])),
                      size(med(recs, lambda r: r["store"]["background"])),
                      size(med(recs, lambda r: r["proc_write_bytes"])), ms(med(recs, lambda r: r["flush_s"]))])
    return table(head, cells, ["---:", "---"] + ["---:"] * (len(head) - 2))


def cross_check(flushes):
    """The server's write_bytes against the sum of the store's counters, flush by flush, in the
    bytes sweep. (Not in the curve: there a background batch in flight at either edge of the
    window is in write_bytes, which counts at submission, but not in the counters, which count
    at completion, or the other way round.)"""
    sweep = [r for r in flushes if r["phase"] == "bytes"]
    off = [(r["proc_write_bytes"] - sum(r["store"].values()), r) for r in sweep
           if r["proc_write_bytes"] != sum(r["store"].values())]
    if not off:
        return (f"Cross-check: for every one of the {len(sweep)} flushes above, the server's `write_bytes` "
                "equals the sum of `blockoverlay_store_bytes_written_total` over the reasons.")
    diff, r = max(off, key=lambda o: abs(o[0]))
    modes = sorted({o[1]["mode"] for o in off})
    return (f"Cross-check: in {len(off)} of the {len(sweep)} flushes above (mode {', '.join(modes)}) the server's "
            "`write_bytes` differs from the sum of `blockoverlay_store_bytes_written_total` over the reasons; "
            f"the largest gap: {size(abs(diff))} {'more' if diff > 0 else 'fewer'} bytes written than counted "
            f"({r['mode']} victim, {size(r['victim_bytes'])} of its own, {r['neighbours']} neighbours holding "
            f"{size(r['neighbour_target'])}; the store counted {size(r['store']['journal'])} of journal, the "
            "victim's flush counter "
            f"{size(r['flush_meta'])} of metadata).")


def plot(out_dir, rows, peers):
    """curve.dat (one gnuplot index per neighbour count), isolation.gp, isolation.png."""
    counts = sorted({r["count"] for r in rows})
    targets = sorted({r["target"] for r in rows})
    with open(out_dir / "curve.dat", "w") as f:
        for count in counts:
            f.write(f"# {count} neighbours: x, neighbours' dirty bytes, isolated median ms, "
                    "isolated p90 ms, global median ms" + "".join(f", {p} median ms" for p in peers) + "\n")
            for r in (r for r in rows if r["count"] == count):
                f.write(f"{targets.index(r['target'])} {r['target']} {r['iso_median'] * 1000:.4f} "
                        f"{r['iso_p90'] * 1000:.4f} {r['glob_median'] * 1000:.4f}" +
                        "".join(f" {r['peer_median'][p] * 1000:.4f}" if p in r["peer_median"] else " NaN"
                                for p in peers) + "\n")
            f.write("\n\n")
    tics = ", ".join(f'"{size(t)}" {i}' for i, t in enumerate(targets))
    names = {"isolated": "BlockOverlay isolated", "global": "BlockOverlay global (syncfs-like)",
             "qemu-nbd": "qemu-nbd, qcow2 per tenant", "nbd-server": "nbd-server, copy-on-write"}
    series = [("isolated", 3), ("global", 5)] + [(p, 6 + k) for k, p in enumerate(peers)]
    clauses = []
    for k, (mode, column) in enumerate(series):
        colour, dash = SERIES_STYLE.get(mode, (COLOURS[k % len(COLOURS)], 3))
        # A little to the side per series, so that points at one x do not hide each other.
        shift = (k - (len(series) - 1) / 2) * 0.03
        for i, count in enumerate(counts):
            title = f"title '{names.get(mode, mode)}'" if i == 0 else "notitle"
            clauses.append(f"'curve.dat' index {i} using ($1+{shift:.2f}):{column} with linespoints lw 2 "
                           f"pt {POINT_TYPES[i % len(POINT_TYPES)]} dt {dash} lc rgb '{colour}' {title}")
    for i, count in enumerate(counts):
        noun = "neighbour" if count == 1 else "neighbours"
        clauses.append(f"NaN with points pt {POINT_TYPES[i % len(POINT_TYPES)]} lc rgb 'black' "
                       f"title '{count} {noun}'")
    script = "\n".join([
        "set terminal pngcairo size 1100,600 font 'sans,10'",
        "set output 'isolation.png'",
        "set title \"Victim's FLUSH latency (median) vs its neighbours' dirty bytes"
        + (", BlockOverlay beside its peers" if peers else ": isolated (solid) vs global (dashed)") + "\"",
        "set xlabel \"neighbours' dirty bytes, total, spread evenly over the neighbours\"",
        "set ylabel 'FLUSH latency, median (ms, log scale)'",
        "set logscale y",
        "set grid ytics mytics xtics",
        f"set xtics ({tics})",
        f"set xrange [-0.2:{len(targets) - 1 + 0.2}]",
        "set key outside right top",
        "plot " + ", \\\n     ".join(clauses),
        "",
    ])
    (out_dir / "isolation.gp").write_text(script)
    subprocess.run(["gnuplot", "isolation.gp"], cwd=out_dir, check=True)


def peer_headline(rows, peers):
    top = max(r["target"] for r in rows)
    at_top = [r for r in rows if r["target"] == top]
    parts = []
    for peer in peers:
        have = [r for r in at_top if peer in r["peer_ratio"]]
        if not have:
            continue
        worst = max(have, key=lambda r: r["peer_ratio"][peer])
        iso = worst["iso_median"]
        parts.append(f"**{peer}**: {ms(worst['peer_median'][peer])} ms against "
                     f"{ms(worst['base']['peer_median'][peer])} ms with none, {worst['peer_ratio'][peer]:.2f}× "
                     f"(the worst neighbour count, {worst['count']}; "
                     f"{min(r['peer_ratio'][peer] for r in have):.2f}–{worst['peer_ratio'][peer]:.2f}× over all "
                     f"counts; {worst['peer_median'][peer] / iso:.1f}× the isolated victim's "
                     f"{ms(iso)} ms at that point)")
    if not parts:
        return ""
    return (f" Peers, each a victim on its own overlay beside neighbours on theirs, with {size(top)} of "
            "neighbours' dirty data, median flush: " + "; ".join(parts) + ".")


def headline(rows):
    top = max(r["target"] for r in rows)
    at_top = [r for r in rows if r["target"] == top]
    worst = max(at_top, key=lambda r: r["ratio"])
    failing = [r for r in at_top if r["ratio"] > BAR]
    glob = max(at_top, key=lambda r: r["glob_median"])
    verdict = "met" if not failing else "NOT met (" + ", ".join(
        f"{r['count']} neighbour{'s' if r['count'] > 1 else ''}: {r['ratio']:.2f}×" for r in failing) + ")"
    return (f"**Isolated victim with {size(top)} of neighbours' dirty data: median flush "
            f"{ms(worst['iso_median'])} ms against {ms(worst['base']['iso_median'])} ms with none, "
            f"{worst['ratio']:.2f}× (the worst neighbour count, {worst['count']}; "
            f"{min(r['ratio'] for r in at_top):.2f}–{worst['ratio']:.2f}× over all counts). "
            f"Bar ≤ {BAR}×: {verdict}.** "
            f"The global victim's flush at {size(top)} takes up to {ms(glob['glob_median'])} ms "
            f"({glob['count']} neighbours): {glob['glob_ratio']:.0f}× its own latency with none and "
            f"{glob['glob_median'] / glob['iso_median']:.0f}× the isolated victim's at the same point.")


def vm_settings(text):
    """'dirty_ratio=20 ... thresholds_bytes=B,T' -> (dict of the sysctls, background bytes, throttle bytes)."""
    values = dict(item.split("=", 1) for item in text.split())
    background, throttle = (int(x) for x in values.pop("thresholds_bytes").split(","))
    return values, background, throttle


def gib(n):
    return f"{n / GIB:.2f} GiB"


def peers_text(meta, peers):
    """The bullets that say how the peers ran and what their FLUSH is."""
    out = []
    sysctl, background, throttle = vm_settings(meta["vm_before"])
    _, background_after, throttle_after = vm_settings(meta["vm_after"])
    out.append(f"- The peers, in the same rounds: each serves the same tenants (`victim`, `n01`…`n16`), every "
               f"tenant on its own overlay over one sparse {size(int(meta['disk_mib']) * MIB)} raw base (zeros, "
               "as the instances are over zeros), all on the store's filesystem in `$TMP/peers`; their neighbours "
               "write exactly what BlockOverlay's do, and their victim writes the same 4 KiB random blocks. "
               "Each point gets one flush of each peer's victim in the first "
               f"{meta['reps_peer']} rounds, right after BlockOverlay's, so it has {meta['reps_peer']} flushes "
               "of each peer. Versions: " + ", ".join(
                   v for v in (meta.get("qemu_nbd") if "qemu-nbd" in peers else "",
                               meta.get("nbd_server") if "nbd-server" in peers else "") if v) + ".")
    if "qemu-nbd" in peers:
        out.append("- **qemu-nbd** (what a qemu or Kata user runs): one qcow2 (64 KiB clusters, backing file the "
                   "base) and one `qemu-nbd` per tenant, page-cache I/O. FLUSH: " + PEER_FLUSH["qemu-nbd"] + ". "
                   "The victim's qcow2 is written in full in the warm-up, so every measured write overwrites an "
                   "allocated cluster (qcow2's steady state: no qcow2 metadata changes and no filesystem block "
                   "allocation, so the `fdatasync` writes the victim's 1,024 scattered pages and flushes the disk):")
        out += ["", "  ```", f"  {meta['qemu_cmd']}", "  ```", ""]
    if "nbd-server" in peers:
        out.append("- **nbd-server** (copy-on-write over the base; its diff file lives per connection and goes "
                   "at disconnect, so this is a scratch disk, not a persistent one). FLUSH: "
                   + PEER_FLUSH["nbd-server"] + ". The victim writes only blocks it has not written before, so "
                   "every measured write allocates in its sparse diff file (ext4 delayed allocation: the blocks "
                   "are allocated at the `fsync`, which then commits the filesystem's journal — the one journal "
                   "every tenant's file shares):")
        out += ["", "  ```", f"  {meta['nbd_server_cmd']}", "  ```", ""]
    out.append("- The kernel's write-back of the peers' dirty pages: " + ", ".join(
        f"`vm.{k}` = {v}" for k, v in sysctl.items()) + f"; on this {meta['memory']} machine that puts the "
        f"background write-back threshold at {gib(background)} and the throttling threshold at {gib(throttle)} of "
        f"dirty pages (`/proc/vmstat` `nr_dirty_background_threshold`, `nr_dirty_threshold`, at the start; "
        f"{gib(background_after)} and {gib(throttle_after)} at the end). The largest neighbours' total here stays "
        "below the background threshold, and no page is older than a few seconds at a flush (the neighbours are "
        "flushed clean before each measurement), far from the 30 s expiry: so the kernel starts no write-back of "
        "the neighbours' pages during these flushes. BlockOverlay's cache, at its defaults, starts background "
        "write-back much earlier: 256 MiB per instance, 1 GiB in all, or 5 s of age.")
    return out


def section(meta, flushes, rows):
    sweep = next(r for r in flushes if r["phase"] == "bytes")
    peers = peer_names(meta, flushes)
    sweep_reps = len(next(iter(group(flushes, "bytes").values())))
    out = []
    add = out.append
    add("## isolation: a victim's flush latency against its neighbours' dirty bytes")
    add("")
    add(headline(rows) + peer_headline(rows, peers))
    add("")
    add(f"- Produced by `make bench` (= `bash perf/run-all`, which runs `perf/isolation.sh`; alone: "
        f"`perf/run-all isolation`) on {meta['date']}, {meta['elapsed']} s in all.")
    add(f"- Versions: blockoverlay {meta['blockoverlay']}, .NET runtime {meta['dotnet_runtime']}, "
        f"libnbd {meta['libnbd']}, {meta['gnuplot']}; Linux {meta['kernel']}, {meta['cpu']}, {meta['memory']}; "
        f"the store on {meta['fs']} (a virtio disk of a shared VM).")
    add(f"- Load average (1, 5, 15 min) before: {meta['load_before']}; after: {meta['load_after']}.")
    add(f"- One server, one store ({meta['store_size']}, in a temp dir `$TMP` under /var/tmp), "
        f"instances of {size(int(meta['disk_mib']) * MIB)} over zeros: `victim-iso` (flush mode isolated), "
        "`victim-glob` (global), neighbours `n01`…`n16` (isolated); one connection per instance, "
        "opened once and kept; the cache at its defaults:")
    add("")
    add("  ```")
    add(f"  {meta['serve_cmd']}")
    add(f"  {meta['driver_cmd']}")
    add("  ```")
    add("")
    add("- One measurement: the neighbours the last one dirtied flush (untimed), so each starts from clean "
        "neighbours and no leftover write-back; the neighbours in use write their shares (1 MiB writes "
        "from offset 0, round robin, never flushed); the victim writes "
        f"{meta['victim_mib']} MiB as random 4 KiB blocks (a fresh random set each time) and sends FLUSH; "
        "only the FLUSH is timed (libnbd's blocking `flush()`, client side). Random 4 KiB blocks are what "
        "a guest's fsync leaves behind (scattered data and metadata blocks), and each is its own extent, "
        "so the flush pays for metadata as well as data; 4 MiB is a modest fsync whose own cost is a few "
        "milliseconds, small enough that interference shows.")
    add(f"- Per neighbour count, {meta['reps_iso']} rounds; a round visits every neighbours' dirty total "
        "(ascending, then descending in the next round) with one flush of the isolated victim and, in "
        f"the first {meta['reps_glob']} rounds, one of the global victim right after it. So each point "
        f"has {meta['reps_iso']} isolated and {meta['reps_glob']} global flushes, and a point and its "
        "0-byte baseline are measured seconds apart, under the same load of the shared machine. "
        "A warm-up (not recorded) runs first.")
    add("- Around each flush: the server's `/metrics` (the victim's "
        "`blockoverlay_instance_flush_bytes_total{kind=data|meta}`, `blockoverlay_store_bytes_written_total` "
        "by reason, every instance's `blockoverlay_instance_dirty_bytes` just before the FLUSH), the "
        "server's `/proc/PID/io` `write_bytes` as a cross-check, and its threads' "
        "`/proc/PID/task/*/schedstat` (CPU time, and time runnable but waiting for a CPU); for every "
        f"server, BlockOverlay and the peers, the disk's `/proc/diskstats` ({meta.get('disk_device', '?')}: bytes "
        "and write requests) and the page cache's `Dirty` in `/proc/meminfo`, both the whole machine's.")
    if peers:
        out.extend(peers_text(meta, peers))
    add("")
    add("![isolation](isolation.png)")
    add("")
    add(f"Victim flush latency against the neighbours' dirty bytes ({meta['victim_mib']} MiB of the victim's "
        "own dirty data per flush; the ratio is against the same neighbour count with none; the neighbours "
        "hold less than their target at the flush when the background writer has already taken some, "
        "which it does for a neighbour past 256 MiB or all of them past 1 GiB; the last column is what "
        "one global flush wrote, everyone's data and metadata):")
    add("")
    out.extend(curve_table(rows, peers))
    add("")
    add("Every victim, BlockOverlay's and the peers', at each neighbours' dirty total, all neighbour counts "
        "together (the spread is p10–p90 over those flushes; the disk and page-cache figures are the whole "
        "machine's, so other jobs' writes show up in them too: read them for the order of magnitude — whether "
        "a flush wrote its own few MiB or its neighbours' hundreds — not to the byte):")
    add("")
    out.extend(disk_table(flushes, peers))
    add("")
    add("What ran beside the isolated victim's flushes (background write-back of the neighbours, counted "
        "by the store during the FLUSH; server CPU and run-queue wait over the same window):")
    add("")
    out.extend(beside_table(rows))
    add("")
    add(f"Bytes written per flush against the owner's dirty bytes (random 4 KiB blocks; {sweep['neighbours']} "
        f"neighbours holding {size(sweep['neighbour_target'])}; medians of {sweep_reps} flushes; data and "
        "metadata are the victim's `flush_bytes_total`, which in global mode counts everyone's; its metadata "
        "counts the journal records, the store's journal counter the 4 KiB journal blocks written):")
    add("")
    out.extend(bytes_table(flushes))
    add("")
    add(cross_check(flushes))
    add("")
    add("Limits of this measurement:")
    add("")
    add("- The client (one Python process, synchronous libnbd calls) shares the 2 cores with the server, "
        "but it only waits during the timed FLUSH; what competes with the flush is the server's own "
        "background write-back of the neighbours, by design, and the other jobs of the shared machine.")
    add("- Both victims and all neighbours live in one server and one store, so the global victim is "
        "measured on the same disk, cache and store as the isolated one.")
    if peers:
        add("- The peers are like-for-like in what the client does and times (the same writes, the same FLUSH "
            "timed the same way, the same disk and filesystem, the same rounds), not in where the neighbours' "
            "dirty data waits: BlockOverlay's waits in its own cache, whose background writer starts early "
            "(above), so its isolated victim flushes while that writer may be running; the peers' waits in the "
            "kernel's page cache, which writes none of it back here (below the background threshold, younger "
            "than the 30 s expiry). With more dirty pages than the background threshold, or older than 30 s, "
            "the kernel's flusher writes the neighbours' pages while a peer's victim flushes: not measured here.")
        add("- The victims' own flushes differ by design: qemu-nbd's overwrites in place, so its flush sends "
            "the disk about one write request per 4 KiB block; nbd-server's and BlockOverlay's write new blocks, "
            "which the filesystem or the store allocate next to each other, so a few large requests carry them "
            "(the write-request column). qcow2's allocating path (fresh clusters: qcow2 metadata, and a "
            "filesystem journal commit) is not what its victim measures here.")
        add("- The page cache's `Dirty` counts whole folios, which can be larger than 4 KiB: a 4 KiB write into "
            "a page-cache folio of a file written in large pieces counts as the whole folio, so `Dirty` can "
            "show far more than a victim wrote (qemu-nbd's, whose qcow2 was written in 1 MiB pieces); the "
            "disk's bytes count what was written.")
    add("- The machine is a shared VM; absolute latencies move from run to run (see the load average); "
        "compare within one run. A median of a few milliseconds moves by a millisecond or two between "
        "runs, which is a large ratio: read the ratios across all neighbour counts, not one.")
    return "\n".join(out) + "\n"


def main():
    out_dir = Path(sys.argv[1])
    meta, flushes = load(out_dir)
    rows = curve_points(flushes, peer_names(meta, flushes))
    plot(out_dir, rows, peer_names(meta, flushes))
    text = section(meta, flushes, rows)
    (out_dir / "section.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
