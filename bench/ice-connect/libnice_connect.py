#!/usr/bin/python3
"""Two libnice agents on loopback (Debian's python3-gi): milliseconds from
the exchange of descriptions to both components READY, one line per round.

Usage: libnice_connect.py ROUNDS [TURN_HOST:PORT USER PASS]

With a TURN server: relayed candidates only (force-relay).
"""

import sys
import time

import gi

gi.require_version("Nice", "0.1")
from gi.repository import Gio, GLib, Nice  # noqa: E402


TURN = sys.argv[2:5]


def make(ctx, controlling):
    agent = Nice.Agent.new_reliable(ctx, Nice.Compatibility.RFC5245)
    agent.set_property("controlling-mode", controlling)
    agent.set_property("upnp", False)
    agent.set_property("ice-tcp", False)
    address = Nice.Address()
    address.set_from_string("127.0.0.1")
    agent.add_local_address(address)
    stream = agent.add_stream(1)
    if TURN:
        host, _, port = TURN[0].rpartition(":")
        agent.set_property("force-relay", True)
        agent.set_relay_info(stream, 1, host, int(port), TURN[1], TURN[2], Nice.RelayType.UDP)
    cancellable = Gio.Cancellable()
    reader = agent.get_io_stream(stream, 1).get_input_stream()

    def on_read(s, result):
        try:
            s.read_bytes_finish(result)
        except GLib.Error:
            return
        s.read_bytes_async(4096, GLib.PRIORITY_DEFAULT, cancellable, on_read)

    reader.read_bytes_async(4096, GLib.PRIORITY_DEFAULT, cancellable, on_read)
    return agent, stream, cancellable


def round_trip():
    ctx = GLib.MainContext.default()
    agents = [make(ctx, True), make(ctx, False)]
    gathered = set()
    ready = set()
    for i, (agent, stream, _) in enumerate(agents):
        agent.connect("candidate-gathering-done", lambda a, s, i=i: gathered.add(i))
        agent.connect(
            "component-state-changed",
            lambda a, s, c, st, i=i: ready.add(i) if st == Nice.ComponentState.READY else None,
        )
        agent.gather_candidates(stream)
    deadline = time.monotonic() + 10
    while len(gathered) < 2 and time.monotonic() < deadline:
        ctx.iteration(True)
    t0 = time.perf_counter()
    for i, (agent, stream, _) in enumerate(agents):
        other, other_stream, _ = agents[1 - i]
        _, ufrag, pwd = other.get_local_credentials(other_stream)
        agent.set_remote_credentials(stream, ufrag, pwd)
        agent.set_remote_candidates(stream, 1, other.get_local_candidates(other_stream, 1))
    while len(ready) < 2 and time.monotonic() < deadline:
        ctx.iteration(True)
    elapsed = time.perf_counter() - t0
    for agent, stream, cancellable in agents:
        cancellable.cancel()
        agent.remove_stream(stream)
    if len(ready) < 2:
        raise SystemExit("libnice did not connect within 10 s")
    return elapsed


for _ in range(int(sys.argv[1]) if len(sys.argv) > 1 else 20):
    print(f"{round_trip() * 1e3:.3f}", flush=True)
