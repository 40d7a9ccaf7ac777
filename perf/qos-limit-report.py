#!/usr/bin/env python3
"""Writes perf/qos-limit.sh's section for perf/RESULTS.md from fio's JSON (see that script).

    qos-limit-report.py OUT_DIR ROUNDS PHASE IOPS_LIMIT BPS_LIMIT VERSION FIO LOAD_BEFORE LOAD_AFTER SECONDS
"""
import datetime
import json
import statistics
import sys
from pathlib import Path

out_dir, rounds, phase, iops_limit, bps_text, version, fio, load_before, load_after, seconds = sys.argv[1:11]
out = Path(out_dir)
rounds, phase, iops_limit = int(rounds), int(phase), int(iops_limit)
units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
bps_limit = int(bps_text[:-1]) * units[bps_text[-1].upper()] if bps_text[-1].upper() in units else int(bps_text)


def jobs(name, rnd):
    report = json.loads((out / f"{name}-{rnd}.json").read_text())
    return {j["jobname"]: j for j in report["jobs"]}


def p99_ms(job):
    return job["write"]["clat_ns"]["percentile"]["99.000000"] / 1e6


def span(values, fmt):
    return f"{fmt(min(values))}–{fmt(max(values))}"


rows = []
alone = [p99_ms(jobs("alone", r)["steady"]) for r in range(1, rounds + 1)]
for name, what in (("iops", "4 KiB reads, qd 32, limit %d IOPS" % iops_limit),
                   ("bytes", "64 KiB reads, qd 16, limit %s/s" % bps_text),
                   ("unlimited", "4 KiB reads, qd 32, no limit")):
    rates, ratios, p99s = [], [], []
    for r in range(1, rounds + 1):
        j = jobs(name, r)
        load = j["load"]["read"]
        if name == "bytes":
            rates.append(load["bw_bytes"] / bps_limit)
        elif name == "iops":
            rates.append(load["iops"] / iops_limit)
        else:
            rates.append(load["iops"])
        p99s.append(p99_ms(j["steady"]))
        ratios.append(p99s[-1] / alone[r - 1])
    rows.append((name, what, rates, p99s, ratios))

lines = ["## qos-limit: an instance held to its limit, and its neighbour's p99", ""]
summary = []
for name, what, rates, p99s, ratios in rows:
    if name == "unlimited":
        continue
    worst = max(abs(x - 1) for x in rates)
    summary.append(f"{'IOPS' if name == 'iops' else 'byte'} limit: the limited tenant got **{statistics.median(rates):.3f}×** its limit "
                   f"(rounds {span(rates, lambda v: f'{v:.3f}')}; worst {worst * 100:.1f} % off, target ±10 %), and the steady "
                   f"neighbour's p99 write latency was {statistics.median(ratios):.2f}× its p99 alone (rounds {span(ratios, lambda v: f'{v:.2f}')})")
unl = rows[-1]
summary.append(f"for contrast, the same load without a limit ran at {statistics.median(unl[2]):,.0f} IOPS and the neighbour's p99 was "
               f"{statistics.median(unl[4]):.2f}× alone (rounds {span(unl[4], lambda v: f'{v:.2f}')})")
lines.append("; ".join(summary) + ".")
lines += ["", "| phase | load beside the steady tenant | limited rate ÷ limit (rounds) | steady p99 write, ms (rounds) | ÷ alone, median |",
          "|---|---|---:|---:|---:|",
          f"| alone | none | – | {statistics.median(alone):.3f} ({span(alone, lambda v: f'{v:.3f}')}) | 1.00 |"]
for name, what, rates, p99s, ratios in rows:
    rate = (f"{statistics.median(rates):,.0f} IOPS (no limit)" if name == "unlimited"
            else f"{statistics.median(rates):.3f} ({span(rates, lambda v: f'{v:.3f}')})")
    lines.append(f"| {name} | {what} | {rate} | {statistics.median(p99s):.3f} ({span(p99s, lambda v: f'{v:.3f}')}) | {statistics.median(ratios):.2f} |")
lines += [
    "",
    f"- Produced by `bash perf/run-all qos-limit`, which runs `perf/qos-limit.sh`, on "
    f"{datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')}, {seconds} s in all; blockoverlay {version}, {fio}.",
    f"- Load average (1, 5, 15 min) before the rounds: {load_before}; after: {load_after} (a shared 2-core machine).",
    f"- One server, one store; instances of 256 MiB over zeros. Steady tenant: 4 KiB random writes at 500 IOPS (fio `--rate_iops`), "
    f"queue depth 1, its own connection. Each phase is one fio process, both jobs {phase} s (time_based); {rounds} rounds, "
    "the phase order reversed in even rounds. The limited tenant asks for far more than its limit; the rate is fio's (I/Os or bytes "
    "over the phase), so the 0.1 s burst a bucket allows at the start is in it.",
    "- The byte phase switches the same instance to a byte limit only with `instance set` before it starts (live; its connection is new), "
    "and back after.",
]
print("\n".join(lines))
