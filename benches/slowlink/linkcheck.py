#!/usr/bin/env python3
"""Measure an emulated link: round-trip time (TCP and UDP) and TCP throughput each way.

Used by `benches/ttfa_slowlink.sh --check-link`. Standard library only.

    linkcheck.py server --bind 10.77.1.2:5001            # far end (TCP and UDP on that port)
    linkcheck.py probe --target 10.77.2.1:5001 \\
        [--rtts 20] [--bytes 10000000] [--unreachable 10.77.1.2:5001]

The TCP server reads a one-byte mode per connection:
  E  echo every byte back                     (RTT: median of N 64-byte round trips)
  U  read an 8-byte length N, swallow N bytes, answer b"K"       (throughput client -> server)
  D  read an 8-byte length N, send N bytes                       (throughput server -> client)
The UDP socket on the same port echoes every datagram.

`probe` prints one human-readable line per figure and, last, one JSON line with all of them.
"""

from __future__ import annotations

import argparse
import errno
import json
import socket
import statistics
import struct
import sys
import threading
import time

BLOCK = 65536


def hostport(s: str) -> tuple[str, int]:
    host, _, port = s.rpartition(":")
    return host, int(port)


def recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed early")
        buf += chunk
    return bytes(buf)


# ----------------------------------------------------------------------------- server


def serve_conn(conn: socket.socket) -> None:
    with conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        mode = conn.recv(1)
        if mode == b"E":
            while data := conn.recv(BLOCK):
                conn.sendall(data)
        elif mode == b"U":
            (n,) = struct.unpack("!Q", recv_exact(conn, 8))
            while n > 0:
                data = conn.recv(min(BLOCK, n))
                if not data:
                    return
                n -= len(data)
            conn.sendall(b"K")
        elif mode == b"D":
            (n,) = struct.unpack("!Q", recv_exact(conn, 8))
            block = bytes(BLOCK)
            while n > 0:
                conn.sendall(block[: min(BLOCK, n)])
                n -= min(BLOCK, n)


def udp_echo(addr: tuple[str, int]) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(addr)
    while True:
        data, peer = s.recvfrom(65535)
        s.sendto(data, peer)


def server(args: argparse.Namespace) -> None:
    addr = hostport(args.bind)
    threading.Thread(target=udp_echo, args=(addr,), daemon=True).start()
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(addr)
    ls.listen(16)
    print("READY", flush=True)
    while True:
        conn, _ = ls.accept()
        threading.Thread(target=serve_conn, args=(conn,), daemon=True).start()


# ----------------------------------------------------------------------------- probe


def connect(target: tuple[str, int], mode: bytes) -> socket.socket:
    s = socket.create_connection(target, timeout=30)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(mode)
    return s


def tcp_rtts(target: tuple[str, int], n: int) -> list[float]:
    out = []
    with connect(target, b"E") as s:
        msg = b"x" * 64
        for _ in range(n + 1):  # the first round trip also opens the relay's upstream leg
            t = time.perf_counter()
            s.sendall(msg)
            recv_exact(s, len(msg))
            out.append((time.perf_counter() - t) * 1000)
    return out[1:]


def udp_rtts(target: tuple[str, int], n: int) -> list[float]:
    out = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        s.connect(target)
        for i in range(n + 1):
            msg = struct.pack("!I", i) + b"x" * 60
            t = time.perf_counter()
            s.send(msg)
            while True:  # skip late answers to earlier probes
                if s.recv(2048)[:4] == msg[:4]:
                    break
            out.append((time.perf_counter() - t) * 1000)
    return out[1:]


def upload(target: tuple[str, int], n: int) -> float:
    """Seconds to push n bytes and hear that they all arrived (includes one round trip)."""
    block = bytes(BLOCK)
    with connect(target, b"U") as s:
        t = time.perf_counter()
        s.sendall(struct.pack("!Q", n))
        left = n
        while left > 0:
            s.sendall(block[: min(BLOCK, left)])
            left -= min(BLOCK, left)
        if recv_exact(s, 1) != b"K":
            raise ConnectionError("bad upload acknowledgement")
        return time.perf_counter() - t


def download(target: tuple[str, int], n: int) -> float:
    """Seconds from asking for n bytes to holding the last one (includes one round trip)."""
    with connect(target, b"D") as s:
        t = time.perf_counter()
        s.sendall(struct.pack("!Q", n))
        left = n
        while left > 0:
            data = s.recv(min(1 << 20, left))
            if not data:
                raise ConnectionError("download closed early")
            left -= len(data)
        return time.perf_counter() - t


def unreachable(target: tuple[str, int]) -> str | None:
    """None if `target` cannot be reached directly (the expected outcome), else a complaint."""
    try:
        with socket.create_connection(target, timeout=2):
            return f"{target[0]}:{target[1]} accepted a direct connection: the relay is not the only path"
    except (TimeoutError, socket.timeout):
        return None  # silently dropped: no path either
    except OSError as e:
        if e.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
            return None
        return f"{target[0]}:{target[1]}: {e} (a reply came back: there is a direct path)"


def summary(xs: list[float]) -> dict:
    xs = sorted(xs)
    p90 = xs[min(len(xs) - 1, max(0, int(round(0.9 * len(xs))) - 1))]
    return {"median": statistics.median(xs), "p90": p90, "min": xs[0], "max": xs[-1], "n": len(xs)}


def probe(args: argparse.Namespace) -> None:
    target = hostport(args.target)
    res: dict = {}
    if args.unreachable:
        problem = unreachable(hostport(args.unreachable))
        res["direct_path"] = problem or "none"
        print(f"direct path to {args.unreachable}: {problem or 'none (good)'}", flush=True)
        if problem:
            print(json.dumps(res))
            sys.exit(1)
    for name, fn in (("tcp_rtt_ms", tcp_rtts), ("udp_rtt_ms", udp_rtts)):
        s = summary(fn(target, args.rtts))
        res[name] = s
        print(f"{name[:3].upper()} RTT over {s['n']}: median {s['median']:.2f} ms, p90 {s['p90']:.2f}, "
              f"min {s['min']:.2f}, max {s['max']:.2f}", flush=True)
    for name, fn in (("upload", upload), ("download", download)):
        secs = fn(target, args.bytes)
        mbit = args.bytes * 8 / secs / 1e6
        res[name] = {"bytes": args.bytes, "seconds": secs, "mbit_s": mbit, "mbyte_s": args.bytes / secs / 1e6}
        print(f"TCP {name:8} {args.bytes / 1e6:.1f} MB in {secs:.2f} s = {mbit:.2f} Mbit/s "
              f"({args.bytes / secs / 1e6:.2f} MB/s, goodput incl. one RTT)", flush=True)
    print(json.dumps(res))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("server", help="echo/sink/source server (TCP) and UDP echo on one port")
    s.add_argument("--bind", required=True, metavar="HOST:PORT")
    s.set_defaults(fn=server)
    q = sub.add_parser("probe", help="measure RTT and throughput to a server")
    q.add_argument("--target", required=True, metavar="HOST:PORT")
    q.add_argument("--rtts", type=int, default=20, help="round trips per protocol (default 20)")
    q.add_argument("--bytes", type=int, default=10_000_000, help="bytes pushed each way (default 10 MB)")
    q.add_argument("--unreachable", metavar="HOST:PORT", help="first check this address cannot be reached directly")
    q.set_defaults(fn=probe)
    args = p.parse_args()
    args.fn(args)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
