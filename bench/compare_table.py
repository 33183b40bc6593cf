#!/usr/bin/env python3
"""Turns bench/compare.sh's results (round, server, case, JSON per line)
into one Markdown table of medians over the rounds, with the ratios of
each edgeice (the socket path, and in namespaces the kernel fast path) to
coturn 4.17.1 (`coturn`), to Debian's coturn 4.6.1 and to the floor, and
each figure's spread."""

import json
import statistics
import sys
from collections import defaultdict

SERVERS = ["edgeice", "edgeice-xdp", "coturn", "coturn-4.6.1", "floor"]
OURS = ["edgeice", "edgeice-xdp"]


def per_datagram_us(server, d, key="server_cpu_s"):
    """CPU (`key`) per datagram crossing the server: a relay handles two
    per round trip (to the peer and back), the floor echo one."""
    received = d.get("received", 0)
    if not received or key not in d:
        return None
    crossings = received if server == "floor" else 2 * received
    return d[key] * 1e6 / crossings


def per_round_trip_us(d, key):
    """CPU (`key`) per round trip the generator saw come back."""
    received = d.get("received", 0)
    return d[key] * 1e6 / received if received and key in d else None


def figures(server, case, d):
    """(figure name, value, lower is better) for one run."""
    out = []
    labels = {"relay100": "UDP 100 B", "relay1000": "UDP 1000 B", "tcp100": "TCP 100 B", "tls100": "TLS 100 B"}
    if case in labels:
        label = labels[case]
        out.append((f"CPU µs per datagram, {label}", per_datagram_us(server, d), True))
        if "all_cpu_s" in d:
            # In namespaces: the process's share, and all the CPU the round
            # trips took (generator and both interfaces' receive threads too).
            process = per_datagram_us(server, d, "server_process_cpu_s")
            out.append((f"… of which the server process, {label}", process, True))
            all_cpu = per_round_trip_us(d, "all_cpu_s")
            out.append((f"all CPU µs per round trip (generator too), {label}", all_cpu, True))
        p99 = (d.get("latency_us") or {}).get("p99")
        if "all_cpu_s" not in d:  # in namespaces, from the search's first step
            out.append((f"p99 round trip µs, {label}", p99, True))
        out.append((f"loss %, {label}", d.get("loss_percent"), True))
    elif case == "uclient100":
        # turnutils_uclient (coturn 4.17.1's) through the server: what it
        # sent and got back, each a crossing of the server.
        relayed = d.get("relayed", 0)
        cpu = d.get("server_cpu_s")
        per = cpu * 1e6 / relayed if relayed and cpu is not None else None
        out.append(("CPU µs per relayed datagram, turnutils_uclient 100 B", per, True))
        out.append(("turnutils_uclient lost packets", d.get("lost"), True))
    elif case == "search-step-2000" and "all_cpu_s" in d:
        # In namespaces the relay cases run with threaded NAPI (for the CPU
        # figures); latency is taken here, on the kernel's default path, at
        # the same 20,000 round trips/s.
        p99 = (d.get("latency_us") or {}).get("p99")
        out.append(("p99 round trip µs, UDP 100 B (default NAPI)", p99, True))
    elif case == "search":
        out.append(("highest loss-free rate, round trips/s (≤0.1%)", d.get("loss_free_rate"), False))
    elif case in ("alloc", "alloc-tcp"):
        over = " over TCP" if case.endswith("-tcp") else ""
        out.append((f"allocations/s (2000 clients){over}", d.get("allocations_per_s"), False))
        out.append((f"Allocate + ChannelBind/s{over}", d.get("ready_per_s"), False))
        out.append((f"Refresh (LIFETIME 0) answered/s{over}", d.get("refreshes_per_s"), False))
    elif case.startswith("memory"):
        allocated = d.get("allocated", 0)
        delta = d.get("rss_kb_delta")
        value = delta * 1024 / allocated if allocated and delta is not None else None
        out.append((f"RSS bytes per allocation ({int(case[6:]):,} asked)", value, True))
        out.append((f"allocations made ({int(case[6:]):,} asked)", allocated, False))
    elif case in ("binding", "binding-tcp"):
        over = " over TCP" if case.endswith("-tcp") else ""
        rate = d.get("received_per_s")
        out.append((f"Binding requests answered/s{over}", rate, False))
        cpu = d.get("server_cpu_s")
        received = d.get("received", 0)
        per = cpu * 1e6 / received if received and cpu else None
        out.append((f"CPU µs per Binding request{over}", per, True))
    return out


def fmt(v):
    if v is None:
        return "—"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def main(path):
    values = defaultdict(lambda: defaultdict(list))
    order = []
    seen = set()
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t", 3)
            if len(parts) != 4:
                continue
            _, server, case, raw = parts
            try:
                d = json.loads(raw)
            except json.JSONDecodeError:
                d = {}
            for name, value, lower in figures(server, case, d):
                if name not in seen:
                    seen.add(name)
                    order.append((name, lower))
                if value is not None:
                    values[name][server].append(value)
    present = [s for s in SERVERS if any(s in v for v in values.values())]
    ours = [s for s in OURS if s in present]
    ratio_names = [f"{a}/{b}" for b in ("coturn", "coturn-4.6.1", "floor") for a in ours if b in present]
    header = ["figure"] + present + ratio_names
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for name, lower in order:
        med = {}
        cells = []
        for s in present:
            runs = values[name].get(s, [])
            if runs:
                med[s] = statistics.median(runs)
                spread = f" ({fmt(min(runs))}–{fmt(max(runs))})" if len(runs) > 1 else ""
                cells.append(fmt(med[s]) + spread)
            else:
                cells.append("—")
        ratios = []
        for pair in ratio_names:
            a, b = (med.get(x) for x in pair.split("/"))
            ratios.append(f"{a / b:.2f}" if a is not None and b else "—")
        print(f"| {name} | " + " | ".join(cells + ratios) + " |")
    print()
    print("Medians over the rounds (min–max in brackets). Lower is better for CPU, latency, loss and memory;")
    print("higher for rates. The floor is a bare recvmmsg/sendmmsg echo: one hop, no TURN.")
    print("coturn: 4.17.1, built from source; coturn-4.6.1: Debian's.")
    if "edgeice-xdp" in present:
        print("edgeice-xdp: edgeice serve --kernel-fast-path on. Server CPU includes the kernel threads")
        print("receiving on its interface (threaded NAPI: XDP, or the socket path's input).")


if __name__ == "__main__":
    main(sys.argv[1])
