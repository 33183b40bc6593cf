#!/usr/bin/env python3
"""Two aioice agents on loopback: milliseconds from the exchange of
descriptions to both connected, one line per round.

Usage: aioice_connect.py ROUNDS [TURN_HOST:PORT USER PASS]

With a TURN server: relayed candidates only (transport policy RELAY).
"""

import asyncio
import sys
import time

import aioice
import aioice.ice

aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]


def connection(controlling, turn):
    kwargs = dict(ice_controlling=controlling, components=1, stun_server=None, use_ipv6=False)
    if turn:
        host, _, port = turn[0].rpartition(":")
        kwargs.update(turn_server=(host, int(port)), turn_username=turn[1],
                      turn_password=turn[2], transport_policy=aioice.ice.TransportPolicy.RELAY)
    return aioice.Connection(**kwargs)


async def round_trip(turn):
    a = connection(True, turn)
    b = connection(False, turn)
    await asyncio.gather(a.gather_candidates(), b.gather_candidates())
    t0 = time.perf_counter()
    for conn, other in ((a, b), (b, a)):
        conn.remote_username = other.local_username
        conn.remote_password = other.local_password
        for candidate in other.local_candidates:
            await conn.add_remote_candidate(candidate)
        await conn.add_remote_candidate(None)
    await asyncio.wait_for(asyncio.gather(a.connect(), b.connect()), 10)
    elapsed = time.perf_counter() - t0
    await a.close()
    await b.close()
    return elapsed


async def main(rounds, turn):
    for _ in range(rounds):
        print(f"{await round_trip(turn) * 1e3:.3f}", flush=True)


asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20, sys.argv[2:5]))
