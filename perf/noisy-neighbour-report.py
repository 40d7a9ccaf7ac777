#!/usr/bin/python3
"""Summarises one run of perf/noisy-neighbour.sh.

Reads OUT_DIR/meta, OUT_DIR/load-before, OUT_DIR/load-after, OUT_DIR/phases.tsv and, per
measured phase LABEL (rROUND-PHASE), LABEL.json (fio, both jobs), LABEL.cmd, LABEL.sched
(the servers' CPU and run-queue wait before and after) and, for blockoverlay's phases,
LABEL.before.metrics / LABEL.after.metrics (its /metrics). Writes the Markdown section that
perf/run-all puts into perf/RESULTS.md (OUT_DIR/section.md; also printed).

Figures are per phase from fio's JSON: the steady job's write completion latency (clat)
percentiles, its fsync (FLUSH) latency percentiles, and the noisy job's throughput and
FLUSH count. The tables quote the median over rounds; the headline ratio is
median(steady p99 with the neighbour) / median(steady p99 alone) of the same system, with
the per-round ratios (each against the same round's alone phase) beside it.
"""
import json
import re
import statistics
import sys
from pathlib import Path

MIB = 1024**2
SERIES = re.compile(r'^(\w+)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
SYSTEM_NAMES = {"bo": "blockoverlay", "qemu": "qemu-nbd (qcow2)", "nbdkit": "nbdkit file (raw, no CoW)"}
# phase -> (its alone baseline, the headline's name for it)
NOISY = {"bo-isolated": ("bo-alone", "blockoverlay isolated"),
         "bo-global": ("bo-alone", "blockoverlay global"),
         "qemu-noisy": ("qemu-alone", "qemu-nbd qcow2"),
         "nbdkit-noisy": ("nbdkit-alone", "nbdkit file")}
PHASE_TEXT = {"bo-alone": "blockoverlay, steady alone (isolated)",
              "bo-isolated": "blockoverlay, both isolated",
              "bo-global": "blockoverlay, both global",
              "qemu-alone": "qemu-nbd, steady alone",
              "qemu-noisy": "qemu-nbd, steady + noisy",
              "nbdkit-alone": "nbdkit file, steady alone",
              "nbdkit-noisy": "nbdkit file, steady + noisy"}


def pct(stats, p):
    return stats.get("percentile", {}).get(f"{p:.6f}", 0) / 1e6  # ms


def parse_metrics(path):
    samples = {}
    for line in path.read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        m = SERIES.match(line)
        if m:
            samples[(m.group(1), frozenset(LABEL.findall(m.group(2) or "")))] = float(m.group(3))
    return samples


def metric(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


def load_phase(out_dir, label, phase, meta):
    data = json.loads((out_dir / f"{label}.json").read_text())
    jobs = {j["jobname"]: j for j in data["jobs"]}
    s = jobs["steady"]
    w, sync = s["write"], s["sync"]
    rec = {"label": label, "phase": phase,
           "w_p50": pct(w["clat_ns"], 50), "w_p99": pct(w["clat_ns"], 99), "w_p999": pct(w["clat_ns"], 99.9),
           "w_max": w["clat_ns"]["max"] / 1e6, "slat_mean_us": w["slat_ns"]["mean"] / 1e3,
           "f_p50": pct(sync["lat_ns"], 50), "f_p99": pct(sync["lat_ns"], 99), "f_p999": pct(sync["lat_ns"], 99.9),
           "f_max": sync["lat_ns"].get("max", 0) / 1e6, "f_n": sync["total_ios"],
           "iops": w["iops"], "fio_cpu": s["usr_cpu"] + s["sys_cpu"]}
    if "noisy" in jobs:
        n = jobs["noisy"]
        secs = n["job_runtime"] / 1000
        rec.update(n_mibs=n["write"]["bw_bytes"] / MIB, n_flushes=n["sync"]["total_ios"],
                   n_flush_rate=n["sync"]["total_ios"] / secs if secs else 0,
                   n_f_p50=pct(n["sync"]["lat_ns"], 50), n_f_p99=pct(n["sync"]["lat_ns"], 99),
                   n_w_p99=pct(n["write"]["clat_ns"], 99), n_cpu=n["usr_cpu"] + n["sys_cpu"])
    # Server CPU and run-queue wait over the phase (all servers of the system together).
    cpu, wait = {}, {}
    for line in (out_dir / f"{label}.sched").read_text().splitlines():
        f = line.split()
        if f[2] == "cpu":
            cpu[(f[0], f[1])] = float(f[3])
        else:
            wait[(f[0], f[1], f[3])] = int(f[4])
    wall = s["job_runtime"] / 1000 + (float(meta["lead"]) + float(meta["tail"]) if "noisy" in jobs else 0)
    rec["srv_cpu_s"] = sum(v - cpu[(n, "before")] for (n, w), v in cpu.items() if w == "after") / float(meta["clk_tck"])
    # Threads alive at the end: their increase (all of it for a thread born during the phase).
    rec["srv_wait_s"] = sum(v - wait.get((n, "before", t), 0) for (n, w, t), v in wait.items() if w == "after") / 1e9
    rec["srv_cpu_pct"] = 100 * rec["srv_cpu_s"] / wall if wall else 0
    mb, ma = out_dir / f"{label}.before.metrics", out_dir / f"{label}.after.metrics"
    if mb.exists() and ma.exists():
        b, a = parse_metrics(mb), parse_metrics(ma)

        def d(name, **labels):
            return metric(a, name, **labels) - metric(b, name, **labels)
        steady_inst = "steady-glob" if phase == "bo-global" else "steady-iso"
        noisy_inst = "noisy-glob" if phase == "bo-global" else "noisy-iso"
        rec["bo"] = {
            "steady_throttled_s": d("blockoverlay_instance_throttled_seconds_total", instance=steady_inst),
            "noisy_throttled_s": d("blockoverlay_instance_throttled_seconds_total", instance=noisy_inst),
            "steady_flush_data": d("blockoverlay_instance_flush_bytes_total", instance=steady_inst, kind="data"),
            "steady_flushes": d("blockoverlay_instance_flushes_total", instance=steady_inst),
            "noisy_flushes": d("blockoverlay_instance_flushes_total", instance=noisy_inst),
            "noisy_flush_data": d("blockoverlay_instance_flush_bytes_total", instance=noisy_inst, kind="data"),
            "background": d("blockoverlay_store_bytes_written_total", reason="background"),
            "by_flush": d("blockoverlay_store_bytes_written_total", reason="flush"),
            "journal": d("blockoverlay_store_bytes_written_total", reason="journal"),
            "checkpoint": d("blockoverlay_store_bytes_written_total", reason="checkpoint"),
            "gc_pause_s": d("blockoverlay_gc_pause_seconds_total"),
            "gc_count": d("blockoverlay_gc_collections_total", generation="0"),
            "allocated": d("blockoverlay_gc_allocated_bytes_total"),
        }
    return rec


def load(out_dir):
    meta = dict(line.split("=", 1) for line in (out_dir / "meta").read_text().splitlines())
    for when in ("before", "after"):
        meta[f"load_{when}"] = (out_dir / f"load-{when}").read_text().rsplit("load average:", 1)[1].strip()
    rows = [line.split("\t") for line in (out_dir / "phases.tsv").read_text().splitlines()[1:]]
    recs = []
    for rnd, position, phase, start, end in rows:
        rec = load_phase(out_dir, f"r{rnd}-{phase}", phase, meta)
        rec.update(round=int(rnd), position=int(position), start=int(start), end=int(end))
        recs.append(rec)
    if not recs:
        raise SystemExit("noisy-neighbour-report: no phases in phases.tsv")
    return meta, recs


def med(recs, key):
    values = [key(r) for r in recs]
    return statistics.median(values) if values else float("nan")


def ms(x):
    if x != x:
        return "–"
    return f"{x:,.2f}" if x < 100 else f"{x:,.0f}"


def size(n):
    n = float(n)
    if n >= MIB:
        return f"{n / MIB:,.1f} MiB"
    if n >= 1024:
        return f"{n / 1024:,.1f} KiB"
    return f"{n:.0f} B"


def table(head, rows, align=None):
    align = align or ["---"] + ["---:"] * (len(head) - 1)
    return ["| " + " | ".join(head) + " |", "|" + "|".join(align) + "|"] + \
           ["| " + " | ".join(row) + " |" for row in rows]


def by_phase(recs):
    out = {}
    for r in recs:
        out.setdefault(r["phase"], []).append(r)
    return out


def ratios(groups, phase, key):
    """(ratio of medians, [per-round ratios]) of phase against its alone phase."""
    base_phase = NOISY[phase][0]
    base = {r["round"]: r for r in groups[base_phase]}
    per_round = [r[key] / base[r["round"]][key] for r in groups[phase] if base[r["round"]][key] > 0]
    return med(groups[phase], lambda r: r[key]) / med(groups[base_phase], lambda r: r[key]), per_round


def spread(values):
    return f"{min(values):.1f}–{max(values):.1f}" if values else "–"


def ratio_list(groups, key, bold):
    """Per system: the median of `key` beside the neighbour against alone, and the per-round spread."""
    mark = "**" if bold else ""
    items = []
    for phase, (base, name) in NOISY.items():
        if phase not in groups:
            continue
        r, per = ratios(groups, phase, key)
        items.append(f"{name} {mark}{r:.1f}×{mark} ({ms(med(groups[phase], lambda x: x[key]))} ms against "
                     f"{ms(med(groups[base], lambda x: x[key]))} ms; rounds {spread(per)})")
    return "; ".join(items)


def headline(groups):
    return ("Steady tenant's p99 write latency with the noisy neighbour ÷ alone (medians over the rounds; "
            "“rounds”: the range of the per-round ratios): " + ratio_list(groups, "w_p99", bold=True)
            + ". Its p99 FLUSH latency, the same way: " + ratio_list(groups, "f_p99", bold=False) + ".")


def summary_table(groups, phases):
    head = ["phase", "write p50 ms", "write p99 ms", "write p99.9 ms", "write max ms", "FLUSH p50 ms",
            "FLUSH p99 ms", "FLUSH p99.9 ms", "steady IOPS", "noisy MiB/s", "noisy FLUSH/s",
            "noisy FLUSH p50 ms", "server CPU %", "server run-queue wait s"]
    rows = []
    for p in phases:
        rs = groups[p]
        noisy = "n_mibs" in rs[0]
        rows.append([PHASE_TEXT.get(p, p), ms(med(rs, lambda r: r["w_p50"])), ms(med(rs, lambda r: r["w_p99"])),
                     ms(med(rs, lambda r: r["w_p999"])), ms(med(rs, lambda r: r["w_max"])),
                     ms(med(rs, lambda r: r["f_p50"])), ms(med(rs, lambda r: r["f_p99"])),
                     ms(med(rs, lambda r: r["f_p999"])), f"{med(rs, lambda r: r['iops']):.0f}",
                     f"{med(rs, lambda r: r['n_mibs']):.0f}" if noisy else "–",
                     f"{med(rs, lambda r: r['n_flush_rate']):.1f}" if noisy else "–",
                     ms(med(rs, lambda r: r["n_f_p50"])) if noisy else "–",
                     f"{med(rs, lambda r: r['srv_cpu_pct']):.0f}", f"{med(rs, lambda r: r['srv_wait_s']):.2f}"])
    return table(head, rows)


def round_table(recs, phases):
    head = ["round", "position", "phase", "write p99 ms", "write p99.9 ms", "FLUSH p99 ms", "steady IOPS",
            "noisy MiB/s", "write p99 / same round alone"]
    groups = by_phase(recs)
    rows = []
    for r in sorted(recs, key=lambda r: (r["round"], r["position"])):
        ratio = "–"
        if r["phase"] in NOISY:
            base = next(b for b in groups[NOISY[r["phase"]][0]] if b["round"] == r["round"])
            ratio = f"{r['w_p99'] / base['w_p99']:.1f}×" if base["w_p99"] else "–"
        rows.append([str(r["round"]), str(r["position"]), PHASE_TEXT.get(r["phase"], r["phase"]), ms(r["w_p99"]),
                     ms(r["w_p999"]), ms(r["f_p99"]), f"{r['iops']:.0f}",
                     f"{r['n_mibs']:.0f}" if "n_mibs" in r else "–", ratio])
    return table(head, rows, ["---:", "---:", "---"] + ["---:"] * (len(head) - 3))


def bo_table(groups):
    head = ["phase", "steady throttled s", "noisy throttled s", "steady FLUSHes", "data written by the steady's FLUSHes",
            "… per FLUSH", "noisy FLUSHes", "store: flush", "store: background", "store: journal",
            "store: checkpoint", "GC pauses (all threads)", "GCs", "allocated"]
    rows = []
    for p in ("bo-alone", "bo-isolated", "bo-global"):
        rs = [r for r in groups.get(p, []) if "bo" in r]
        if not rs:
            continue

        def m(key):
            return med(rs, lambda r: r["bo"][key])
        per = med(rs, lambda r: r["bo"]["steady_flush_data"] / r["bo"]["steady_flushes"]
                  if r["bo"]["steady_flushes"] else 0)
        rows.append([PHASE_TEXT[p], f"{m('steady_throttled_s'):.2f}", f"{m('noisy_throttled_s'):.2f}",
                     f"{m('steady_flushes'):.0f}", size(m("steady_flush_data")), size(per),
                     f"{m('noisy_flushes'):.0f}", size(m("by_flush")), size(m("background")),
                     size(m("journal")), size(m("checkpoint")), f"{1000 * m('gc_pause_s'):.0f} ms",
                     f"{m('gc_count'):.0f}", size(m("allocated"))])
    return table(head, rows)


def section(meta, recs):
    groups = by_phase(recs)
    phases = meta["phases"].split()
    out = []
    add = out.append
    add("## noisy-neighbour: a steady tenant's write latency while a neighbour writes and flushes")
    add("")
    add(headline(groups))
    add("")
    add(f"- Produced by `bash perf/run-all noisy-neighbour` (also part of `make bench`), which runs "
        f"`perf/noisy-neighbour.sh`, on {meta['date']}, {meta['elapsed']} s in all.")
    versions = (f"blockoverlay {meta['blockoverlay']}, .NET runtime {meta['dotnet_runtime']}, {meta['fio']}, "
                f"{meta['qemu_nbd']}")
    if "nbdkit" in meta:
        versions += f", {meta['nbdkit']}"
    add(f"- Versions: {versions}; Linux {meta['kernel']}, {meta['cpu']}, {meta['memory']}; everything on "
        f"{meta['fs']} (a virtio disk of a shared VM); vm.dirty_ratio / dirty_background_ratio "
        f"{meta['dirty_ratio'].replace(' ', ' / ')} %.")
    add(f"- Load average (1, 5, 15 min) before the rounds: {meta['load_before']}; after: {meta['load_after']}.")
    add(f"- Tenants: **steady** = 4 KiB random writes over its first {meta['steady_size']} at "
        f"{meta['steady_iops']} IOPS (fio `--rate_iops`), queue depth {meta['steady_qd']}, an fsync (NBD FLUSH) "
        f"every {meta['steady_fsync']} writes — a modest guest that fsyncs; **noisy** = {meta['noisy_bs']} "
        f"sequential writes over its whole disk "
        + (f"capped at fio `--rate={meta['noisy_rate']}` (bytes per second)" if meta.get("noisy_rate") else "as fast as the server takes them")
        + f", queue depth {meta['noisy_qd']}, "
        f"fsync every {meta['noisy_fsync']} writes. fio at queue depth > 1 sends such an fsync as a burst of up to "
        "queue-depth FLUSH requests (seen here: about one FLUSH per queue-depth writes; all but the first of a "
        "burst find little to write), so the noisy FLUSH/s column counts requests, not fsync points.")
    add(f"- Disks: a raw base of {meta['base_size']} random bytes, shared read-only; blockoverlay: one store "
        f"({meta['store_size']}), instances `steady-iso`, `noisy-iso` (flush mode isolated) and `steady-glob`, "
        "`noisy-glob` (global), all over the base; qemu-nbd: one qcow2 overlay per tenant (64 KiB clusters) over "
        "the same base, one qemu-nbd per overlay"
        + ("; nbdkit: one `file` plugin per tenant on a raw copy of the base" if "nbdkit" in meta else "")
        + "; all files in one temp dir `$TMP` under /var/tmp on the same filesystem. Before the rounds (untimed) each steady region and each noisy disk is written once "
        "(so qcow2 overwrites allocated clusters, as a long-lived guest mostly does) and each system runs a 5 s "
        "warm-up phase.")
    add("- A phase is one fio process: the noisy job starts, the steady job joins "
        f"{meta['lead']} s later and runs {meta['runtime']} s, the noisy job stops {meta['tail']} s after it; "
        f"both end with an fsync; then {meta['settle']} s of quiet. Alone phases run the steady job only. "
        f"{meta['rounds']} rounds; odd rounds run the phases in the order {', '.join(phases)}, even rounds in "
        "reverse. The global phase's ratio is against the isolated steady alone (alone, the two modes do the "
        "same: nobody else has dirty data).")
    add("- Latency is fio's completion latency (clat; submission latency is a few µs with the nbd engine) of "
        "the steady job's writes, and fio's fsync latency (`sync` in its JSON) for its FLUSHes. At queue "
        "depth 1 a write is not issued while an fsync is outstanding, so slow FLUSHes show in the FLUSH "
        "columns, and as lost IOPS if the job cannot catch up, not in the write latency.")
    add("- Server CPU: utime + stime of the system's server processes (`/proc/PID/stat`; qemu-nbd and nbdkit: "
        "both processes) over the phase, as a percentage of one core over the phase's length (the noisy job's "
        "lead and tail included). Run-queue wait: time the servers' threads were runnable but waiting for a "
        "CPU (`/proc/PID/task/*/schedstat`), summed over the threads alive at the phase's end — threads that "
        "ended during the phase (nbdkit's per-connection threads, idle pool threads) are missing from it.")
    add("")
    add("Commands (blockoverlay's isolated phase; the others differ only in the URIs, and alone phases "
        "have no noisy job):")
    add("")
    add("```")
    add(meta["qcow2_cmd"])
    add(meta["bo_cmd"])
    add(meta["qemu_cmd"] + "   # one per overlay, under timeout; not --fork")
    if "nbdkit_cmd" in meta:
        add(meta["nbdkit_cmd"] + "   # one per raw copy of the base")
    iso = next((r for r in recs if r["phase"] == "bo-isolated"), None)
    if iso:
        add((Path(sys.argv[1]) / f"{iso['label']}.cmd").read_text().strip())
    add("```")
    add("")
    add("Medians over the rounds, per phase:")
    add("")
    out.extend(summary_table(groups, phases))
    add("")
    add("Per round (position = where the phase ran in its round):")
    add("")
    out.extend(round_table(recs, phases))
    add("")
    add("blockoverlay's own counters over each phase (`/metrics` deltas, medians over the rounds; in global "
        "mode the steady's FLUSHes write the neighbour's data too; GC pauses: the time the server's garbage "
        "collector held all its threads, which every tenant's requests wait through; GCs: collections of any "
        "generation; allocated: bytes the server allocated on its managed heap):")
    add("")
    out.extend(bo_table(groups))
    add("")
    add("What FLUSH means for each system here:")
    add("")
    add("- blockoverlay isolated: write back the steady instance's dirty blocks (O_DIRECT + RWF_DSYNC, to new "
        "store blocks) and append its map changes to the shared journal (one durable write, group-committed "
        "with other instances' commits); nothing of the neighbour's. Global: write back every instance's "
        "dirty data, then commit every instance (the `syncfs` baseline).")
    add("- qemu-nbd qcow2 (`--cache=writeback`): write qcow2's cached metadata (L2 and refcount tables) and "
        "`fdatasync` the steady's own .qcow2 file. The data sits in the host page cache until then; "
        "whether that fdatasync also waits for the neighbour's data is up to ext4 (its journal commit is "
        "shared by both files).")
    if "nbdkit" in meta:
        add("- nbdkit file: `fdatasync` of the tenant's own raw file (a full copy of the base: no copy-on-write, "
            "no metadata of its own; the floor of what a page-cache server on this filesystem can do, not a "
            "product a user would pick for overlays).")
    add("")
    add("Limits of this comparison:")
    add("")
    add("- fio (both jobs) and the servers share the machine's 2 cores, nothing is pinned, and other jobs "
        "run on the VM (see the load average): a noisy neighbour competes for CPU as well as for the disk, "
        "for every system alike, and a phase's p99.9 rests on a handful of samples.")
    add("- Not the same I/O path: blockoverlay writes with O_DIRECT and RWF_DSYNC into a preallocated store "
        "and never uses the page cache; qemu-nbd and nbdkit write through the host page cache and make it "
        "durable with fdatasync, on the same ext4. The neighbour's throughput differs between systems as a "
        "result (the noisy MiB/s column): a neighbour that pushes more bytes is a louder one.")
    add("- The steady job is one connection at queue depth 1 and a fixed rate; a guest with deeper queues or "
        "bursts would see different numbers. The noisy job's FLUSH bursts are a fio quirk (above).")
    add("- qcow2 is measured on allocated clusters (the untimed first pass); a fresh overlay would pay for "
        "cluster allocation and copy-up from the base on first writes. blockoverlay writes every block to "
        "newly allocated store blocks either way.")
    add("- Each tenant's disk is one file (qemu-nbd) or one instance in one shared store file "
        "(blockoverlay); the host page cache, ext4's journal and the virtio disk are shared by everything.")
    add("- Short phases (tens of seconds): the kernel's periodic write-back (30 s dirty expiry) and long-term "
        "effects (store fragmentation, checkpoints) are only partly exercised.")
    return "\n".join(out) + "\n"


def main():
    out_dir = Path(sys.argv[1])
    meta, recs = load(out_dir)
    text = section(meta, recs)
    (out_dir / "section.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
