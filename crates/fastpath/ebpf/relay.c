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
// Over IPv4 and over IPv6 alike, a client, its relayed address and its
// peer all of one family (the headers keep their size). Over IPv6 the UDP
// checksum is mandatory: it is verified on the way in (a datagram without
// one goes up, for the stack to drop) and carried over incrementally to the
// rewritten datagram on the way out.
//
// Anything else — IP options, IPv6 extension headers (a fragment header
// among them), fragments, TCP, STUN, Send and Data
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
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define AF_INET 2
#define AF_INET6 10
// The family field of the maps' keys.
#define FAMILY_IPV4 4
#define FAMILY_IPV6 6
#define CHANNEL_HEADER 4
#define MAX_ENTRIES 65536
// The UDP checksum is summed CSUM_CHUNK bytes at a time, for datagrams of
// at most CSUM_CHUNK * CSUM_CHUNKS bytes (UDP header included); longer
// ones (jumbo frames) go up unchecked.
#define CSUM_CHUNK 64
#define CSUM_CHUNKS 64
// The largest IPv4 datagram, and the largest IPv6 payload (no jumbograms).
#define IP_MAX_LEN 0xffff

// An address as the packet carries it (network order): IPv4 in the first
// word and zeros after it, or IPv6's 16 bytes.
struct addr {
	__u32 w[4];
};

// Client -> peer: which client transport and channel.
struct to_peer_key {
	struct addr client_ip;
	struct addr server_ip;
	__u16 client_port; // network order
	__u16 server_port;
	__u16 channel;     // host order
	__u16 family;      // FAMILY_IPV4 or FAMILY_IPV6
};

// Peer -> client: which peer and relayed address.
struct to_client_key {
	struct addr peer_ip;
	struct addr relay_ip;
	__u16 peer_port;
	__u16 relay_port;
	__u16 family;
	__u16 pad;
};

