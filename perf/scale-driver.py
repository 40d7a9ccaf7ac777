#!/usr/bin/env python3
"""perf/scale.sh's measurements (see that script for what and why); writes one JSON file.

    scale-driver.py OUT.json BASE COUNTS CLI_SAMPLE ROUNDS CLIENTS QEMU_SAMPLE DEADLINE LABEL=BINARY [LABEL=BINARY ...]

Every build gets its own store (in the directory of OUT.json's work dir, WORK) with the base
BASE added as `rootfs`, and its own `serve` on a unix socket. At each instance count of COUNTS
(ascending), the builds take turns, the one that goes first rotating from step to step:
  populate  instances i0, i1, ... made through the control API up to the count, 8 requests at
            a time (each timed, and the rate over all)
  sample    CLI_SAMPLE creates and deletes through the CLI, and as many through the API, one
            at a time (the latencies the targets are about)
  idle      RSS and PSS of the server that made them
  restart   ROUNDS clean stops and starts: ready time (exec until the NBD socket greets), the
            server's CPU time until then, RSS and PSS 2 s after
  clients   CLIENTS libnbd handles (one thread each, one process) on CLIENTS instances, all
            writing 64 KiB and flushing, released together; then kill -9 with them attached,
            a start (ready time) and every flushed write read back
  qemu      (once per count, not per build) QEMU_SAMPLE qcow2 overlays of BASE made with
            qemu-img and served by one qemu-nbd each: create and start times, RSS and PSS
Nothing starts after DEADLINE (a time.time() value); what was measured until then is kept.
"""
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "docs" / "examples"))
import control  # noqa: E402  (the documented client is what runtimes would use)

WRITE = 64 << 10
WRITES_PER_CLIENT = 8
CLIENT_SECONDS = 30
POPULATE_CONNECTIONS = 8


def smaps(pid):
    """RSS and PSS of a process in KiB (/proc/PID/smaps_rollup)."""
    values = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if parts[0] in ("Rss:", "Pss:"):
                values[parts[0][:-1].lower()] = int(parts[1])
    return values


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_greeting(path, process, limit):
    """Seconds until a connect to the unix socket PATH is greeted ("NBDMAGIC"), polling every 2 ms."""
    started = time.perf_counter()
    while time.perf_counter() - started < limit:
        if process.poll() is not None:
            raise SystemExit(f"{path}: the server exited ({process.returncode}) before it was ready")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(5)
                s.connect(path)
                if s.recv(8) == b"NBDMAGIC":
                    return time.perf_counter() - started
        except OSError:
            pass
        time.sleep(0.002)
    raise SystemExit(f"{path}: not ready within {limit} s")


def timed_run(args, limit):
    """Runs ARGS to completion (stdout discarded) and returns its wall time in ms.

    Not subprocess.run(timeout=...): with a timeout, Popen.wait polls with a doubling sleep
    (0.5, 1, 2, ... 32, 50 ms), so a process that ends after 31.5 ms is seen at 63.5 ms and
    every time is rounded up to that schedule. Here the wait blocks in waitpid and a timer
    kills the process past LIMIT seconds."""
    started = time.perf_counter()
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    killer = threading.Timer(limit, process.kill)
    killer.start()
    try:
        code = process.wait()
    finally:
        killer.cancel()
    took = (time.perf_counter() - started) * 1000
    if code != 0:
        raise subprocess.CalledProcessError(code, args)
    return took


def pattern(instance, index):
    return random.Random(instance * 1000 + index).randbytes(WRITE)


