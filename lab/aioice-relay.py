#!/usr/bin/env python3
"""aioice's TURN client through a TURN server to an echo peer, for lab/fast-path.sh.

Usage: aioice-relay.py SERVER_IP:PORT PEER_IP:PORT USER PASSWORD COUNT

aioice (aiortc's ICE library; run this with the .venv that scripts/test.sh
makes) allocates over UDP with turn.create_turn_endpoint, and sends COUNT
datagrams of distinct payloads (lengths 12 to 600 bytes) to the peer, an
echo: aioice binds a channel for it before the first, so all of them go
as ChannelData. Prints one line, "received N sha256 HEX", N the datagrams
that came back from the peer and HEX the SHA-256 of them all, sorted and
each preceded by its length. Exits 0 when every one came back intact,
1 otherwise, 3 when aioice is missing. Every wait is bounded; no STUN or
TURN server is contacted but SERVER.
"""

import asyncio
import hashlib
import struct
import sys

try:
    from aioice import turn
except ImportError as e:
    print(f"aioice is not installed ({e}): run scripts/test.sh, and this script "
          "with .venv/bin/python", file=sys.stderr)
    sys.exit(3)

ALLOCATE_TIMEOUT = 10
ECHO_TIMEOUT = 10
CLOSE_TIMEOUT = 5
# Between two sends: paced, so that neither side's socket buffer overflows.
GAP = 0.002


def payload(i):
    return b"aioice %05d " % i + hashlib.sha256(b"%d" % i).digest() * (i % 19)


class Echoes(asyncio.DatagramProtocol):
    def __init__(self):
        self.received = []
        self.errors = []
        self.all_back = None

    def datagram_received(self, data, addr):
        self.received.append(data)
        if self.all_back is not None and len(self.received) >= self.expected:
            self.all_back.set()

    def error_received(self, exc):
        self.errors.append(exc)

    def connection_lost(self, exc):
        self.closed.set()


def address(text):
    host, port = text.rsplit(":", 1)
    return host.strip("[]"), int(port)


async def run(server, peer, user, password, count):
    echoes = Echoes()
    echoes.expected = count
    echoes.all_back = asyncio.Event()
    echoes.closed = asyncio.Event()
    transport, _ = await asyncio.wait_for(
        turn.create_turn_endpoint(lambda: echoes, server, user, password),
        ALLOCATE_TIMEOUT,
    )
    try:
        for i in range(count):
            transport.sendto(payload(i), peer)
            await asyncio.sleep(GAP)
        try:
            await asyncio.wait_for(echoes.all_back.wait(), ECHO_TIMEOUT)
        except asyncio.TimeoutError:
            pass
    finally:
        # Closing deletes the allocation (a Refresh with lifetime 0), then
        # calls connection_lost.
        transport.close()
        try:
            await asyncio.wait_for(echoes.closed.wait(), CLOSE_TIMEOUT)
        except asyncio.TimeoutError:
            print("aioice-relay.py: the allocation was not deleted", file=sys.stderr)
    return echoes


def main():
    if len(sys.argv) != 6:
        print(__doc__, file=sys.stderr)
        return 2
    server, peer = address(sys.argv[1]), address(sys.argv[2])
    user, password, count = sys.argv[3], sys.argv[4], int(sys.argv[5])
    try:
        echoes = asyncio.run(run(server, peer, user, password, count))
    except Exception as e:
        print(f"aioice-relay.py: {e!r}", file=sys.stderr)
        print("received 0 sha256 -")
        return 1
    digest = hashlib.sha256()
    for data in sorted(echoes.received):
        digest.update(struct.pack("!I", len(data)) + data)
    print(f"received {len(echoes.received)} sha256 {digest.hexdigest()}")
    expected = sorted(payload(i) for i in range(count))
    if sorted(echoes.received) != expected:
        print(f"aioice-relay.py: {len(echoes.received)} of {count} came back"
              f" ({len(set(echoes.received) - set(expected))} not sent); errors: {echoes.errors}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
