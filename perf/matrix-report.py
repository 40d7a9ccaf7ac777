#!/usr/bin/python3
"""Summarises one run of perf/matrix.sh.

  matrix-report.py OUT_DIR             the matrix: OUT_DIR/section.md (perf/run-all puts it
                                       into perf/RESULTS.md; also printed)
  matrix-report.py --profile OUT_DIR   PROFILE=1's run: OUT_DIR/profile.md

Reads OUT_DIR/meta, load-before, load-after, cells.tsv and per cell LABEL.json (fio),
LABEL.cmd, LABEL.a.sample / LABEL.b.sample (perf/lib.sh's proc_sample of the server just
after fio's ramp and just before its end) and, for --profile, LABEL.dso.top, LABEL.dso,sym.top
and LABEL.comm.top (perf report's tables).

Per cell: throughput (IOPS for 4 KiB, MB/s for 1 MiB) and completion-latency percentiles
from fio (write-flush: FLUSH latency beside the write's); from the samples, the server's CPU
time, its threads' run-queue wait and context switches over the window between them, divided
by the I/Os fio completed in that window (its IOPS × the window), and its thread count.
Tables quote the median over rounds with the range (min–max); a ratio is
median(blockoverlay) / median(peer), with the range of the per-round ratios beside it.
"""
import json
import re
import statistics
import sys
from pathlib import Path

WORKLOADS = {
    "randwrite": "4 KiB randwrite qd32",
    "randwrite-4c": "4 KiB randwrite qd32, 4 connections",
    "randread-base": "4 KiB randread of base data qd32",
    "randread-upper": "4 KiB randread of upper data qd32",
    "seqwrite": "1 MiB seq write qd8",
    "seqread-base": "1 MiB seq read of base data qd8",
    "write-flush": "4 KiB write + FLUSH qd1",
}
SERVERS = {
    "blockoverlay": "BlockOverlay",
    "nbdkit-file": "nbdkit file (no CoW)",
    "nbdkit-cow": "nbdkit cow",
    "qemu-nbd": "qemu-nbd qcow2",
    "nbd-server": "nbd-server cow",
    "raw": "raw file (libaio, O_DIRECT)",
}
PEERS = ["nbdkit-file", "nbdkit-cow", "qemu-nbd", "nbd-server", "raw"]


def pct(stats, p):
    return stats.get("percentile", {}).get(f"{p:.6f}", 0) / 1e3  # µs


def read_sample(path):
    s = {"cpu": {}, "task": {}}
    for line in path.read_text().splitlines():
        f = line.split()
        if f[0] == "time":
            s["time"] = int(f[1])
        elif f[0] == "cpu":
            s["cpu"][f[1]] = int(f[2])
        elif f[0] == "task":
            s["task"][f[1]] = (int(f[2]), int(f[3]))
    return s


def load_cell(out_dir, label, workload, meta):
    job = json.loads((out_dir / f"{label}.json").read_text())["jobs"][0]
    d = job["read"] if "read" in workload else job["write"]
    rec = {"iops": d["iops"], "mbs": d["bw_bytes"] / 1e6, "p50": pct(d["clat_ns"], 50), "p99": pct(d["clat_ns"], 99)}
    if workload == "write-flush":
        rec.update(f_p50=pct(job["sync"]["lat_ns"], 50), f_p99=pct(job["sync"]["lat_ns"], 99))
    a_path, b_path = out_dir / f"{label}.a.sample", out_dir / f"{label}.b.sample"
    if a_path.exists() and b_path.exists():
        a, b = read_sample(a_path), read_sample(b_path)
        window = (b["time"] - a["time"]) / 1e9
        ios = d["iops"] * window
        cpu = sum(v - a["cpu"].get(p, 0) for p, v in b["cpu"].items()) / float(meta["clk_tck"])
        # Threads alive at the later sample: their increase (all of it for one born in between).
        runq = sum(v[0] - a["task"].get(t, (0, 0))[0] for t, v in b["task"].items()) / 1e9
        ctx = sum(v[1] - a["task"].get(t, (0, 0))[1] for t, v in b["task"].items())
        rec.update(window=window, cpu_pct=100 * cpu / window, cpu_us=1e6 * cpu / ios if ios else float("nan"),
                   runq_us=1e6 * runq / ios if ios else float("nan"), ctx=ctx / ios if ios else float("nan"),
                   threads=max(len(a["task"]), len(b["task"])))
    return rec


