// SPDX-License-Identifier: MIT OR Apache-2.0
//
// relay_xdp: steers the media flows the relay knows into its AF_XDP sockets.
//
// For every frame on the interface:
//   Ethernet [802.1Q] -> IPv4 (no options, not a fragment) | IPv6 (UDP as next header)
//   -> UDP -> look up (destination address, destination port) in `flows`.
// A hit whose source could never be a media peer on the wire -- loopback, unspecified,
// multicast, broadcast/240/4, link-local, or one of the relay's own addresses
// (`own_addrs`) -- is dropped: steered frames bypass the kernel's martian and rp_filter
// checks, which would have dropped them on the socket path.
// A hit that is not RTP/RTCP by its first payload byte (STUN, DTLS, empty, ...) returns
// XDP_PASS: the relay's socket path answers or drops it (RFC 7983 demultiplexing).
// Any other hit is redirected to the AF_XDP socket bound to the receiving queue (`xsks`);
// everything else -- SSH, SIP, ng, ARP, ICMP, DNS, fragments, anything we do not
// understand -- returns XDP_PASS and the kernel handles it as if we were not here.
// If no socket is bound to the queue, bpf_redirect_map falls back to XDP_PASS and the
// relay's ordinary UDP socket (io_uring backend) gets the packet.
//
// Built by backend/build.rs with `clang -O2 -g -target bpf`; loaded by relayd through aya.
// No libbpf headers needed: the few definitions we use are below. The map keys and values
// relayd reads and writes are in relay_abi.h, checked against their Rust twins at build
// time (backend/src/xdp/abi.rs).

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>

#include "relay_abi.h"

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int(*name)[val]
#define __type(name, val) typeof(val) *name
#undef __always_inline
#define __always_inline inline __attribute__((always_inline))

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)BPF_FUNC_map_lookup_elem;
static long (*bpf_redirect_map)(void *map, __u64 key, __u64 flags) = (void *)BPF_FUNC_redirect_map;

// The relay's media sockets, each with what to check before steering (relay_abi.h).
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 262144);
	__type(key, struct flow_key);
	__type(value, struct flow_val);
} flows SEC(".maps");

// The relay's own addresses (key of `own_addrs`; value unused), filled by relayd at start.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, OWN_ADDRS_MAX);
	__type(key, struct own_key);
	__type(value, __u8);
} own_addrs SEC(".maps");

// settings[0]: SETTING_LOCAL_SOURCES (relay_abi.h) or 0.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} settings SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

// Per-CPU counters indexed by enum relay_stat (relay_abi.h), summed by relayd for /metrics.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &idx);
	if (v)
		*v += 1; // per-CPU: no atomic needed
}

static __always_inline int bytes_eq(const __u8 *a, const __u8 *b, int n)
{
#pragma unroll
	for (int i = 0; i < 16; i++)
		if (i < n && a[i] != b[i])
			return 0;
	return 1;
}

// Whether `a` (IPv4) can never be a media peer's source: 0/8, 127/8, 169.254/16,
// 224/4 (multicast), 240/4 and 255.255.255.255.
static __always_inline int martian4(const __u8 *a, int local_ok)
{
	if (a[0] == 127)
		return !local_ok;
	return a[0] == 0 || a[0] >= 224 || (a[0] == 169 && a[1] == 254);
}

// The same for IPv6: ::, ::1, ff00::/8, fe80::/10, and IPv4-mapped forms of the above.
static __always_inline int martian6(const __u8 *a, int local_ok)
{
	int zero = 1;
#pragma unroll
	for (int i = 0; i < 10; i++)
		if (a[i])
			zero = 0;
	if (zero && a[10] == 0xff && a[11] == 0xff)
		return martian4(a + 12, local_ok);
	if (zero && !a[10] && !a[11] && !a[12] && !a[13] && !a[14] && a[15] <= 1)
		return a[15] == 0 || !local_ok;
	return a[0] == 0xff || (a[0] == 0xfe && (a[1] & 0xc0) == 0x80);
}

static __always_inline int martian(__u8 family, const __u8 *saddr)
{
	__u32 zero = 0;
	__u32 *set = bpf_map_lookup_elem(&settings, &zero);
	int local_ok = set && (*set & SETTING_LOCAL_SOURCES);
	struct own_key k = {};

	if (family == 4 ? martian4(saddr, local_ok) : martian6(saddr, local_ok))
		return 1;
	if (local_ok)
		return 0;
	k.family = family;
	__builtin_memcpy(k.addr, saddr, 16);
	return bpf_map_lookup_elem(&own_addrs, &k) != 0;
}

