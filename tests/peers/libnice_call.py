#!/usr/bin/python3
"""A libnice agent on the other end of `edgeice call`, signalling through files.

Usage: libnice_call.py LOCAL REMOTE controlling|controlled [tcp]

Run with Debian's /usr/bin/python3 (python3-gi, gir1.2-nice-0.1, libnice10).
The agent (reliable, RFC 5245 mode, UPnP off, 127.0.0.1 its only address) gathers,
writes its description to LOCAL in the format `edgeice call` reads, reads the
edgeice side's description from REMOTE once complete, and runs ICE. Exits 0
when its component reaches READY with a selected pair, and prints that pair;
1 with the reason otherwise. Every wait is bounded. (Data is not exchanged:
libnice's datagram receive API cannot be used from Python, and its reliable
mode puts pseudo-TCP on the wire, which `edgeice call` does not speak; the
aioice tests carry data.) With `tcp`, libnice gathers ICE-TCP candidates only
(RFC 6544: active and passive, no UDP).
"""

import os
import sys
import time

try:
    import gi

    gi.require_version("Nice", "0.1")
    from gi.repository import Gio, GLib, Nice
except (ImportError, ValueError) as e:
    print(f"libnice's GObject bindings are missing ({e}): run scripts/test.sh, "
          "and this script with /usr/bin/python3", file=sys.stderr)
    sys.exit(3)

TIMEOUT_SECONDS = 30
COMPONENT = 1


def main():
    if len(sys.argv) not in (4, 5) or sys.argv[3] not in ("controlling", "controlled"):
        print(__doc__, file=sys.stderr)
        return 2
    local, remote, role = sys.argv[1:4]
    tcp = sys.argv[4:5] == ["tcp"]
    ctx = GLib.MainContext.default()
    loop = GLib.MainLoop.new(ctx, False)
    # A reliable agent, read through its I/O stream: without a reader libnice
    # does not poll its sockets (attach_recv cannot be used from Python).
    agent = Nice.Agent.new_reliable(ctx, Nice.Compatibility.RFC5245)
    agent.set_property("controlling-mode", role == "controlling")
    agent.set_property("upnp", False)
    agent.set_property("ice-tcp", tcp)
    agent.set_property("ice-udp", not tcp)
    address = Nice.Address()
    address.set_from_string("127.0.0.1")
    agent.add_local_address(address)
    stream = agent.add_stream(1)
    cancellable = Gio.Cancellable()
    reader = agent.get_io_stream(stream, COMPONENT).get_input_stream()

    def on_read(input_stream, result):
        try:
            input_stream.read_bytes_finish(result)
        except GLib.Error:
            return
        input_stream.read_bytes_async(4096, GLib.PRIORITY_DEFAULT, cancellable, on_read)

    reader.read_bytes_async(4096, GLib.PRIORITY_DEFAULT, cancellable, on_read)
    state = {"verdict": None, "pair": None, "states": [], "exchanged": False}

    def finish(verdict):
        if state["verdict"] is None:
            state["verdict"] = verdict
            loop.quit()

    def on_gathered(agent, stream_id):
        _, ufrag, pwd = agent.get_local_credentials(stream_id)
        lines = ["v=0", "s=libnice", f"a=ice-ufrag:{ufrag}", f"a=ice-pwd:{pwd}"]
        for candidate in agent.get_local_candidates(stream_id, COMPONENT):
            lines.append(agent.generate_local_candidate_sdp(candidate))
        lines.append("a=end-of-candidates")
        with open(local, "w") as f:
            f.write("\n".join(lines) + "\n")
        GLib.timeout_add(20, read_remote)

    def read_remote():
        try:
            with open(remote) as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            return True
        if "a=end-of-candidates" not in lines:
            return True
        ufrag = next(l.split(":", 1)[1] for l in lines if l.startswith("a=ice-ufrag:"))
        pwd = next(l.split(":", 1)[1] for l in lines if l.startswith("a=ice-pwd:"))
        agent.set_remote_credentials(stream, ufrag, pwd)
        candidates = []
        for line in lines:
            if line.startswith("a=candidate:"):
                candidate = agent.parse_remote_candidate_sdp(stream, line)
                if candidate is not None:
                    candidates.append(candidate)
        if agent.set_remote_candidates(stream, COMPONENT, candidates) < 1:
            finish(f"libnice took none of the remote candidates {lines}")
        state["exchanged"] = True
        return False

    def on_state(agent, stream_id, component, new_state):
        state["states"].append(Nice.component_state_to_string(new_state))
        if new_state == Nice.ComponentState.READY:
            finish("ready")
        elif new_state == Nice.ComponentState.FAILED:
            finish("failed")

    def on_pair(agent, stream_id, component, lfoundation, rfoundation):
        state["pair"] = (lfoundation, rfoundation)

    agent.connect("candidate-gathering-done", on_gathered)
    agent.connect("component-state-changed", on_state)
    agent.connect("new-selected-pair", on_pair)
    GLib.timeout_add_seconds(TIMEOUT_SECONDS, lambda: finish("timeout") or False)
    if not agent.gather_candidates(stream):
        print("FAIL: gather_candidates failed", file=sys.stderr)
        return 1
    loop.run()
    if state["verdict"] == "ready":
        # Stay a moment so the other side's nomination is answered too.
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            ctx.iteration(False)
            time.sleep(0.01)
        cancellable.cancel()
        print(f"libnice: ready, selected pair {state['pair']} (states {state['states']})")
        return 0
    print(f"FAIL: {state['verdict']} (states {state['states']}, "
          f"candidates exchanged: {state['exchanged']})", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
