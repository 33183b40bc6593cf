"""Sends, with scapy, a large SIP INVITE over UDP/IPv6 to ::1 in fragments
whose fragmentable part starts with a destination options header (after
the fragment header, where only a reader that reassembles first can walk
it), behind another destination options header before the fragment header.
The kernel does not build that order itself, hence scapy.

Run it only in a network namespace of its own, as root (raw sockets), with
/usr/bin/python3 (Debian's python3-scapy). Prints the message's length.
"""

import os
import sys

from scapy.all import IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, Raw, UDP, conf, fragment6, send

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sip_fragments import invite  # noqa: E402

conf.verb = 0
message = invite("scapy-dstopt-after-fragment@edgeice.test", "::1", 60)
packet = (
    IPv6(src="::1", dst="::1")
    / IPv6ExtHdrDestOpt()
    / IPv6ExtHdrFragment(id=0x5EED)
    / IPv6ExtHdrDestOpt()
    / UDP(sport=5062, dport=5061)
    / Raw(message)
)
for fragment in fragment6(packet, 1280):
    send(fragment, iface="lo")
print(len(message))
