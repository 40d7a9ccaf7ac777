#!/usr/bin/python3
"""Drives one run of perf/isolation.sh: dirties neighbours, times victims' flushes.

Connects (libnbd, python3-libnbd) to a running `blockoverlay serve --store` whose store
holds two victims, `victim-iso` (flush mode isolated) and `victim-glob` (global), and
neighbours n01..nNN (isolated). Every connection is opened once and stays open.

Peers (--peer NAME=URI): other servers, each serving the same tenants as its own exports,
`victim` and n01..nNN (URI has `{tenant}` where the tenant's name goes), e.g. qemu-nbd with
one qcow2 overlay per tenant. A peer's victim is measured like BlockOverlay's, only
without /metrics; a peer listed in --prefill has its victim written in full in the
warm-up (so every measured write overwrites allocated space), one listed in --fresh
writes only blocks it has not written before (so every measured write allocates).

One flush measurement ("rep"), each starting from the same state whatever came before:
  1. the neighbours the last rep dirtied (of whichever server) flush (untimed), so none
     holds dirty data and no background write-back is left over from the last rep;
  2. every neighbour in use writes its share of the neighbours' dirty bytes (1 MiB
     writes from offset 0, round robin over the neighbours, no flush);
  3. the victim writes VICTIM_BYTES as random 4 KiB blocks (a fresh random set each rep);
  4. counters are read: /metrics, the server's /proc/PID/io write_bytes (a cross-check),
     and its threads' /proc/PID/task/*/schedstat (CPU time, and time spent runnable but
     waiting for a CPU: what competition for the 2 cores costs the server) -- for
     BlockOverlay only; for every server, the store's disk in /proc/diskstats (sectors and
     write requests; the whole machine's) and Dirty/Writeback in /proc/meminfo (the page
     cache's, the whole machine's);
  5. FLUSH on the victim, timed alone (perf_counter around the blocking call);
  6. counters are read again; the record gets the deltas and the gauges of step 4.

The curve: for each neighbour count, REPS_ISO rounds; a round visits every total of
neighbours' dirty bytes (ascending in even rounds, descending in odd ones) with one rep of
the isolated victim and then, in the first REPS_GLOB rounds, one of the global victim,
then, in the first REPS_PEER rounds, one of each peer's victim.
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
    p.add_argument("--peer", action="append", default=[], metavar="NAME=URI",
                   help="a peer server; URI has {tenant} for victim, n01, n02, ...")
    p.add_argument("--reps-peer", type=int, default=0)
    p.add_argument("--prefill", default="", help="peers whose victim is written in full in the warm-up")
    p.add_argument("--fresh", default="", help="peers whose victim writes only blocks not written before")
    p.add_argument("--disk-device", required=True, help="the store's disk as /proc/diskstats names it, e.g. vda")
    p.add_argument("--seed", type=int, default=1)
    return p.parse_args()


def int_list(text):
    return [int(x) for x in text.split(",")]


def connect(socket, name):
    return connect_uri(f"nbd+unix:///{name}?socket={socket}")


def connect_uri(uri):
    h = nbd.NBD()
    h.connect_uri(uri)
    return h


def name_list(text):
    return [x for x in text.split(",") if x]


def disk_stats(device):
    """(bytes written, write requests completed, flush requests completed) of one disk."""
    with open("/proc/diskstats") as f:
        for line in f:
            fields = line.split()
            if fields[2] == device:
                flushes = int(fields[18]) if len(fields) > 18 else 0
                return int(fields[9]) * 512, int(fields[7]), flushes
    raise SystemExit(f"isolation-driver: no {device} in /proc/diskstats")


def page_cache():
    """The page cache's Dirty and Writeback bytes, the whole machine's."""
    out = {}
    with open("/proc/meminfo") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("Dirty", "Writeback"):
                out[key.lower()] = int(value.split()[0]) * KIB
    return out


class SystemCounters:
    """What every server's flush can be seen by from outside: the disk and the page cache."""

    def __init__(self, device):
        self.device = device

    def read(self):
        return {"disk": disk_stats(self.device), "cache": page_cache()}

    @staticmethod
    def record(before, after):
        b, a = before["disk"], after["disk"]
        return {"disk_write_bytes": a[0] - b[0], "disk_write_ios": a[1] - b[1], "disk_flushes": a[2] - b[2],
                "page_dirty_before": before["cache"]["dirty"], "page_dirty_after": after["cache"]["dirty"],
                "page_writeback_before": before["cache"]["writeback"],
                "page_writeback_after": after["cache"]["writeback"]}


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
        # Each server's neighbours: BlockOverlay's ("blockoverlay") and each peer's.
        self.neighbours = {"blockoverlay": [connect(args.socket, n) for n in self.neighbour_names]}
        self.victims = {mode: connect(args.socket, name) for mode, name in VICTIMS.items()}
        self.peers = []
        for spec in args.peer:
            name, _, uri = spec.partition("=")
            if not uri or name in VICTIMS or name == "blockoverlay":
                raise SystemExit(f"isolation-driver: bad --peer {spec!r}")
            self.peers.append(name)
            self.neighbours[name] = [connect_uri(uri.replace("{tenant}", n)) for n in self.neighbour_names]
            self.victims[name] = connect_uri(uri.replace("{tenant}", "victim"))
        self.prefill = set(name_list(args.prefill))
        self.fresh = {name: [] for name in name_list(args.fresh)}  # blocks not yet written, shuffled
        self.counters = Counters(args.server_pid, args.metrics_url, self.neighbour_names)
        self.system = SystemCounters(args.disk_device)
        self.blocks = args.disk_size // BLOCK
        self.dirtied = {}  # server -> neighbours 1..n of it may hold dirty data
        self.out = open(args.out, "w")

    @staticmethod
    def server(mode):
        return "blockoverlay" if mode in VICTIMS else mode

    def clean_neighbours(self):
        for server, count in self.dirtied.items():
            for h in self.neighbours[server][:count]:
                h.flush()
        self.dirtied = {}

    def fill_neighbours(self, server, count, total):
        """Neighbours 1..count of a server each write total/count bytes from offset 0; returns seconds taken."""
        if total == 0:
            return 0.0
        share = total // count
        if share * count != total or share % FILL_WRITE:
            raise SystemExit(f"isolation-driver: {total} B do not split into {count} shares of whole MiB")
        chunk = self.payload[:FILL_WRITE]
        self.dirtied[server] = count
        start = time.perf_counter()
        for offset in range(0, share, FILL_WRITE):
            for h in self.neighbours[server][:count]:
                h.pwrite(chunk, offset)
        return time.perf_counter() - start

    def victim_blocks(self, mode, count):
        if mode not in self.fresh:
            return self.rng.sample(range(self.blocks), count)
        left = self.fresh[mode]
        if len(left) < count:  # all written once: start over (then they are overwrites)
            print(f"isolation-driver: {mode}'s victim has written every block; fresh blocks start over",
                  file=sys.stderr)
            left[:] = self.rng.sample(range(self.blocks), self.blocks)
        taken = left[-count:]
        del left[-count:]
        return taken

    def dirty_victim(self, mode, nbytes):
        h = self.victims[mode]
        block = self.payload[:BLOCK]
        for b in self.victim_blocks(mode, nbytes // BLOCK):
            h.pwrite(block, b * BLOCK)

    def rep(self, phase, mode, count, total, victim_bytes, rep):
        self.clean_neighbours()
        fill_s = self.fill_neighbours(self.server(mode), count, total)
        h = self.victims[mode]
        self.dirty_victim(mode, victim_bytes)
        before = self.counters.read() if mode in VICTIMS else None
        sys_before = self.system.read()
        start = time.perf_counter()
        h.flush()
        flush_s = time.perf_counter() - start
        sys_after = self.system.read()
        rec = {"phase": phase, "mode": mode, "neighbours": count, "neighbour_target": total,
               "victim_bytes": victim_bytes, "rep": rep, "flush_s": flush_s, "fill_s": fill_s,
               **self.system.record(sys_before, sys_after)}
        if mode in VICTIMS:
            rec.update(self.counters.record(VICTIMS[mode], before, self.counters.read()))
        self.out.write(json.dumps(rec) + "\n")
        self.out.flush()
        return rec

    def warm_up(self):
        """The server's JIT past its first tiers and every connection used; nothing recorded.

        A short warm-up left the first points of the curve slower and noisier than later
        ones (one 100 ms flush in five), which would distort the 0-byte baseline.
        A peer in --prefill has its victim written in full first (1 MiB writes, then FLUSH)."""
        chunk = self.payload[:FILL_WRITE]
        for mode in self.peers:
            if mode in self.prefill:
                start = time.perf_counter()
                for offset in range(0, self.args.disk_size, FILL_WRITE):
                    self.victims[mode].pwrite(chunk, offset)
                self.victims[mode].flush()
                print(f"isolation: {mode}'s victim written in full in {time.perf_counter() - start:.1f} s",
                      file=sys.stderr)
            elif mode in self.fresh:
                self.fresh[mode] = self.rng.sample(range(self.blocks), self.blocks)
        for _ in range(2):
            for mode in list(VICTIMS) + self.peers:
                server = self.server(mode)
                if server not in self.dirtied:
                    self.fill_neighbours(server, self.max_neighbours, 256 * MIB)
                for _ in range(10):
                    self.dirty_victim(mode, self.args.victim_bytes)
                    self.victims[mode].flush()
            self.clean_neighbours()

    def curve(self):
        a = self.args
        totals = [mib * MIB for mib in int_list(a.dirty)]
        for count in int_list(a.neighbours):
            flushes = {}
            for rnd in range(a.reps_iso):
                for total in totals if rnd % 2 == 0 else reversed(totals):
                    modes = ["isolated", "global"] if rnd < a.reps_glob else ["isolated"]
                    modes += self.peers if rnd < a.reps_peer else []
                    for mode in modes:
                        rec = self.rep("curve", mode, count, total, a.victim_bytes, rnd)
                        flushes.setdefault((total, mode), []).append(rec["flush_s"])
            for (total, mode), seconds in sorted(flushes.items()):
                print(f"isolation: {count:2d} neighbours, {total // MIB:5d} MiB dirty, {mode:10s}: "
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
        for h in [h for hs in self.neighbours.values() for h in hs] + list(self.victims.values()):
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
