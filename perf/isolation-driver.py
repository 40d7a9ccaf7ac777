#!/usr/bin/python3
"""Drives one run of perf/isolation.sh: dirties neighbours, times victims' flushes.

Connects (libnbd, python3-libnbd) to a running `blockoverlay serve --store` whose store
holds two victims, `victim-iso` (flush mode isolated) and `victim-glob` (global), and
neighbours n01..nNN (isolated). Every connection is opened once and stays open.

One flush measurement ("rep"), each starting from the same state whatever came before:
  1. the neighbours the last rep dirtied flush (untimed), so none holds dirty data and
     no background write-back is left over from the last rep;
  2. every neighbour in use writes its share of the neighbours' dirty bytes (1 MiB
     writes from offset 0, round robin over the neighbours, no flush);
  3. the victim writes VICTIM_BYTES as random 4 KiB blocks (a fresh random set each rep);
  4. counters are read: /metrics, the server's /proc/PID/io write_bytes (a cross-check),
     and its threads' /proc/PID/task/*/schedstat (CPU time, and time spent runnable but
     waiting for a CPU: what competition for the 2 cores costs the server);
  5. FLUSH on the victim, timed alone (perf_counter around the blocking call);
  6. counters are read again; the record gets the deltas and the gauges of step 4.

The curve: for each neighbour count, REPS_ISO rounds; a round visits every total of
neighbours' dirty bytes (ascending in even rounds, descending in odd ones) with one rep of
the isolated victim and then, in the first REPS_GLOB rounds, one of the global victim.
Interleaving puts a point and its 0-byte baseline seconds apart, so the load of the shared
machine, which drifts over minutes, falls on all of them alike. The bytes sweep:
the isolated and the global victim flushing owner sizes from 4 KiB to 64 MiB while the
neighbours hold SWEEP_DIRTY. Each flush is one JSON line in OUT_DIR/flushes.jsonl.
"""
import argparse
import json
import os
import random
import re
import statistics
import sys
import time
import urllib.request

import nbd

