// SPDX-License-Identifier: GPL-2.0 OR MIT
//
// edgeice's kernel fast path: relays TURN ChannelData (RFC 8656 §12) in
// XDP, below the socket layer, for channels user space has installed.
//
//   client -> peer: a ChannelData datagram from a client's 5-tuple on a
//   bound channel loses its 4-byte header and leaves from the relayed
//   address to the peer.
//   peer -> client: a datagram from a bound peer to a relayed address gets
//   the ChannelData header and leaves from the server's address to the
//   client.
//
// Anything else — IPv6, IP options, fragments, TCP, STUN, Send and Data
// indications, an unknown channel or peer, a length that does not add up,
// a destination the kernel has no route or neighbour for — is passed up
// untouched, so the socket path (the reference behaviour) handles it.
// User space installs an entry only while its channel and permission are
// live and removes it the moment either lapses; per-entry counters keep
// accounting exact.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define AF_INET 2
// Returned by a direction that does not own the packet: try the other one.
#define NOT_MINE -1
#define CHANNEL_HEADER 4
#define MAX_ENTRIES 65536

// Client -> peer: which client transport and channel.
struct to_peer_key {
	__u32 client_ip;   // network order, as on the wire
	__u32 server_ip;
	__u16 client_port;
	__u16 server_port;
	__u16 channel;     // host order
	__u16 pad;
};

// Peer -> client: which peer and relayed address.
struct to_client_key {
	__u32 peer_ip;
	__u32 relay_ip;
	__u16 peer_port;
	__u16 relay_port;
};

// Where a packet goes once rewritten, and what went that way.
struct route {
	__u32 from_ip;     // new source: relayed address / server's address
	__u32 to_ip;       // new destination: peer / client
	__u16 from_port;
	__u16 to_port;
	__u16 channel;     // host order; the header to add towards a client
	__u16 pad;
	__u64 packets;
	__u64 bytes;       // payload bytes, as user space counts them
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_ENTRIES);
	__type(key, struct to_peer_key);
	__type(value, struct route);
} to_peer SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_ENTRIES);
	__type(key, struct to_client_key);
	__type(value, struct route);
} to_client SEC(".maps");

// Headers of a plain IPv4/UDP frame.
struct frame {
	struct ethhdr eth;
	struct iphdr ip;
	struct udphdr udp;
} __attribute__((packed));

