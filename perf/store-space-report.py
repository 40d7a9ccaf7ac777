#!/usr/bin/env python3
"""Summarises one run of perf/store-space.sh.

Reads the directory the script wrote (meta; per workload the fio JSON and iolog, the
server's write_bytes, `store info` / `instance list` for blockoverlay, `qemu-img info` /
`qemu-img check` / `du -B1` for qcow2), prints the tables to stdout and writes the Markdown
section that perf/run-all puts into perf/RESULTS.md (OUT_DIR/section.md).

Unique bytes written come from fio's iolog (the union of every write's byte range), not
from fio's totals, so a workload that wrote a byte twice would show it. From the same log:
how many distinct 4 KiB blocks and 64 KiB clusters the writes touched, i.e. what an
allocator of either unit has to allocate at the least.
"""
import json
import re
import sys
from pathlib import Path

KIB, MIB, GIB = 1024, 1024**2, 1024**3
BLOCK = 4 * KIB
CLUSTER = 64 * KIB
UNITS = {"": 1, "K": KIB, "M": MIB, "G": GIB, "T": 1024**4, "P": 1024**5, "E": 1024**6}


def load_meta(out_dir):
    meta, workloads = {}, []
    for line in (out_dir / "meta").read_text().splitlines():
        key, _, value = line.partition("=")
        if key == "workload":
            name, over, qcow, options, description = value.split("|")
            workloads.append({"name": name, "over": over, "qcow": qcow == "yes",
                              "options": options, "description": description})
        else:
            meta[key] = value
    return meta, workloads


def parse_size(text):
    """A size as blockoverlay prints it (ByteSize: 0, 4096, 256M, 1G...)."""
    m = re.fullmatch(r"(\d+)([KMGTPE]?)", text.strip())
    if not m:
        raise SystemExit(f"store-space-report: cannot read the size '{text}'")
    return int(m.group(1)) * UNITS[m.group(2)]


def iolog_summary(path):
    """Unique bytes, distinct 4 KiB blocks and 64 KiB clusters touched by the writes of a fio iolog."""
    ranges, total, count = [], 0, 0
    for line in path.read_text().splitlines():
        fields = line.split()
        # v3: TIME FILE ACTION OFFSET LENGTH
        if len(fields) == 5 and fields[2] == "write":
            offset, length = int(fields[3]), int(fields[4])
            ranges.append((offset, offset + length))
            total += length
            count += 1
    if not ranges:
        raise SystemExit(f"store-space-report: {path} holds no writes")
    ranges.sort()
    unique, blocks, clusters = 0, 0, 0
    cur_start, cur_end = ranges[0]
    last_block = last_cluster = -1

    def account(start, end):
        nonlocal unique, blocks, clusters, last_block, last_cluster
        unique += end - start
        first_b, end_b = start // BLOCK, (end - 1) // BLOCK
        blocks += end_b - max(first_b, last_block + 1) + 1 if end_b > last_block else 0
        last_block = max(last_block, end_b)
        first_c, end_c = start // CLUSTER, (end - 1) // CLUSTER
        clusters += end_c - max(first_c, last_cluster + 1) + 1 if end_c > last_cluster else 0
        last_cluster = max(last_cluster, end_c)

    for start, end in ranges[1:]:
        if start <= cur_end:
            cur_end = max(cur_end, end)
        else:
            account(cur_start, cur_end)
            cur_start, cur_end = start, end
    account(cur_start, cur_end)
    return {"writes": count, "written": total, "unique": unique,
            "blocks4k": blocks, "clusters64k": clusters}


def fio_summary(path):
    jobs = json.loads(path.read_text())["jobs"]
    if len(jobs) != 1:
        raise SystemExit(f"{path}: expected one fio job, found {len(jobs)}")
    job = jobs[0]
    if job["error"] != 0:
        raise SystemExit(f"{path}: fio reported error {job['error']}")
    return {"written": job["write"]["io_kbytes"] * KIB, "iops": job["write"]["iops"],
            "runtime_s": job["write"]["runtime"] / 1000.0}


