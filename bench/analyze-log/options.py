#!/usr/bin/env python3
"""Writes a SIP trace of OPTIONS pings, each under its own Call-ID: dialogs
that never end, the worst case for `edgeice analyze`'s bound on open
calls. Usage:

    options.py COUNT OUTPUT
"""

import sys


def main() -> None:
    count = int(sys.argv[1])
    with open(sys.argv[2], "w") as out:
        for i in range(count):
            for start, cseq in (
                ("OPTIONS sip:edge.example.com SIP/2.0", "1 OPTIONS"),
                ("SIP/2.0 200 OK", "1 OPTIONS"),
            ):
                out.write(
                    f"{start}\nFrom: <sip:fe.example.com>;tag={i}\n"
                    f"To: <sip:edge.example.com>\nCall-ID: ping-{i:08d}\n"
                    f"CSeq: {cseq}\nContent-Length: 0\n\n"
                )
    print(f"{sys.argv[2]}: {count} pings")


if __name__ == "__main__":
    main()
