#!/usr/bin/python3
"""Summarises one run of perf/isolation.sh.

Reads OUT_DIR/meta, OUT_DIR/load-before, OUT_DIR/load-after and OUT_DIR/flushes.jsonl
(one JSON line per timed flush, written by isolation-driver.py), draws the curve with
gnuplot (OUT_DIR/curve.dat, OUT_DIR/isolation.gp, OUT_DIR/isolation.png) and writes the
Markdown section that perf/run-all puts into perf/RESULTS.md (OUT_DIR/section.md; also
printed).

Latencies are medians over the flushes of one point; p90 is by nearest rank. The bar
(issue 4, "Done when"): the isolated victim's median flush with 1 GiB of neighbours' dirty
data within 1.5x of its median with none, for every neighbour count.
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


def load(out_dir):
    meta = dict(line.split("=", 1) for line in (out_dir / "meta").read_text().splitlines())
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


def curve_points(flushes):
    """One row per (neighbour count, neighbours' dirty bytes), with both victims' flushes."""
    groups = group(flushes, "curve")
    rows = []
    for (count, target, victim, mode), recs in sorted(groups.items()):
        if mode != "isolated":
            continue
        glob = groups[(count, target, victim, "global")]
        rows.append({"count": count, "target": target, "iso": recs, "glob": glob,
                     "iso_median": med(recs, lambda r: r["flush_s"]),
                     "iso_p90": p90([r["flush_s"] for r in recs]),
                     "glob_median": med(glob, lambda r: r["flush_s"])})
    for row in rows:
        row["base"] = next(r for r in rows if r["count"] == row["count"] and r["target"] == 0)
        row["ratio"] = row["iso_median"] / row["base"]["iso_median"]
        row["glob_ratio"] = row["glob_median"] / row["base"]["glob_median"]
    return rows


def curve_table(rows):
    head = ["neighbours", "neighbours' dirty", "… at the isolated flush (median)", "isolated median ms",
            "isolated p90 ms", "isolated(x) / isolated(0)", "global median ms", "global / isolated",
            "written by one global flush (median)"]
    cells = [[str(r["count"]), size(r["target"]), size(med(r["iso"], lambda f: f["neighbour_dirty"])),
              ms(r["iso_median"]), ms(r["iso_p90"]), f"{r['ratio']:.2f}", ms(r["glob_median"]),
              f"{r['glob_median'] / r['iso_median']:.1f}×",
              size(med(r["glob"], lambda f: f["flush_data"] + f["flush_meta"]))] for r in rows]
    return table(head, cells)


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


def plot(out_dir, rows):
    """curve.dat (one gnuplot index per neighbour count), isolation.gp, isolation.png."""
    counts = sorted({r["count"] for r in rows})
    targets = sorted({r["target"] for r in rows})
    with open(out_dir / "curve.dat", "w") as f:
        for count in counts:
            f.write(f"# {count} neighbours: x, neighbours' dirty bytes, isolated median ms, "
                    "isolated p90 ms, global median ms\n")
            for r in (r for r in rows if r["count"] == count):
                f.write(f"{targets.index(r['target'])} {r['target']} {r['iso_median'] * 1000:.4f} "
                        f"{r['iso_p90'] * 1000:.4f} {r['glob_median'] * 1000:.4f}\n")
            f.write("\n\n")
    tics = ", ".join(f'"{size(t)}" {i}' for i, t in enumerate(targets))
    clauses = []
    for i, count in enumerate(counts):
        colour = COLOURS[i % len(COLOURS)]
        noun = "neighbour" if count == 1 else "neighbours"
        clauses.append(f"'curve.dat' index {i} using 1:3 with linespoints lw 2 pt 7 lc rgb '{colour}' "
                       f"title 'isolated, {count} {noun}'")
        clauses.append(f"'curve.dat' index {i} using 1:5 with linespoints lw 2 pt 5 dt 2 lc rgb '{colour}' "
                       f"title 'global, {count} {noun}'")
    script = "\n".join([
        "set terminal pngcairo size 960,600 font 'sans,10'",
        "set output 'isolation.png'",
        "set title \"Victim's FLUSH latency (median) vs its neighbours' dirty bytes: isolated (solid) vs global (dashed)\"",
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


def section(meta, flushes, rows):
    sweep = next(r for r in flushes if r["phase"] == "bytes")
    sweep_reps = len(next(iter(group(flushes, "bytes").values())))
    out = []
    add = out.append
    add("## isolation: a victim's flush latency against its neighbours' dirty bytes")
    add("")
    add(headline(rows))
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
        "`/proc/PID/task/*/schedstat` (CPU time, and time runnable but waiting for a CPU).")
    add("")
    add("![isolation](isolation.png)")
    add("")
    add(f"Victim flush latency against the neighbours' dirty bytes ({meta['victim_mib']} MiB of the victim's "
        "own dirty data per flush; the ratio is against the same neighbour count with none; the neighbours "
        "hold less than their target at the flush when the background writer has already taken some, "
        "which it does for a neighbour past 256 MiB or all of them past 1 GiB; the last column is what "
        "one global flush wrote, everyone's data and metadata):")
    add("")
    out.extend(curve_table(rows))
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
    add("- The machine is a shared VM; absolute latencies move from run to run (see the load average); "
        "compare within one run. A median of a few milliseconds moves by a millisecond or two between "
        "runs, which is a large ratio: read the ratios across all neighbour counts, not one.")
    return "\n".join(out) + "\n"


def main():
    out_dir = Path(sys.argv[1])
    meta, flushes = load(out_dir)
    rows = curve_points(flushes)
    plot(out_dir, rows)
    text = section(meta, flushes, rows)
    (out_dir / "section.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