def store_info(path):
    text = path.read_text()

    def grab(pattern):
        m = re.search(pattern, text, re.M)
        if not m:
            raise SystemExit(f"store-space-report: {path}: no match for {pattern!r}")
        return [int(g) for g in m.groups()]

    data, free = grab(r"^data region:\s+(\d+) bytes, (\d+) free")
    (checkpoint,) = grab(r"^last checkpoint:\s+(\d+) bytes")
    instances, extents = grab(r"^instances:\s+(\d+), (\d+) map extents")
    journal, journal_used = grab(r"^journal:\s+(\d+) bytes, (\d+) in use")
    checkpoint_blocks = -(-checkpoint // BLOCK) * BLOCK
    return {"data": data, "free": free, "checkpoint": checkpoint, "instances": instances,
            "extents": extents, "journal": journal, "journal_used": journal_used,
            "checkpoint_alloc": checkpoint_blocks,
            # Data region − free − the checkpoint's blocks: what instance data occupies.
            "store_used": data - free - checkpoint_blocks}


def upper_bytes(path, name):
    for line in path.read_text().splitlines():
        fields = line.split("\t")
        if fields[0] == name:
            return parse_size(fields[2])
    raise SystemExit(f"store-space-report: {path}: no instance '{name}'")


def qcow2_summary(out_dir, label):
    info = json.loads((out_dir / f"{label}.info.json").read_text())
    check = json.loads((out_dir / f"{label}.check.json").read_text())
    du = int((out_dir / f"{label}.du.txt").read_text().strip())
    cluster = info["cluster-size"]
    data = check["allocated-clusters"] * cluster
    return {"du": du, "actual": info["actual-size"], "cluster": cluster,
            "clusters": check["allocated-clusters"], "data": data,
            "end": check.get("image-end-offset", du),
            # Everything in the file that is not guest data: header, L1/L2 tables, refcounts.
            "metadata": du - data,
            "corruptions": check.get("corruptions", 0), "leaks": check.get("leaks", 0)}


def mib(n):
    return f"{n / MIB:,.2f} MiB"


def size(n):
    if n >= MIB:
        return f"{n / MIB:,.2f} MiB"
    if n >= KIB:
        return f"{n / KIB:,.1f} KiB"
    return f"{n} B"


def add_conclusion(add, bo, qc):
    """The conclusion paragraph, its figures taken from this run (needs workloads a-e)."""
    if not all(k in bo for k in ("a", "b", "c", "d", "e")) or not all(k in qc for k in ("a", "e")):
        return

    def amp(name):
        return bo[name]["upper"] / bo[name]["log"]["unique"]

    def per_gib(name):
        return bo[name]["info"]["checkpoint"] * GIB / bo[name]["upper"]

    def span(values):
        lo, hi = f"{min(values):.2f}", f"{max(values):.2f}"
        return lo if lo == hi else f"{lo}–{hi}"

    amps = [amp(n) for n in bo]
    amps_meta = [(r["upper"] + r["info"]["checkpoint"]) / r["log"]["unique"] for r in bo.values()]
    e_log = bo["e"]["log"]
    c = bo["c"]
    q_a_meta = qc["a"]["q"]["metadata"]
    add("**Conclusion.** "
        f"Space: the 4 KiB unit stores exactly what the client wrote — space amp "
        f"{span(amps)} on every workload, {span(amps_meta)} with the metadata. "
        f"A 64 KiB unit ties on dense or 64 KiB-aligned data ((a)–(d): every cluster ends up full) but "
        f"loses badly on sparse small writes: (e)'s {mib(e_log['unique'])} of scattered 4 KiB writes touch "
        f"{e_log['clusters64k']:,} clusters, and qcow2 stored {mib(qc['e']['q']['du'])} for them "
        f"({qc['e']['q']['du'] / e_log['unique']:.1f}×) against blockoverlay's "
        f"{mib(bo['e']['upper'] + bo['e']['info']['checkpoint'])} with metadata. "
        f"Metadata: one 32-byte extent per contiguous run, so its cost depends on how the data was "
        f"written more than on how much: {bo['b']['info']['checkpoint']:,} B in all for 256 MiB written "
        f"sequentially, "
        f"{size(per_gib('d'))} per GiB for 64 KiB random writes, and, the worst case, one extent per "
        f"4 KiB block for 4 KiB (or smaller) random writes: {size(per_gib('a'))} per GiB of upper data "
        f"({bo['a']['info']['checkpoint'] / bo['a']['upper'] * 100:.2f} %) "
        f"— (a)'s {mib(bo['a']['upper'])} carry a {mib(bo['a']['info']['checkpoint'])} checkpoint, "
        f"{bo['a']['info']['checkpoint'] / q_a_meta:.0f}× the {size(q_a_meta)} of metadata in qcow2's file "
        f"for the same writes (qcow2's L2 tables cost 8 B per 64 KiB cluster, 128 KiB per GiB, and most "
        f"of its figure here is fixed tables). "
        f"A 64 KiB unit would cap that worst case at 32 B per 64 KiB (512 KiB per GiB, 16× less): that "
        f"is where it would win — a smaller checkpoint, which is rewritten whole at each clean close and "
        f"each time the journal fills, and presumably a smaller map in memory (not measured here). It "
        f"would lose on sparse data (above) and on small writes: every write goes to newly allocated "
        f"blocks, so a write smaller than the unit rewrites the whole unit — (c)'s 512-byte writes made "
        f"the server write {c['server_wrote'] / c['log']['written']:.1f}× the bytes sent with 4 KiB units; "
        f"with 64 KiB units that would be 128× (and 16× for 4 KiB writes). So 4 KiB is right for space "
        f"and for small writes; what it costs is the metadata of randomly written data, about "
        f"{32 / BLOCK * 100:.2f} % of it at worst (one 32-byte extent per 4 KiB block), and if that ever matters the lever is "
        f"the checkpoint (incremental, or merging adjacent runs), not a larger unit.")
    add("")


def main():
    out_dir = Path(sys.argv[1])
    meta, workloads = load_meta(out_dir)
    rows, qrows, problems = [], [], []
    for w in workloads:
        name = w["name"]
        log = iolog_summary(out_dir / f"bo-{name}.iolog")
        fio = fio_summary(out_dir / f"bo-{name}.json")
        if fio["written"] != log["written"]:
            problems.append(f"{name}: fio reports {fio['written']} bytes written, its iolog {log['written']}")
        info = store_info(out_dir / f"bo-{name}.info.txt")
        upper = upper_bytes(out_dir / f"bo-{name}.list.txt", name)
        if info["store_used"] != upper:
            problems.append(f"{name}: the store's data region holds {info['store_used']} bytes of instance "
                            f"data (data − free − checkpoint blocks) but the instance's upper data is {upper}")
        if info["journal_used"] != 0:
            problems.append(f"{name}: {info['journal_used']} journal bytes still in use after a clean close")
        row = {"w": w, "log": log, "fio": fio, "info": info, "upper": upper,
               "server_wrote": int((out_dir / f"bo-{name}.io").read_text())}
        rows.append(row)
        if w["qcow"]:
            qlog = iolog_summary(out_dir / f"q-{name}.iolog")
            q = qcow2_summary(out_dir, f"q-{name}")
            if q["corruptions"] or q["leaks"]:
                problems.append(f"{name}: qemu-img check found {q['corruptions']} corruptions, {q['leaks']} leaks")
            qrows.append({"w": w, "log": qlog, "q": q, "bo": row,
                          "server_wrote": int((out_dir / f"q-{name}.io").read_text())})

    # Console summary.
    print(f"{'workload':<8} {'unique':>12} {'upper':>12} {'amp':>6} {'checkpoint':>12} {'per GiB':>12} {'extents':>8}")
    for r in rows:
        amp = r["upper"] / r["log"]["unique"]
        per_gib = r["info"]["checkpoint"] * GIB / r["upper"] if r["upper"] else float("nan")
        print(f"{r['w']['name']:<8} {r['log']['unique']:>12,} {r['upper']:>12,} {amp:>6.3f} "
              f"{r['info']['checkpoint']:>12,} {per_gib:>12,.0f} {r['info']['extents']:>8,}")
    for qr in qrows:
        print(f"qcow2 {qr['w']['name']:<8} du {qr['q']['du']:>12,} data {qr['q']['data']:>12,} "
              f"metadata {qr['q']['metadata']:>10,} amp {qr['q']['du'] / qr['log']['unique']:.3f}")
    for p in problems:
        print(f"PROBLEM: {p}")

    lines = []
    add = lines.append
    add("## store-space: what the 4 KiB allocation unit costs in space and metadata")
    add("")
    add(f"Each workload is fio (nbd engine, queue depth {meta['iodepth']}) on a fresh {meta['disk_size']} "
        f"instance in a fresh store, then a clean close (SIGTERM), which writes the checkpoint: the whole "
        f"metadata of the store. **Space amp** = upper bytes / unique bytes the client wrote. "
        f"**Metadata** = checkpoint bytes (64-byte header, the instance's definition, 32 bytes per map extent); "
        f"the journal is empty after a clean close. Sizes are deterministic for a given fio offset order "
        f"(fio's default fixed seed), so each workload ran once; only the extent counts of the random "
        f"workloads move by a few from run to run, as queue-depth-{meta['iodepth']} writes get their "
        f"blocks in completion order.")
    add("")
    add("| workload | unique bytes written | upper bytes | space amp | store bytes used | metadata bytes | "
        "metadata per GiB of upper | map extents | a 64 KiB unit would allocate |")
    add("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        w, log, info = r["w"], r["log"], r["info"]
        amp = r["upper"] / log["unique"]
        per_gib = info["checkpoint"] * GIB / r["upper"] if r["upper"] else float("nan")
        c64 = log["clusters64k"] * CLUSTER
        add(f"| ({w['name']}) {w['description']} | {mib(log['unique'])} | {mib(r['upper'])} | "
            f"**{amp:.2f}** | {mib(info['store_used'])} | {info['checkpoint']:,} B | "
            f"{size(per_gib)} ({info['checkpoint'] / r['upper'] * 100:.2f} %) | {info['extents']:,} | "
            f"{mib(c64)} ({c64 / log['unique']:.2f}×) |")
    add("")
    add("- *store bytes used* = data region − free − the checkpoint's blocks (checkpoints take whole "
        "4 KiB blocks); it equals upper bytes when no block leaked. *A 64 KiB unit would allocate*: "
        "the distinct 64 KiB clusters the same writes touched (from fio's iolog), ×64 KiB — the least "
        "any 64 KiB allocator stores for them, before its own metadata.")
    add("- Bytes the server wrote during the fio run (`/proc/PID/io` write_bytes: O_DIRECT data blocks, "
        "plus journal batches, which are written on FLUSH or FUA only — fio sent neither; the checkpoint "
        "at close is not included): " +
        "; ".join(f"({r['w']['name']}) {mib(r['server_wrote'])} = {r['server_wrote'] / r['log']['written']:.2f}× "
                  f"the bytes fio sent" for r in rows) + ".")
    add("")
    if qrows:
        add("### Beside qcow2 (qemu-nbd, 64 KiB clusters), same fio commands")
        add("")
        add("| workload | unique bytes written | qcow2 file (`du -B1`) | of it data clusters | of it metadata | "
            "qcow2 space amp | blockoverlay upper + checkpoint | blockoverlay space amp (with metadata) |")
        add("|---|---:|---:|---:|---:|---:|---:|---:|")
        for qr in qrows:
            w, log, q, bo = qr["w"], qr["log"], qr["q"], qr["bo"]
            bo_total = bo["upper"] + bo["info"]["checkpoint"]
            add(f"| ({w['name']}) {w['description']} | {mib(log['unique'])} | {mib(q['du'])} | "
                f"{q['clusters']:,} × {q['cluster'] // KIB} KiB = {mib(q['data'])} | {size(q['metadata'])} | "
                f"**{q['du'] / log['unique']:.2f}** | {mib(bo_total)} | **{bo_total / bo['log']['unique']:.2f}** |")
        add("")
        add("- qcow2 metadata = allocated file bytes − data clusters (header, L1 and L2 tables, refcount "
            "table and blocks); `qemu-img check` found " +
            ", ".join(f"({qr['w']['name']}) {qr['q']['corruptions']} corruptions / {qr['q']['leaks']} leaks"
                      for qr in qrows) +
            ". `qemu-img info` actual-size: " +
            "; ".join(f"({qr['w']['name']}) {qr['q']['actual']:,} B" for qr in qrows) + ".")
        add("- Bytes qemu-nbd wrote during the fio run (`/proc/PID/io` write_bytes; through the page cache "
            "with `--cache=writeback`, so a page dirtied twice counts once): " +
            "; ".join(f"({qr['w']['name']}) {mib(qr['server_wrote'])}" for qr in qrows) + ".")
        add("")
    add_conclusion(add, {r["w"]["name"]: r for r in rows}, {qr["w"]["name"]: qr for qr in qrows})
    if problems:
        add("**Problems found in this run:**")
        add("")
        for p in problems:
            add(f"- {p}")
        add("")
    add("How it was run:")
    add("")
    add(f"- Produced by `bash perf/run-all store-space` (also part of `make bench`), which runs "
        f"`perf/store-space.sh`, on "
        f"{meta['date']}, {meta['elapsed']} s in all.")
    add(f"- Versions: {meta['fio']}, {meta['qemu']}, .NET runtime {meta['dotnet_runtime']}, "
        f"blockoverlay {meta['blockoverlay']}; Linux {meta['kernel']}, temp dir on {meta['fs']}.")
    add(f"- blockoverlay, per workload, in a temp dir `$TMP` under /var/tmp (`--base $TMP/base.raw` "
        f"only for the workload over the base, {meta['base_size']} of random data):")
    add("")
    add("  ```")
    add(f"  blockoverlay store create $TMP/W.store --size {meta['store_size']}")
    add(f"  blockoverlay instance create W --size {meta['disk_size']} [--base $TMP/base.raw] --store $TMP/W.store")
    add("  blockoverlay serve --store $TMP/W.store --listen unix:$TMP/W.sock &   # fio, then SIGTERM")
    add("  blockoverlay store info $TMP/W.store; blockoverlay instance list --store $TMP/W.store")
    add("  ```")
    add("")
    add("- qcow2, per workload marked so (`-b $TMP/base.raw -F raw` only over the base):")
    add("")
    add("  ```")
    add(f"  qemu-img create -q -f qcow2 [-b $TMP/base.raw -F raw] $TMP/W.qcow2 {meta['disk_size']}")
    add("  qemu-nbd --fork --pid-file=$TMP/qemu-nbd.pid -k $TMP/W-q.sock -t -e 0 -f qcow2 --cache=writeback "
        "--aio=threads -x top $TMP/W.qcow2   # fio, then SIGTERM")
    add("  qemu-img info --output=json $TMP/W.qcow2; qemu-img check --output=json $TMP/W.qcow2; du -B1 $TMP/W.qcow2")
    add("  ```")
    add("")
    add("- fio, run in `$TMP` (e.g. workload (a) on blockoverlay; every workload's options are in the "
        "tables' first column and in `perf/store-space.sh`):")
    add("")
    add("  ```")
    first = workloads[0]["name"]
    add("  " + (out_dir / f"bo-{first}.cmd").read_text().strip())
    add("  ```")
    add("")
    add("- `--norandommap=0` (fio's default) makes a random workload touch each block of its region exactly "
        "once, so (a), (c) and (d) cover their region completely; (e) stops after 16 MiB of its 1 GiB region. "
        "(e) is an extra: the sparse case where the two units differ most.")
    add("")
    add("Limits:")
    add("")
    add("- fio's nbd engine sends no FLUSH or FUA here, so no journal batch was written during the runs: "
        "metadata is measured as the checkpoint (the whole map, written at a clean close and whenever "
        "the journal fills). A client that flushes also writes Map records (8-byte header + 24-byte body "
        "per extent changed) to the journal between checkpoints; that traffic is not measured here.")
    add("- One instance per store and each workload on a fresh instance: the figures are the cost of the "
        "unit itself, not of fragmentation after deletes and reuse. The space figures do not depend on "
        "the machine's load; the run time does.")
    add("")
    (out_dir / "section.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