def load(out_dir):
    meta = dict(line.split("=", 1) for line in (out_dir / "meta").read_text().splitlines())
    for when in ("before", "after"):
        meta[f"load_{when}"] = (out_dir / f"load-{when}").read_text().rsplit("load average:", 1)[1].strip()
    cells = {}
    for line in (out_dir / "cells.tsv").read_text().splitlines()[1:]:
        rnd, position, workload, server, label, start, end = line.split("\t")
        rec = load_cell(out_dir, label, workload, meta)
        rec.update(round=int(rnd), position=int(position), label=label)
        cells.setdefault((workload, server), []).append(rec)
    if not cells:
        raise SystemExit("matrix-report: no cells in cells.tsv")
    return meta, cells


def med(recs, key):
    values = [r[key] for r in recs if key in r and r[key] == r[key]]
    return statistics.median(values) if values else float("nan")


def rng(recs, key, fmt):
    values = [r[key] for r in recs if key in r and r[key] == r[key]]
    return f"{fmt(min(values))}–{fmt(max(values))}" if len(values) > 1 else ""


def num(x, digits=3):
    """A figure with about `digits` significant digits and thousands separators."""
    if x != x:
        return "–"
    if x == 0:
        return "0"
    places = max(0, digits - 1 - int(f"{abs(x):e}".split("e")[1]))
    return f"{x:,.{places}f}"


def throughput_key(workload):
    return "mbs" if workload.startswith("seq") else "iops"


def throughput(workload, x):
    if workload.startswith("seq"):
        return f"{num(x)} MB/s"
    return f"{num(x / 1000)}k" if x >= 10000 else num(x)


def ratio(cells, workload, peer, key):
    """median(blockoverlay) / median(peer) with the range of the per-round ratios, as text; or None."""
    bo, other = cells.get((workload, "blockoverlay")), cells.get((workload, peer))
    if not bo or not other:
        return None
    m_peer = med(other, key)
    r = med(bo, key) / m_peer if m_peer else float("nan")
    by_round = {x["round"]: x for x in other}
    per = [x[key] / by_round[x["round"]][key] for x in bo if x["round"] in by_round and by_round[x["round"]][key]]
    spread = f" ({min(per):.2f}–{max(per):.2f})" if len(per) > 1 else ""
    return f"{r:.2f}×{spread}"


def headline_table(cells, workloads, servers):
    peers = [p for p in PEERS if p in servers]
    head = ["workload", "BlockOverlay"] + [f"÷ {SERVERS[p]}" for p in peers] + \
           ["server CPU µs per I/O: BlockOverlay / nbdkit file"]
    rows = []
    for w in workloads:
        key = throughput_key(w)
        bo = cells.get((w, "blockoverlay"), [])
        row = [WORKLOADS[w], throughput(w, med(bo, key)) if bo else "–"]
        for p in peers:
            row.append(ratio(cells, w, p, key) or "–")
        nk = cells.get((w, "nbdkit-file"), [])
        ours, theirs = med(bo, "cpu_us"), med(nk, "cpu_us")
        row.append(f"{num(ours)} / {num(theirs)} ({ours / theirs:.1f}×)" if bo and nk and theirs else "–")
        rows.append(row)
    return table(head, rows)


