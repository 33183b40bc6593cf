"""Sends a large SIP INVITE (60 candidates, about 4 KB) over UDP to itself,
once over IPv4 (127.0.0.1) and once over IPv6 (::1), so that the kernel
fragments both when lo's MTU is 1280; the IPv6 one carries a hop-by-hop and
a destination options header, added by the kernel (IPV6_HOPOPTS,
IPV6_DSTOPTS).

Run it only in a network namespace of its own (crates/edgeice/tests/
analyze_captures.rs does, with tcpdump capturing): it sends to loopback
alone. Prints the two messages' lengths; exits non-zero if either did not
arrive whole.
"""

import socket

IPV6_HOPOPTS = 54
IPV6_DSTOPTS = 59
# Next header 0 (filled in by the kernel), length 0 (8 bytes), PadN of 4.
PAD_OPTIONS = bytes([0, 0, 1, 4, 0, 0, 0, 0])


def invite(call_id, host, candidates):
    lines = "".join(
        f"a=candidate:{i} 1 UDP {2130706431 - i} 203.0.113.{i % 250 + 1} {50000 + i} typ host\r\n"
        for i in range(candidates)
    )
    body = (
        f"v=0\r\no=- 1 1 IN IP4 {host}\r\ns=-\r\nc=IN IP4 {host}\r\nt=0 0\r\n"
        f"m=audio 50000 RTP/AVP 0\r\na=ice-ufrag:abcd\r\na=ice-pwd:0123456789012345678901\r\n{lines}"
    )
    return (
        f"INVITE sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/UDP {host}:5062;branch=z9hG4bK{call_id}\r\n"
        f"From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\nCall-ID: {call_id}\r\n"
        f"CSeq: 1 INVITE\r\nContent-Type: application/sdp\r\nContent-Length: {len(body)}\r\n\r\n{body}"
    ).encode()


def main():
    for family, host, destination in [
        (socket.AF_INET, "127.0.0.1", ("127.0.0.1", 5060)),
        (socket.AF_INET6, "::1", ("::1", 5060, 0, 0)),
    ]:
        receiver = socket.socket(family, socket.SOCK_DGRAM)
        receiver.bind(destination)
        receiver.settimeout(10)
        sender = socket.socket(family, socket.SOCK_DGRAM)
        if family == socket.AF_INET6:
            sender.setsockopt(socket.IPPROTO_IPV6, IPV6_HOPOPTS, PAD_OPTIONS)
            sender.setsockopt(socket.IPPROTO_IPV6, IPV6_DSTOPTS, PAD_OPTIONS)
        name = "ipv4" if family == socket.AF_INET else "ipv6"
        message = invite(f"fragmented-{name}@edgeice.test", host, 60)
        sender.sendto(message, destination)
        assert receiver.recv(65535) == message, f"the {name} INVITE did not arrive whole"
        print(len(message))


if __name__ == "__main__":
    main()
