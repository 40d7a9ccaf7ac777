#!/usr/bin/python3
"""The measuring half of perf/rbd.sh: a store on Ceph RBD beside the same store in a local
file, side by side in one run.

    rbd-driver.py OUT_DIR ROUNDS OPS DIRTY_MIB NAME=SOCKET...

Each NAME=SOCKET is a blockoverlay server whose store has the instances lat, victim and nbr.
Every round measures every server, in an order that alternates from round to round (round r
starts at server r mod N), so drift in the shared machine falls on all of them alike:
  - qd1: OPS times one 4 KiB write at a random block of `lat` followed by FLUSH, one request
    in flight; the latency of the pair (what a guest's write + fsync waits);
  - isolation: for each neighbour dirty size D in DIRTY_MIB (MiB), `nbr` writes D MiB (1 MiB
    writes, not flushed), `victim` writes 256 random 4 KiB blocks, and the victim's FLUSH is
    timed; then `nbr` is flushed clean, untimed.
Writes OUT_DIR/samples.jsonl (one line per measurement) and OUT_DIR/section.md: medians,
spread (p10-p90 over rounds of per-round medians) and ratios against the first NAME.
"""
import json
import random
import statistics
import sys
import time
from pathlib import Path

import nbd

BLOCK = 4096
MIB = 1 << 20
VICTIM_BLOCKS = 256


def connect(socket, export):
    handle = nbd.NBD()
    handle.connect_uri(f"nbd+unix:///{export}?socket={socket}")
    return handle


def qd1(handles, ops, rng):
    lat = handles["lat"]
    blocks = lat.get_size() // BLOCK
    data = bytes(rng.getrandbits(8) for _ in range(BLOCK))
    times = []
    for _ in range(ops):
        start = time.perf_counter()
        lat.pwrite(data, rng.randrange(blocks) * BLOCK)
        lat.flush()
        times.append(time.perf_counter() - start)
    return times


def isolated_flush(handles, dirty_mib, rng):
    victim, nbr = handles["victim"], handles["nbr"]
    chunk = bytes([0xBB]) * MIB
    for i in range(dirty_mib):
        nbr.pwrite(chunk, i * MIB)
    blocks = victim.get_size() // BLOCK
    block = bytes([0xAA]) * BLOCK
    for _ in range(VICTIM_BLOCKS):
        victim.pwrite(block, rng.randrange(blocks) * BLOCK)
    start = time.perf_counter()
    victim.flush()
    elapsed = time.perf_counter() - start
    nbr.flush()
    return elapsed


def quantile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1) + 0.5))]


def report(samples, names, rounds, ops, dirty):
    def per_round(name, metric):
        # The median of each round, so that every round weighs the same.
        return [statistics.median(s["value"] for s in samples if s["server"] == name and s["metric"] == metric and s["round"] == r)
                for r in range(rounds)]

    metrics = ["qd1"] + [f"flush@{d}" for d in dirty]
    base = names[0]
    lines = [
        "| measurement | " + " | ".join(f"{n}: median (p10–p90), ms" for n in names) + " | " +
        " | ".join(f"{n} / {base} (p10–p90)" for n in names[1:]) + " |",
        "|---" * (1 + len(names) + len(names) - 1) + "|",
    ]
    for metric in metrics:
        rows = {n: per_round(n, metric) for n in names}
        cells = [f"{statistics.median(v) * 1e3:.2f} ({quantile(v, 0.1) * 1e3:.2f}–{quantile(v, 0.9) * 1e3:.2f})" for v in rows.values()]
        ratios = []
        for n in names[1:]:
            r = [a / b for a, b in zip(rows[n], rows[base])]
            ratios.append(f"{statistics.median(r):.2f}× ({quantile(r, 0.1):.2f}–{quantile(r, 0.9):.2f})")
        label = "4 KiB write + FLUSH, qd1" if metric == "qd1" else f"victim FLUSH (1 MiB dirty), neighbour {metric[6:]} MiB dirty"
        lines.append(f"| {label} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
    return "\n".join(lines) + "\n", (
        f"{rounds} rounds, order alternating; per round {ops} qd1 pairs per server and one victim flush per neighbour size; "
        "each cell is the median of the per-round medians, with the 10th–90th percentile of those; ratios are taken round by round.")


def main():
    out_dir, rounds, ops = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    dirty = [int(d) for d in sys.argv[4].split(",")]
    servers = [arg.split("=", 1) for arg in sys.argv[5:]]
    names = [name for name, _ in servers]
    rng = random.Random(15)
    handles = {name: {e: connect(sock, e) for e in ("lat", "victim", "nbr")} for name, sock in servers}
    samples = []
    with open(out_dir / "samples.jsonl", "w", encoding="utf-8") as out:
        def record(server, r, metric, value):
            sample = {"server": server, "round": r, "metric": metric, "value": value}
            samples.append(sample)
            out.write(json.dumps(sample) + "\n")

        for r in range(rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            for name in order:
                for value in qd1(handles[name], ops, rng):
                    record(name, r, "qd1", value)
                for d in dirty:
                    record(name, r, f"flush@{d}", isolated_flush(handles[name], d, rng))
            print(f"round {r + 1}/{rounds} done ({', '.join(order)})", file=sys.stderr, flush=True)
    for per_server in handles.values():
        for handle in per_server.values():
            handle.shutdown()
    table, how = report(samples, names, rounds, ops, dirty)
    (out_dir / "table.md").write_text(table + "\n" + how + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
