#!/usr/bin/env python3
"""Writes a large Lync client log for `edgeice analyze`'s throughput benchmark.

Each call is the seed's failed call (crates/analyze/tests/corpus/
seed-client.uccapilog) under its own Call-ID and times, followed by the
kind of non-SIP chatter a real client log is mostly made of. Usage:

    generate.py SIZE_MB OUTPUT [NOISE_LINES_PER_CALL]
"""

import pathlib
import sys

SEED = pathlib.Path(__file__).resolve().parents[2] / "crates/analyze/tests/corpus/seed-client.uccapilog"
SEED_CALL_ID = "5f0e1d2c3b4a59687766554433221100"


def main() -> None:
    size = int(sys.argv[1]) * 1024 * 1024
    output = pathlib.Path(sys.argv[2])
    noise_lines = int(sys.argv[3]) if len(sys.argv) > 3 else 600
    seed = SEED.read_text()
    noise = "".join(
        f"11/24/2026|10:15:{(i % 60):02d}.{i % 1000:03d} 1A2B:3C4D INFO  :: "
        f"MediaManager: stream {i % 7} quality sample jitter={i % 40}ms loss=0.{i % 10}% "
        f"rtt={20 + i % 90}ms bandwidth={300 + i % 900}kbps\n"
        for i in range(noise_lines)
    )
    written = 0
    calls = 0
    with output.open("w") as out:
        while written < size:
            block = seed.replace(SEED_CALL_ID, f"{calls:032x}") + noise
            out.write(block)
            written += len(block)
            calls += 1
    print(f"{output}: {written / 1e6:.0f} MB, {calls} calls")


if __name__ == "__main__":
    main()
