#!/usr/bin/python3
"""A libnice agent on the other end of `edgeice call`, signalling through files.

Usage: libnice_call.py LOCAL REMOTE controlling|controlled [tcp] [oc2007r2] [relay=HOST:PORT]

Run with Debian's /usr/bin/python3 (python3-gi, gir1.2-nice-0.1, libnice10).
The agent (reliable, RFC 5245 mode, UPnP off, 127.0.0.1 its only address) gathers,
writes its description to LOCAL in the format `edgeice call` reads, reads the
edgeice side's description from REMOTE once complete, and runs ICE. Exits 0
when its component reaches READY with a selected pair, and prints that pair;
1 with the reason otherwise. Every wait is bounded. (In this mode data is not
exchanged: the reliable mode puts pseudo-TCP on the wire, which `edgeice call`
does not speak; the aioice tests and `oc2007r2` below carry data.) With `tcp`, libnice gathers ICE-TCP candidates only
(RFC 6544: active and passive, no UDP).

With `oc2007r2`, the agent speaks Microsoft's MS-ICE2 as libnice's
`Nice.Compatibility.OC2007R2` does (UDP only), and carries data: it is a
datagram agent whose receive callback is attached through ctypes (libnice's
own `nice_agent_attach_recv`, which the GObject bindings lack), and it sends
back every datagram that arrives (STUN messages that libnice hands to the
application, such as its own peer's legacy-fingerprint copies, are counted,
not echoed), until `edgeice call --send` says `edgeice-bye`. Exits 0 once
ready, at least one datagram was echoed and the bye arrived.

With `relay=HOST:PORT`, the agent offers relayed candidates only
(force-relay), allocated on the TURN server there with user `user` and
password `pass` over UDP (in `oc2007r2` mode: MS-TURN, the credentials
base64-encoded as libnice wants them there).
"""

import base64
import ctypes

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
BYE = b"edgeice-bye"

RECV_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint,
                                 ctypes.c_uint, ctypes.POINTER(ctypes.c_char), ctypes.c_void_p)


def native_functions():
    """libnice's attach_recv and send, and GLib's default context, by ctypes."""
    libnice = ctypes.CDLL("libnice.so.10")
    libglib = ctypes.CDLL("libglib-2.0.so.0")
    libnice.nice_agent_attach_recv.argtypes = [ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint,
                                               ctypes.c_void_p, RECV_CALLBACK, ctypes.c_void_p]
    libnice.nice_agent_attach_recv.restype = ctypes.c_int
    libnice.nice_agent_send.argtypes = [ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint,
                                        ctypes.c_uint, ctypes.c_char_p]
    libnice.nice_agent_send.restype = ctypes.c_int
    libglib.g_main_context_default.restype = ctypes.c_void_p
    ctypes.pythonapi.PyCapsule_GetPointer.restype = ctypes.c_void_p
    ctypes.pythonapi.PyCapsule_GetPointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
    return libnice, libglib


def native_pointer(gobject):
    """The C pointer behind a GObject."""
    return ctypes.pythonapi.PyCapsule_GetPointer(gobject.__gpointer__, None)


