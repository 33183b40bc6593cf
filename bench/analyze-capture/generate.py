#!/usr/bin/env python3
"""A large capture for measuring `edgeice analyze`: the packets of public
captures of the analyzer's corpus (nDPI's SIP, classic STUN, Skype and
fragmented IP captures: the classic pcap, Ethernet ones), repeated with later timestamps until
the file passes SIZE_MB. Each copy's SIP Call-IDs repeat, so the calls of
one copy end before the next begins.

    python3 bench/analyze-capture/generate.py 250 /tmp/big.pcap [--no-fragments]
"""
import struct
import sys

SOURCES = [
    "crates/analyze/tests/corpus/public/ndpi-sip.pcap",
    "crates/analyze/tests/corpus/public/ndpi-stun_classic.pcap",
    "crates/analyze/tests/corpus/public/ndpi-skype-conference-call.pcap",
    "crates/analyze/tests/corpus/public/ndpi-ip_fragmented_garbage.pcap",
]


def packets(path):
    data = open(path, "rb").read()
    magic = struct.unpack("<I", data[:4])[0]
    assert magic == 0xA1B2C3D4, f"{path}: little-endian microsecond pcap expected"
    linktype = struct.unpack("<I", data[20:24])[0]
    assert linktype == 1, f"{path}: Ethernet expected"
    at = 24
    while at + 16 <= len(data):
        sec, usec, incl, orig = struct.unpack("<IIII", data[at : at + 16])
        yield sec, usec, orig, data[at + 16 : at + 16 + incl]
        at += 16 + incl


size_mb, out = int(sys.argv[1]), sys.argv[2]
# --no-fragments: leave out the fragmented-garbage capture (a stress case:
# 82 KB of overlapping fragments, 39% of each copy's bytes).
sources = [s for s in SOURCES if "--no-fragments" not in sys.argv[3:] or "fragmented" not in s]
one = [p for source in sources for p in packets(source)]
with open(out, "wb") as f:
    f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    written, copy = 24, 0
    while written < size_mb * 1_000_000:
        for sec, usec, orig, body in one:
            f.write(struct.pack("<IIII", sec + copy * 3600, usec, len(body), orig))
            f.write(body)
            written += 16 + len(body)
        copy += 1
