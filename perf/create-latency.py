#!/usr/bin/env python3
"""How long an instance create and delete take through a running server, per build of
blockoverlay, side by side in one run (the issue-14 targets: the CLI <= 20 ms p50 and
<= 50 ms p99, the control API <= 5 ms p50).

    python3 perf/create-latency.py [--count N] [--rounds R] LABEL=BINARY [LABEL=BINARY ...]

Each BINARY gets its own store (in a temp dir under /var/tmp: O_DIRECT needs a real file
system), a 64 MiB base and its own `serve`. Then, R rounds: in each, every build in turn (the
one that goes first rotates) runs N/R of each step, so the machine's noise falls on all alike:
  version     `blockoverlay --version` (the process alone)
  cli-create  `blockoverlay instance create NAME --base rootfs --store S` (through the server)
  cli-delete  `blockoverlay instance delete NAME --store S`
  api-create  the same create as one request on the control socket (docs/examples/control.py)
  api-delete  the same delete on the control socket
  api-zeros   a create with no base (--size 64M): the server's work without the base's fingerprint
Prints one Markdown table: p50 and p99 in milliseconds per step and build.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "docs" / "examples"))
import control  # noqa: E402  (the documented client is what runtimes would use)

STEPS = ["version", "cli-create", "cli-delete", "api-create", "api-delete", "api-zeros"]


class Build:
    def __init__(self, label, binary, root):
        self.label, self.binary = label, str(Path(binary).resolve())
        self.dir = Path(tempfile.mkdtemp(prefix=f"create-latency-{label}-", dir=root))
        self.store = str(self.dir / "store")
        self.control = self.store + ".control"
        self.times = {step: [] for step in STEPS}
        self.made = 0
        self.run("store", "create", self.store, "--size", "8G")
        base = self.dir / "base.raw"
        with open(base, "wb") as f:
            f.write(bytes(range(256)) * (64 << 12))
        self.base = str(base)
        self.run("base", "add", "rootfs", self.base, "--store", self.store)
        self.log = open(self.dir / "server.log", "wb")
        self.server = subprocess.Popen([self.binary, "serve", "--store", self.store, "--listen", f"unix:{self.dir}/nbd.sock"],
                                       stdout=self.log, stderr=subprocess.STDOUT)
        for _ in range(300):
            if os.path.exists(self.control) and os.path.exists(f"{self.dir}/nbd.sock"):
                break
            time.sleep(0.1)
        else:
            raise SystemExit(f"{label}: the server did not start (see {self.dir}/server.log)")

    def run(self, *args):
        subprocess.run([self.binary, *args], check=True, stdout=subprocess.DEVNULL)

    def timed(self, step, action):
        started = time.perf_counter()
        action()
        self.times[step].append((time.perf_counter() - started) * 1000)

    def api(self, request):
        reply = control.call(self.control, request)
        if reply["reply"] in ("failed", "refused", "bug"):
            raise SystemExit(f"{self.label}: {request} -> {reply}")

    def round(self, count):
        names = [f"t{self.made + i}" for i in range(count)]
        self.made += count
        for _ in range(count):
            self.timed("version", lambda: self.run("--version"))
        for name in names:
            self.timed("cli-create", lambda: self.run("instance", "create", "c" + name, "--base", "rootfs", "--store", self.store))
        for name in names:
            self.timed("cli-delete", lambda: self.run("instance", "delete", "c" + name, "--store", self.store))
        for name in names:
            self.timed("api-create", lambda: self.api({"command": "create", "name": "a" + name, "base": self.base, "size": None,
                                                       "flushMode": None, "quota": None, "allow": []}))
        for name in names:
            self.timed("api-delete", lambda: self.api({"command": "delete", "name": "a" + name, "force": False}))
        for name in names:
            self.timed("api-zeros", lambda: self.api({"command": "create", "name": "z" + name, "base": None, "size": "64M",
                                                      "flushMode": None, "quota": None, "allow": []}))

    def close(self):
        self.server.terminate()
        self.server.wait(timeout=60)
        self.log.close()
        shutil.rmtree(self.dir)


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=100, help="of each step per build (default 100)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("builds", nargs="+", metavar="LABEL=BINARY")
    args = parser.parse_args()
    builds = []
    try:
        for spec in args.builds:
            label, binary = spec.split("=", 1)
            builds.append(Build(label, binary, "/var/tmp"))
        per_round = args.count // args.rounds
        for r in range(args.rounds):
            for b in builds[r % len(builds):] + builds[:r % len(builds)]:
                b.round(per_round)
    finally:
        for b in builds:
            b.close()
    print("| step | " + " | ".join(f"{b.label} p50 | {b.label} p99" for b in builds) + " |")
    print("|---|" + "---:|---:|" * len(builds))
    for step in STEPS:
        cells = " | ".join(f"{percentile(b.times[step], 50):.1f} | {percentile(b.times[step], 99):.1f}" for b in builds)
        print(f"| {step} | {cells} |")
    print(f"\n{per_round * args.rounds} of each step per build, in {args.rounds} rounds; load average after: "
          + ", ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
