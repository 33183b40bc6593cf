// SPDX-License-Identifier: GPL-2.0 OR MIT
//
// edgeice's kernel fast path: relays TURN ChannelData (RFC 8656 §12)
// below the socket layer, for channels user space has installed.
//
//   client -> peer: a ChannelData datagram from a client's 5-tuple on a
//   bound channel loses its 4-byte header and leaves from the relayed
//   address to the peer.
//   peer -> client: a datagram from a bound peer to a relayed address gets
//   the ChannelData header and leaves from the server's address to the
//   client.
//
// Two programs share the maps and the packet logic: `edgeice_relay` for
// XDP (in the driver, or generic), and `edgeice_relay_tc` for TC ingress
// (a tcx link, or a cls_bpf direct-action filter on clsact), which user
// space attaches where XDP cannot be, typically because the interface
// already has someone else's XDP program. Only what touches the packet's
// container differs between them: moving the headers by 4 bytes, the skb's
// checksum state, and how the packet is sent on.
//
// Anything else — IPv6, IP options, fragments, TCP, STUN, Send and Data
// indications, an unknown channel or peer, a length that does not add up
// or would not fit once the ChannelData header is added, a UDP checksum
// that is wrong or that the programs cannot check, a destination the
// kernel has no route or neighbour for — is passed up untouched, so the
// socket path (the reference behaviour) handles it: the stack drops a
// datagram whose checksum is wrong, and so nothing relayed here ever
// carried one.
// User space stays in charge. It installs an entry once a channel is bound
// and its peer permitted, with a deadline — the first of the channel's,
// the permission's and the allocation's expiry — that the programs check
// on every packet, so nothing is relayed a moment after a lapse; a refresh
// moves the deadline. For an allocation with a bandwidth cap it lends the
// programs bytes from the cap, which they spend until the loan runs out;
// then packets go up, where the cap is applied. Per-entry counters keep
// accounting exact.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define AF_INET 2
#define CHANNEL_HEADER 4
#define MAX_ENTRIES 65536
// The UDP checksum is summed CSUM_CHUNK bytes at a time, for datagrams of
// at most CSUM_CHUNK * CSUM_CHUNKS bytes (UDP header included); longer
// ones (jumbo frames) go up unchecked.
#define CSUM_CHUNK 64
#define CSUM_CHUNKS 64
// The largest IPv4 datagram.
#define IP_MAX_LEN 0xffff

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
	__u32 slot;        // its deadline in `deadlines` (both directions share it)
	__u32 budget;      // its allocation's loan in `lent`/`spent`; 0: no cap
	__u64 packets;
	__u64 bytes;       // payload bytes, as user space counts them
};

// Until when each route may be relayed, in bpf_ktime_get_ns()'s clock
// (CLOCK_MONOTONIC): set and moved by user space, never by the programs,
// so that a refresh never touches a route's counters.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_ENTRIES);
	__type(key, __u32);
	__type(value, __u64);
} deadlines SEC(".maps");

// A capped allocation's loan: `spent` may grow up to `lent`. User space
// raises `lent` (to what it read of `spent` plus the new loan) and reads
// `spent`; only the programs add to `spent`. Two maps, so that neither
// side ever overwrites what the other writes.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_ENTRIES);
	__type(key, __u32);
	__type(value, __u64);
} lent SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_ENTRIES);
	__type(key, __u32);
	__type(value, __u64);
} spent SEC(".maps");

// One set of maps for both programs: user space drives them the same way
// whichever hook an interface got.
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

// The IPv4 and UDP headers, and the ChannelData header after them: the
// part of a frame whose checksum an skb may carry (see tc_checksum).
struct l3l4 {
	struct iphdr ip;
	struct udphdr udp;
	__u8 channel[CHANNEL_HEADER];
} __attribute__((packed));

// ---- Shared by both hooks ------------------------------------------------

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