static __always_inline __u16 ip_checksum(struct iphdr ip)
{
	__u32 sum = 0;
	__u16 *words = (__u16 *)&ip;
	ip.check = 0;
#pragma unroll
	for (int i = 0; i < (int)(sizeof(ip) / 2); i++)
		sum += words[i];
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

// Finds the next hop towards `to_ip` from `from_ip`: its interface and
// MAC addresses. Asked before anything is rewritten, so that a packet
// the kernel cannot route here goes up to user space unchanged. The
// kernel answers only where IPv4 forwarding is on for the interface
// (net.ipv4.conf.IF.forwarding): user space checks that before attaching.
static __always_inline int next_hop(struct xdp_md *ctx, __u32 from_ip, __u32 to_ip,
				    __u16 tot_len, struct bpf_fib_lookup *fib)
{
	__builtin_memset(fib, 0, sizeof(*fib));
	fib->family = AF_INET;
	fib->l4_protocol = IPPROTO_UDP;
	fib->tot_len = tot_len;
	fib->ipv4_src = from_ip;
	fib->ipv4_dst = to_ip;
	fib->ifindex = ctx->ingress_ifindex;
	return bpf_fib_lookup(ctx, fib, sizeof(*fib), 0);
}

static __always_inline int send(struct xdp_md *ctx, struct frame *f, struct bpf_fib_lookup *fib)
{
	__builtin_memcpy(f->eth.h_dest, fib->dmac, ETH_ALEN);
	__builtin_memcpy(f->eth.h_source, fib->smac, ETH_ALEN);
	if (fib->ifindex == ctx->ingress_ifindex)
		return XDP_TX;
	// A known constant either way: the verifier must see that a packet
	// already rewritten never goes on to the other direction's code.
	return bpf_redirect(fib->ifindex, 0) == XDP_REDIRECT ? XDP_REDIRECT : XDP_ABORTED;
}

// Client -> peer: strip the ChannelData header.
static __always_inline int channel_to_peer(struct xdp_md *ctx, struct frame *f, void *end)
{
	__u8 *payload = (__u8 *)(f + 1);
	if ((void *)(payload + CHANNEL_HEADER) > end)
		return NOT_MINE;
	if ((payload[0] & 0xc0) != 0x40)
		return NOT_MINE;                  // STUN, or not TURN at all
	__u16 udp_len = bpf_ntohs(f->udp.len);
	__u16 data_len = ((__u16)payload[2] << 8) | payload[3];
	// Exactly header + data: padded or short frames go the socket way.
	if (udp_len != sizeof(struct udphdr) + CHANNEL_HEADER + data_len)
		return NOT_MINE;
	struct to_peer_key key = {
		.client_ip = f->ip.saddr,
		.server_ip = f->ip.daddr,
		.client_port = f->udp.source,
		.server_port = f->udp.dest,
		.channel = ((__u16)payload[0] << 8) | payload[1],
	};
	struct route *r = bpf_map_lookup_elem(&to_peer, &key);
	if (!r)
		return NOT_MINE;
	struct bpf_fib_lookup fib;
	__u16 tot_len = bpf_ntohs(f->ip.tot_len) - CHANNEL_HEADER;
	if (next_hop(ctx, r->from_ip, r->to_ip, tot_len, &fib) != BPF_FIB_LKUP_RET_SUCCESS)
		return NOT_MINE;

	// Move the headers 4 bytes on, over the ChannelData header, and drop
	// the 4 bytes in front.
	struct frame copy;
	__builtin_memcpy(&copy, f, sizeof(copy));
	if (bpf_xdp_adjust_head(ctx, CHANNEL_HEADER))
		return XDP_ABORTED;
	void *data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	f = data;
	if ((void *)(f + 1) > end)
		return XDP_ABORTED;
	__builtin_memcpy(f, &copy, sizeof(copy));

	f->ip.saddr = r->from_ip;
	f->ip.daddr = r->to_ip;
	f->ip.tot_len = bpf_htons(tot_len);
	f->ip.check = ip_checksum(f->ip);
	f->udp.source = r->from_port;
	f->udp.dest = r->to_port;
	f->udp.len = bpf_htons(sizeof(struct udphdr) + data_len);
	f->udp.check = 0;                  // optional over IPv4
	__sync_fetch_and_add(&r->packets, 1);
	__sync_fetch_and_add(&r->bytes, data_len);
	return send(ctx, f, &fib);
}

// Peer -> client: add the ChannelData header.
static __always_inline int peer_to_channel(struct xdp_md *ctx, struct frame *f, void *end)
{
	struct to_client_key key = {
		.peer_ip = f->ip.saddr,
		.relay_ip = f->ip.daddr,
		.peer_port = f->udp.source,
		.relay_port = f->udp.dest,
	};
	struct route *r = bpf_map_lookup_elem(&to_client, &key);
	if (!r)
		return XDP_PASS;
	__u16 udp_len = bpf_ntohs(f->udp.len);
	if (udp_len < sizeof(struct udphdr) || (void *)f + sizeof(*f) - sizeof(struct udphdr) + udp_len > end)
		return XDP_PASS;
	__u16 data_len = udp_len - sizeof(struct udphdr);
	struct bpf_fib_lookup fib;
	__u16 tot_len = bpf_ntohs(f->ip.tot_len) + CHANNEL_HEADER;
	if (next_hop(ctx, r->from_ip, r->to_ip, tot_len, &fib) != BPF_FIB_LKUP_RET_SUCCESS)
		return XDP_PASS;

	struct frame copy;
	__builtin_memcpy(&copy, f, sizeof(copy));
	if (bpf_xdp_adjust_head(ctx, -CHANNEL_HEADER))
		return XDP_PASS;
	void *data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	f = data;
	__u8 *header = (__u8 *)(f + 1);
	if ((void *)(header + CHANNEL_HEADER) > end)
		return XDP_ABORTED;
	__builtin_memcpy(f, &copy, sizeof(copy));
	header[0] = r->channel >> 8;
	header[1] = r->channel & 0xff;
	header[2] = data_len >> 8;
	header[3] = data_len & 0xff;

	f->ip.saddr = r->from_ip;
	f->ip.daddr = r->to_ip;
	f->ip.tot_len = bpf_htons(tot_len);
	f->ip.check = ip_checksum(f->ip);
	f->udp.source = r->from_port;
	f->udp.dest = r->to_port;
	f->udp.len = bpf_htons(udp_len + CHANNEL_HEADER);
	f->udp.check = 0;
	__sync_fetch_and_add(&r->packets, 1);
	__sync_fetch_and_add(&r->bytes, data_len);
	return send(ctx, f, &fib);
}

SEC("xdp")
int edgeice_relay(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct frame *f = data;
	if ((void *)(f + 1) > end)
		return XDP_PASS;
	if (f->eth.h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	if (f->ip.ihl != 5 || f->ip.version != 4 || f->ip.protocol != IPPROTO_UDP)
		return XDP_PASS;                  // options, or not UDP
	if (f->ip.frag_off & bpf_htons(0x3fff))
		return XDP_PASS;                  // a fragment (MF set or an offset)
	if (bpf_ntohs(f->ip.tot_len) != sizeof(struct iphdr) + bpf_ntohs(f->udp.len))
		return XDP_PASS;
	int verdict = channel_to_peer(ctx, f, end);
	if (verdict != NOT_MINE)
		return verdict;
	return peer_to_channel(ctx, f, end);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