class Build:
    def __init__(self, label, binary, work, base):
        self.label, self.binary, self.base = label, str(Path(binary).resolve()), base
        self.dir = work / label
        self.dir.mkdir(parents=True)
        self.store = str(self.dir / "store")
        self.control = self.store + ".control"
        self.sock = str(self.dir / "nbd.sock")
        self.server = None
        self.count = 0
        self.made = 0
        self.log = open(self.dir / "server.log", "ab")
        self.run("store", "create", self.store, "--size", "8G")
        self.run("base", "add", "rootfs", base, "--store", self.store)

    def run(self, *args):
        """Runs the CLI; returns its wall time in ms."""
        return timed_run([self.binary, *args], 120)

    def start(self):
        """Starts `serve`; returns (ready seconds, CPU seconds until ready)."""
        started = time.perf_counter()
        self.server = subprocess.Popen([self.binary, "serve", "--store", self.store, "--listen", f"unix:{self.sock}"],
                                       stdout=self.log, stderr=subprocess.STDOUT)
        ready = wait_greeting(self.sock, self.server, 300)
        assert time.perf_counter() - started >= ready
        return ready, cpu_seconds(self.server.pid)

    def stop(self):
        started = time.perf_counter()
        self.server.terminate()
        self.server.wait(timeout=300)
        self.server = None
        return time.perf_counter() - started

    def kill(self):
        self.server.kill()
        self.server.wait(timeout=60)
        self.server = None

    def api(self, request):
        started = time.perf_counter()
        reply = control.call(self.control, request)
        took = (time.perf_counter() - started) * 1000
        if reply["reply"] in ("failed", "refused", "bug"):
            raise SystemExit(f"{self.label}: {request} -> {reply}")
        return took

    def api_create(self, name):
        return self.api({"command": "create", "name": name, "base": self.base, "size": None,
                         "flushMode": None, "quota": None, "allow": []})

    def populate(self, count, deadline):
        """Makes i<count> .. up to COUNT through the API, POPULATE_CONNECTIONS requests at a time
        (as a runtime starting many containers would), each timed; stops at DEADLINE."""
        names = iter(range(self.count, count))
        lock = threading.Lock()
        times, errors = [], []
        started = time.perf_counter()

        def worker():
            while time.time() < deadline and not errors:
                with lock:
                    i = next(names, None)
                if i is None:
                    return
                try:
                    took = self.api_create(f"i{i}")
                except BaseException as e:  # noqa: BLE001  (SystemExit from api() too)
                    errors.append(str(e))
                    return
                with lock:
                    times.append(took)

        threads = [threading.Thread(target=worker) for _ in range(POPULATE_CONNECTIONS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise SystemExit(f"{self.label}: populate: {errors[0]}")
        self.count += len(times)
        return {"times": times, "seconds": time.perf_counter() - started, "reached": self.count}

    def sample(self, size):
        names = [f"s{self.made + i}" for i in range(size)]
        self.made += size
        result = {
            "cli_create": [self.run("instance", "create", "c" + n, "--base", "rootfs", "--store", self.store) for n in names],
            "cli_delete": [self.run("instance", "delete", "c" + n, "--store", self.store) for n in names],
            "api_create": [self.api_create("a" + n) for n in names],
        }
        result["api_delete"] = [self.api({"command": "delete", "name": "a" + n, "force": False}) for n in names]
        return result

    def restart(self):
        stop = self.stop()
        ready, cpu = self.start()
        time.sleep(2)
        return {"stop": stop, "ready": ready, "cpu": cpu, **smaps(self.server.pid)}

    def clients(self, count):
        """CLIENTS handles write and flush at once, then kill -9 with them attached, start, read back."""
        barrier = threading.Barrier(count + 1)
        flushes, flushed, errors = [], {}, []

        def client(k):
            try:
                h = nbd.NBD()
                h.connect_uri(f"nbd+unix:///i{k}?socket={self.sock}")
                barrier.wait(timeout=120)
                deadline = time.perf_counter() + CLIENT_SECONDS
                done = []
                for index in range(WRITES_PER_CLIENT):
                    if time.perf_counter() > deadline:
                        break
                    h.pwrite(pattern(k, index), index * WRITE)
                    started = time.perf_counter()
                    h.flush()
                    flushes.append((time.perf_counter() - started) * 1000)
                    done.append(index)
                flushed[k] = done
                # One more write, never flushed: what a crash may lose, left attached and in flight.
                h.pwrite(pattern(k, WRITES_PER_CLIENT), WRITES_PER_CLIENT * WRITE)
                handles.append(h)
            except Exception as e:  # noqa: BLE001  (counted, and the run fails below)
                errors.append(f"client {k}: {e}")
                barrier.abort()

        handles = []
        threads = [threading.Thread(target=client, args=(k,)) for k in range(count)]
        for t in threads:
            t.start()
        barrier.wait(timeout=180)
        started = time.perf_counter()
        for t in threads:
            t.join(timeout=CLIENT_SECONDS + 60)
        elapsed = time.perf_counter() - started
        if errors:
            raise SystemExit(f"{self.label}: {len(errors)} clients failed: {errors[:3]}")
        attached = smaps(self.server.pid)
        self.kill()
        handles.clear()  # the server is gone: this only frees the handles
        ready, cpu = self.start()
        bad = []

        def verify(k):
            try:
                h = nbd.NBD()
                h.connect_uri(f"nbd+unix:///i{k}?socket={self.sock}")
                for index in flushed[k]:
                    if h.pread(WRITE, index * WRITE) != pattern(k, index):
                        bad.append((k, index))
                h.shutdown()
            except Exception as e:  # noqa: BLE001
                bad.append((k, str(e)))

        threads = [threading.Thread(target=verify, args=(k,)) for k in range(count)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        return {"clients": count, "seconds": elapsed, "flushes": flushes, "flushed_writes": sum(len(v) for v in flushed.values()),
                "bytes": sum(len(v) for v in flushed.values()) * WRITE, "attached": attached,
                "ready_after_kill": ready, "cpu_after_kill": cpu, "lost": len(bad), "lost_examples": [str(b) for b in bad[:3]]}

    def close(self):
        if self.server is not None:
            self.server.terminate()
            try:
                self.server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()
        self.log.close()


def qemu(work, base, sample):
    """One qemu-nbd per qcow2 overlay of the base, SAMPLE of them at once."""
    qdir = work / f"qemu-{time.time_ns()}"
    qdir.mkdir()
    creates, starts, procs = [], [], []
    try:
        for i in range(sample):
            overlay = str(qdir / f"o{i}.qcow2")
            creates.append(timed_run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", base, "-F", "raw", overlay], 60))
        for i in range(sample):
            sock = str(qdir / f"o{i}.sock")
            started = time.perf_counter()
            p = subprocess.Popen(["qemu-nbd", "--persistent", "--shared=8", "-f", "qcow2", f"--socket={sock}", str(qdir / f"o{i}.qcow2")],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(p)
            starts.append(wait_greeting(sock, p, 60) * 1000)
        time.sleep(2)
        memory = [smaps(p.pid) for p in procs]
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)
    return {"sample": sample, "create_ms": creates, "start_ms": starts,
            "rss": [m["rss"] for m in memory], "pss": [m["pss"] for m in memory]}


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that every `finally` stops its servers
    out, base, counts, cli_sample, rounds, clients, qemu_sample, deadline = sys.argv[1:9]
    counts = [int(c) for c in counts.split(",")]
    cli_sample, rounds, clients, qemu_sample, deadline = int(cli_sample), int(rounds), int(clients), int(qemu_sample), float(deadline)
    work = Path(out).resolve().parent / "builds"
    builds = []
    results = {"counts": counts, "cli_sample": cli_sample, "rounds": rounds, "write_bytes": WRITE,
               "writes_per_client": WRITES_PER_CLIENT, "builds": [], "points": [], "skipped": []}
    turn = 0

    def in_turn():
        nonlocal turn
        turn += 1
        return builds[turn % len(builds):] + builds[:turn % len(builds)]

    def log(text):
        print(f"scale: {text} (load {os.getloadavg()[0]:.1f})", file=sys.stderr, flush=True)

    try:
        for spec in sys.argv[9:]:
            label, binary = spec.split("=", 1)
            builds.append(Build(label, binary, work, base))
            results["builds"].append({"label": label, "binary": binary})
        for b in in_turn():
            ready, cpu = b.start()
            results.setdefault("empty", {})[b.label] = {"ready": ready, "cpu": cpu, **smaps(b.server.pid)}
        for count in counts:
            point = {"count": count, "load_before": os.getloadavg(), "builds": {b.label: {"restarts": []} for b in builds}}
            results["points"].append(point)
            for b in in_turn():
                log(f"{b.label}: populating to {count}")
                point["builds"][b.label]["populate"] = b.populate(count, deadline)
                if b.count < count:
                    results["skipped"].append(f"{b.label}: reached {b.count:,} of {count:,} instances (out of time)")
                point["builds"][b.label]["idle"] = smaps(b.server.pid)
            for b in in_turn():
                if time.time() > deadline:
                    results["skipped"].append(f"{b.label} at {count}: the create and delete sample (out of time)")
                    continue
                log(f"{b.label}: {cli_sample} creates and deletes at {count}")
                point["builds"][b.label]["sample"] = b.sample(cli_sample)
            for r in range(rounds):
                for b in in_turn():
                    if time.time() > deadline:
                        results["skipped"].append(f"{b.label} at {count}: restart {r + 1} (out of time)")
                        continue
                    log(f"{b.label}: restart {r + 1} at {count}")
                    point["builds"][b.label]["restarts"].append(b.restart())
            for b in in_turn():
                if time.time() > deadline:
                    results["skipped"].append(f"{b.label} at {count}: clients and kill -9 (out of time)")
                    continue
                log(f"{b.label}: {clients} clients, kill -9 at {count}")
                point["builds"][b.label]["clients"] = b.clients(min(clients, count))
            if qemu_sample > 0 and time.time() < deadline:
                log(f"qemu-nbd: {qemu_sample} overlays")
                point["qemu"] = qemu(work, base, qemu_sample)
            point["load_after"] = os.getloadavg()
            Path(out).write_text(json.dumps(results))
    finally:
        for b in builds:
            b.close()
        Path(out).write_text(json.dumps(results))


if __name__ == "__main__":
    main()