// The headers of a plain IPv4/UDP frame of `frame_len` bytes starting at
// `data` (of which `data`..`end` can be read), or NULL: no IP options, not
// a fragment, and lengths that agree, the datagram whole in the frame.
static __always_inline struct frame *plain_udp(void *data, void *end, __u32 frame_len)
{
	struct frame *f = data;
	if ((void *)(f + 1) > end)
		return NULL;
	if (f->eth.h_proto != bpf_htons(ETH_P_IP))
		return NULL;
	if (f->ip.ihl != 5 || f->ip.version != 4 || f->ip.protocol != IPPROTO_UDP)
		return NULL;                      // options, or not UDP
	if (f->ip.frag_off & bpf_htons(0x3fff))
		return NULL;                      // a fragment (MF set or an offset)
	__u16 tot_len = bpf_ntohs(f->ip.tot_len);
	__u16 udp_len = bpf_ntohs(f->udp.len);
	if (udp_len < sizeof(struct udphdr) || tot_len != sizeof(struct iphdr) + udp_len)
		return NULL;
	if (sizeof(struct ethhdr) + (__u32)tot_len > frame_len)
		return NULL;                      // claims more than arrived
	return f;
}

// Client -> peer: the route of ChannelData on an installed channel, and
// its data length in *data_len; NULL for anything else.
static __always_inline struct route *channel_route(struct frame *f, void *end, __u16 *data_len)
{
	__u8 *payload = (__u8 *)(f + 1);
	if ((void *)(payload + CHANNEL_HEADER) > end)
		return NULL;
	if ((payload[0] & 0xc0) != 0x40)
		return NULL;                      // STUN, or not TURN at all
	__u16 udp_len = bpf_ntohs(f->udp.len);
	__u16 len = ((__u16)payload[2] << 8) | payload[3];
	// Exactly header + data: padded or short frames go the socket way.
	if (udp_len != sizeof(struct udphdr) + CHANNEL_HEADER + len)
		return NULL;
	struct to_peer_key key = {
		.client_ip = f->ip.saddr,
		.server_ip = f->ip.daddr,
		.client_port = f->udp.source,
		.server_port = f->udp.dest,
		.channel = ((__u16)payload[0] << 8) | payload[1],
	};
	*data_len = len;
	return bpf_map_lookup_elem(&to_peer, &key);
}

// Peer -> client: the route of a datagram from a bound peer to a relayed
// address, and its length in *data_len; NULL for anything else.
static __always_inline struct route *peer_route(struct frame *f, __u16 *data_len)
{
	struct to_client_key key = {
		.peer_ip = f->ip.saddr,
		.relay_ip = f->ip.daddr,
		.peer_port = f->udp.source,
		.relay_port = f->udp.dest,
	};
	// With the ChannelData header it must still be an IPv4 datagram (the
	// socket path cannot send it either: it goes up and is dropped there).
	if ((__u32)bpf_ntohs(f->ip.tot_len) + CHANNEL_HEADER > IP_MAX_LEN)
		return NULL;
	*data_len = bpf_ntohs(f->udp.len) - sizeof(struct udphdr);
	return bpf_map_lookup_elem(&to_client, &key);
}

// Whether the datagram's UDP checksum is right, or absent (zero: optional
// over IPv4). A datagram too long to check here counts as wrong, so that
// it goes up for the stack to check. The whole datagram must be readable
// between `f` and `end` (plain_udp checked that it arrived whole; on TC
// it must also be in the linear area).
static __always_inline int udp_checksum_ok(struct frame *f, void *end)
{
	if (!f->udp.check)
		return 1;
	__u32 udp_len = bpf_ntohs(f->udp.len);
	if (udp_len > CSUM_CHUNK * CSUM_CHUNKS)
		return 0;
	// The pseudo-header, then the UDP header and data, summed as 16-bit
	// words in the order they sit in memory (as the kernel does): the
	// total, folded, is all ones when the checksum field is right.
	__u64 sum = (__u64)f->ip.saddr + f->ip.daddr + bpf_htons(IPPROTO_UDP) + f->udp.len;
	__u8 *udp = (__u8 *)&f->udp;
	__u32 off = 0;
	for (int i = 0; i < CSUM_CHUNKS; i++) {
		if (off + CSUM_CHUNK > udp_len)
			break;
		__u8 *p = udp + off;
		if ((void *)(p + CSUM_CHUNK) > end)
			return 0;
		__s64 part = bpf_csum_diff(NULL, 0, (__be32 *)p, CSUM_CHUNK, 0);
		if (part < 0)
			return 0;
		sum += (__u32)part;
		off += CSUM_CHUNK;
	}
	// Under CSUM_CHUNK bytes left: two at a time, then an odd last one
	// (the high byte of a word whose low byte is zero).
	for (int i = 0; i < CSUM_CHUNK / 2; i++) {
		if (off + 2 > udp_len)
			break;
		__u8 *p = udp + off;
		if ((void *)(p + 2) > end)
			return 0;
		sum += *(__u16 *)p;
		off += 2;
	}
	if (off < udp_len) {
		__u8 *p = udp + off;
		if ((void *)(p + 1) > end)
			return 0;
		sum += bpf_htons((__u16)*p << 8);
	}
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return sum == 0xffff;
}

