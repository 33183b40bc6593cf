#!/usr/bin/env python3
"""lab/hardening.py — the hostile clients of lab/hardening.sh (stdlib only).

Every mode is bounded in count and in time, and sends only to the address
it is given (the suite gives it a server inside a namespace of its own).

  idle-tcp HOST PORT COUNT BIND SECONDS
      Opens COUNT TCP connections from BIND (paced, 200 in flight at a time)
      and sends nothing. Once all are tried it prints "opened N", then holds
      them for SECONDS (or until SIGTERM/SIGUSR1) and prints "held N": those
      the server has not closed or reset. Raises its own open-file soft
      limit to the hard one (the suite runs several of these to go past
      one process's limit).

  slow-tls HOST PORT COUNT BIND SECONDS
      COUNT TLS slowloris connections: half connect and send nothing, half
      trickle a ClientHello (a record header announcing 512 bytes, then one
      byte per connection every 2 s, round robin). Prints "opened N", then
      after SECONDS (or SIGTERM) "held N".

  flood HOST PORT SECONDS SPOOF_CIDR
      Unauthenticated Allocate requests (REQUESTED-TRANSPORT UDP, no
      credentials) as fast as one raw socket (IP_HDRINCL) sends them, each
      from a random source address and port of SPOOF_CIDR (IPv4, at most a
      /16 of sources), for SECONDS. Prints "sent N rate R" (packets per
      second). Needs CAP_NET_RAW.

  impair LISTEN PORT UPSTREAM UPSTREAM_PORT BIND SECONDS
      Where the kernel has no tc netem: a UDP relay that impairs like
      `netem loss 5% delay 50ms reorder 25% 50%`, each way. Datagrams from
      each client (to LISTEN:PORT) go to UPSTREAM from a socket of that
      client's own (bound to BIND), so the server sees one 5-tuple per
      client; 5% are dropped, 25% sent at once, the rest 50 ms later (so
      some overtake others). Stops after SECONDS or SIGTERM, printing
      "forwarded N dropped D undelayed U clients C".

Exit status 0, or 2 for bad usage.
"""

import errno
import ipaddress
import os
import random
import resource
import select
import signal
import socket
import struct
import sys
import time

# Most connections in flight while opening, and how long each may take.
CONNECT_WINDOW = 200
CONNECT_TIMEOUT = 5.0
# No mode runs longer than this, whatever it is asked.
MAX_SECONDS = 3600

stop = False


def on_signal(_signum, _frame):
    global stop
    stop = True


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def open_connections(host, port, count, bind):
    """Opens up to `count` connections, `CONNECT_WINDOW` at a time; returns
    the established sockets (those refused, reset or timed out are
    closed and left out)."""
    established = []
    pending = {}  # fd -> (socket, deadline)
    poller = select.poll()
    tried = 0
    deadline_all = time.monotonic() + max(30.0, count / 100.0)
    while (tried < count or pending) and not stop and time.monotonic() < deadline_all:
        while tried < count and len(pending) < CONNECT_WINDOW:
            tried += 1
            try:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            except OSError as e:
                if e.errno in (errno.EMFILE, errno.ENFILE):
                    tried = count  # this process is full: stop opening
                    break
                raise
            s.setblocking(False)
            try:
                s.bind((bind, 0))
                s.connect_ex((host, port))
            except OSError:
                s.close()
                continue
            pending[s.fileno()] = (s, time.monotonic() + CONNECT_TIMEOUT)
            poller.register(s.fileno(), select.POLLOUT)
        for fd, _ in poller.poll(100):
            s, _ = pending.pop(fd)
            poller.unregister(fd)
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                established.append(s)
            else:
                s.close()
        now = time.monotonic()
        for fd in [fd for fd, (_, d) in pending.items() if d < now]:
            s, _ = pending.pop(fd)
            poller.unregister(fd)
            s.close()
    for s, _ in pending.values():
        s.close()
    return established


