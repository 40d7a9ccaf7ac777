#!/usr/bin/env python3
"""Summarises one run of perf/io-backend.sh.

Reads the directory the script wrote (meta, one fio JSON, CPU ticks and a thread count per
workload, backend and round), prints the table to stdout and writes the Markdown section that
perf/run-all puts into perf/RESULTS.md (OUT_DIR/section.md). Each ratio is uring / threads
within one round (the two ran back to back), then the median and range over the rounds.
"""
import json
import statistics
import sys
from pathlib import Path

BACKENDS = ("uring", "threads")
WORKLOADS = (
    ("randwrite", "4 KiB randwrite qd32", "IOPS"),
    ("writeflush", "4 KiB write + FLUSH qd1", "writes/s"),
    ("randread", "4 KiB randread of upper data qd32", "IOPS"),
    ("seqwrite", "1 MiB seq write qd8", "MiB/s"),
)


def load_meta(out_dir):
    return dict(line.partition("=")[::2] for line in (out_dir / "meta").read_text().splitlines())


def run(out_dir, workload, backend, round_, ticks_per_second):
    label = f"{workload}-{backend}-r{round_}"
    text = (out_dir / f"{label}.json").read_text()
    job = json.loads(text[text.index("{"):])["jobs"][0]  # fio prints a line per connection first
    side = job["read"] if workload == "randread" else job["write"]
    ios = side["total_ios"]
    if ios == 0:
        raise SystemExit(f"{label}: fio did no I/O")
    seconds = job["job_runtime"] / 1000.0
    rate = side["bw_bytes"] / (1 << 20) if workload == "seqwrite" else ios / seconds
    percentiles = side["clat_ns"]["percentile"]
    cpu = int((out_dir / f"{label}.cpu").read_text()) / ticks_per_second
    return {
        "rate": rate,
        "p50": percentiles["50.000000"] / 1000.0,
        "p99": percentiles["99.000000"] / 1000.0,
        "cpu_us": cpu / ios * 1e6,
        "threads": int((out_dir / f"{label}.threads").read_text()),
    }


def spread(values, fmt):
    return f"{fmt(statistics.median(values))} ({fmt(min(values))}–{fmt(max(values))})"


def main():
    out_dir = Path(sys.argv[1])
    meta = load_meta(out_dir)
    rounds = int(meta["rounds"])
    ticks = int(meta["clock_ticks"])
    whole = lambda v: f"{v:,.0f}"
    one = lambda v: f"{v:.1f}"
    ratio = lambda v: f"{v:.2f}×"
    rows = []
    for workload, title, unit in WORKLOADS:
        runs = {b: [run(out_dir, workload, b, r, ticks) for r in range(1, rounds + 1)] for b in BACKENDS}
        ratios = [u["rate"] / t["rate"] for u, t in zip(runs["uring"], runs["threads"])]
        cpu_ratios = [u["cpu_us"] / t["cpu_us"] for u, t in zip(runs["uring"], runs["threads"])]
        for backend in BACKENDS:
            r = runs[backend]
            rows.append(
                f"| {title} | {backend} | {spread([x['rate'] for x in r], whole)} {unit} "
                f"| {spread([x['p50'] for x in r], whole)} / {spread([x['p99'] for x in r], whole)} "
                f"| {spread([x['cpu_us'] for x in r], one)} | {spread([x['threads'] for x in r], whole)} "
                + (f"| **{spread(ratios, ratio)}** | {spread(cpu_ratios, ratio)} |" if backend == "uring" else "| | |")
            )
    table = "\n".join(
        [
            "| workload | backend | rate, median (range) | latency p50 / p99, µs | server CPU per I/O, µs | server threads | rate uring ÷ threads | CPU per I/O uring ÷ threads |",
            "|---|---|---:|---:|---:|---:|---:|---:|",
            *rows,
        ]
    )
    section = "\n".join(
        [
            "## io-backend: io_uring beside pread/pwrite on threads (serve --io-backend)",
            "",
            f"Command: `perf/io-backend.sh` (ROUNDS={rounds} RUNTIME={meta['runtime']} STORE_SIZE={meta['store_size']}), "
            f"run {meta['date']} on Linux {meta['kernel']}, 2 cores shared with other work.",
            "Two servers, each on its own store file on ext4 (O_DIRECT) with one 1 GiB instance, fio's nbd",
            "engine over a unix socket; per round each workload runs on one server and then the other,",
            "the first alternating. Ratios are per round (uring ÷ threads, higher is better for the",
            "rate), then median and range over the rounds. Server CPU is utime+stime of the server",
            "process over the job; threads were counted half-way through it.",
            "",
            table,
        ]
    )
    (out_dir / "section.md").write_text(section + "\n")
    print(section)


if __name__ == "__main__":
    main()
