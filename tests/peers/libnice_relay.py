#!/usr/bin/python3
"""Two libnice agents connect through a TURN server with relay candidates only.

Usage: libnice_relay.py [--dialect rfc5245|oc2007r2] HOST:PORT udp|tcp [USERNAME PASSWORD]

With --dialect oc2007r2 the agents speak Microsoft's dialects, as Lync 2010
and Skype for Business clients do: MS-TURN to the relay and MS-ICE2 checks.
libnice then takes the TURN user name and password base64-encoded.

Run it with Debian's /usr/bin/python3 (python3-gi, gir1.2-nice-0.1 and
libnice10 installed; scripts/test.sh installs them). Both agents live in this
process: reliable agents (pseudo-TCP over ICE, read and written through
get_io_stream), UPnP off, 127.0.0.1 as the only local address and
force-relay on, so that their only candidates are the relayed ones the TURN
server hands out (TURN over UDP or TCP to the server; the relay is UDP).
Reads are started on both agents before gathering; the candidates are
exchanged, ICE connects, and a message goes each way. Exits 0 only when both
messages arrived intact; otherwise prints why on stderr and exits 1. Every
wait is bounded.
"""

import base64
import os
import sys

try:
    import gi

    gi.require_version("Nice", "0.1")
    from gi.repository import Gio, GLib, Nice
except (ImportError, ValueError) as e:
    print(
        f"libnice's GObject bindings are missing ({e}): install the Debian packages "
        "python3-gi gir1.2-nice-0.1 libnice10 (scripts/test.sh does), and run this "
        "with /usr/bin/python3",
        file=sys.stderr,
    )
    sys.exit(3)

TIMEOUT_SECONDS = 30
CLOSE_TIMEOUT_SECONDS = 5
COMPONENT = 1
VERBOSE = bool(os.environ.get("PEER_VERBOSE"))

STATE_NAMES = {
    int(Nice.ComponentState.DISCONNECTED): "disconnected",
    int(Nice.ComponentState.GATHERING): "gathering",
    int(Nice.ComponentState.CONNECTING): "connecting",
    int(Nice.ComponentState.CONNECTED): "connected",
    int(Nice.ComponentState.READY): "ready",
    int(Nice.ComponentState.FAILED): "failed",
}


def log(message):
    if VERBOSE:
        print(message, file=sys.stderr)