def still_open(sockets):
    """How many of `sockets` the server has neither closed nor reset."""
    poller = select.poll()
    by_fd = {}
    for s in sockets:
        if s.fileno() >= 0:
            poller.register(s.fileno(), select.POLLIN | select.POLLERR | select.POLLHUP)
            by_fd[s.fileno()] = s
    closed = set()
    for fd, event in poller.poll(0):
        s = by_fd[fd]
        if event & (select.POLLERR | select.POLLHUP):
            closed.add(fd)
            continue
        try:
            # Whatever the server sent (an alert, an answer) is drained;
            # an empty read is its FIN.
            while True:
                data = s.recv(65536)
                if not data:
                    closed.add(fd)
                    break
        except BlockingIOError:
            pass
        except OSError:
            closed.add(fd)
    return len(by_fd) - len(closed)


def hold(sockets, seconds, tick=None):
    end = time.monotonic() + min(seconds, MAX_SECONDS)
    while not stop and time.monotonic() < end:
        if tick is not None:
            tick()
        time.sleep(0.2)


def idle_tcp(host, port, count, bind, seconds):
    raise_nofile()
    sockets = open_connections(host, port, count, bind)
    print(f"opened {len(sockets)}", flush=True)
    hold(sockets, seconds)
    print(f"held {still_open(sockets)}", flush=True)


def slow_tls(host, port, count, bind, seconds):
    raise_nofile()
    sockets = open_connections(host, port, count, bind)
    print(f"opened {len(sockets)}", flush=True)
    # A ClientHello that never completes: a handshake record of 512 bytes,
    # its first bytes real, the rest never sent in time.
    hello = bytes([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xFC, 0x03, 0x03]) + os.urandom(501)
    tricklers = sockets[::2]
    sent = [0] * len(tricklers)
    state = {"next": 0, "at": time.monotonic()}

    def tick():
        # One byte per trickling connection every 2 s, spread over the
        # interval (round robin, a slice per tick).
        if not tricklers:
            return
        now = time.monotonic()
        per_tick = max(1, len(tricklers) // 10)
        if now < state["at"]:
            return
        state["at"] = now + 0.2
        for _ in range(per_tick):
            i = state["next"]
            state["next"] = (i + 1) % len(tricklers)
            if sent[i] < len(hello):
                try:
                    tricklers[i].send(hello[sent[i] : sent[i] + 1])
                    sent[i] += 1
                except OSError:
                    sent[i] = len(hello)

    hold(sockets, seconds, tick)
    print(f"held {still_open(sockets)}", flush=True)


def allocate_request(tid):
    # Allocate, class request; one attribute: REQUESTED-TRANSPORT UDP.
    body = struct.pack("!HHB3x", 0x0019, 4, 17)
    return struct.pack("!HHI", 0x0003, len(body), 0x2112A442) + tid + body


def flood(host, port, seconds, cidr):
    net = ipaddress.ip_network(cidr, strict=False)
    if net.version != 4 or net.prefixlen < 16:
        print("flood: SPOOF_CIDR must be IPv4, a /16 or smaller", file=sys.stderr)
        sys.exit(2)
    dst = socket.inet_aton(host)
    rng = random.Random(1)
    packets = []
    # 65,536 different (source, port, transaction) triples at most, built
    # once: the loop below only sends.
    hosts = max(1, net.num_addresses - 2)
    for _ in range(min(65536, hosts * 4)):
        src = int(net.network_address) + 1 + rng.randrange(hosts)
        stun = allocate_request(rng.randbytes(12))
        udp = struct.pack("!HHHH", rng.randrange(1024, 65536), port, 8 + len(stun), 0)
        ip = struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp) + len(stun), 0, 0x4000, 64, 17, 0,
            struct.pack("!I", src), dst,
        )
        packets.append(ip + udp + stun)
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    target = (host, 0)
    sendto = s.sendto
    sent = 0
    start = time.monotonic()
    end = start + min(seconds, MAX_SECONDS)
    while not stop:
        for p in packets:
            try:
                sendto(p, target)
                sent += 1
            except OSError as e:
                if e.errno not in (errno.ENOBUFS, errno.EAGAIN):
                    raise
            if sent & 1023 == 0 and time.monotonic() >= end:
                break
        if time.monotonic() >= end:
            break
    took = time.monotonic() - start
    print(f"sent {sent} rate {int(sent / took) if took > 0 else 0}", flush=True)


