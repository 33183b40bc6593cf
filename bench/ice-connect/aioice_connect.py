#!/usr/bin/env python3
"""Two aioice agents on loopback: milliseconds from the exchange of
descriptions to both connected, one line per round.

Usage: aioice_connect.py ROUNDS
"""

import asyncio
import sys
import time

import aioice
import aioice.ice

aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]


async def round_trip():
    a = aioice.Connection(ice_controlling=True, components=1, stun_server=None, use_ipv6=False)
    b = aioice.Connection(ice_controlling=False, components=1, stun_server=None, use_ipv6=False)
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


async def main(rounds):
    for _ in range(rounds):
        print(f"{await round_trip() * 1e3:.3f}", flush=True)


asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20))
