#!/usr/bin/python3
"""Hostile clients against one running server, phase by phase, with the server's memory.

    hostile-driver.py PID SOCKET METRICS_URL OUT_JSON

Each phase opens its clients, holds them a while, measures the server (RSS from
/proc/PID/status, the request-buffer gauge and open connections from /metrics), closes
them, and measures again after a settle time. Raw sockets only: the point is to send what
no well-behaved library would. Every phase is bounded in count and time.
"""
import json
import os
import socket
import struct
import sys
import threading
import time
import urllib.request

PID, SOCKET, METRICS, OUT = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
MIB = 1 << 20
NBDMAGIC_OPTS = b"IHAVEOPT"


def rss_mib():
    with open(f"/proc/{PID}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def gauge(name):
    with urllib.request.urlopen(METRICS, timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return float("nan")


def sample():
    return {"rss_mib": round(rss_mib(), 1),
            "request_buffer_mib": round(gauge("blockoverlay_request_buffer_bytes") / MIB, 1),
            "connections_open": int(gauge("blockoverlay_connections_open"))}


def connect():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(SOCKET)
    return s


def recv_exact(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def attach(s, export="d"):
    """Fixed newstyle handshake and GO, simple replies; returns the socket ready for requests."""
    recv_exact(s, 18)
    s.sendall(struct.pack(">I", 3))
    name = export.encode()
    data = struct.pack(">I", len(name)) + name + struct.pack(">H", 0)
    s.sendall(NBDMAGIC_OPTS + struct.pack(">II", 7, len(data)) + data)
    while True:
        magic, option, reply, length = struct.unpack(">QIII", recv_exact(s, 20))
        recv_exact(s, length)
        if reply == 1:
            return s
        if reply & 0x80000000:
            raise ConnectionError(f"GO refused: {reply:#x}")


def request(kind, cookie, offset, length):
    return struct.pack(">IHHQQI", 0x25609513, 0, kind, cookie, offset, length)


def close_all(sockets):
    for s in sockets:
        try:
            s.close()
        except OSError:
            pass


def phase(name, open_clients, hold, settle=10):
    before = sample()
    started = time.monotonic()
    clients = open_clients()
    time.sleep(hold)
    during = sample()
    close_all(clients)
    time.sleep(settle)
    after = sample()
    return {"phase": name, "clients": len(clients), "seconds": round(time.monotonic() - started, 1),
            "before": before, "during": during, "after": after}


def unread_reads(connections=16, reads=256):
    """Each connection pipelines `reads` 1 MiB READs and never reads a reply."""
    clients = []
    for _ in range(connections):
        s = attach(connect())
        s.setblocking(False)
        burst = b"".join(request(0, i, (i % 200) * MIB, MIB) for i in range(reads))
        try:
            s.send(burst)
        except BlockingIOError:
            pass
        clients.append(s)
    return clients


def stalled_writes(connections=64):
    """Each connection sends a 32 MiB WRITE header and 1 MiB of its payload, then nothing."""
    clients = []
    for _ in range(connections):
        s = attach(connect())
        # Not blocking: past the client's budget the server stops reading this client.
        s.setblocking(False)
        try:
            s.send(request(1, 1, 0, 32 * MIB) + bytes(MIB))
        except BlockingIOError:
            pass
        clients.append(s)
    return clients


def connect_only(connections=800):
    """Connections that read nothing and send nothing."""
    return [connect() for _ in range(connections)]


def bad_requests(connections=8, count=50_000):
    """Each connection sends unknown commands and reads their replies."""
    clients = []
    for _ in range(connections):
        s = attach(connect())
        # Replies are read while sending: the server stops reading a client that does not.
        reader = threading.Thread(target=recv_exact, args=(s, 16 * count))
        reader.start()
        s.sendall(b"".join(request(0x55, i, 0, 0) for i in range(count)))
        reader.join(timeout=60)
        clients.append(s)
    return clients


def main():
    idle = sample()
    results = [phase("unread 1 MiB READs (16 conns x 256)", unread_reads, hold=5),
               phase("stalled 32 MiB WRITEs (64 conns, 1 MiB sent)", stalled_writes, hold=5),
               phase("connect-only clients (800)", connect_only, hold=5),
               phase("unknown commands, replies read (8 conns x 50,000)", bad_requests, hold=1)]
    time.sleep(5)
    with open(OUT, "w") as out:
        json.dump({"idle": idle, "phases": results, "end": sample()}, out, indent=1)


main()
