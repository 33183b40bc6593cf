#!/usr/bin/env python3
"""A large webrtc-internals dump for measuring `edgeice analyze`: the public
Chrome 144 dump of the analyzer's corpus, its peer connections repeated
under new ids until the file passes SIZE_MB.

    python3 bench/analyze-dump/generate.py 100 /tmp/big.webrtc-internals.json
"""
import json
import sys

SOURCE = "crates/analyze/tests/corpus/public/chrome144-guilospanck-connected.webrtc-internals.json"

size_mb, out = int(sys.argv[1]), sys.argv[2]
dump = json.load(open(SOURCE))
one = dump["PeerConnections"]
per_copy = len(json.dumps(one, indent=1))
copies = size_mb * 1_000_000 // per_copy + 1
dump["PeerConnections"] = {
    f"{pc}-{n}": value for n in range(copies) for pc, value in one.items()
}
with open(out, "w") as f:
    json.dump(dump, f, indent=1)