KIB, MIB = 1024, 1024**2
BLOCK = 4 * KIB
FILL_WRITE = MIB
VICTIMS = {"isolated": "victim-iso", "global": "victim-glob"}
SERIES = re.compile(r'^(\w+)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--socket", required=True)
    p.add_argument("--server-pid", type=int, required=True)
    p.add_argument("--metrics-url", required=True, help="http://HOST:PORT/metrics")
    p.add_argument("--out", required=True, help="the JSON-lines file to write")
    p.add_argument("--neighbours", required=True, help="neighbour counts, e.g. 1,4,16")
    p.add_argument("--dirty", required=True, help="neighbours' total dirty bytes, in MiB, e.g. 0,64,256,1024")
    p.add_argument("--victim-bytes", type=int, required=True, help="bytes the victim dirties before each flush")
    p.add_argument("--reps-iso", type=int, required=True)
    p.add_argument("--reps-glob", type=int, required=True)
    p.add_argument("--sweep", required=True, help="owner dirty sizes for the bytes sweep, in KiB")
    p.add_argument("--sweep-dirty", type=int, required=True, help="neighbours' dirty MiB during the sweep")
    p.add_argument("--sweep-neighbours", type=int, required=True)
    p.add_argument("--disk-size", type=int, required=True, help="every instance's virtual size, bytes")
    p.add_argument("--seed", type=int, default=1)
    return p.parse_args()


def int_list(text):
    return [int(x) for x in text.split(",")]


def connect(socket, name):
    h = nbd.NBD()
    h.connect_uri(f"nbd+unix:///{name}?socket={socket}")
    return h


def proc_write_bytes(pid):
    with open(f"/proc/{pid}/io") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key == "write_bytes":
                return int(value)
    raise SystemExit(f"isolation-driver: no write_bytes in /proc/{pid}/io")


def sched_ns(pid):
    """(on-CPU ns, runnable-but-waiting ns) summed over the process's threads."""
    cpu = wait = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                fields = f.read().split()
        except FileNotFoundError:  # the thread ended since listdir
            continue
        cpu += int(fields[0])
        wait += int(fields[1])
    return cpu, wait


def scrape(url):
    """The samples of a Prometheus text page: {(name, frozenset of labels): value}."""
    with urllib.request.urlopen(url, timeout=10) as r:
        text = r.read().decode()
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SERIES.match(line)
        if not m:
            raise SystemExit(f"isolation-driver: cannot parse metrics line {line!r}")
        labels = frozenset(LABEL.findall(m.group(2) or ""))
        samples[(m.group(1), labels)] = float(m.group(3))
    return samples


def sample(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


class Counters:
    """What one flush wrote and what was dirty when it started."""

    def __init__(self, pid, url, neighbour_names):
        self.pid, self.url, self.neighbour_names = pid, url, neighbour_names

    def read(self):
        return {"metrics": scrape(self.url), "proc": proc_write_bytes(self.pid), "sched": sched_ns(self.pid)}

    def record(self, victim, before, after):
        b, a = before["metrics"], after["metrics"]
        rec = {"proc_write_bytes": after["proc"] - before["proc"],
               "server_cpu_s": (after["sched"][0] - before["sched"][0]) / 1e9,
               "server_wait_s": (after["sched"][1] - before["sched"][1]) / 1e9}

        def delta(name, **labels):
            return int(sample(a, name, **labels) - sample(b, name, **labels))

        rec["victim_dirty"] = int(sample(b, "blockoverlay_instance_dirty_bytes", instance=victim))
        rec["neighbour_dirty"] = int(sum(sample(b, "blockoverlay_instance_dirty_bytes", instance=n)
                                         for n in self.neighbour_names))
        rec["flush_data"] = delta("blockoverlay_instance_flush_bytes_total", instance=victim, kind="data")
        rec["flush_meta"] = delta("blockoverlay_instance_flush_bytes_total", instance=victim, kind="meta")
        rec["store"] = {reason: delta("blockoverlay_store_bytes_written_total", reason=reason)
                        for reason in ("flush", "background", "journal", "checkpoint", "metadata")}
        return rec


class Bench:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.payload = os.urandom(max(FILL_WRITE, BLOCK))
        self.max_neighbours = max(int_list(args.neighbours) + [args.sweep_neighbours])
        self.neighbour_names = [f"n{i:02d}" for i in range(1, self.max_neighbours + 1)]
        self.neighbours = [connect(args.socket, n) for n in self.neighbour_names]
        self.victims = {mode: connect(args.socket, name) for mode, name in VICTIMS.items()}
        self.counters = Counters(args.server_pid, args.metrics_url, self.neighbour_names)
        self.blocks = args.disk_size // BLOCK
        self.dirtied = 0  # neighbours 1..dirtied may hold dirty data
        self.out = open(args.out, "w")

    def clean_neighbours(self):
        for h in self.neighbours[:self.dirtied]:
            h.flush()
        self.dirtied = 0

    def fill_neighbours(self, count, total):
        """Neighbours 1..count each write total/count bytes from offset 0; returns seconds taken."""
        if total == 0:
            return 0.0
        share = total // count
        if share * count != total or share % FILL_WRITE:
            raise SystemExit(f"isolation-driver: {total} B do not split into {count} shares of whole MiB")
        chunk = self.payload[:FILL_WRITE]
        self.dirtied = count
        start = time.perf_counter()
        for offset in range(0, share, FILL_WRITE):
            for h in self.neighbours[:count]:
                h.pwrite(chunk, offset)
        return time.perf_counter() - start

    def dirty_victim(self, h, nbytes):
        block = self.payload[:BLOCK]
        for b in self.rng.sample(range(self.blocks), nbytes // BLOCK):
            h.pwrite(block, b * BLOCK)

    def rep(self, phase, mode, count, total, victim_bytes, rep):
        self.clean_neighbours()
        fill_s = self.fill_neighbours(count, total)
        h = self.victims[mode]
        self.dirty_victim(h, victim_bytes)
        before = self.counters.read()
        start = time.perf_counter()
        h.flush()
        flush_s = time.perf_counter() - start
        after = self.counters.read()
        rec = {"phase": phase, "mode": mode, "neighbours": count, "neighbour_target": total,
               "victim_bytes": victim_bytes, "rep": rep, "flush_s": flush_s, "fill_s": fill_s,
               **self.counters.record(VICTIMS[mode], before, after)}
        self.out.write(json.dumps(rec) + "\n")
        self.out.flush()
        return rec

    def warm_up(self):
        """The server's JIT past its first tiers and every connection used; nothing recorded.

        A short warm-up left the first points of the curve slower and noisier than later
        ones (one 100 ms flush in five), which would distort the 0-byte baseline."""
        for _ in range(2):
            self.fill_neighbours(self.max_neighbours, 256 * MIB)
            for mode in VICTIMS:
                for _ in range(10):
                    self.dirty_victim(self.victims[mode], self.args.victim_bytes)
                    self.victims[mode].flush()

    def curve(self):
        a = self.args
        totals = [mib * MIB for mib in int_list(a.dirty)]
        for count in int_list(a.neighbours):
            flushes = {}
            for rnd in range(a.reps_iso):
                for total in totals if rnd % 2 == 0 else reversed(totals):
                    modes = ["isolated", "global"] if rnd < a.reps_glob else ["isolated"]
                    for mode in modes:
                        rec = self.rep("curve", mode, count, total, a.victim_bytes, rnd)
                        flushes.setdefault((total, mode), []).append(rec["flush_s"])
            for (total, mode), seconds in sorted(flushes.items()):
                print(f"isolation: {count:2d} neighbours, {total // MIB:5d} MiB dirty, {mode:8s}: "
                      f"median flush {statistics.median(seconds) * 1000:8.2f} ms", file=sys.stderr)

    def sweep(self):
        a = self.args
        total = a.sweep_dirty * MIB
        for kib in int_list(a.sweep):
            for mode in VICTIMS:
                for i in range(3):
                    self.rep("bytes", mode, a.sweep_neighbours, total, kib * KIB, i)
            print(f"isolation: bytes sweep, owner {kib} KiB done", file=sys.stderr)

    def close(self):
        for h in self.neighbours + list(self.victims.values()):
            h.shutdown()
        self.out.close()


def main():
    bench = Bench(parse_args())
    bench.warm_up()
    bench.curve()
    bench.sweep()
    bench.close()


if __name__ == "__main__":
    main()