LOSS = 0.05
DELAY = 0.050
UNDELAYED = 0.25
MAX_CLIENTS = 5000


def impair(listen, port, upstream, upstream_port, bind, seconds):
    import heapq

    rng = random.Random(2)
    front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    front.bind((listen, port))
    front.setblocking(False)
    poller = select.poll()
    poller.register(front.fileno(), select.POLLIN)
    backs = {}  # client address -> its upstream socket
    clients_of = {}  # upstream socket fd -> (socket, client address)
    queue = []  # (due, seq, socket, destination or None when connected, data)
    seq = 0
    stats = {"forwarded": 0, "dropped": 0, "undelayed": 0}
    end = time.monotonic() + min(seconds, MAX_SECONDS)

    def schedule(sock, dest, data):
        nonlocal seq
        if rng.random() < LOSS:
            stats["dropped"] += 1
            return
        delay = DELAY
        if rng.random() < UNDELAYED:
            stats["undelayed"] += 1
            delay = 0.0
        seq += 1
        heapq.heappush(queue, (time.monotonic() + delay, seq, sock, dest, data))

    while not stop and time.monotonic() < end:
        now = time.monotonic()
        while queue and queue[0][0] <= now:
            _, _, sock, dest, data = heapq.heappop(queue)
            try:
                if dest is None:
                    sock.send(data)
                else:
                    sock.sendto(data, dest)
                stats["forwarded"] += 1
            except OSError:
                stats["dropped"] += 1
        timeout = 100 if not queue else max(0, int((queue[0][0] - now) * 1000))
        for fd, _ in poller.poll(timeout):
            if fd == front.fileno():
                for _ in range(256):
                    try:
                        data, client = front.recvfrom(65536)
                    except BlockingIOError:
                        break
                    back = backs.get(client)
                    if back is None:
                        if len(backs) >= MAX_CLIENTS:
                            continue
                        back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                        back.bind((bind, 0))
                        back.connect((upstream, upstream_port))
                        back.setblocking(False)
                        backs[client] = back
                        clients_of[back.fileno()] = (back, client)
                        poller.register(back.fileno(), select.POLLIN)
                    schedule(back, None, data)
            else:
                back, client = clients_of[fd]
                for _ in range(256):
                    try:
                        data = back.recv(65536)
                    except (BlockingIOError, ConnectionRefusedError):
                        break
                    schedule(front, client, data)
    print(
        f"forwarded {stats['forwarded']} dropped {stats['dropped']} "
        f"undelayed {stats['undelayed']} clients {len(backs)}",
        flush=True,
    )


def main(argv):
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGUSR1, on_signal)
    if len(argv) == 6 and argv[0] == "idle-tcp":
        idle_tcp(argv[1], int(argv[2]), int(argv[3]), argv[4], float(argv[5]))
    elif len(argv) == 6 and argv[0] == "slow-tls":
        slow_tls(argv[1], int(argv[2]), int(argv[3]), argv[4], float(argv[5]))
    elif len(argv) == 7 and argv[0] == "impair":
        impair(argv[1], int(argv[2]), argv[3], int(argv[4]), argv[5], float(argv[6]))
    elif len(argv) == 5 and argv[0] == "flood":
        flood(argv[1], int(argv[2]), float(argv[3]), argv[4])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main(sys.argv[1:])