def detail_table(cells, workload, servers):
    flush = workload == "write-flush"
    head = ["server", "IOPS" if not workload.startswith("seq") else "MB/s", "range", "p50 µs", "p99 µs"]
    if flush:
        head += ["FLUSH p50 µs", "FLUSH p99 µs"]
    head += ["server CPU %", "CPU µs per I/O", "threads", "run-queue µs per I/O", "context switches per I/O"]
    rows = []
    key = throughput_key(workload)
    fmt = (lambda x: num(x)) if key == "mbs" else (lambda x: throughput(workload, x))
    for s in servers:
        recs = cells.get((workload, s))
        if not recs:
            continue
        row = [SERVERS[s], fmt(med(recs, key)), rng(recs, key, fmt), num(med(recs, "p50")), num(med(recs, "p99"))]
        if flush:
            row += [num(med(recs, "f_p50")), num(med(recs, "f_p99"))]
        row += [num(med(recs, "cpu_pct"), 2), num(med(recs, "cpu_us")), num(med(recs, "threads"), 2),
                num(med(recs, "runq_us")), num(med(recs, "ctx"), 2)]
        rows.append(row)
    return table(head, rows)


def table(head, rows):
    return ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)] + \
           ["| " + " | ".join(row) + " |" for row in rows]


def settle_line(out_dir):
    """What the untimed sync before each cell found: the page cache a cell before it left dirty."""
    rows = [line.split("\t") for line in (out_dir / "settle.tsv").read_text().splitlines()]
    label, dirty_kib, seconds = max(rows, key=lambda r: int(r[1]))
    return ("- Before every cell the page cache's dirty data is written out (`sync`, untimed), so no cell "
            "pays for the write-back of the one before it (a page-cache server leaves up to its file's size "
            f"dirty, which the kernel writes out 30 s later). The most it found: {int(dirty_kib) / 1024:,.0f} MiB "
            f"before {label}, synced in {float(seconds):.1f} s; over all cells the syncs took "
            f"{sum(float(r[2]) for r in rows):.0f} s.")


def section(out_dir, meta, cells):
    workloads = [w for w in meta["workloads"].split() if any(k[0] == w for k in cells)]
    servers = meta["servers"].split()
    out = []
    add = out.append
    add("## matrix: BlockOverlay beside nbdkit, qemu-nbd and nbd-server, seven workloads")
    add("")
    add(f"Throughput ratios BlockOverlay ÷ each peer (above 1: BlockOverlay faster), medians of {meta['rounds']} "
        "rounds with the range of the per-round ratios in brackets; BlockOverlay's own median in the second "
        "column (4 KiB rows: IOPS; 1 MiB rows: MB/s; write + FLUSH: writes per second, each followed by a "
        "FLUSH).")
    add("")
    out.extend(headline_table(cells, workloads, servers))
    add("")
    add(f"- Produced by `bash perf/run-all matrix` (also part of `make bench`), which runs `perf/matrix.sh`, on "
        f"{meta['date']}: **{meta['elapsed']} s** in all (about {int(meta['elapsed']) // 60} min).")
    add(f"- Versions: blockoverlay {meta['blockoverlay']}, .NET runtime {meta['dotnet_runtime']}, {meta['fio']}, "
        f"{meta['nbdkit']}, {meta['qemu_nbd']}, {meta['nbd_server']}; Linux {meta['kernel']}, {meta['cpu']}, "
        f"{meta['memory']}; everything in one temp dir `$TMP` on {meta['fs']} (a virtio disk of a shared VM).")
    add(f"- Load average (1, 5, 15 min) before the rounds: {meta['load_before']}; after: {meta['load_after']}. "
        "The machine is shared: other jobs (builds, tests) ran during the run, on the same 2 cores as fio and "
        "the servers, so single figures move by tens of percent between runs; only ratios from one run are "
        "comparable, and the brackets show how far one round strays.")
    add(f"- One random base of {meta['base_size']}; every server on a fresh overlay of it per cell: "
        "BlockOverlay a new instance in one running server (its JIT warm: one untimed warm-up cell per "
        "workload first), deleted after the cell; nbd-server one running server too, which makes a new diff "
        "per connection (and forks a child for it); nbdkit and qemu-nbd a new process (and overlay) per cell; "
        "nbdkit file a raw copy of the base (no copy-on-write: what the "
        "page cache and a plain file give) and the raw row fio's libaio engine with O_DIRECT on another raw "
        "copy (fdatasync where the others FLUSH): the file system's own limit. nbd-server has no multi-conn "
        "and drops a connection's writes when it closes, so it has no 4-connection or upper-read row.")
    add(f"- A cell: fio with {meta['ramp']} s of ramp and {meta['runtime']} s measured; rounds run the servers "
        "in the order " + ", ".join(servers) + " (odd rounds) and the reverse (even rounds), workload by "
        f"workload. Upper data (randread-upper): the first {meta['upper_size']} written with 1 MiB writes and "
        "flushed before the cell, untimed, then read at random.")
    add(settle_line(out_dir))
    add("- Latency: fio's completion latency (clat) of the reads or writes; FLUSH: fio's `sync` latency. "
        "Server CPU: utime + stime of the server process and its children (nbd-server forks one per "
        "connection) between two samples just after the ramp and just before the end (`/proc/PID/stat`), "
        "as % of one core and per I/O completed in that window (1 MiB rows: per MiB; write + FLUSH: per "
        "write and its FLUSH). Run-queue: time its threads were runnable but waiting for a CPU "
        "(`/proc/PID/task/*/schedstat`); context switches: voluntary + involuntary "
        "(`/proc/PID/task/*/status`); both summed over the threads alive at the second sample. Threads: how "
        "many the server had then.")
    add("")
    add("Commands (`CELL`: the cell's instance name):")
    add("")
    add("```")
    add(meta["bo_cmd"])
    add(meta["bo_instance_cmd"])
    add(meta["nbdkit_file_cmd"])
    add(meta["nbdkit_cow_cmd"])
    add(meta["qemu_cmd"])
    add(meta["nbd_server_cmd"])
    for w in workloads:
        for s in ("blockoverlay", "raw"):
            if (w, s) in cells:
                add((out_dir / f"{cells[(w, s)][0]['label']}.cmd").read_text().strip())
    add("```")
    add("")
    add("Per workload, medians over the rounds (range: min–max of the rounds):")
    for w in workloads:
        add("")
        add(f"**{WORKLOADS[w]}**")
        add("")
        out.extend(detail_table(cells, w, servers))
    return "\n".join(out) + "\n"


