#!/usr/bin/env python3
"""An aioice agent on the other end of `edgeice call`, signalling through files.

Usage: aioice_call.py LOCAL REMOTE controlling|controlled echo|send:N [TURN USER PASS [udp|tcp]]

Writes its description to LOCAL in the format `edgeice call` reads
(a=ice-ufrag, a=ice-pwd, a=candidate lines, a=end-of-candidates), reads the
edgeice side's description from REMOTE as it appears, connects, then either
echoes every datagram until the edgeice side says bye (`echo`), or sends N
probes and expects at least 90% back (`send:N`). With TURN (HOST:PORT), it
offers relayed candidates only, reaching the server over UDP or TCP. Exits 0 on success, 1 with the reason (and
aioice's log) otherwise. Every wait is bounded.
"""

import asyncio
import io
import logging
import sys
import time

try:
    import aioice
    import aioice.ice
except ImportError as e:
    print(f"aioice is not installed ({e}): run scripts/test.sh", file=sys.stderr)
    sys.exit(3)

# Only loopback: no address of this machine may leak into a candidate.
aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]

DESCRIPTION_TIMEOUT = 20
CONNECT_TIMEOUT = 20
DATA_TIMEOUT = 15
BYE = b"edgeice-bye"


class Failure(Exception):
    pass


async def read_description(path):
    """Waits for the whole remote description (up to a=end-of-candidates)."""
    deadline = time.monotonic() + DESCRIPTION_TIMEOUT
    while time.monotonic() < deadline:
        try:
            with open(path) as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            lines = []
        if "a=end-of-candidates" in lines:
            return lines
        await asyncio.sleep(0.02)
    raise Failure(f"no complete description in {path} within {DESCRIPTION_TIMEOUT} s")


async def run(local, remote, controlling, mode, turn):
    kwargs = dict(ice_controlling=controlling, components=1, stun_server=None,
                  use_ipv4=True, use_ipv6=False)
    if turn:
        host, _, port = turn[0].rpartition(":")
        kwargs.update(turn_server=(host, int(port)), turn_username=turn[1],
                      turn_password=turn[2], turn_transport=turn[3],
                      transport_policy=aioice.ice.TransportPolicy.RELAY)
    conn = aioice.Connection(**kwargs)
    try:
        await asyncio.wait_for(conn.gather_candidates(), DESCRIPTION_TIMEOUT)
        lines = ["v=0", "s=aioice", f"a=ice-ufrag:{conn.local_username}",
                 f"a=ice-pwd:{conn.local_password}"]
        lines += [f"a=candidate:{c.to_sdp()}" for c in conn.local_candidates]
        lines.append("a=end-of-candidates")
        with open(local, "w") as f:
            f.write("\n".join(lines) + "\n")

        for line in await read_description(remote):
            if line.startswith("a=ice-ufrag:"):
                conn.remote_username = line.split(":", 1)[1]
            elif line.startswith("a=ice-pwd:"):
                conn.remote_password = line.split(":", 1)[1]
            elif line.startswith("a=candidate:"):
                candidate = aioice.Candidate.from_sdp(line.split(":", 1)[1])
                await conn.add_remote_candidate(candidate)
        await conn.add_remote_candidate(None)

        try:
            await asyncio.wait_for(conn.connect(), CONNECT_TIMEOUT)
        except (asyncio.TimeoutError, ConnectionError) as e:
            raise Failure(f"ICE did not connect: {e!r}")
        print("aioice: connected", file=sys.stderr)

        if mode == "echo":
            echoed = 0
            while True:
                try:
                    data = await asyncio.wait_for(conn.recv(), DATA_TIMEOUT)
                except asyncio.TimeoutError:
                    raise Failure(f"nothing arrived for {DATA_TIMEOUT} s after {echoed} echoes")
                if data == BYE:
                    break
                await conn.send(data)
                echoed += 1
            if echoed == 0:
                raise Failure("the edgeice side said bye before sending anything")
            print(f"aioice: echoed {echoed} datagrams", file=sys.stderr)
        else:
            total = int(mode.split(":", 1)[1])
            for i in range(total):
                await conn.send(b"aioice-probe %d" % i)
            back = set()
            deadline = time.monotonic() + DATA_TIMEOUT
            while len(back) < total and time.monotonic() < deadline:
                try:
                    data = await asyncio.wait_for(conn.recv(), 2)
                except asyncio.TimeoutError:
                    break
                if data.startswith(b"aioice-probe "):
                    back.add(data)
            await conn.send(BYE)
            if len(back) * 10 < total * 9:
                raise Failure(f"only {len(back)}/{total} probes came back")
            print(f"aioice: {len(back)}/{total} probes came back", file=sys.stderr)
    finally:
        await asyncio.wait_for(conn.close(), 5)


def main():
    if len(sys.argv) not in (5, 8, 9) or sys.argv[3] not in ("controlling", "controlled"):
        print(__doc__, file=sys.stderr)
        return 2
    local, remote, role, mode = sys.argv[1:5]
    turn = (sys.argv[5:9] + ["udp"])[:4] if len(sys.argv) >= 8 else None
    log = io.StringIO()
    handler = logging.StreamHandler(log)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.DEBUG)
    try:
        asyncio.run(run(local, remote, role == "controlling", mode, turn))
    except Exception as e:
        print(f"FAIL: {e!r}\n--- aioice log ---\n{log.getvalue()}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
