#!/usr/bin/env python3
"""Two aioice agents connect through a TURN server with relay candidates only.

Usage: aioice_relay.py HOST:PORT udp|tcp [USERNAME PASSWORD]

Both agents run in this process: each gathers a relayed candidate from the
TURN server (over UDP or TCP to the server; the relay itself is UDP), the
candidates are exchanged, ICE connects, and a message goes each way. Exits 0
only when every message arrived intact; otherwise prints why (and aioice's
log) on stderr and exits 1. Every wait is bounded. With PEER_VERBOSE=1 in the
environment, aioice's log is printed on success too.
"""

import asyncio
import io
import logging
import os
import sys

try:
    import aioice
    import aioice.ice
except ImportError as e:
    print(f"aioice is not installed ({e}): run scripts/test.sh, and this script "
          "with .venv/bin/python", file=sys.stderr)
    sys.exit(3)

# Only loopback: no host address of this machine may leak into a candidate,
# whatever the transport policy does.
aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]

GATHER_TIMEOUT = 15
CONNECT_TIMEOUT = 20
RECV_TIMEOUT = 10
CLOSE_TIMEOUT = 5


class Failure(Exception):
    pass


def make_connection(controlling, server, transport, username, password):
    kwargs = dict(
        ice_controlling=controlling,
        components=1,
        stun_server=None,
        turn_server=server,
        turn_username=username,
        turn_password=password,
        turn_transport=transport,
        use_ipv4=True,
        use_ipv6=False,
    )
    if hasattr(aioice.ice, "TransportPolicy"):
        kwargs["transport_policy"] = aioice.ice.TransportPolicy.RELAY
    return aioice.Connection(**kwargs)


async def gather(name, conn):
    try:
        await asyncio.wait_for(conn.gather_candidates(), GATHER_TIMEOUT)
    except asyncio.TimeoutError:
        raise Failure(f"{name}: gathering candidates took over {GATHER_TIMEOUT} s")
    relays = [c for c in conn.local_candidates if c.type == "relay"]
    others = [c for c in conn.local_candidates if c.type != "relay"]
    if not relays:
        raise Failure(
            f"{name}: no relay candidate from the TURN server "
            f"(local candidates: {[c.to_sdp() for c in conn.local_candidates]})"
        )
    if others:
        print(
            f"{name}: ignoring non-relay candidates {[c.to_sdp() for c in others]}",
            file=sys.stderr,
        )
    return relays


async def exchange(conn, remote, relays):
    conn.remote_username = remote.local_username
    conn.remote_password = remote.local_password
    for candidate in relays:
        await conn.add_remote_candidate(candidate)
    await conn.add_remote_candidate(None)


async def recv_expected(name, conn, expected):
    try:
        data = await asyncio.wait_for(conn.recv(), RECV_TIMEOUT)
    except asyncio.TimeoutError:
        raise Failure(f"{name}: nothing received within {RECV_TIMEOUT} s")
    except ConnectionError as e:
        raise Failure(f"{name}: receiving failed: {e}")
    if data != expected:
        raise Failure(f"{name}: received {data!r}, expected {expected!r}")


async def run(server, transport, username, password):
    a = make_connection(True, server, transport, username, password)
    b = make_connection(False, server, transport, username, password)
    try:
        relays_a, relays_b = await asyncio.gather(gather("a", a), gather("b", b))
        print(f"a: {[c.to_sdp() for c in relays_a]}", file=sys.stderr)
        print(f"b: {[c.to_sdp() for c in relays_b]}", file=sys.stderr)
        await exchange(a, b, relays_b)
        await exchange(b, a, relays_a)

        try:
            await asyncio.wait_for(
                asyncio.gather(a.connect(), b.connect()), CONNECT_TIMEOUT
            )
        except asyncio.TimeoutError:
            raise Failure(f"ICE did not connect within {CONNECT_TIMEOUT} s")
        except ConnectionError as e:
            raise Failure(f"ICE failed: {e}")

        a_to_b = b"hello from a over " + transport.encode() + b" " + bytes(range(256))
        b_to_a = b"hello from b over " + transport.encode() + b" " + bytes(range(255, -1, -1))
        await a.send(a_to_b)
        await recv_expected("b", b, a_to_b)
        await b.send(b_to_a)
        await recv_expected("a", a, b_to_a)
        # A burst each way, to see the path holds once nominated.
        for i in range(20):
            await a.send(b"a%d" % i)
            await b.send(b"b%d" % i)
        for i in range(20):
            await recv_expected("b", b, b"a%d" % i)
            await recv_expected("a", a, b"b%d" % i)
    finally:
        for conn in (a, b):
            try:
                await asyncio.wait_for(conn.close(), CLOSE_TIMEOUT)
            except Exception as e:  # closing must not hide the verdict
                print(f"closing a connection failed: {e!r}", file=sys.stderr)


def main():
    if len(sys.argv) not in (3, 5) or sys.argv[2] not in ("udp", "tcp"):
        print(__doc__, file=sys.stderr)
        return 2
    host, _, port = sys.argv[1].rpartition(":")
    server = (host.strip("[]"), int(port))
    transport = sys.argv[2]
    username, password = sys.argv[3:5] if len(sys.argv) == 5 else ("user", "pass")

    log = io.StringIO()
    handler = logging.StreamHandler(log)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.DEBUG)

    try:
        asyncio.run(run(server, transport, username, password))
    except Failure as e:
        print(f"FAIL ({transport}): {e}\n--- aioice log ---\n{log.getvalue()}", file=sys.stderr)
        return 1
    except Exception as e:
        print(
            f"FAIL ({transport}): unexpected {e!r}\n--- aioice log ---\n{log.getvalue()}",
            file=sys.stderr,
        )
        return 1
    if os.environ.get("PEER_VERBOSE"):
        print(log.getvalue(), file=sys.stderr)
    print(f"OK: aioice {aioice.__version__} relayed both ways over TURN/{transport}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