TOP = re.compile(r"^\s*([\d.]+)%\s+(?:[\d.]+%\s+)?(?:\[(.)\]\s+)?(.*?)\s*$")
# Frames every stack has (thread start, system call entry, the thread pool's and async
# machinery's dispatch): they say nothing about where the time goes.
PLUMBING = re.compile(r"^(start_thread|clone3?|do_syscall_64|entry_SYSCALL_64.*|schedule|__schedule|"
                      r"ExecutionContext::.*|ThreadPoolWorkQueue::.*|.*ThreadPoolWorkQueue.*|Task::RunContinuations|"
                      r"Task::ExecuteWithThreadLocal|Task::ExecuteEntryUnsafe|AwaitTaskContinuation::.*|"
                      r"AsyncMethodBuilderCore::Start|AsyncTaskMethodBuilder.*|AsyncStateMachineBox.*|"
                      r"PortableThreadPool.*|WorkerThread::.*|Thread::StartCallback|ThreadPoolTypedWorkItemQueue.*)$")


# The kernel's frames between a system call's entry and its work repeat the call's name.
KERNEL_PLUMBING = re.compile(r"^(__x64_sys_|__se_sys_|__do_sys_|do_|ksys_|vfs_|schedule_).*")


def type_name(full):
    """System.Linq.Enumerable+WhereIterator`1 -> Enumerable+WhereIterator"""
    return re.sub(r"`\d+", "", full).rsplit(".", 1)[-1]


def short(name):
    """A JIT frame's name as Type::Method (an async method's state machine too); others as they are."""
    if name.startswith("[JIT]"):
        return "[JIT]"
    m = re.search(r"([\w.`]+)\+<+(\w+)>[dg]", name)
    if m:
        return f"{type_name(m.group(1))}::{m.group(2)}"
    if "::" not in name:
        return name
    prev = None
    while prev != name:
        prev, name = name, re.sub(r"\[[^\[\]]*\]", "", name)
    m = re.search(r"(\S+)::(\S+?)\(", name)
    if not m:
        return name
    return f"{type_name(m.group(1))}::{m.group(2)}"


