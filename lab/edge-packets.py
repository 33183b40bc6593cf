#!/usr/bin/env python3
"""Edge-case ChannelData through a TURN server, for lab/fast-path.sh.

Usage: edge-packets.py SERVER_IP:PORT PEER_IP:PORT USER PASSWORD REALM [peer-64k]

A minimal TURN client (RFC 8656 over UDP, standard library only): it
allocates, binds channel 0x4000 to the peer (an echo), then sends one
datagram of each kind below and prints, one per line, the payloads that
came back on the channel, sorted. Run with the kernel fast path off and on:
the server must treat each kind the same either way.

  exact       well-formed ChannelData              relayed and echoed
  padded      3 bytes of data padded to 4          relayed (padding allowed)
  long-len    a length past the datagram's end     dropped
  unbound     channel 0x4001, never bound          dropped
  short       two bytes                            dropped
  fragmented  well-formed, 3000 bytes of data:     relayed and echoed
              over a 1500-byte MTU the sending
              host splits it into IP fragments
  near-64k    well-formed, the largest IPv4 UDP    relayed and echoed
              datagram (65503 bytes of data; its
              echo, with the header, 65507): in
              fragments too
  raw-csum    well-formed, its UDP header written  relayed and echoed
              here (a raw socket), checksum right
  bad-csum    the same, its UDP checksum wrong     dropped (by the stack)
  raw-peer    from the peer's address and port,    relayed to the client
              a raw socket's, checksum right
  bad-peer    the same, its UDP checksum wrong     dropped (by the stack)

With "peer-64k" last, only this is sent, each three times: from the
peer's address and port, through a raw socket, no checksum, a datagram of
60000 bytes of data, then the largest IPv4 datagram (65507 bytes), one the
relay cannot pass on, since with the ChannelData header it would not fit
in IPv4 (before them, one ChannelData "first" to the echo, which puts
the channel in the kernel). It prints the lengths of the datagrams that
came back: "9 60004", the echo of "first" and the 60000 bytes (it takes a
link MTU of 64 KiB for them to arrive unfragmented).

The four raw ones need root (a raw socket); from an IPv6 client with an
IPv4 relay only raw-peer and bad-peer are sent.

The fragmented and near-64k ones are printed by name when they came back
intact (as "corrupt LENGTH" otherwise). SERVER_IP may be an IPv6 address in
brackets ([fd77::1]:3478): the client side is then IPv6 (the relay and
the peer still IPv4, the server's default family) and every printed line
starts with "ipv6 ". With PEER_IP an IPv6 address too ([fd77::3]:3482),
everything is IPv6: the client asks for an IPv6 relayed address
(REQUESTED-ADDRESS-FAMILY), binds the channel to the IPv6 peer, sends the
raw ones over IPv6 (where a UDP checksum is mandatory), and also

  first       well-formed, sent and echoed before  relayed and echoed
              the rest (the server then knows the
              peer's link address, which the
              kernel needs to relay)
  big         well-formed, 1200 bytes of data,     relayed and echoed
              unfragmented: its checksum, carried
              over by the kernel, covers many words

and every printed line starts with "ipv6-relay ". On stderr: "rounds N",
how many times the frames were sent (see below).
"""

import hashlib
import hmac
import os
import socket
import struct
import sys
import time
import zlib

MAGIC = 0x2112A442
# Fragmented on the way there (client to server, server to peer) and back.
FRAGMENTED = b"fragmented" + bytes(i % 251 for i in range(2990))
# Unfragmented, and long enough for a checksum over many words.
BIG = b"big" + bytes(i % 249 for i in range(1197))
# The largest IPv4 UDP datagram's data, less the ChannelData header.
NEAR_64K = b"near-64k" + bytes(i % 253 for i in range(65507 - 4 - 8))
# Linux's IP_MTU_DISCOVER and IPV6_MTU_DISCOVER, and their "don't" value
# (the socket module does not name them): the sending host fragments.
IP_MTU_DISCOVER, IPV6_MTU_DISCOVER, PMTUDISC_DONT = 10, 23, 0


def attr(kind, value):
    pad = (4 - len(value) % 4) % 4
    return struct.pack("!HH", kind, len(value)) + value + b"\0" * pad


def message(method, attrs, key=None, tid=None):
    tid = tid or os.urandom(12)
    body = b"".join(attrs)
    if key is not None:
        head = struct.pack("!HHI", method, len(body) + 24, MAGIC) + tid
        mac = hmac.new(key, head + body, hashlib.sha1).digest()
        body += attr(0x0008, mac)
    head = struct.pack("!HHI", method, len(body) + 8, MAGIC) + tid
    crc = (zlib.crc32(head + body) ^ 0x5354554E) & 0xFFFFFFFF
    body += attr(0x8028, struct.pack("!I", crc))
    return struct.pack("!HHI", method, len(body), MAGIC) + tid + body


