#!/usr/bin/env python3
"""lab/fleet-probe.py — how soon a user change reaches a node (stdlib only).

  fleet-probe.py SERVER PORT USER PASSWORD REALM WANT SOURCES INTERVAL_MS SECONDS

Until the node's answer is WANT (`ok`: an authenticated Allocate succeeds;
`refused`: it is answered 401), tries one authenticated Allocate every
INTERVAL_MS, each from a new UDP socket (a fresh 5-tuple, so that an
earlier allocation never answers 437), its source address taken in turn
from SOURCES (comma-separated): the edge holds back a (user, address) pair
after five failures, and a probe must never be held back by its own
guesses. A successful allocation is released at once (Refresh, LIFETIME
0). Prints `reached MS ATTEMPTS` (MS: milliseconds since the epoch, when
the answer came) or `never ATTEMPTS`, after SECONDS at most. It is one
process for the whole wait, so the figure is the node's, not a program's
start-up. Sends only to SERVER:PORT (the lab gives it a node inside a
namespace of its own). Exit status 0, or 2 for bad usage.
"""

import hashlib
import hmac
import os
import socket
import struct
import sys
import time

COOKIE = 0x2112A442
ALLOCATE, REFRESH = 0x0003, 0x0004
ATTR_USERNAME, ATTR_INTEGRITY, ATTR_ERROR = 0x0006, 0x0008, 0x0009
ATTR_LIFETIME, ATTR_REALM, ATTR_NONCE = 0x000D, 0x0014, 0x0015
ATTR_TRANSPORT = 0x0019
ANSWER_WAIT = 0.5


def attribute(kind, value):
    pad = (4 - len(value) % 4) % 4
    return struct.pack("!HH", kind, len(value)) + value + b"\0" * pad


def message(method, attributes, key=None):
    """A request of METHOD with ATTRIBUTES, signed with KEY if given."""
    txid = os.urandom(12)
    body = b"".join(attributes)
    if key is not None:
        # The length counts MESSAGE-INTEGRITY, which covers all before it.
        header = struct.pack("!HHI", method, len(body) + 24, COOKIE) + txid
        mac = hmac.new(key, header + body, hashlib.sha1).digest()
        body += attribute(ATTR_INTEGRITY, mac)
    return struct.pack("!HHI", method, len(body), COOKIE) + txid + body, txid


def parse(data, txid):
    """(class, attributes) of a response to TXID, or None."""
    if len(data) < 20 or data[8:20] != txid:
        return None
    kind, length = struct.unpack("!HH", data[:4])
    attributes, at, end = {}, 20, min(len(data), 20 + length)
    while at + 4 <= end:
        a, n = struct.unpack("!HH", data[at:at + 4])
        attributes.setdefault(a, data[at + 4:at + 4 + n])
        at += 4 + n + (4 - n % 4) % 4
    # The class is bits C1 (0x0100) and C0 (0x0010): 2 success, 3 error.
    return (kind >> 7 & 2) | (kind >> 4 & 1), attributes


def ask(sock, request, txid):
    """The parsed answer to REQUEST, or None after ANSWER_WAIT."""
    sock.send(request)
    deadline = time.monotonic() + ANSWER_WAIT
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        sock.settimeout(left)
        try:
            answer = parse(sock.recv(2048), txid)
        except (socket.timeout, OSError):
            return None
        if answer:
            return answer


def error_code(attributes):
    value = attributes.get(ATTR_ERROR, b"")
    return value[2] % 8 * 100 + value[3] if len(value) >= 4 else None


def attempt(server, source, user, password, realm):
    """'ok', 'refused' (401 with credentials), or None (no clear answer)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        sock.connect(server)
        transport = attribute(ATTR_TRANSPORT, bytes([17, 0, 0, 0]))
        request, txid = message(ALLOCATE, [transport])
        answer = ask(sock, request, txid)
        if not answer or ATTR_NONCE not in answer[1]:
            return None
        nonce = answer[1][ATTR_NONCE]
        key = hashlib.md5(f"{user}:{realm}:{password}".encode()).digest()
        credentials = [
            attribute(ATTR_USERNAME, user.encode()),
            attribute(ATTR_REALM, realm.encode()),
            attribute(ATTR_NONCE, nonce),
        ]
        request, txid = message(ALLOCATE, [transport] + credentials, key)
        answer = ask(sock, request, txid)
        if not answer:
            return None
        if answer[0] == 2:  # success: give the allocation back
            release, txid = message(REFRESH, [attribute(ATTR_LIFETIME, b"\0\0\0\0")] + credentials, key)
            ask(sock, release, txid)
            return "ok"
        return "refused" if error_code(answer[1]) == 401 else None


def main(argv):
    if len(argv) != 10 or argv[6] not in ("ok", "refused"):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    host, port, user, password, realm, want, sources = argv[1:8]
    try:
        interval, seconds = int(argv[8]) / 1000, float(argv[9])
        server = (host, int(port))
    except ValueError:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    sources = sources.split(",")
    deadline = time.monotonic() + seconds
    attempts = 0
    while time.monotonic() < deadline and attempts < 10_000:
        started = time.monotonic()
        got = attempt(server, sources[attempts % len(sources)], user, password, realm)
        attempts += 1
        if got == want:
            print(f"reached {int(time.time() * 1000)} {attempts}")
            return 0
        time.sleep(max(0.0, interval - (time.monotonic() - started)))
    print(f"never {attempts}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
