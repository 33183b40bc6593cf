# shellcheck shell=bash
# The seed's world in network namespaces: two companies, each with a client
# behind a firewall/NAT router and an edge server in a perimeter network
# behind a 1:1 static NAT, and the internet between them. Sourced by
# lab/run.sh; every name starts with $P so parallel or aborted runs never
# collide, and nothing is routed out of the host's own namespace (the
# namespaces are joined only to each other by veth pairs).
#
#   client A 192.168.10.10 ─ router A ─ edge A 10.0.1.5 (public 203.0.113.5)
#                             │ 203.0.113.1
#                          internet 203.0.113.254 / 198.51.100.254
#                             │ 198.51.100.1
#   client B 172.16.20.10  ─ router B ─ edge B 10.0.2.5 (public 198.51.100.5)

# Addresses, all from the documentation ranges the issue names.
CLIENT_A=192.168.10.10
EDGE_A_PRIVATE=10.0.1.5
EDGE_A_PUBLIC=203.0.113.5
ROUTER_A_PUBLIC=203.0.113.1
CLIENT_B=172.16.20.10
EDGE_B_PRIVATE=10.0.2.5
EDGE_B_PUBLIC=198.51.100.5
ROUTER_B_PUBLIC=198.51.100.1
# The internet's own STUN server (server-reflexive candidates behind the
# clients' NATs), on the internet router's address towards company A.
INTERNET_STUN=203.0.113.254
# Its second address, for RFC 5780 NAT behaviour discovery.
INTERNET_STUN_ALT=203.0.113.253

# Namespaces.
NS_CA=${P}ca NS_RA=${P}ra NS_EA=${P}ea
NS_IN=${P}in
NS_CB=${P}cb NS_RB=${P}rb NS_EB=${P}eb
LAB_NAMESPACES="$NS_CA $NS_RA $NS_EA $NS_IN $NS_CB $NS_RB $NS_EB"

# netns NS CMD...: runs CMD inside namespace NS.
netns() {
    local ns=$1
    shift
    ip netns exec "$ns" "$@"
}

# wire NS1 IF1 ADDR1 NS2 IF2 ADDR2: a veth pair between two namespaces,
# each end with its address (CIDR) and up.
wire() {
    ip link add "$2" netns "$1" type veth peer name "$5" netns "$4"
    ip -n "$1" addr add "$3" dev "$2"
    ip -n "$4" addr add "$6" dev "$5"
    ip -n "$1" link set "$2" up
    ip -n "$4" link set "$5" up
}

# lab_up: creates the namespaces, links and routes (no firewall yet).
lab_up() {
    # Any step failing stops the run (and the EXIT trap tears down).
    local -
    set -e
    local ns
    for ns in $LAB_NAMESPACES; do
        ip netns add "$ns"
        ip -n "$ns" link set lo up
    done
    # Company A.
    wire "$NS_CA" "${P}c0" "$CLIENT_A/24" "$NS_RA" "${P}al" 192.168.10.1/24
    wire "$NS_EA" "${P}e0" "$EDGE_A_PRIVATE/24" "$NS_RA" "${P}ad" 10.0.1.1/24
    wire "$NS_RA" "${P}aw" "$ROUTER_A_PUBLIC/24" "$NS_IN" "${P}ia" "$INTERNET_STUN/24"
    ip -n "$NS_IN" addr add "$INTERNET_STUN_ALT/24" dev "${P}ia"
    # The edge's public address lives on the router's outside interface, so
    # the router answers ARP for it; its DNAT sends the traffic on inward.
    ip -n "$NS_RA" addr add "$EDGE_A_PUBLIC/24" dev "${P}aw"
    # Company B.
    wire "$NS_CB" "${P}c1" "$CLIENT_B/24" "$NS_RB" "${P}bl" 172.16.20.1/24
    wire "$NS_EB" "${P}e1" "$EDGE_B_PRIVATE/24" "$NS_RB" "${P}bd" 10.0.2.1/24
    wire "$NS_RB" "${P}bw" "$ROUTER_B_PUBLIC/24" "$NS_IN" "${P}ib" 198.51.100.254/24
    ip -n "$NS_RB" addr add "$EDGE_B_PUBLIC/24" dev "${P}bw"

    ip -n "$NS_CA" route add default via 192.168.10.1
    ip -n "$NS_EA" route add default via 10.0.1.1
    ip -n "$NS_RA" route add default via "$INTERNET_STUN"
    ip -n "$NS_CB" route add default via 172.16.20.1
    ip -n "$NS_EB" route add default via 10.0.2.1
    ip -n "$NS_RB" route add default via 198.51.100.254
    # The internet knows the two public networks and nothing private: a
    # packet for 10.0.1.5 dies there, as it would on the real one.
    for ns in "$NS_RA" "$NS_RB" "$NS_IN"; do
        netns "$ns" sysctl -qw net.ipv4.ip_forward=1
    done
}