// Finds the next hop of `r`'s rewritten packet: its interface and MAC
// addresses. Asked before anything is rewritten, so that a packet the
// kernel cannot route here goes up to user space unchanged. The kernel
// answers only where IPv4 forwarding is on for the interface
// (net.ipv4.conf.IF.forwarding): user space checks that before attaching.
// `ctx` is either hook's context: the helper takes both.
static __always_inline int next_hop(void *ctx, __u32 ifindex, const struct route *r,
				    __u32 tot_len, struct bpf_fib_lookup *fib)
{
	__builtin_memset(fib, 0, sizeof(*fib));
	fib->family = AF_INET;
	fib->l4_protocol = IPPROTO_UDP;
	fib->tot_len = tot_len;
	fib->ipv4_src = r->from_ip;
	fib->ipv4_dst = r->to_ip;
	fib->ifindex = ifindex;
	return bpf_fib_lookup(ctx, fib, sizeof(*fib), 0);
}

// The new MACs, addresses, ports and lengths of a rewritten frame whose
// other header fields are those of `orig`.
static __always_inline void rewrite(struct frame *f, const struct frame *orig,
				    const struct route *r, const struct bpf_fib_lookup *fib,
				    __u32 tot_len, __u32 udp_len)
{
	__builtin_memcpy(f, orig, sizeof(*f));
	__builtin_memcpy(f->eth.h_dest, fib->dmac, ETH_ALEN);
	__builtin_memcpy(f->eth.h_source, fib->smac, ETH_ALEN);
	f->ip.saddr = r->from_ip;
	f->ip.daddr = r->to_ip;
	f->ip.tot_len = bpf_htons(tot_len);
	f->ip.check = ip_checksum(f->ip);
	f->udp.source = r->from_port;
	f->udp.dest = r->to_port;
	f->udp.len = bpf_htons(udp_len);
	f->udp.check = 0;                  // optional over IPv4
}

// Client -> peer, once the ChannelData header is gone: the headers in
// front of the data.
static __always_inline void to_peer_headers(struct frame *f, const struct frame *orig,
					    const struct route *r,
					    const struct bpf_fib_lookup *fib, __u16 data_len)
{
	rewrite(f, orig, r, fib, bpf_ntohs(orig->ip.tot_len) - CHANNEL_HEADER,
		sizeof(struct udphdr) + data_len);
}

// Peer -> client, once there are 4 more bytes in front: the headers, and
// the ChannelData header at `header`, in front of the data.
static __always_inline void to_client_headers(struct frame *f, __u8 *header,
					      const struct frame *orig, const struct route *r,
					      const struct bpf_fib_lookup *fib, __u16 data_len)
{
	// Both fit in 16 bits: peer_route passed up what would not.
	rewrite(f, orig, r, fib, (__u32)bpf_ntohs(orig->ip.tot_len) + CHANNEL_HEADER,
		sizeof(struct udphdr) + CHANNEL_HEADER + (__u32)data_len);
	header[0] = r->channel >> 8;
	header[1] = r->channel & 0xff;
	header[2] = data_len >> 8;
	header[3] = data_len & 0xff;
}