def top_rows(path, limit, skip_plumbing=False, threads=False):
    """(share, name) rows of a perf report table, best first. threads: numbered threads of one
    kind (blocking I/O 0..15) summed as one (blocking I/O N)."""
    shares = {}
    if not path.exists():
        return []
    for line in path.read_text().splitlines():
        m = TOP.match(line)
        if not m:
            continue
        name = short(re.sub(r"\s{2,}", " ", m.group(3)))
        if threads:
            name = re.sub(r" \d+$", " N", name)
        elif name in shares or (skip_plumbing and (name.startswith("0x") or PLUMBING.match(name) or
                                                     KERNEL_PLUMBING.match(name))):
            continue
        shares[name] = shares.get(name, 0.0) + float(m.group(1))
    return sorted(((p, n) for n, p in shares.items()), reverse=True)[:limit]


def profile(out_dir, meta, cells):
    workloads = [w for w in meta["workloads"].split() if (w, "blockoverlay") in cells]
    out = ["## matrix profile: where BlockOverlay's CPU goes, per workload", ""]
    add = out.append
    add(f"`PROFILE=1 perf/matrix.sh` on {meta['date']} ({meta['elapsed']} s): blockoverlay only, one round, "
        f"`perf record -g -F 999 -p PID` over each cell's {meta['runtime']} s window (after {meta['ramp']} s of "
        "ramp), the server started with `DOTNET_PerfMapEnabled=1 DOTNET_EnableWriteXorExecute=0` so that "
        f"JIT-compiled frames have names; {meta.get('perf', 'perf')}. Shares are of the server's samples. "
        "Self: samples in that DSO, thread or function itself; beneath: samples in it or anything it called "
        "(frame-pointer call graphs; the thread pool's and async machinery's own dispatch frames, which every "
        "stack has, left out; an async method's MoveNext, Start and callbacks counted once, as Type::Method). "
        "libcoreclr.so has no symbols here (its frames are addresses). "
        f"Load average before: {meta['load_before']}; after: {meta['load_after']}.")
    for w in workloads:
        r = cells[(w, "blockoverlay")][0]
        add("")
        key = throughput_key(w)
        add(f"### {WORKLOADS[w]}: {throughput(w, r[key])}, server CPU {num(r.get('cpu_us', float('nan')))} µs per "
            f"I/O, {r.get('threads', '–')} threads, run-queue {num(r.get('runq_us', float('nan')))} µs and "
            f"{num(r.get('ctx', float('nan')), 2)} context switches per I/O (perf running)")
        add("")
        columns = [("dso", "DSO (self)", 5, False), ("comm", "thread (self)", 5, False),
                   ("self", "function (self)", 10, False), ("incl", "function (with what it called)", 14, True)]
        tables = [top_rows(out_dir / f"{r['label']}.{name}.top", limit, skip, name == "comm")
                  for name, _, limit, skip in columns]
        head = []
        for _, title, _, _ in columns:
            head += [title, "%"]
        rows = []
        for i in range(max(len(t) for t in tables)):
            row = []
            for t in tables:
                row += [f"`{t[i][1]}`", f"{t[i][0]:.1f}"] if i < len(t) else ["", ""]
            rows.append(row)
        out.extend(["| " + " | ".join(head) + " |", "|" + "---|---:|" * len(columns)] +
                   ["| " + " | ".join(row) + " |" for row in rows])
    return "\n".join(out) + "\n"


def main():
    args = sys.argv[1:]
    is_profile = args[:1] == ["--profile"]
    out_dir = Path(args[-1])
    meta, cells = load(out_dir)
    if is_profile:
        text = profile(out_dir, meta, cells)
        (out_dir / "profile.md").write_text(text)
    else:
        text = section(out_dir, meta, cells)
        (out_dir / "section.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
