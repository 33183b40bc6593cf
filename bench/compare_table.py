#!/usr/bin/env python3
"""Turns bench/compare.sh's results (round, server, case, JSON per line)
into one Markdown table of medians over the rounds, with the ratios
edgeice/coturn and edgeice/floor and each figure's spread."""

import json
import statistics
import sys
from collections import defaultdict

SERVERS = ["edgeice", "coturn", "floor"]


def per_datagram_us(server, d):
    """Server CPU per datagram crossing it: a relay handles two per round
    trip (to the peer and back), the floor echo one."""
    received = d.get("received", 0)
    if not received or "server_cpu_s" not in d:
        return None
    crossings = received if server == "floor" else 2 * received
    return d["server_cpu_s"] * 1e6 / crossings


def figures(server, case, d):
    """(figure name, value, lower is better) for one run."""
    out = []
    if case in ("relay100", "relay1000", "tcp100"):
        label = {"relay100": "UDP 100 B", "relay1000": "UDP 1000 B", "tcp100": "TCP 100 B"}[case]
        out.append((f"CPU µs per datagram, {label}", per_datagram_us(server, d), True))
        p99 = (d.get("latency_us") or {}).get("p99")
        out.append((f"p99 round trip µs, {label}", p99, True))
        out.append((f"loss %, {label}", d.get("loss_percent"), True))
    elif case == "search":
        out.append(("highest loss-free rate, round trips/s (≤0.1%)", d.get("loss_free_rate"), False))
    elif case == "alloc":
        out.append(("allocations/s (2000 clients)", d.get("allocations_per_s"), False))
        out.append(("Allocate + ChannelBind/s", d.get("ready_per_s"), False))
    elif case == "memory":
        allocated = d.get("allocated", 0)
        delta = d.get("rss_kb_delta")
        value = delta * 1024 / allocated if allocated and delta is not None else None
        out.append((f"RSS bytes per allocation ({allocated} allocations)", value, True))
    elif case == "binding":
        rate = d.get("received_per_s")
        out.append(("Binding requests answered/s", rate, False))
        cpu = d.get("server_cpu_s")
        received = d.get("received", 0)
        out.append(("CPU µs per Binding request", cpu * 1e6 / received if received and cpu else None, True))
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
                if name not in values:
                    order.append((name, lower))
                if value is not None:
                    values[name][server].append(value)
    print("| figure | edgeice | coturn | floor | edgeice/coturn | edgeice/floor |")
    print("|---|---|---|---|---|---|")
    for name, lower in order:
        med = {}
        cells = []
        for s in SERVERS:
            runs = values[name].get(s, [])
            if runs:
                med[s] = statistics.median(runs)
                spread = f" ({fmt(min(runs))}–{fmt(max(runs))})" if len(runs) > 1 else ""
                cells.append(fmt(med[s]) + spread)
            else:
                cells.append("—")
        ratios = []
        for other in ("coturn", "floor"):
            a, b = med.get("edgeice"), med.get(other)
            ratios.append(f"{a / b:.2f}" if a is not None and b else "—")
        print(f"| {name} | " + " | ".join(cells + ratios) + " |")
    print()
    print("Medians over the rounds (min–max in brackets). Lower is better for CPU, latency, loss and memory;")
    print("higher for rates. The floor is a bare recvmmsg/sendmmsg echo: one hop, no TURN.")


if __name__ == "__main__":
    main(sys.argv[1])