# router_rules LAN DMZ WAN CLIENT_NET EDGE_PRIVATE EDGE_PUBLIC MODE UDP:
# the nftables ruleset of one company's router. The edge is always behind
# a 1:1 static NAT. MODE says what the client may do:
#   firewall  — media only towards its own edge (the seed's corporate network);
#   nat       — anything out, behind an ordinary NAT (masquerade, which keeps
#               the source port: endpoint-independent mapping);
#   symmetric — anything out, behind a NAT that picks a random port for every
#               destination (masquerade random).
# UDP is "allow" or "block" (the firewall drops the client's UDP).
router_rules() {
    local lan=$1 dmz=$2 wan=$3 net=$4 private=$5 public=$6 mode=$7 udp=$8
    local masquerade="" client_out="" udp_drop=""
    case $mode in
        nat) masquerade="oifname \"$wan\" ip saddr $net masquerade" ;;
        symmetric) masquerade="oifname \"$wan\" ip saddr $net masquerade random" ;;
    esac
    [ "$mode" != firewall ] && client_out="iifname \"$lan\" oifname \"$wan\" accept"
    [ "$udp" = block ] && udp_drop="iifname \"$lan\" meta l4proto udp drop
        oifname \"$lan\" meta l4proto udp drop"
    cat <<EOF
table ip lab {
    chain pre {
        type nat hook prerouting priority dstnat;
        iifname "$wan" ip daddr $public dnat to $private
    }
    chain post {
        type nat hook postrouting priority srcnat;
        oifname "$wan" ip saddr $private snat to $public
        $masquerade
    }
    chain input {
        # Nothing listens on the router: unsolicited packets are dropped
        # before conntrack confirms them, so they cannot take a port the
        # NAT would later want (that would break hole punching).
        type filter hook input priority filter; policy drop;
        ct state established,related accept
        iifname "lo" accept
        iifname != "$wan" icmp type echo-request accept
    }
    chain forward {
        type filter hook forward priority filter; policy drop;
        $udp_drop
        ct state established,related accept
        iifname "$lan" ip daddr $private accept
        iifname "$dmz" accept
        iifname "$wan" ip daddr $private accept
        $client_out
    }
}
EOF
}

# lab_firewalls MODE UDP: loads both routers' rules.
lab_firewalls() {
    local -
    set -e
    router_rules "${P}al" "${P}ad" "${P}aw" 192.168.10.0/24 "$EDGE_A_PRIVATE" "$EDGE_A_PUBLIC" "$1" "$2" |
        netns "$NS_RA" nft -f -
    router_rules "${P}bl" "${P}bd" "${P}bw" 172.16.20.0/24 "$EDGE_B_PRIVATE" "$EDGE_B_PUBLIC" "$1" "$2" |
        netns "$NS_RB" nft -f -
}

# lab_down: kills what runs in the namespaces and deletes them (their veth
# ends and nftables go with them). Safe to call twice.
lab_down() {
    local ns pid
    for ns in $LAB_NAMESPACES; do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do
            kill "$pid" 2>/dev/null || true
        done
    done
    sleep 0.2
    for ns in $LAB_NAMESPACES; do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do
            kill -9 "$pid" 2>/dev/null || true
        done
        ip netns del "$ns" 2>/dev/null || true
    done
}