// Where a packet goes once rewritten, and what went that way.
struct route {
	struct addr from_ip; // new source: relayed address / server's address
	struct addr to_ip;   // new destination: peer / client
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

// Headers of a plain IPv6/UDP frame: no extension header.
struct frame6 {
	struct ethhdr eth;
	struct ipv6hdr ip;
	struct udphdr udp;
} __attribute__((packed));

// The IPv4 and UDP headers, and the ChannelData header after them: the
// part of a frame whose checksum an skb may carry (see tc_checksum).
struct l3l4 {
	struct iphdr ip;
	struct udphdr udp;
	__u8 channel[CHANNEL_HEADER];
} __attribute__((packed));

// The same over IPv6.
struct l3l4_6 {
	struct ipv6hdr ip;
	struct udphdr udp;
	__u8 channel[CHANNEL_HEADER];
} __attribute__((packed));

// What of a UDP checksum's input a relayed datagram changes: the
// pseudo-header's addresses and length, the ports and the length, and the
// ChannelData header (zeros on the side that has none). The order of the
// 16-bit words does not matter to the sum.
struct csum_parts {
	struct addr src;
	struct addr dst;
	__u32 pseudo_len;  // the UDP length, as the IPv6 pseudo-header's 32 bits
	__u16 src_port;
	__u16 dst_port;
	__u16 udp_len;
	__u16 zero;
	__u8 channel[CHANNEL_HEADER];
};

// ---- Shared by both hooks ------------------------------------------------

// The UDP header of either family's frame (both have it at the end; the
// frames are packed, so it is reached by its offset).
#define udp_of(f) ((struct udphdr *)((void *)(f) + sizeof(*(f)) - sizeof(struct udphdr)))
// Where an IPv6 frame's addresses are.
#define SADDR6_AT __builtin_offsetof(struct frame6, ip.saddr)
#define DADDR6_AT __builtin_offsetof(struct frame6, ip.daddr)

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

// An IPv4 address as a key holds it.
static __always_inline struct addr addr4(__u32 ip)
{
	struct addr a = {.w = {ip, 0, 0, 0}};
	return a;
}

// An IPv6 address as a key holds it.
static __always_inline struct addr addr6(const void *ip)
{
	struct addr a;
	__builtin_memcpy(&a, ip, sizeof(a));
	return a;
}

// Client -> peer: the route of ChannelData on an installed channel, and
// its data length in *data_len; NULL for anything else. `udp` is the UDP
// header, its datagram from `src` to `dst` of `family`.
static __always_inline struct route *channel_route(struct udphdr *udp, void *end,
						   struct addr src, struct addr dst,
						   __u16 family, __u16 *data_len)
{
	__u8 *payload = (__u8 *)(udp + 1);
	if ((void *)(payload + CHANNEL_HEADER) > end)
		return NULL;
	if ((payload[0] & 0xc0) != 0x40)
		return NULL;                      // STUN, or not TURN at all
	__u16 udp_len = bpf_ntohs(udp->len);
	__u16 len = ((__u16)payload[2] << 8) | payload[3];
	// Exactly header + data: padded or short frames go the socket way.
	if (udp_len != sizeof(struct udphdr) + CHANNEL_HEADER + len)
		return NULL;
	struct to_peer_key key = {
		.client_ip = src,
		.server_ip = dst,
		.client_port = udp->source,
		.server_port = udp->dest,
		.channel = ((__u16)payload[0] << 8) | payload[1],
		.family = family,
	};
	*data_len = len;
	return bpf_map_lookup_elem(&to_peer, &key);
}

// Peer -> client: the route of a datagram from a bound peer to a relayed
// address, and its length in *data_len; NULL for anything else. `ip_len`
// is the length field the ChannelData header will add 4 to (IPv4's total
// length, IPv6's payload length).
static __always_inline struct route *peer_route(struct udphdr *udp, struct addr src,
						struct addr dst, __u16 family, __u16 ip_len,
						__u16 *data_len)
{
	struct to_client_key key = {
		.peer_ip = src,
		.relay_ip = dst,
		.peer_port = udp->source,
		.relay_port = udp->dest,
		.family = family,
	};
	// With the ChannelData header its length must still fit (the socket
	// path cannot send it either: it goes up and is dropped there).
	if ((__u32)ip_len + CHANNEL_HEADER > IP_MAX_LEN)
		return NULL;
	*data_len = bpf_ntohs(udp->len) - sizeof(struct udphdr);
	return bpf_map_lookup_elem(&to_client, &key);
}

// Whether the UDP datagram at `udp_header`, summed onto its pseudo-header's
// `sum`, checks: it must be readable whole before `end`, and at most
// CSUM_CHUNK * CSUM_CHUNKS bytes (a longer one counts as wrong, so that it
// goes up for the stack to check).
static __always_inline int segment_sum_ok(__u64 sum, struct udphdr *udp_header, void *end)
{
	__u32 udp_len = bpf_ntohs(udp_header->len);
	if (udp_len > CSUM_CHUNK * CSUM_CHUNKS)
		return 0;
	// The UDP header and data, summed as 16-bit words in the order they
	// sit in memory (as the kernel does), after the pseudo-header: the
	// total, folded, is all ones when the checksum field is right.
	__u8 *udp = (__u8 *)udp_header;
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

// Whether the datagram's UDP checksum is right, or absent (zero: optional
// over IPv4). A datagram too long to check here counts as wrong, so that
// it goes up for the stack to check. The whole datagram must be readable
// between `f` and `end` (plain_udp checked that it arrived whole; on TC
// it must also be in the linear area).
static __always_inline int udp_checksum_ok(struct frame *f, void *end)
{
	if (!f->udp.check)
		return 1;
	// The pseudo-header's part of the sum.
	__u64 sum = (__u64)f->ip.saddr + f->ip.daddr + bpf_htons(IPPROTO_UDP) + f->udp.len;
	return segment_sum_ok(sum, udp_of(f), end);
}

// The same over IPv6, where the checksum is mandatory: zero is wrong (the
// stack drops such a datagram).
static __always_inline int udp6_checksum_ok(struct frame6 *f, void *end)
{
	if (!f->udp.check)
		return 0;
	// The pseudo-header: both addresses, the length in 32 bits (its upper
	// half zero) and the next header in 32 bits.
	__u64 sum = bpf_htons(IPPROTO_UDP) + f->udp.len;
#pragma unroll
	for (int i = 0; i < 4; i++)
		sum += (__u64)f->ip.saddr.in6_u.u6_addr32[i] + f->ip.daddr.in6_u.u6_addr32[i];
	return segment_sum_ok(sum, udp_of(f), end);
}

// Finds the next hop of `r`'s rewritten packet: its interface and MAC
// addresses. Asked before anything is rewritten, so that a packet the
// kernel cannot route here goes up to user space unchanged. The kernel
// answers only where forwarding of the family is on for the interface
// (net.ipv4.conf.IF.forwarding, net.ipv6.conf.IF.forwarding): user space
// checks that before relaying a family here. `tot_len` is the rewritten
// packet's IP length, header included. `ctx` is either hook's context:
// the helper takes both.
static __always_inline int next_hop(void *ctx, __u32 ifindex, const struct route *r, int ipv6,
				    __u32 tot_len, struct bpf_fib_lookup *fib)
{
	__builtin_memset(fib, 0, sizeof(*fib));
	fib->l4_protocol = IPPROTO_UDP;
	fib->tot_len = tot_len;
	fib->ifindex = ifindex;
	if (ipv6) {
		fib->family = AF_INET6;
		__builtin_memcpy(fib->ipv6_src, &r->from_ip, sizeof(fib->ipv6_src));
		__builtin_memcpy(fib->ipv6_dst, &r->to_ip, sizeof(fib->ipv6_dst));
	} else {
		fib->family = AF_INET;
		fib->ipv4_src = r->from_ip.w[0];
		fib->ipv4_dst = r->to_ip.w[0];
	}
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
	f->ip.saddr = r->from_ip.w[0];
	f->ip.daddr = r->to_ip.w[0];
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

// The ChannelData header of `r`'s channel for `data_len` bytes of data.
static __always_inline void channel_header(__u8 *header, const struct route *r, __u16 data_len)
{
	header[0] = r->channel >> 8;
	header[1] = r->channel & 0xff;
	header[2] = data_len >> 8;
	header[3] = data_len & 0xff;
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
	channel_header(header, r, data_len);
}

// ---- IPv6 headers ------------------------------------------------------------

// The checksum parts of a datagram from `src` to `dst` (addresses and
// ports) of `udp_len` bytes, with `channel` (or zeros) after its UDP header.
static __always_inline void csum_parts_of(struct csum_parts *p, const struct addr *src,
					  const struct addr *dst, __u16 src_port, __u16 dst_port,
					  __u32 udp_len, const __u8 *channel)
{
	__builtin_memset(p, 0, sizeof(*p));
	__builtin_memcpy(&p->src, src, sizeof(p->src));
	__builtin_memcpy(&p->dst, dst, sizeof(p->dst));
	p->pseudo_len = bpf_htonl(udp_len);
	p->src_port = src_port;
	p->dst_port = dst_port;
	p->udp_len = bpf_htons(udp_len);
	if (channel)
		__builtin_memcpy(p->channel, channel, CHANNEL_HEADER);
}

// The UDP checksum of the rewritten datagram, from the verified `old`
// one: the same data, with what changed taken out and put in (RFC 1624:
// HC' = ~(~HC + ~m + m')). 0 if it cannot be worked out.
static __always_inline __u16 carried_checksum(__u16 old, struct csum_parts *before,
					      struct csum_parts *after)
{
	__s64 diff = bpf_csum_diff((__be32 *)before, sizeof(*before), (__be32 *)after,
				   sizeof(*after), (__u16)~old);
	if (diff < 0)
		return 0;
	__u64 sum = (__u32)diff;
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	__u16 check = ~sum & 0xffff;
	// All zeros means "no checksum", which IPv6 does not allow; in one's
	// complement all ones is the same sum.
	return check ? check : 0xffff;
}

// The new UDP checksum of a datagram `orig` rewritten along `r`, with its
// ChannelData header taken off (`to_peer`) or put on (`header`).
static __always_inline __u16 checksum6(const struct frame6 *orig, const __u8 *old_header,
				       const struct route *r, const __u8 *new_header,
				       __u32 new_udp_len)
{
	struct csum_parts before, after;
	struct addr src = addr6((void *)orig + SADDR6_AT), dst = addr6((void *)orig + DADDR6_AT);
	csum_parts_of(&before, &src, &dst, orig->udp.source, orig->udp.dest,
		      bpf_ntohs(orig->udp.len), old_header);
	csum_parts_of(&after, &r->from_ip, &r->to_ip, r->from_port, r->to_port, new_udp_len,
		      new_header);
	return carried_checksum(orig->udp.check, &before, &after);
}

// The new MACs, addresses, ports, lengths and UDP checksum of a rewritten
// IPv6 frame whose other header fields are those of `orig`.
static __always_inline void rewrite6(struct frame6 *f, const struct frame6 *orig,
				     const struct route *r, const struct bpf_fib_lookup *fib,
				     __u32 udp_len, __u16 check)
{
	__builtin_memcpy(f, orig, sizeof(*f));
	__builtin_memcpy(f->eth.h_dest, fib->dmac, ETH_ALEN);
	__builtin_memcpy(f->eth.h_source, fib->smac, ETH_ALEN);
	__builtin_memcpy(&f->ip.saddr, &r->from_ip, sizeof(f->ip.saddr));
	__builtin_memcpy(&f->ip.daddr, &r->to_ip, sizeof(f->ip.daddr));
	f->ip.payload_len = bpf_htons(udp_len);
	f->udp.source = r->from_port;
	f->udp.dest = r->to_port;
	f->udp.len = bpf_htons(udp_len);
	f->udp.check = check;
}

// ---- Shared again --------------------------------------------------------------

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
// routable as a packet of `tot_len` bytes (IP header included, the
// ChannelData header already taken off or put on), then admitted. Nothing
// has been changed yet when it says no.
static __always_inline int ready(void *ctx, __u32 ifindex, const struct route *r, int ipv6,
				 __u32 tot_len, __u16 data_len, struct bpf_fib_lookup *fib)
{
	return next_hop(ctx, ifindex, r, ipv6, tot_len, fib) == BPF_FIB_LKUP_RET_SUCCESS &&
	       admit(r, data_len);
}

static __always_inline void count(struct route *r, __u16 data_len)
{
	__sync_fetch_and_add(&r->packets, 1);
	__sync_fetch_and_add(&r->bytes, data_len);
}

// The headers of a plain IPv6/UDP frame of `frame_len` bytes starting at
// `data`, or NULL: UDP right after the IPv6 header (an extension header,
// a fragment header among them, goes up), not a jumbogram, lengths that
// agree, the datagram whole in the frame.
static __always_inline struct frame6 *plain_udp6(void *data, void *end, __u32 frame_len)
{
	struct frame6 *f = data;
	if ((void *)(f + 1) > end)
		return NULL;
	if (f->eth.h_proto != bpf_htons(ETH_P_IPV6))
		return NULL;
	if (f->ip.version != 6 || f->ip.nexthdr != IPPROTO_UDP)
		return NULL;
	__u16 payload_len = bpf_ntohs(f->ip.payload_len);
	__u16 udp_len = bpf_ntohs(f->udp.len);
	if (udp_len < sizeof(struct udphdr) || payload_len != udp_len)
		return NULL;                      // a jumbogram's are 0
	if (sizeof(struct ethhdr) + sizeof(struct ipv6hdr) + (__u32)payload_len > frame_len)
		return NULL;                      // claims more than arrived
	return f;
}

// Either way, the route of an IPv6 frame and its data length; NULL for
// anything else. *to_peer says which way.
static __always_inline struct route *route6(struct frame6 *f, void *end, __u16 *data_len,
					    int *to_peer)
{
	struct addr src = addr6((void *)f + SADDR6_AT), dst = addr6((void *)f + DADDR6_AT);
	struct route *r = channel_route(udp_of(f), end, src, dst, FAMILY_IPV6, data_len);
	*to_peer = r != NULL;
	if (!r)
		r = peer_route(udp_of(f), src, dst, FAMILY_IPV6, bpf_ntohs(f->ip.payload_len),
			       data_len);
	return r;
}

// The same for an IPv4 frame.
static __always_inline struct route *route4(struct frame *f, void *end, __u16 *data_len,
					    int *to_peer)
{
	struct addr src = addr4(f->ip.saddr), dst = addr4(f->ip.daddr);
	struct route *r = channel_route(udp_of(f), end, src, dst, FAMILY_IPV4, data_len);
	*to_peer = r != NULL;
	if (!r)
		r = peer_route(udp_of(f), src, dst, FAMILY_IPV4, bpf_ntohs(f->ip.tot_len), data_len);
	return r;
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
	if (!ready(ctx, ctx->ingress_ifindex, r, 0, bpf_ntohs(f->ip.tot_len) - CHANNEL_HEADER,
		   data_len, &fib))
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
	// In 32 bits: peer_route made sure the result fits in 16.
	if (!ready(ctx, ctx->ingress_ifindex, r, 0,
		   (__u32)bpf_ntohs(f->ip.tot_len) + CHANNEL_HEADER, data_len, &fib))
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

static __always_inline int xdp_to_peer6(struct xdp_md *ctx, struct frame6 *f, struct route *r,
					__u16 data_len)
{
	__u32 udp_len = sizeof(struct udphdr) + data_len;
	struct frame6 orig;
	__builtin_memcpy(&orig, f, sizeof(orig));
	__u8 *old_header = (__u8 *)(f + 1);
	void *end = (void *)(long)ctx->data_end;
	if ((void *)(old_header + CHANNEL_HEADER) > end)
		return XDP_PASS;
	__u8 header[CHANNEL_HEADER];
	__builtin_memcpy(header, old_header, CHANNEL_HEADER);
	// Worked out before `ready`, which spends the loan: a packet that goes
	// up has spent nothing.
	__u16 check = checksum6(&orig, header, r, NULL, udp_len);
	struct bpf_fib_lookup fib;
	if (!check || !ready(ctx, ctx->ingress_ifindex, r, 1, sizeof(struct ipv6hdr) + udp_len,
			     data_len, &fib))
		return XDP_PASS;
	if (bpf_xdp_adjust_head(ctx, CHANNEL_HEADER))
		return XDP_ABORTED;
	end = (void *)(long)ctx->data_end;
	f = (void *)(long)ctx->data;
	if ((void *)(f + 1) > end)
		return XDP_ABORTED;
	rewrite6(f, &orig, r, &fib, udp_len, check);
	count(r, data_len);
	return xdp_send(ctx, &fib);
}

static __always_inline int xdp_to_client6(struct xdp_md *ctx, struct frame6 *f, struct route *r,
					  __u16 data_len)
{
	// In 32 bits: peer_route made sure the result fits in 16.
	__u32 udp_len = sizeof(struct udphdr) + CHANNEL_HEADER + (__u32)data_len;
	struct frame6 orig;
	__builtin_memcpy(&orig, f, sizeof(orig));
	__u8 header[CHANNEL_HEADER];
	channel_header(header, r, data_len);
	__u16 check = checksum6(&orig, NULL, r, header, udp_len);
	struct bpf_fib_lookup fib;
	if (!check || !ready(ctx, ctx->ingress_ifindex, r, 1, sizeof(struct ipv6hdr) + udp_len,
			     data_len, &fib))
		return XDP_PASS;
	if (bpf_xdp_adjust_head(ctx, -CHANNEL_HEADER))
		return XDP_PASS;                  // no headroom: nothing changed yet
	void *end = (void *)(long)ctx->data_end;
	f = (void *)(long)ctx->data;
	__u8 *at = (__u8 *)(f + 1);
	if ((void *)(at + CHANNEL_HEADER) > end)
		return XDP_ABORTED;
	rewrite6(f, &orig, r, &fib, udp_len, check);
	__builtin_memcpy(at, header, CHANNEL_HEADER);
	count(r, data_len);
	return xdp_send(ctx, &fib);
}

static __always_inline int xdp_relay4(struct xdp_md *ctx, void *data, void *end)
{
	struct frame *f = plain_udp(data, end, end - data);
	if (!f)
		return XDP_PASS;
	__u16 data_len;
	int to_peer;
	struct route *r = route4(f, end, &data_len, &to_peer);
	// Only a datagram the stack would take is relayed: one with a wrong
	// checksum goes up, to be dropped there.
	if (!r || !udp_checksum_ok(f, end))
		return XDP_PASS;
	if (to_peer)
		return xdp_to_peer(ctx, f, r, data_len);
	return xdp_to_client(ctx, f, r, data_len);
}

static __always_inline int xdp_relay6(struct xdp_md *ctx, void *data, void *end)
{
	struct frame6 *f = plain_udp6(data, end, end - data);
	if (!f)
		return XDP_PASS;
	__u16 data_len;
	int to_peer;
	struct route *r = route6(f, end, &data_len, &to_peer);
	if (!r || !udp6_checksum_ok(f, end))
		return XDP_PASS;
	if (to_peer)
		return xdp_to_peer6(ctx, f, r, data_len);
	return xdp_to_client6(ctx, f, r, data_len);
}

SEC("xdp")
int edgeice_relay(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return XDP_PASS;
	if (eth->h_proto == bpf_htons(ETH_P_IP))
		return xdp_relay4(ctx, data, end);
	if (eth->h_proto == bpf_htons(ETH_P_IPV6))
		return xdp_relay6(ctx, data, end);
	return XDP_PASS;
}

// ---- TC ingress --------------------------------------------------------------
//
// What goes up is returned as TC_ACT_UNSPEC rather than TC_ACT_OK: both
// leave the packet untouched on its way up the stack, but TC_ACT_OK would
// also skip the interface's other TC programs (the next tcx link, the
// next clsact filter), and the reason for attaching here is to coexist
// with them.
#define TC_PASS_UP TC_ACT_UNSPEC

// Where a frame's UDP checksum field is, over IPv4 and over IPv6.
#define UDP_CHECK_AT __builtin_offsetof(struct frame, udp.check)
#define UDP6_CHECK_AT __builtin_offsetof(struct frame6, udp.check)

// Whether the stack has yet to fill in this packet's UDP checksum
// (CHECKSUM_PARTIAL, as a veth or virtio peer hands over locally sent
// packets), the field being at `at`. Such a packet cannot be relayed
// here: the offload would write the checksum at the UDP header's old
// place, inside the moved headers.
// No helper reports the state, but one tells it apart: asked to replace
// 0 by 1 in the checksum field, not as a pseudo-header change,
// bpf_l4_csum_replace leaves a pending checksum alone and changes any
// other; the field is put back either way.
static __always_inline int checksum_pending(struct __sk_buff *skb, __u32 at)
{
	__u16 before, after;
	if (bpf_skb_load_bytes(skb, at, &before, sizeof(before)))
		return 1;
	if (bpf_l4_csum_replace(skb, at, 0, 1, sizeof(__u16)))
		return 1;
	if (bpf_skb_load_bytes(skb, at, &after, sizeof(after)))
		return 1;
	bpf_skb_store_bytes(skb, at, &before, sizeof(before), 0);
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

// The same over IPv6.
static __always_inline void tc_checksum6(struct __sk_buff *skb, const struct l3l4_6 *before,
					 const void *now, __u32 size)
{
	struct l3l4_6 after = {};
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

// The same over IPv6, where a zero checksum is wrong however the device
// saw it.
static __always_inline struct frame6 *tc_checksum6_ok(struct __sk_buff *skb, struct frame6 *f)
{
	if (!f->udp.check)
		return NULL;
	if (bpf_csum_level(skb, BPF_CSUM_LEVEL_QUERY) >= 0)
		return f;
	if (bpf_ntohs(f->udp.len) > CSUM_CHUNK * CSUM_CHUNKS)
		return NULL;
	if (bpf_skb_pull_data(skb, sizeof(struct ethhdr) + sizeof(struct ipv6hdr) +
					   bpf_ntohs(f->ip.payload_len)))
		return NULL;
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	f = plain_udp6(data, end, skb->len);
	if (!f || !udp6_checksum_ok(f, end))
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
	if (checksum_pending(skb, UDP_CHECK_AT) ||
	    !ready(skb, skb->ingress_ifindex, r, 0, bpf_ntohs(orig.ip.tot_len) - CHANNEL_HEADER,
		   data_len, &fib))
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
	if (checksum_pending(skb, UDP_CHECK_AT) ||
	    !ready(skb, skb->ingress_ifindex, r, 0,
		   (__u32)bpf_ntohs(orig.ip.tot_len) + CHANNEL_HEADER, data_len, &fib))
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

static __always_inline int tc_to_peer6(struct __sk_buff *skb, struct frame6 *f, struct route *r,
				       __u16 data_len)
{
	struct frame6 orig;
	__builtin_memcpy(&orig, f, sizeof(orig));
	__u8 header[CHANNEL_HEADER];
	__u8 *old_header = (__u8 *)(f + 1);
	if ((void *)(old_header + CHANNEL_HEADER) > (void *)(long)skb->data_end)
		return TC_PASS_UP;
	__builtin_memcpy(header, old_header, CHANNEL_HEADER);
	__u32 udp_len = sizeof(struct udphdr) + data_len;
	__u16 check = checksum6(&orig, header, r, NULL, udp_len);
	struct bpf_fib_lookup fib;
	if (!check || checksum_pending(skb, UDP6_CHECK_AT) ||
	    !ready(skb, skb->ingress_ifindex, r, 1, sizeof(struct ipv6hdr) + udp_len, data_len,
		   &fib))
		return TC_PASS_UP;
	if (bpf_skb_adjust_room(skb, -CHANNEL_HEADER, BPF_ADJ_ROOM_NET, 0))
		return TC_PASS_UP;
	void *end = (void *)(long)skb->data_end;
	f = (void *)(long)skb->data;
	if ((void *)(f + 1) > end)
		return TC_ACT_SHOT;
	const __u32 size = sizeof(struct ipv6hdr) + sizeof(struct udphdr);
	struct l3l4_6 before = {};
	__builtin_memcpy(&before, &f->ip, size);
	rewrite6(f, &orig, r, &fib, udp_len, check);
	tc_checksum6(skb, &before, &f->ip, size);
	count(r, data_len);
	return tc_send(&fib);
}

static __always_inline int tc_to_client6(struct __sk_buff *skb, struct frame6 *f,
					 struct route *r, __u16 data_len)
{
	struct frame6 orig;
	__builtin_memcpy(&orig, f, sizeof(orig));
	__u32 udp_len = sizeof(struct udphdr) + CHANNEL_HEADER + (__u32)data_len;
	__u8 header[CHANNEL_HEADER];
	channel_header(header, r, data_len);
	__u16 check = checksum6(&orig, NULL, r, header, udp_len);
	struct bpf_fib_lookup fib;
	if (!check || checksum_pending(skb, UDP6_CHECK_AT) ||
	    !ready(skb, skb->ingress_ifindex, r, 1, sizeof(struct ipv6hdr) + udp_len, data_len,
		   &fib))
		return TC_PASS_UP;
	if (bpf_skb_adjust_room(skb, CHANNEL_HEADER, BPF_ADJ_ROOM_NET, 0))
		return TC_PASS_UP;
	void *end = (void *)(long)skb->data_end;
	f = (void *)(long)skb->data;
	if ((void *)f + sizeof(struct ethhdr) + sizeof(struct l3l4_6) > end)
		return TC_ACT_SHOT;
	struct l3l4_6 before = {};
	__builtin_memcpy(&before, &f->ip, sizeof(before));
	rewrite6(f, &orig, r, &fib, udp_len, check);
	__builtin_memcpy((__u8 *)(f + 1), header, CHANNEL_HEADER);
	tc_checksum6(skb, &before, &f->ip, sizeof(struct l3l4_6));
	count(r, data_len);
	return tc_send(&fib);
}

// An skb may hold only part of a packet in its linear area, the one
// packet pointers reach: the first `headers` bytes must be there. Pulling
// changes nothing about the packet itself.
static __always_inline void tc_pull(struct __sk_buff *skb, __u32 headers)
{
	if (skb->len >= headers && (void *)(long)skb->data + headers > (void *)(long)skb->data_end)
		bpf_skb_pull_data(skb, headers);
}

static __always_inline int tc_relay4(struct __sk_buff *skb)
{
	tc_pull(skb, sizeof(struct frame) + CHANNEL_HEADER);
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct frame *f = plain_udp(data, end, skb->len);
	if (!f)
		return TC_PASS_UP;
	__u16 data_len;
	int to_peer;
	struct route *r = route4(f, end, &data_len, &to_peer);
	if (!r)
		return TC_PASS_UP;
	f = tc_checksum_ok(skb, f);
	if (!f)
		return TC_PASS_UP;
	if (to_peer)
		return tc_to_peer(skb, f, r, data_len);
	return tc_to_client(skb, f, r, data_len);
}

static __always_inline int tc_relay6(struct __sk_buff *skb)
{
	tc_pull(skb, sizeof(struct frame6) + CHANNEL_HEADER);
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct frame6 *f = plain_udp6(data, end, skb->len);
	if (!f)
		return TC_PASS_UP;
	__u16 data_len;
	int to_peer;
	struct route *r = route6(f, end, &data_len, &to_peer);
	if (!r)
		return TC_PASS_UP;
	f = tc_checksum6_ok(skb, f);
	if (!f)
		return TC_PASS_UP;
	if (to_peer)
		return tc_to_peer6(skb, f, r, data_len);
	return tc_to_client6(skb, f, r, data_len);
}

SEC("classifier")
int edgeice_relay_tc(struct __sk_buff *skb)
{
	// A GSO packet stands for several datagrams; a VLAN tag taken out by
	// the driver would be lost on the way out.
	if (skb->gso_size || skb->vlan_present)
		return TC_PASS_UP;
	if (skb->protocol == bpf_htons(ETH_P_IP))
		return tc_relay4(skb);
	if (skb->protocol == bpf_htons(ETH_P_IPV6))
		return tc_relay6(skb);
	return TC_PASS_UP;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