class Peer:
    def __init__(self, test, name, controlling, message):
        self.test = test
        self.name = name
        self.outgoing = message
        self.expected = None  # set once the other peer exists
        self.received = b""
        self.gathered = False
        self.ready = False
        self.sent = False
        self.states = []
        self.cancellable = Gio.Cancellable()

        ctx = GLib.MainContext.default()
        self.agent = Nice.Agent.new_reliable(ctx, test.compatibility)
        self.agent.set_property("controlling-mode", controlling)
        self.agent.set_property("upnp", False)
        self.agent.set_property("force-relay", True)
        self.agent.set_property("ice-tcp", False)
        address = Nice.Address()
        if not address.set_from_string("127.0.0.1"):
            raise RuntimeError("Nice.Address refused 127.0.0.1")
        if not self.agent.add_local_address(address):
            raise RuntimeError("add_local_address(127.0.0.1) failed")
        self.stream = self.agent.add_stream(1)
        if self.stream == 0:
            raise RuntimeError("add_stream failed")
        relay_type = (
            Nice.RelayType.TCP if test.transport == "tcp" else Nice.RelayType.UDP
        )
        host, port = test.server
        username, password = test.username, test.password
        if test.compatibility == Nice.Compatibility.OC2007R2:
            username = base64.b64encode(username.encode()).decode()
            password = base64.b64encode(password.encode()).decode()
        if not self.agent.set_relay_info(
            self.stream, COMPONENT, host, port, username, password, relay_type
        ):
            raise RuntimeError("set_relay_info failed")

        self.agent.connect("candidate-gathering-done", self.on_gathering_done)
        self.agent.connect("component-state-changed", self.on_state_changed)
        self.agent.connect("new-selected-pair-full", self.on_selected_pair)

        self.io = self.agent.get_io_stream(self.stream, COMPONENT)
        if self.io is None:
            raise RuntimeError("get_io_stream returned nothing")
        self.input = self.io.get_input_stream()
        self.output = self.io.get_output_stream()

    def start_reading(self):
        self.input.read_bytes_async(
            4096, GLib.PRIORITY_DEFAULT, self.cancellable, self.on_read
        )

    def gather(self):
        if not self.agent.gather_candidates(self.stream):
            self.test.fail(f"{self.name}: gather_candidates failed")

    def on_read(self, stream, result):
        try:
            data = stream.read_bytes_finish(result).get_data()
        except GLib.Error as e:
            if not self.test.done:
                self.test.fail(f"{self.name}: read failed: {e.message}")
            return
        if not data:
            self.test.fail(f"{self.name}: stream closed after {self.received!r}")
            return
        self.received += data
        log(f"{self.name}: read {len(data)} bytes")
        if not self.expected.startswith(self.received):
            self.test.fail(
                f"{self.name}: received {self.received!r}, expected {self.expected!r}"
            )
            return
        if self.received == self.expected:
            self.test.check_done()
        else:
            self.start_reading()

    def on_gathering_done(self, agent, stream_id):
        candidates = agent.get_local_candidates(stream_id, COMPONENT)
        log(f"{self.name}: gathered {[describe(c) for c in candidates]}")
        self.gathered = True
        self.test.maybe_exchange()

    def on_state_changed(self, agent, stream_id, component, state):
        name = STATE_NAMES.get(int(state), str(state))
        self.states.append(name)
        log(f"{self.name}: component {component} {name}")
        if int(state) == int(Nice.ComponentState.FAILED):
            self.test.fail(f"{self.name}: ICE failed (states: {self.states})")
        elif int(state) == int(Nice.ComponentState.READY) and not self.ready:
            self.ready = True
            self.send()

    def on_selected_pair(self, agent, stream_id, component, local, remote):
        log(f"{self.name}: selected pair {describe(local)} -> {describe(remote)}")

    def send(self):
        if self.sent:
            return
        self.sent = True
        self.output.write_all_async(
            self.outgoing, GLib.PRIORITY_DEFAULT, self.cancellable, self.on_written
        )

    def on_written(self, stream, result):
        try:
            ok, written = stream.write_all_finish(result)
        except GLib.Error as e:
            if not self.test.done:
                self.test.fail(f"{self.name}: write failed: {e.message}")
            return
        if not ok or written != len(self.outgoing):
            self.test.fail(f"{self.name}: wrote {written} of {len(self.outgoing)} bytes")
        else:
            log(f"{self.name}: wrote {written} bytes")

    def relay_candidates(self):
        candidates = self.agent.get_local_candidates(self.stream, COMPONENT)
        relays = [c for c in candidates if c.type == Nice.CandidateType.RELAYED]
        others = [c for c in candidates if c.type != Nice.CandidateType.RELAYED]
        if others:
            log(f"{self.name}: ignoring non-relay candidates {[describe(c) for c in others]}")
        return relays

    def close(self):
        self.cancellable.cancel()


def describe(candidate):
    names = {
        int(Nice.CandidateType.HOST): "host",
        int(Nice.CandidateType.SERVER_REFLEXIVE): "srflx",
        int(Nice.CandidateType.PEER_REFLEXIVE): "prflx",
        int(Nice.CandidateType.RELAYED): "relay",
    }
    return (
        f"{names.get(int(candidate.type), candidate.type)} "
        f"{candidate.addr.dup_string()}:{candidate.addr.get_port()}"
    )


