#!/usr/bin/python3
"""Summarises one run of perf/fair-shares.sh: per variant, medians over rounds (and the range
of the per-round figures) of the steady tenant's write p99 alone and with the neighbour, their
ratio, its FLUSH p99 with the neighbour, and the neighbour's MiB/s.

    perf/fair-shares-report.py OUT_DIR VARIANT...
"""
import json
import statistics
import sys
from pathlib import Path


def job(data, name):
    return next(j for j in data["jobs"] if j["jobname"] == name)


def pct(stats, p):
    return stats.get("percentile", {}).get(f"{p:.6f}", 0) / 1e6


def main():
    out = Path(sys.argv[1])
    rows = [line.split("\t") for line in (out / "phases.tsv").read_text().splitlines()[1:]]
    print("| variant | write p99 alone ms | write p99 noisy ms | ratio (rounds) | FLUSH p99 noisy ms | noisy MiB/s (rounds) |")
    print("|---|---:|---:|---:|---:|---:|")
    for variant in sys.argv[2:]:
        alone, noisy, ratios, flush, mibs = [], [], [], [], []
        for rnd in sorted({r[0] for r in rows}):
            a = json.loads((out / f"r{rnd}-{variant}-alone.json").read_text())
            n = json.loads((out / f"r{rnd}-{variant}-noisy.json").read_text())
            pa = pct(job(a, "steady")["write"]["clat_ns"], 99)
            pn = pct(job(n, "steady")["write"]["clat_ns"], 99)
            alone.append(pa)
            noisy.append(pn)
            ratios.append(pn / pa)
            flush.append(pct(job(n, "steady")["sync"]["lat_ns"], 99))
            mibs.append(job(n, "noisy")["write"]["bw_bytes"] / 2**20)
        med = statistics.median
        print(f"| {variant} | {med(alone):.2f} | {med(noisy):.2f} | {med(noisy) / med(alone):.1f}× "
              f"({min(ratios):.1f}–{max(ratios):.1f}) | {med(flush):.2f} | {med(mibs):.0f} ({min(mibs):.0f}–{max(mibs):.0f}) |")


if __name__ == "__main__":
    main()