// Whether `r` may carry `data_len` bytes now: before its deadline, and
// within its allocation's loan, which it then spends. Asked last before a
// packet is changed, so that a packet that goes up spent nothing.
static __always_inline int admit(const struct route *r, __u16 data_len)
{
	__u32 slot = r->slot;
	__u64 *until = bpf_map_lookup_elem(&deadlines, &slot);
	if (!until || bpf_ktime_get_ns() >= *until)
		return 0;
	if (!r->budget)
		return 1;
	__u32 budget = r->budget;
	__u64 *limit = bpf_map_lookup_elem(&lent, &budget);
	__u64 *used = bpf_map_lookup_elem(&spent, &budget);
	if (!limit || !used)
		return 0;
	__u64 before = __sync_fetch_and_add(used, data_len);
	if (before + data_len <= *limit)
		return 1;
	// Not covered: give the bytes back and let the packet go up.
	__sync_fetch_and_sub(used, data_len);
	return 0;
}

// Whether a packet of `r` may be relayed, its next hop found into `fib`:
// routable (its IP length changed by `delta`, the ChannelData header
// taken off or put on), then admitted. Nothing has been changed yet when
// it says no.
static __always_inline int ready(void *ctx, __u32 ifindex, const struct frame *f,
				 const struct route *r, __u16 data_len, int delta,
				 struct bpf_fib_lookup *fib)
{
	// In 32 bits: peer_route made sure the result fits in 16.
	__u32 tot_len = (__u32)bpf_ntohs(f->ip.tot_len) + delta;
	return next_hop(ctx, ifindex, r, tot_len, fib) == BPF_FIB_LKUP_RET_SUCCESS &&
	       admit(r, data_len);
}

static __always_inline void count(struct route *r, __u16 data_len)
{
	__sync_fetch_and_add(&r->packets, 1);
	__sync_fetch_and_add(&r->bytes, data_len);
}

// ---- XDP -------------------------------------------------------------------

static __always_inline int xdp_send(struct xdp_md *ctx, const struct bpf_fib_lookup *fib)
{
	if (fib->ifindex == ctx->ingress_ifindex)
		return XDP_TX;
	// A known constant either way, for the verifier's sake.
	return bpf_redirect(fib->ifindex, 0) == XDP_REDIRECT ? XDP_REDIRECT : XDP_ABORTED;
}

static __always_inline int xdp_to_peer(struct xdp_md *ctx, struct frame *f, struct route *r,
				       __u16 data_len)
{
	struct bpf_fib_lookup fib;
	if (!ready(ctx, ctx->ingress_ifindex, f, r, data_len, -CHANNEL_HEADER, &fib))
		return XDP_PASS;
	// Drop the 4 bytes in front and write the headers again 4 bytes on,
	// over the ChannelData header.
	struct frame orig;
	__builtin_memcpy(&orig, f, sizeof(orig));
	if (bpf_xdp_adjust_head(ctx, CHANNEL_HEADER))
		return XDP_ABORTED;
	void *end = (void *)(long)ctx->data_end;
	f = (void *)(long)ctx->data;
	if ((void *)(f + 1) > end)
		return XDP_ABORTED;
	to_peer_headers(f, &orig, r, &fib, data_len);
	count(r, data_len);
	return xdp_send(ctx, &fib);
}

static __always_inline int xdp_to_client(struct xdp_md *ctx, struct frame *f, struct route *r,
					 __u16 data_len)
{
	struct bpf_fib_lookup fib;
	if (!ready(ctx, ctx->ingress_ifindex, f, r, data_len, CHANNEL_HEADER, &fib))
		return XDP_PASS;
	struct frame orig;
	__builtin_memcpy(&orig, f, sizeof(orig));
	if (bpf_xdp_adjust_head(ctx, -CHANNEL_HEADER))
		return XDP_PASS;                  // no headroom: nothing changed yet
	void *end = (void *)(long)ctx->data_end;
	f = (void *)(long)ctx->data;
	__u8 *header = (__u8 *)(f + 1);
	if ((void *)(header + CHANNEL_HEADER) > end)
		return XDP_ABORTED;
	to_client_headers(f, header, &orig, r, &fib, data_len);
	count(r, data_len);
	return xdp_send(ctx, &fib);
}

SEC("xdp")
int edgeice_relay(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct frame *f = plain_udp(data, end, end - data);
	if (!f)
		return XDP_PASS;
	__u16 data_len;
	struct route *r = channel_route(f, end, &data_len);
	int to_peer = r != NULL;
	if (!r)
		r = peer_route(f, &data_len);
	// Only a datagram the stack would take is relayed: one with a wrong
	// checksum goes up, to be dropped there.
	if (!r || !udp_checksum_ok(f, end))
		return XDP_PASS;
	if (to_peer)
		return xdp_to_peer(ctx, f, r, data_len);
	return xdp_to_client(ctx, f, r, data_len);
}