class Test:
    def __init__(self, server, transport, username, password, compatibility):
        self.compatibility = compatibility
        self.server = server
        self.transport = transport
        self.username = username
        self.password = password
        self.loop = GLib.MainLoop()
        self.done = False
        self.failure = None
        self.exchanged = False
        tag = transport.encode()
        self.a = Peer(self, "a", True, b"hello from a over TURN/" + tag + bytes(range(256)))
        self.b = Peer(self, "b", False, b"hello from b over TURN/" + tag + bytes(range(255, -1, -1)))
        self.a.expected = self.b.outgoing
        self.b.expected = self.a.outgoing

    def run(self):
        GLib.timeout_add_seconds(TIMEOUT_SECONDS, self.on_timeout)
        # Reads first, so nothing that arrives can be missed.
        for peer in (self.a, self.b):
            peer.start_reading()
        for peer in (self.a, self.b):
            peer.gather()
        if not self.done:
            self.loop.run()
        for peer in (self.a, self.b):
            peer.close()
        self.release()
        return self.failure

    def release(self):
        """Closes both agents, which deletes their TURN allocations (Refresh
        with LIFETIME 0), so that a later run that gets the same local port
        is not refused with 437 Allocation Mismatch. Bounded; a failure here
        does not change the verdict."""
        pending = {"a", "b"}
        loop = GLib.MainLoop()
        # libnice reads its sockets (and so the TURN server's answers) only
        # while a read is pending: keep one pending on each stream meanwhile.
        draining = Gio.Cancellable()

        def drained(stream, result):
            try:
                stream.read_bytes_finish(result)
            except GLib.Error:
                pass

        for peer in (self.a, self.b):
            peer.input.read_bytes_async(4096, GLib.PRIORITY_DEFAULT, draining, drained)

        def closed(agent, result, name):
            # Called once libnice has its answers, or has given up on them.
            pending.discard(name)
            if not pending:
                loop.quit()

        for peer in (self.a, self.b):
            peer.agent.close_async(closed, peer.name)
        timer = GLib.timeout_add_seconds(CLOSE_TIMEOUT_SECONDS, loop.quit)
        if pending:
            loop.run()
        if pending:
            log(f"agents {sorted(pending)} not closed within {CLOSE_TIMEOUT_SECONDS} s")
        else:
            GLib.source_remove(timer)
        draining.cancel()

    def maybe_exchange(self):
        if self.exchanged or not (self.a.gathered and self.b.gathered):
            return
        self.exchanged = True
        for local, remote in ((self.a, self.b), (self.b, self.a)):
            relays = remote.relay_candidates()
            if not relays:
                self.fail(
                    f"{remote.name}: no relay candidate from the TURN server (is it "
                    f"running, and do the credentials match?)"
                )
                return
            ok, ufrag, pwd = remote.agent.get_local_credentials(remote.stream)
            if not ok:
                self.fail(f"{remote.name}: get_local_credentials failed")
                return
            local.agent.set_remote_credentials(local.stream, ufrag, pwd)
            added = local.agent.set_remote_candidates(local.stream, COMPONENT, relays)
            if added != len(relays):
                self.fail(f"{local.name}: set_remote_candidates added {added} of {len(relays)}")
                return
            log(f"{local.name}: remote candidates {[describe(c) for c in relays]}")

    def check_done(self):
        if self.a.received == self.a.expected and self.b.received == self.b.expected:
            self.finish(None)

    def on_timeout(self):
        self.fail(
            f"no result within {TIMEOUT_SECONDS} s: gathered a={self.a.gathered} "
            f"b={self.b.gathered}, states a={self.a.states} b={self.b.states}, "
            f"received a={len(self.a.received)}/{len(self.a.expected)} "
            f"b={len(self.b.received)}/{len(self.b.expected)} bytes"
        )
        return False

    def fail(self, reason):
        self.finish(reason)

    def finish(self, failure):
        if self.done:
            return
        self.done = True
        self.failure = failure
        self.loop.quit()


DIALECTS = {
    "rfc5245": Nice.Compatibility.RFC5245,
    "oc2007r2": Nice.Compatibility.OC2007R2,
}


def main():
    args = sys.argv[1:]
    dialect = "rfc5245"
    if args[:1] == ["--dialect"] and len(args) >= 2:
        dialect, args = args[1], args[2:]
    if dialect not in DIALECTS or len(args) not in (2, 4) or args[1] not in ("udp", "tcp"):
        print(__doc__, file=sys.stderr)
        return 2
    host, _, port = args[0].rpartition(":")
    server = (host.strip("[]"), int(port))
    transport = args[1]
    username, password = args[2:4] if len(args) == 4 else ("user", "pass")
    try:
        test = Test(server, transport, username, password, DIALECTS[dialect])
        failure = test.run()
    except RuntimeError as e:
        failure = str(e)
    if failure:
        print(f"FAIL ({dialect}, {transport}): {failure}", file=sys.stderr)
        return 1
    print(f"OK: libnice ({dialect}) relayed a message each way over TURN/{transport}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