def attributes(data):
    out, at = {}, 20
    while at + 4 <= len(data):
        kind, length = struct.unpack("!HH", data[at:at + 4])
        out.setdefault(kind, data[at + 4:at + 4 + length])
        at += 4 + length + (4 - length % 4) % 4
    return out


def xor_peer(ip, port, tid):
    """An XOR-PEER-ADDRESS value; an IPv6 one is XORed with the magic
    cookie and `tid`, its request's transaction ID."""
    if ":" in ip:
        mask = struct.pack("!I", MAGIC) + tid
        raw = bytes(a ^ b for a, b in zip(socket.inet_pton(socket.AF_INET6, ip), mask))
        return struct.pack("!BBH", 0, 2, port ^ (MAGIC >> 16)) + raw
    raw = struct.unpack("!I", socket.inet_aton(ip))[0] ^ MAGIC
    return struct.pack("!BBHI", 0, 1, port ^ (MAGIC >> 16), raw)


def xor_address(value, tid):
    """(ip, port) of an XOR-*-ADDRESS attribute's value from the answer to
    the request of transaction ID `tid`."""
    _, family, port = struct.unpack("!BBH", value[:4])
    if family == 2 and len(value) >= 20:
        mask = struct.pack("!I", MAGIC) + tid
        raw = bytes(a ^ b for a, b in zip(value[4:20], mask))
        return socket.inet_ntop(socket.AF_INET6, raw), port ^ (MAGIC >> 16)
    if family != 1:
        return None
    (raw,) = struct.unpack("!I", value[4:8])
    return socket.inet_ntoa(struct.pack("!I", raw ^ MAGIC)), port ^ (MAGIC >> 16)


def packed(ip):
    return socket.inet_pton(socket.AF_INET6 if ":" in ip else socket.AF_INET, ip)


def udp_checksum(src, dst, segment):
    """The UDP checksum of `segment` (header with a zero checksum, data),
    over IPv4 or IPv6 (whose pseudo-header has the length in 32 bits)."""
    if ":" in src:
        length = struct.pack("!IBBBB", len(segment), 0, 0, 0, 17)
    else:
        length = struct.pack("!BBH", 0, 17, len(segment))
    data = packed(src) + packed(dst) + length
    data += segment + b"\0" * (len(segment) % 2)
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return (~total & 0xFFFF) or 0xFFFF


def raw_udp(src, dst, payload, good):
    """A UDP datagram from `src` to `dst` ((ip, port) each) written whole
    here, through a raw socket: its checksum right if `good`, wrong if
    false, none (zero) if None."""
    segment = struct.pack("!HHHH", src[1], dst[1], 8 + len(payload), 0) + payload
    check = 0 if good is None else udp_checksum(src[0], dst[0], segment)
    if good is False:
        check = (check ^ 0x5A5A) or 0x1234
    segment = segment[:6] + struct.pack("!H", check) + segment[8:]
    family = socket.AF_INET6 if ":" in src[0] else socket.AF_INET
    raw = socket.socket(family, socket.SOCK_RAW, socket.IPPROTO_UDP)
    try:
        raw.bind((src[0], 0))
        raw.sendto(segment, (dst[0], 0))
    finally:
        raw.close()


def ask(sock, server, msg):
    """Sends a request until its answer comes (5 tries, 1 s apart)."""
    tid = msg[8:20]
    for _ in range(5):
        sock.sendto(msg, server)
        try:
            while True:
                data, _ = sock.recvfrom(2048)
                if data[8:20] == tid:
                    return struct.unpack("!H", data[:2])[0], attributes(data), tid
        except socket.timeout:
            continue
    raise SystemExit(f"no answer from {server} to request {msg[:2].hex()}")