// ---- TC ingress --------------------------------------------------------------
//
// What goes up is returned as TC_ACT_UNSPEC rather than TC_ACT_OK: both
// leave the packet untouched on its way up the stack, but TC_ACT_OK would
// also skip the interface's other TC programs (the next tcx link, the
// next clsact filter), and the reason for attaching here is to coexist
// with them.
#define TC_PASS_UP TC_ACT_UNSPEC

// Where a frame's UDP checksum field is.
#define UDP_CHECK_AT __builtin_offsetof(struct frame, udp.check)

// Whether the stack has yet to fill in this packet's UDP checksum
// (CHECKSUM_PARTIAL, as a veth or virtio peer hands over locally sent
// packets). Such a packet cannot be relayed here: the offload would write
// the checksum at the UDP header's old place, inside the moved headers.
// No helper reports the state, but one tells it apart: asked to replace
// 0 by 1 in the checksum field, not as a pseudo-header change,
// bpf_l4_csum_replace leaves a pending checksum alone and changes any
// other; the field is put back either way.
static __always_inline int checksum_pending(struct __sk_buff *skb)
{
	__u16 before, after;
	if (bpf_skb_load_bytes(skb, UDP_CHECK_AT, &before, sizeof(before)))
		return 1;
	if (bpf_l4_csum_replace(skb, UDP_CHECK_AT, 0, 1, sizeof(__u16)))
		return 1;
	if (bpf_skb_load_bytes(skb, UDP_CHECK_AT, &after, sizeof(after)))
		return 1;
	bpf_skb_store_bytes(skb, UDP_CHECK_AT, &before, sizeof(before), 0);
	return before == after;
}

// Keeps the skb's checksum of a received packet (CHECKSUM_COMPLETE,
// covering the bytes after the Ethernet header) true to the headers just
// rewritten: `before` is what the first `size` bytes after the Ethernet
// header held once the room was adjusted (the kernel accounted for that
// itself), `now` where they are. With any other checksum state
// bpf_csum_update does nothing. `size` is a constant, a multiple of 4.
static __always_inline void tc_checksum(struct __sk_buff *skb, const struct l3l4 *before,
					const void *now, __u32 size)
{
	struct l3l4 after = {};
	__builtin_memcpy(&after, now, size);
	__s64 diff = bpf_csum_diff((__be32 *)before, size, (__be32 *)&after, size, 0);
	if (diff >= 0)
		bpf_csum_update(skb, (__wsum)diff);
}

// The frame's headers again if its UDP checksum is right or absent, NULL
// if it is wrong or cannot be checked here. A device (or the stack) that
// verified it says so (CHECKSUM_UNNECESSARY), and the stack believes it
// too; else the whole datagram is pulled into the linear area and summed,
// which moves the packet: the headers returned are the ones to use.
// A checksum the stack has yet to fill in (CHECKSUM_PARTIAL) is not the
// datagram's: it does not add up, and the packet goes up.
static __always_inline struct frame *tc_checksum_ok(struct __sk_buff *skb, struct frame *f)
{
	if (!f->udp.check || bpf_csum_level(skb, BPF_CSUM_LEVEL_QUERY) >= 0)
		return f;
	if (bpf_ntohs(f->udp.len) > CSUM_CHUNK * CSUM_CHUNKS)
		return NULL;
	// Cheap when it is linear already; and the packet is about to be
	// written anyway, which needs it writable too.
	if (bpf_skb_pull_data(skb, sizeof(struct ethhdr) + bpf_ntohs(f->ip.tot_len)))
		return NULL;
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	f = plain_udp(data, end, skb->len);
	if (!f || !udp_checksum_ok(f, end))
		return NULL;
	return f;
}

// Sends the rewritten packet out of the next hop's interface (the one it
// came in on included: TC has no XDP_TX).
static __always_inline int tc_send(const struct bpf_fib_lookup *fib)
{
	return bpf_redirect(fib->ifindex, 0) == TC_ACT_REDIRECT ? TC_ACT_REDIRECT : TC_ACT_SHOT;
}