def main():
    options = sys.argv[4:]
    relay = next((o.split("=", 1)[1] for o in options if o.startswith("relay=")), None)
    options = [o for o in options if not o.startswith("relay=")]
    if (len(sys.argv) < 4 or sys.argv[3] not in ("controlling", "controlled")
            or any(o not in ("tcp", "oc2007r2") for o in options)):
        print(__doc__, file=sys.stderr)
        return 2
    local, remote, role = sys.argv[1:4]
    tcp = "tcp" in options
    ms = "oc2007r2" in options
    if tcp and ms:
        print("oc2007r2 runs over UDP only", file=sys.stderr)
        return 2
    ctx = GLib.MainContext.default()
    loop = GLib.MainLoop.new(ctx, False)
    if ms:
        # A datagram agent: data is exchanged as it arrives.
        agent = Nice.Agent.new(ctx, Nice.Compatibility.OC2007R2)
    else:
        # A reliable agent, read through its I/O stream: without a reader
        # libnice does not poll its sockets (attach_recv is not in the
        # GObject bindings).
        agent = Nice.Agent.new_reliable(ctx, Nice.Compatibility.RFC5245)
    agent.set_property("controlling-mode", role == "controlling")
    agent.set_property("upnp", False)
    agent.set_property("ice-tcp", tcp)
    agent.set_property("ice-udp", not tcp)
    address = Nice.Address()
    address.set_from_string("127.0.0.1")
    agent.add_local_address(address)
    stream = agent.add_stream(1)
    if relay is not None:
        host, _, port = relay.rpartition(":")
        user, password = "user", "pass"
        if ms:
            user = base64.b64encode(user.encode()).decode()
            password = base64.b64encode(password.encode()).decode()
        agent.set_property("force-relay", True)
        if not agent.set_relay_info(stream, COMPONENT, host, int(port), user, password,
                                    Nice.RelayType.UDP):
            print("FAIL: set_relay_info failed", file=sys.stderr)
            return 1
    cancellable = Gio.Cancellable()
    state = {"verdict": None, "pair": None, "states": [], "exchanged": False,
             "echoed": 0, "stun_as_data": 0, "bye": False, "ready": False, "pending": []}

    def finish(verdict):
        if state["verdict"] is None:
            state["verdict"] = verdict
            loop.quit()

    if ms:
        libnice, libglib = native_functions()
        agent_pointer = native_pointer(agent)

        def echo(data):
            if libnice.nice_agent_send(agent_pointer, stream, COMPONENT, len(data), data) == len(data):
                state["echoed"] += 1
                return True
            return False

        def on_datagram(_agent, _stream, _component, length, buf, _data):
            data = ctypes.string_at(buf, length)
            if data == BYE:
                state["bye"] = True
                if state["ready"]:
                    finish("ready")
            elif data[:1] in (b"\x00", b"\x01"):
                state["stun_as_data"] += 1
            elif state["pending"] or not echo(data):
                # Data may arrive before libnice has selected a pair (the
                # other side selected first): sent back once it has.
                state["pending"].append(data)

        def flush_pending():
            while state["pending"] and echo(state["pending"][0]):
                state["pending"].pop(0)
        state["flush"] = flush_pending

        # Kept referenced for as long as libnice may call it.
        state["callback"] = RECV_CALLBACK(on_datagram)
        if not libnice.nice_agent_attach_recv(agent_pointer, stream, COMPONENT,
                                              libglib.g_main_context_default(),
                                              state["callback"], None):
            print("FAIL: nice_agent_attach_recv failed", file=sys.stderr)
            return 1
    else:
        reader = agent.get_io_stream(stream, COMPONENT).get_input_stream()

        def on_read(input_stream, result):
            try:
                input_stream.read_bytes_finish(result)
            except GLib.Error:
                return
            input_stream.read_bytes_async(4096, GLib.PRIORITY_DEFAULT, cancellable, on_read)

        reader.read_bytes_async(4096, GLib.PRIORITY_DEFAULT, cancellable, on_read)

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
            state["ready"] = True
            if "flush" in state:
                state["flush"]()
            # With data, the call is over when the other side says bye.
            if not ms or state["bye"]:
                finish("ready")
        elif new_state == Nice.ComponentState.FAILED:
            finish("failed")

    def on_pair(agent, stream_id, component, lfoundation, rfoundation):
        state["pair"] = (lfoundation, rfoundation)
        if "flush" in state:
            state["flush"]()

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
        if ms:
            print(f"libnice: echoed {state['echoed']} datagrams, "
                  f"{state['stun_as_data']} STUN messages came as data")
            if state["echoed"] == 0:
                print("FAIL: no data arrived to echo", file=sys.stderr)
                return 1
        return 0
    print(f"FAIL: {state['verdict']} (states {state['states']}, "
          f"candidates exchanged: {state['exchanged']})", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