struct vlan_hdr {
	__be16 tci;
	__be16 proto;
};

SEC("xdp")
int relay_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct flow_key key = {};
	__u8 saddr[16] = {};
	__be16 sport;
	void *l4;
	__u16 proto;

	if ((void *)(eth + 1) > end) {
		count(STAT_PASS_UNPARSED);
		return XDP_PASS;
	}
	proto = eth->h_proto;
	l4 = eth + 1;
	if (proto == __constant_htons(ETH_P_8021Q) || proto == __constant_htons(ETH_P_8021AD)) {
		struct vlan_hdr *vh = l4;
		if ((void *)(vh + 1) > end) {
			count(STAT_PASS_UNPARSED);
			return XDP_PASS;
		}
		proto = vh->proto;
		l4 = vh + 1;
	}

	if (proto == __constant_htons(ETH_P_IP)) {
		struct iphdr *ip = l4;
		if ((void *)(ip + 1) > end) {
			count(STAT_PASS_UNPARSED);
			return XDP_PASS;
		}
		if (ip->protocol != IPPROTO_UDP) {
			count(STAT_PASS_OTHER);
			return XDP_PASS;
		}
		// options or fragments: let the kernel reassemble and deliver to the socket
		if (ip->ihl != 5 || ip->version != 4 || (ip->frag_off & __constant_htons(0x3fff))) {
			count(STAT_PASS_UNPARSED);
			return XDP_PASS;
		}
		key.family = 4;
		__builtin_memcpy(key.addr, &ip->daddr, 4);
		__builtin_memcpy(saddr, &ip->saddr, 4);
		l4 = ip + 1;
	} else if (proto == __constant_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = l4;
		if ((void *)(ip6 + 1) > end) {
			count(STAT_PASS_UNPARSED);
			return XDP_PASS;
		}
		if (ip6->nexthdr != IPPROTO_UDP) {
			// TCP, ICMPv6 (neighbour discovery!), or an extension header we do not walk
			count(STAT_PASS_OTHER);
			return XDP_PASS;
		}
		key.family = 6;
		__builtin_memcpy(key.addr, &ip6->daddr, 16);
		__builtin_memcpy(saddr, &ip6->saddr, 16);
		l4 = ip6 + 1;
	} else {
		count(STAT_PASS_OTHER);
		return XDP_PASS;
	}

	struct udphdr *udp = l4;
	if ((void *)(udp + 1) > end) {
		count(STAT_PASS_UNPARSED);
		return XDP_PASS;
	}
	key.port = udp->dest;
	sport = udp->source;

	struct flow_val *fv = bpf_map_lookup_elem(&flows, &key);
	if (!fv) {
		count(STAT_PASS_NO_FLOW);
		return XDP_PASS;
	}
	if (martian(key.family, saddr)) {
		count(STAT_DROP_MARTIAN);
		return XDP_DROP;
	}
	// RFC 7983: only RTP/RTCP (first payload byte 128..=191) takes the fast path. STUN
	// (ICE checks), DTLS (handshakes) and anything else go to the relay's UDP socket,
	// where the flow table answers or drops them off the AF_XDP workers' hot loop; the
	// workers forward SRTP once the handshake's keys are in the shared flow table.
	__u8 *first = (void *)(udp + 1);
	if ((void *)(first + 1) > end || *first < 128 || *first > 191) {
		count(STAT_PASS_NOT_MEDIA);
		return XDP_PASS;
	}
	if ((fv->flags & FLOW_STRICT_SOURCE) && fv->peer_port) {
		if (fv->peer_port != sport || !bytes_eq(fv->peer_addr, saddr, key.family == 4 ? 4 : 16)) {
			count(STAT_DROP_SOURCE);
			return XDP_DROP;
		}
	}

	// falls back to XDP_PASS (the low bits of flags) when the queue has no socket
	long act = bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
	count(act == XDP_REDIRECT ? STAT_STEERED : STAT_PASS_NO_SOCKET);
	return act;
}

char _license[] SEC("license") = "Dual MIT/GPL";