static __always_inline int tc_to_peer(struct __sk_buff *skb, struct frame *f, struct route *r,
				      __u16 data_len)
{
	// Copied first: checksum_pending changes (and puts back) a byte,
	// after which the packet must be read again.
	struct frame orig;
	__builtin_memcpy(&orig, f, sizeof(orig));
	struct bpf_fib_lookup fib;
	if (checksum_pending(skb) ||
	    !ready(skb, skb->ingress_ifindex, &orig, r, data_len, -CHANNEL_HEADER, &fib))
		return TC_PASS_UP;
	// Take the 4 bytes after the IP header out (the UDP ports); the UDP
	// header is written again over the rest of it and the ChannelData
	// header.
	if (bpf_skb_adjust_room(skb, -CHANNEL_HEADER, BPF_ADJ_ROOM_NET, 0))
		return TC_PASS_UP;                // refused before changing anything
	void *end = (void *)(long)skb->data_end;
	f = (void *)(long)skb->data;
	if ((void *)(f + 1) > end)
		return TC_ACT_SHOT;
	const __u32 size = sizeof(struct iphdr) + sizeof(struct udphdr);
	struct l3l4 before = {};
	__builtin_memcpy(&before, &f->ip, size);
	to_peer_headers(f, &orig, r, &fib, data_len);
	tc_checksum(skb, &before, &f->ip, size);
	count(r, data_len);
	return tc_send(&fib);
}

static __always_inline int tc_to_client(struct __sk_buff *skb, struct frame *f, struct route *r,
					__u16 data_len)
{
	// Copied first: checksum_pending changes (and puts back) a byte,
	// after which the packet must be read again.
	struct frame orig;
	__builtin_memcpy(&orig, f, sizeof(orig));
	struct bpf_fib_lookup fib;
	if (checksum_pending(skb) ||
	    !ready(skb, skb->ingress_ifindex, &orig, r, data_len, CHANNEL_HEADER, &fib))
		return TC_PASS_UP;
	// 4 bytes (zeros) after the IP header: the new UDP header takes them
	// and the old ports, the ChannelData header the old length and
	// checksum.
	if (bpf_skb_adjust_room(skb, CHANNEL_HEADER, BPF_ADJ_ROOM_NET, 0))
		return TC_PASS_UP;
	void *end = (void *)(long)skb->data_end;
	f = (void *)(long)skb->data;
	if ((void *)f + sizeof(struct ethhdr) + sizeof(struct l3l4) > end)
		return TC_ACT_SHOT;
	struct l3l4 before = {};
	__builtin_memcpy(&before, &f->ip, sizeof(before));
	to_client_headers(f, (__u8 *)(f + 1), &orig, r, &fib, data_len);
	tc_checksum(skb, &before, &f->ip, sizeof(struct l3l4));
	count(r, data_len);
	return tc_send(&fib);
}

SEC("classifier")
int edgeice_relay_tc(struct __sk_buff *skb)
{
	// An skb may hold only part of a packet in its linear area, the one
	// packet pointers reach: the headers must be there. Pulling changes
	// nothing about the packet itself.
	const __u32 headers = sizeof(struct frame) + CHANNEL_HEADER;
	if (skb->len >= headers && (void *)(long)skb->data + headers > (void *)(long)skb->data_end)
		bpf_skb_pull_data(skb, headers);
	// A GSO packet stands for several datagrams; a VLAN tag taken out by
	// the driver would be lost on the way out.
	if (skb->gso_size || skb->vlan_present)
		return TC_PASS_UP;
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct frame *f = plain_udp(data, end, skb->len);
	if (!f)
		return TC_PASS_UP;
	__u16 data_len;
	struct route *r = channel_route(f, end, &data_len);
	int to_peer = r != NULL;
	if (!r)
		r = peer_route(f, &data_len);
	if (!r)
		return TC_PASS_UP;
	f = tc_checksum_ok(skb, f);
	if (!f)
		return TC_PASS_UP;
	if (to_peer)
		return tc_to_peer(skb, f, r, data_len);
	return tc_to_client(skb, f, r, data_len);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
