#!/usr/bin/env python3
"""A client of BlockOverlay's control socket (docs/CONTROL.md), for a container runtime that
speaks the API instead of starting a `blockoverlay` process per command.

As a program: sends one request and prints the answer as one JSON line; progress goes to
standard error. The exit code is the CLI's: 0 done, 1 failed, 2 refused, 70 a bug.

    python3 docs/examples/control.py STORE.control '{"command": "list"}'

As a module: `call(path, request)` returns the answer (a dict); `create(...)` and `delete(...)`
fill in every field the server requires.
"""
import json
import socket
import sys

EXIT_CODES = {"failed": 1, "refused": 2, "bug": 70}


def call(control_path, request, on_progress=None, timeout=30.0):
    """Sends one request (a dict whose first key is "command") and returns the answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout)
        conn.connect(control_path)
        conn.sendall(json.dumps(request).encode() + b"\n")
        with conn.makefile("rb") as replies:
            for line in replies:
                reply = json.loads(line)
                if reply["reply"] != "progress":
                    return reply  # the server closes the connection after its answer
                if on_progress is not None:
                    on_progress(reply["done"], reply["total"])
    raise ConnectionError(f"{control_path}: the server closed the connection without answering")


def create(control_path, name, base=None, size=None, flush_mode=None, quota=None, allow=()):
    """An instance over `base` (an absolute path, or rbd:POOL/IMAGE@SNAP) or over zeros (`size`)."""
    return call(control_path, {"command": "create", "name": name, "base": base, "size": size,
                               "flushMode": flush_mode, "quota": quota, "allow": list(allow)})


def delete(control_path, name, force=False):
    """Deletes the instance; `force` disconnects its clients first (after their data is written back)."""
    return call(control_path, {"command": "delete", "name": name, "force": force})


def main(argv):
    if len(argv) != 3:
        print(f"usage: {argv[0]} CONTROL_SOCKET REQUEST_JSON", file=sys.stderr)
        return 2
    reply = call(argv[1], json.loads(argv[2]),
                 on_progress=lambda done, total: print(f"progress {done}/{total}", file=sys.stderr))
    print(json.dumps(reply, separators=(",", ":")))
    return EXIT_CODES.get(reply["reply"], 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