def main():
    if len(sys.argv) not in (6, 7) or sys.argv[6:] not in ([], ["peer-64k"]):
        print(__doc__, file=sys.stderr)
        return 2
    peer_64k_only = sys.argv[6:] == ["peer-64k"]
    host, port = sys.argv[1].rsplit(":", 1)
    peer_ip, peer_port = sys.argv[2].rsplit(":", 1)
    user, password, realm = sys.argv[3:6]
    ipv6 = host.startswith("[")
    peer_ip = peer_ip.strip("[]")
    # IPv6 throughout: the relayed address and the peer too.
    all_ipv6 = ":" in peer_ip
    prefix = "ipv6-relay " if all_ipv6 else "ipv6 " if ipv6 else ""
    server = (host.strip("[]"), int(port))
    if ipv6:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        sock.setsockopt(socket.IPPROTO_IPV6, IPV6_MTU_DISCOVER, PMTUDISC_DONT)
    else:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, PMTUDISC_DONT)
    sock.settimeout(1)
    transport = attr(0x0019, bytes([17, 0, 0, 0]))
    if all_ipv6:
        # REQUESTED-ADDRESS-FAMILY: IPv6.
        transport += attr(0x0017, bytes([2, 0, 0, 0]))
    kind, got, _ = ask(sock, server, message(0x0003, [transport]))
    if kind != 0x0113:
        print(f"expected a 401, got {kind:#06x}", file=sys.stderr)
        return 1
    nonce = got[0x0015]
    key = hashlib.md5(f"{user}:{realm}:{password}".encode()).digest()
    creds = [attr(0x0006, user.encode()), attr(0x0014, realm.encode()), attr(0x0015, nonce)]
    kind, got, tid = ask(sock, server, message(0x0003, [transport] + creds, key))
    if kind != 0x0103:
        print(f"Allocate failed: {kind:#06x}", file=sys.stderr)
        return 1
    relayed = xor_address(got.get(0x0016, b""), tid)
    # The client's own address, as a raw socket must write it.
    probe = socket.socket(socket.AF_INET6 if ipv6 else socket.AF_INET, socket.SOCK_DGRAM)
    probe.connect(server)
    client = (probe.getsockname()[0], sock.getsockname()[1])
    probe.close()
    tid = os.urandom(12)
    bind = [attr(0x000C, struct.pack("!HH", 0x4000, 0)), attr(0x0012, xor_peer(peer_ip, int(peer_port), tid))]
    kind, _, _ = ask(sock, server, message(0x0009, bind + creds, key, tid))
    if kind != 0x0109:
        print(f"ChannelBind failed: {kind:#06x}", file=sys.stderr)
        return 1
    frames = [
        struct.pack("!HH", 0x4000, 5) + b"exact",
        struct.pack("!HH", 0x4000, 3) + b"pad" + b"\0",
        struct.pack("!HH", 0x4000, 40) + b"long-len",
        struct.pack("!HH", 0x4001, 7) + b"unbound",
        b"\x40\x00",
        struct.pack("!HH", 0x4000, len(FRAGMENTED)) + FRAGMENTED,
        struct.pack("!HH", 0x4000, len(NEAR_64K)) + NEAR_64K,
    ]
    peer = (peer_ip, int(peer_port))
    echoed = set()
    if all_ipv6:
        frames.append(struct.pack("!HH", 0x4000, len(BIG)) + BIG)
        # One round trip first, as a client's first packet would be.
        sock.sendto(struct.pack("!HH", 0x4000, 5) + b"first", server)
        try:
            data, _ = sock.recvfrom(2048)
            echoed.add(data[4:].decode(errors="replace"))
        except socket.timeout:
            pass

    if peer_64k_only:
        # The channel goes to the kernel once it has carried a packet: one
        # ChannelData to the echo and back first.
        sock.sendto(struct.pack("!HH", 0x4000, 5) + b"first", server)
        time.sleep(0.5)
        # First one that fits (60000 bytes of data: relayed), then the
        # largest (not).
        for size in (60000, 65507):
            for _ in range(3):
                raw_udp(peer, relayed, bytes(size), None)
        sock.settimeout(2)
        got = set()
        try:
            while True:
                data, _ = sock.recvfrom(65536)
                got.add(len(data))
        except socket.timeout:
            pass
        print(" ".join(str(n) for n in sorted(got)))
        return 0

    def send_raw():
        """The raw ones: as the client (not from an IPv6 client to an IPv4
        relay), and as the peer."""
        if not ipv6 or all_ipv6:
            for name, good in (("raw-csum", True), ("bad-csum", False)):
                frame = struct.pack("!HH", 0x4000, len(name)) + name.encode()
                raw_udp(client, server, frame, good)
        if relayed is not None:
            raw_udp(peer, relayed, b"raw-peer", True)
            raw_udp(peer, relayed, b"bad-peer", False)
    # A lost datagram on the way is not the server's verdict: the frames
    # go again (up to three times) until the well-formed ones come back.
    sock.settimeout(1)
    rounds = 0
    for rounds in range(1, 4):
        for frame in frames:
            sock.sendto(frame, server)
        send_raw()
        try:
            while True:
                data, _ = sock.recvfrom(65536)
                if len(data) >= 4 and data[0] & 0xC0 == 0x40:
                    length = struct.unpack("!H", data[2:4])[0]
                    payload = data[4:4 + length]
                    if payload == FRAGMENTED:
                        echoed.add("fragmented")
                    elif payload == NEAR_64K:
                        echoed.add("near-64k")
                    elif payload == BIG:
                        echoed.add("big")
                    elif len(payload) > 64:
                        echoed.add(f"corrupt {len(payload)}")
                    else:
                        echoed.add(payload.decode(errors="replace"))
        except socket.timeout:
            pass
        if {"exact", "fragmented"} <= echoed:
            break
    print(f"rounds {rounds}", file=sys.stderr)
    for payload in sorted(echoed):
        print(prefix + payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
