#!/usr/bin/env python3
"""Writes perf/scale.sh's section for perf/RESULTS.md from scale-driver.py's JSON (see that script).

    scale-report.py RESULTS.json LOAD_BEFORE LOAD_AFTER SECONDS QEMU_VERSION "LABEL: VERSION" ...
"""
import datetime
import json
import os
import statistics
import sys

results_path, load_before, load_after, seconds, qemu_version = sys.argv[1:6]
versions = sys.argv[6:]
r = json.load(open(results_path))
labels = [b["label"] for b in r["builds"]]


def pct(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def p50_99(values):
    return f"{pct(values, 50):.1f} / {pct(values, 99):.1f}" if values else "—"


def med_range(values, fmt="{:.2f}"):
    if not values:
        return "—"
    if len(values) == 1:
        return fmt.format(values[0])
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def mib(kib):
    return kib / 1024


lines = [f"### perf/scale.sh: {' and '.join(f'{c:,}' for c in r['counts'])} instances of one base", ""]
settings = " ".join(f"{k}=\"{os.environ[k]}\"" if " " in os.environ[k] else f"{k}={os.environ[k]}"
                    for k in ("BUILDS", "COUNTS", "CLI_SAMPLE", "ROUNDS", "CLIENTS", "QEMU_SAMPLE", "BUDGET") if k in os.environ)
lines += [f"Command: `{settings + ' ' if settings else ''}perf/scale.sh` (make bench runs it with the defaults: COUNTS=1000,10000, "
          f"CLI_SAMPLE=100, ROUNDS=3, CLIENTS=200, QEMU_SAMPLE=100, BUDGET=900), run {datetime.date.today()} on {os.uname().release}, "
          f"2 cores shared with other work: load average {load_before} before, {load_after} after; {seconds} s in all.",
          "Builds: " + "; ".join(f"`{v}`" for v in versions) + f". Peer: {qemu_version}.",
          "One store per build, one 64 MiB ext4 base (`rootfs`), every instance over it; one `serve` per build on a unix socket.", ""]

if "empty" in r:
    lines.append("An empty store: serve ready " + ", ".join(f"{b} {r['empty'][b]['ready'] * 1000:.0f} ms" for b in labels if b in r["empty"]) + ".")
    lines.append("")

clients = next((p["builds"][b]["clients"]["clients"] for p in r["points"] for b in labels if "clients" in p["builds"][b]), 0)
lines += ["Start, restart and memory (seconds, MiB; median of the restarts and their range):", "",
          f"| instances | build | serve ready | CPU until ready | clean stop | restart after kill -9 ({clients} attached) | idle RSS | idle PSS | RSS with {clients} clients |",
          "|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
for point in r["points"]:
    for b in labels:
        d = point["builds"][b]
        rs = d["restarts"]
        c = d.get("clients")
        after_kill = f"{c['ready_after_kill']:.2f}" if c else "—"
        attached = f"{mib(c['attached']['rss']):.0f}" if c else "—"
        lines.append(f"| {point['count']:,} | {b} | {med_range([x['ready'] for x in rs])} | {med_range([x['cpu'] for x in rs])} | "
                     f"{med_range([x['stop'] for x in rs])} | {after_kill} | "
                     f"{med_range([mib(x['rss']) for x in rs], '{:.0f}')} | {med_range([mib(x['pss']) for x in rs], '{:.0f}')} | "
                     f"{attached} |")
lines.append("")

lines += ["Creates and deletes through the running server (milliseconds, p50 / p99). *Populate*: the API creates that made the "
          "instances up to the count from the previous one, 8 connections at a time (as a runtime starting many containers), and "
          "their rate; the other columns are the sample, one request or process at a time, made and removed at that count.", "",
          "| instances | build | populate: creates/s | populate: API create | API create | API delete | CLI create | CLI delete |",
          "|---:|---|---:|---:|---:|---:|---:|---:|"]
for point in r["points"]:
    for b in labels:
        d = point["builds"][b]
        s = d.get("sample", {})
        pop = d.get("populate", {"times": [], "seconds": 0})
        rate = f"{len(pop['times']) / pop['seconds']:.0f} ({len(pop['times']):,})" if pop["seconds"] else "—"
        lines.append(f"| {point['count']:,} | {b} | {rate} | {p50_99(pop['times'])} | "
                     f"{p50_99(s.get('api_create', []))} | {p50_99(s.get('api_delete', []))} | {p50_99(s.get('cli_create', []))} | "
                     f"{p50_99(s.get('cli_delete', []))} |")
lines.append("")

lines += [f"{clients} clients at once (libnbd, one process, a thread and "
          f"a handle each, on as many instances): each writes {r['write_bytes'] >> 10} KiB and flushes, {r['writes_per_client']} times, "
          "all released together; then kill -9 with all attached, a start, and every flushed write read back:", "",
          "| instances | build | seconds for all | flushed MiB/s | flush p50 / p99 (ms) | flushed writes | lost |",
          "|---:|---|---:|---:|---:|---:|---:|"]
for point in r["points"]:
    for b in labels:
        c = point["builds"][b].get("clients")
        if c:
            lines.append(f"| {point['count']:,} | {b} | {c['seconds']:.2f} | {c['bytes'] / c['seconds'] / (1 << 20):.1f} | "
                         f"{p50_99(c['flushes'])} | {c['flushed_writes']:,} | {c['lost']} |")
lines.append("")

lines += ["Beside qemu-nbd, one process per qcow2 overlay of the same base (the sample measured at once, then multiplied to "
          "the count: one process per disk); BlockOverlay's figures are the idle server's after a restart:", "",
          "| instances | qemu-img create p50 / p99 (ms) | qemu-nbd start p50 / p99 (ms) | qemu-nbd RSS / PSS per disk (MiB) | "
          "qemu-nbd PSS × count (MiB) | " + " | ".join(f"{b} PSS (MiB), per instance (KiB)" for b in labels) + " |",
          "|---:|---:|---:|---:|---:|" + "---:|" * len(labels)]
for point in r["points"]:
    q = point.get("qemu")
    if not q:
        continue
    cells = []
    for b in labels:
        rs = point["builds"][b]["restarts"]
        pss = statistics.median([x["pss"] for x in rs]) if rs else None
        cells.append(f"{mib(pss):.0f}, {pss / point['count']:.1f}" if pss else "—")
    lines.append(f"| {point['count']:,} (qemu: {q['sample']} measured) | {p50_99(q['create_ms'])} | {p50_99(q['start_ms'])} | "
                 f"{mib(statistics.median(q['rss'])):.1f} / {mib(statistics.median(q['pss'])):.1f} | "
                 f"{mib(statistics.mean(q['pss'])) * point['count']:,.0f} | " + " | ".join(cells) + " |")
lines.append("")

top = max(r["points"], key=lambda p: p["count"]) if r["points"] else None
if top:
    lines.append(f"Targets (issue 14) at {top['count']:,} instances:")
    for b in labels:
        d = top["builds"][b]
        rs, c, s = d["restarts"], d.get("clients"), d.get("sample", {})

        def verdict(value, limit, unit, fmt="{:.2f}"):
            if value is None:
                return "not measured"
            return f"{fmt.format(value)} {unit} ({'met' if value <= limit else 'MISSED'}, target ≤ {fmt.format(limit)})"

        ready = statistics.median([x["ready"] for x in rs]) if rs else None
        rss = mib(statistics.median([x["rss"] for x in rs])) if rs else None
        parts = [f"serve ready {verdict(ready, 1, 's')}",
                 f"restart after kill -9 {verdict(c['ready_after_kill'] if c else None, 2, 's')}",
                 f"idle RSS {verdict(rss, 300, 'MiB', '{:.0f}')}"]
        for key, what, limit in (("cli_create", "CLI create p50", 20), ("cli_delete", "CLI delete p50", 20),
                                 ("api_create", "API create p50", 5), ("api_delete", "API delete p50", 5)):
            parts.append(f"{what} {verdict(pct(s[key], 50) if s.get(key) else None, limit, 'ms', '{:.1f}')}")
        for key, what in (("cli_create", "CLI create p99"), ("cli_delete", "CLI delete p99")):
            parts.append(f"{what} {verdict(pct(s[key], 99) if s.get(key) else None, 50, 'ms', '{:.1f}')}")
        lines.append(f"- {b}: " + "; ".join(parts) + ".")
    lines.append("")
for skipped in r.get("skipped", []):
    lines.append(f"Left out: {skipped}.")
print("\n".join(lines).rstrip())
