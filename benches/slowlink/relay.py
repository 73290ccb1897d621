#!/usr/bin/env python3
"""Delaying TCP/UDP relay: a slow link for machines whose kernel has no netem.

Runs in the middle network namespace of benches/ttfa_slowlink.sh. It listens on one side's
address and forwards to the other side's address; IP forwarding is off there, so this
process is the only path between the two ends, and every byte pays the one-way delay.

    relay.py --delay-ms 25 \\
        --tcp 10.77.2.1:4717=10.77.1.2:4717 \\
        --udp 10.77.2.1:4717=10.77.1.2:4717

Mappings (repeatable, several at once):
  --tcp LISTEN_HOST:PORT=TARGET_HOST:PORT   byte stream; one upstream connection per client
  --udp LISTEN_HOST:PORT=TARGET_HOST:PORT   datagrams; one upstream socket per client source
                                            address (what QUIC needs: the server sees a
                                            stable 5-tuple per client)

The link model, per direction (client->target "up", target->client "down"):
  * delay: data read at time t is delivered at t + delay. The delay is a constant offset,
    not a per-packet sleep, so it never accumulates, and order is preserved per connection
    / per UDP flow.
  * rate (optional, --rate BYTES_PER_S): one serialising link per direction, shared by all
    mappings and flows: data starts transmission when the link is free, takes
    len/rate, then pays the delay. With --queue-ms set, a direction whose backlog exceeds
    that many ms stops reading TCP (backpressure) and drops UDP datagrams (a full router
    queue). The benchmark leaves rate to `tc tbf` in the kernel and uses this only as a
    fallback.

Limitation: TCP is split at the relay (each side's TCP talks to the relay with ~0 RTT), so
TCP congestion control (slow start, slow start after idle) does not see the 50 ms. UDP is
relayed datagram by datagram, so QUIC's congestion control sees the real delay.

Prints "READY" on stdout once every listener is bound. Standard library only. Uses select()
for its microsecond timeouts, so it suits tens of connections, not thousands (FD_SETSIZE).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import selectors
import signal
import socket
import sys
import time

TCP_READ = 65536  # bytes per read when there is no relay-side rate limit
UDP_MAX = 65535


def log(verbose: bool, *msg: object) -> None:
    if verbose:
        print("relay:", *msg, file=sys.stderr, flush=True)


def parse_hostport(s: str) -> tuple[str, int]:
    """'1.2.3.4:80' or '[::1]:80' -> (host, port)."""
    host, sep, port = s.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {s!r}")
    return host.strip("[]"), int(port)


def parse_mapping(s: str) -> tuple[tuple[str, int], tuple[str, int]]:
    listen, sep, target = s.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected LISTEN_HOST:PORT=TARGET_HOST:PORT, got {s!r}")
    return parse_hostport(listen), parse_hostport(target)


class Link:
    """One direction of the emulated link: constant delay plus optional serialisation rate."""

    def __init__(self, name: str, delay: float, rate: float | None, queue: float | None):
        self.name = name
        self.delay = delay
        self.rate = rate  # bytes per second, None = unlimited
        self.queue = queue  # max backlog in seconds before TCP waits / UDP drops; None = no limit
        self.free_at = 0.0  # loop time at which the link finishes its current backlog
        self.bytes = 0
        self.drops = 0

    def backlog(self, now: float) -> float:
        return max(0.0, self.free_at - now)

    def full(self, now: float) -> bool:
        return self.rate is not None and self.queue is not None and self.backlog(now) > self.queue

    def schedule(self, nbytes: int, now: float) -> float:
        """Loop time at which `nbytes` read at `now` reach the far side."""
        self.bytes += nbytes
        if self.rate is None:
            return now + self.delay
        self.free_at = max(now, self.free_at) + nbytes / self.rate
        return self.free_at + self.delay

    async def wait_room(self) -> None:
        """TCP backpressure: sleep while the backlog is above the queue limit."""
        loop = asyncio.get_running_loop()
        while self.full(loop.time()):
            await asyncio.sleep(self.backlog(loop.time()) - self.queue + 0.001)

    def read_size(self) -> int:
        # With a relay-side rate, read ~1 ms of link time at a time so serialisation is smooth.
        if self.rate is None:
            return TCP_READ
        return max(1500, min(TCP_READ, int(self.rate / 1000)))


# ---------------------------------------------------------------------------------------
# TCP
# ---------------------------------------------------------------------------------------


class DelayPipe:
    """Reader -> (delay line) -> writer for one direction of one TCP connection.

    Bounded to `limit` bytes in the delay line so a fast sender cannot make the relay buffer
    without bound; the reader then waits, and TCP flow control pushes back to the sender.
    """

    def __init__(self, link: Link, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, limit: int):
        self.link = link
        self.reader = reader
        self.writer = writer
        self.limit = limit
        self.items: collections.deque[tuple[float, bytes]] = collections.deque()  # (due, data); b"" = EOF
        self.buffered = 0
        self.more = asyncio.Event()  # an item was queued
        self.room = asyncio.Event()  # buffered dropped below the limit
        self.room.set()

    async def read_loop(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                await self.room.wait()
                await self.link.wait_room()
                data = await self.reader.read(self.link.read_size())
                now = loop.time()
                self._push(self.link.schedule(len(data), now) if data else now + self.link.delay, data)
                if not data:
                    return
        except (ConnectionError, OSError):  # reset by the sender: pass it on as an EOF
            self._push(loop.time() + self.link.delay, b"")

    def _push(self, due: float, data: bytes) -> None:
        self.items.append((due, data))
        self.buffered += len(data)
        if self.buffered >= self.limit:
            self.room.clear()
        self.more.set()

    async def write_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self.items:
                self.more.clear()
                await self.more.wait()
            due, data = self.items[0]
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            self.items.popleft()
            self.buffered -= len(data)
            if self.buffered < self.limit:
                self.room.set()
            if not data:  # EOF from the sender: half-close towards the receiver
                if self.writer.can_write_eof():
                    self.writer.write_eof()
                return
            self.writer.write(data)
            await self.writer.drain()


def set_nodelay(writer: asyncio.StreamWriter) -> None:
    # The relay already delays; Nagle on top would add its own, varying, delay.
    sock = writer.get_extra_info("socket")
    try:
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:  # already closed by the peer; the pipes will notice
        pass


async def tcp_session(
    c_reader: asyncio.StreamReader,
    c_writer: asyncio.StreamWriter,
    target: tuple[str, int],
    up: Link,
    down: Link,
    args: argparse.Namespace,
) -> None:
    peer = c_writer.get_extra_info("peername")
    try:
        u_reader, u_writer = await asyncio.open_connection(*target)
    except OSError as e:
        log(args.verbose, f"tcp {peer} -> {target}: connect failed: {e}")
        c_writer.close()
        return
    log(args.verbose, f"tcp {peer} -> {target}: open")
    set_nodelay(c_writer)
    set_nodelay(u_writer)
    limit = args.buffer
    pipes = [DelayPipe(up, c_reader, u_writer, limit), DelayPipe(down, u_reader, c_writer, limit)]
    tasks = [asyncio.create_task(f()) for p in pipes for f in (p.read_loop, p.write_loop)]
    try:
        # Done when both writers have passed on EOF; a write error (reset) ends everything.
        writers = [tasks[1], tasks[3]]
        done, _ = await asyncio.wait(writers, return_when=asyncio.FIRST_EXCEPTION)
        for t in done:
            if t.exception() is not None:
                raise t.exception()
    except (ConnectionError, OSError) as e:
        log(args.verbose, f"tcp {peer}: {e}")
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for w in (c_writer, u_writer):
            w.close()
        log(args.verbose, f"tcp {peer} -> {target}: closed")


# ---------------------------------------------------------------------------------------
# UDP
# ---------------------------------------------------------------------------------------


class DelayLine:
    """Order-preserving timed delivery of datagrams through one callback."""

    def __init__(self, send):
        self.send = send
        self.items: collections.deque[tuple[float, bytes]] = collections.deque()
        self.timer: asyncio.TimerHandle | None = None

    def push(self, due: float, data: bytes) -> None:
        self.items.append((due, data))
        if self.timer is None:
            self._arm()

    def _arm(self) -> None:
        loop = asyncio.get_running_loop()
        self.timer = loop.call_at(self.items[0][0], self._flush)

    def _flush(self) -> None:
        self.timer = None
        now = asyncio.get_running_loop().time()
        while self.items and self.items[0][0] <= now:
            self.send(self.items.popleft()[1])
        if self.items:
            self._arm()

    def close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.items.clear()


class UpstreamProtocol(asyncio.DatagramProtocol):
    """Relay-side socket towards the target for one client source address."""

    def __init__(self, flow: "UdpFlow"):
        self.flow = flow

    def datagram_received(self, data: bytes, addr) -> None:
        self.flow.from_target(data)

    def error_received(self, exc: Exception) -> None:  # e.g. ICMP port unreachable
        pass


class UdpFlow:
    def __init__(self, server: "UdpListener", client: tuple):
        self.server = server
        self.client = client
        self.transport: asyncio.DatagramTransport | None = None
        self.pending: list[bytes] = []  # client datagrams due before the upstream socket exists
        self.last = time.monotonic()
        self.to_target = DelayLine(self._send_up)
        self.to_client = DelayLine(lambda d: server.transport.sendto(d, client))

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(
            lambda: UpstreamProtocol(self), remote_addr=self.server.target
        )
        for d in self.pending:
            self.transport.sendto(d)
        self.pending.clear()

    def _send_up(self, data: bytes) -> None:
        if self.transport is None:
            self.pending.append(data)
        else:
            self.transport.sendto(data)

    def from_client(self, data: bytes) -> None:
        self.last = time.monotonic()
        self.server.relay(self.server.up, self.to_target, data)

    def from_target(self, data: bytes) -> None:
        self.last = time.monotonic()
        self.server.relay(self.server.down, self.to_client, data)

    def close(self) -> None:
        self.to_target.close()
        self.to_client.close()
        if self.transport is not None:
            self.transport.close()


class UdpListener(asyncio.DatagramProtocol):
    def __init__(self, target: tuple[str, int], up: Link, down: Link, args: argparse.Namespace):
        self.target = target
        self.up = up
        self.down = down
        self.args = args
        self.flows: dict[tuple, UdpFlow] = {}
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def relay(self, link: Link, line: DelayLine, data: bytes) -> None:
        now = asyncio.get_running_loop().time()
        if link.full(now):
            link.drops += 1
            return
        line.push(link.schedule(len(data), now), data)

    def datagram_received(self, data: bytes, addr) -> None:
        flow = self.flows.get(addr)
        if flow is None:
            flow = self.flows[addr] = UdpFlow(self, addr)
            log(self.args.verbose, f"udp {addr} -> {self.target}: new flow")
            task = asyncio.get_running_loop().create_task(flow.open())
            task.add_done_callback(lambda t, a=addr: self._opened(t, a))
        flow.from_client(data)

    def _opened(self, task: asyncio.Task, addr) -> None:
        if task.exception() is not None:
            log(self.args.verbose, f"udp {addr}: upstream socket failed: {task.exception()}")
            self.flows.pop(addr).close()

    def error_received(self, exc: Exception) -> None:
        pass

    def expire(self, idle: float) -> None:
        now = time.monotonic()
        for addr, flow in list(self.flows.items()):
            if now - flow.last > idle:
                log(self.args.verbose, f"udp {addr}: idle, closed")
                self.flows.pop(addr).close()


# ---------------------------------------------------------------------------------------


async def main(args: argparse.Namespace) -> None:
    delay = args.delay_ms / 1000.0
    queue = args.queue_ms / 1000.0 if args.queue_ms > 0 else None
    up = Link("up", delay, args.rate, queue)
    down = Link("down", delay, args.rate, queue)
    loop = asyncio.get_running_loop()
    servers = []
    udp = []
    for listen, target in args.tcp:
        servers.append(
            await asyncio.start_server(
                lambda r, w, t=target: tcp_session(r, w, t, up, down, args),
                host=listen[0],
                port=listen[1],
                reuse_address=True,
            )
        )
    for listen, target in args.udp:
        _, proto = await loop.create_datagram_endpoint(
            lambda t=target: UdpListener(t, up, down, args), local_addr=listen
        )
        udp.append(proto)
    if not servers and not udp:
        raise SystemExit("relay: nothing to do: give at least one --tcp or --udp mapping")
    rate = f"{args.rate:.0f} B/s" if args.rate else "unlimited (rate left to tc)"
    print(f"relay: delay {args.delay_ms} ms each way, rate {rate}", file=sys.stderr, flush=True)
    for listen, target in args.tcp:
        print(f"relay: tcp {listen[0]}:{listen[1]} -> {target[0]}:{target[1]}", file=sys.stderr, flush=True)
    for listen, target in args.udp:
        print(f"relay: udp {listen[0]}:{listen[1]} -> {target[0]}:{target[1]}", file=sys.stderr, flush=True)
    print("READY", flush=True)

    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=5)
        except asyncio.TimeoutError:
            for u in udp:
                u.expire(args.udp_idle)
    for s in servers:
        s.close()
    print(
        f"relay: stopped; up {up.bytes} B ({up.drops} UDP drops), down {down.bytes} B ({down.drops} UDP drops)",
        file=sys.stderr,
        flush=True,
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tcp", type=parse_mapping, action="append", default=[], metavar="LISTEN=TARGET",
                   help="relay TCP from LISTEN_HOST:PORT to TARGET_HOST:PORT (repeatable)")
    p.add_argument("--udp", type=parse_mapping, action="append", default=[], metavar="LISTEN=TARGET",
                   help="relay UDP from LISTEN_HOST:PORT to TARGET_HOST:PORT (repeatable)")
    p.add_argument("--delay-ms", type=float, default=25.0, help="one-way delay, each direction (default 25)")
    p.add_argument("--rate", type=float, default=None, metavar="BYTES_PER_S",
                   help="per-direction rate limit in bytes/s, shared by all flows (default: none)")
    p.add_argument("--queue-ms", type=float, default=100.0,
                   help="with --rate: most backlog in ms before TCP waits and UDP drops; 0 = unbounded (default 100)")
    p.add_argument("--buffer", type=int, default=1 << 20,
                   help="most bytes held in the delay line per TCP connection and direction (default 1 MiB)")
    p.add_argument("--udp-idle", type=float, default=120.0, help="seconds before an idle UDP flow is dropped (default 120)")
    p.add_argument("-v", "--verbose", action="store_true", help="log connections and flows to stderr")
    args = p.parse_args(argv)
    if args.rate is not None and args.rate <= 0:
        p.error("--rate must be positive")
    if args.delay_ms < 0:
        p.error("--delay-ms must be >= 0")
    return args


def new_loop() -> asyncio.AbstractEventLoop:
    # select() takes a microsecond timeout; epoll/poll (asyncio's default) round timers up to
    # the next millisecond, which made deliveries 1-2 ms late per hop.
    return asyncio.SelectorEventLoop(selectors.SelectSelector())


if __name__ == "__main__":
    args = parse_args()
    try:
        with asyncio.Runner(loop_factory=new_loop) as runner:
            runner.run(main(args))
    except KeyboardInterrupt:
        pass
