// SPDX-License-Identifier: MIT OR Apache-2.0
//
// ceiling_xdp: the benchmark's ceiling, not part of the relay. It does in the kernel what
// relayd's AF_XDP workers do in userspace for a plain RTP flow -- match the destination
// port, rewrite Ethernet/IPv4/UDP headers towards the other leg, redirect out of the
// other interface -- with no latching, statistics or SRTP. Whatever rate this reaches on
// a veth topology is the most any relay can forward there.
//
// Also holds `xdp_pass`, a program that only returns XDP_PASS: veth accepts redirected
// frames (XDP_REDIRECT, AF_XDP transmit in native mode) only when its peer runs XDP.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int(*name)[val]
#define __type(name, val) typeof(val) *name

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)BPF_FUNC_map_lookup_elem;
static long (*bpf_redirect)(__u32 ifindex, __u64 flags) = (void *)BPF_FUNC_redirect;

struct fwd {
	__u32 ifindex; // out of this interface
	__u8 dmac[6];
	__u8 smac[6];
	__be32 saddr;  // relay's egress address
	__be32 daddr;  // the other leg's peer
	__be16 sport;  // relay's egress port
	__be16 dport;
};

struct fwd_key {
	__be32 addr; // the relay's address and port the packet was sent to
	__be16 port;
	__u16 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct fwd_key);
	__type(value, struct fwd);
} ceiling_fwd SEC(".maps");

static inline __u16 csum_fold(__u32 s)
{
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return ~s;
}

SEC("xdp")
int ceiling(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp = (void *)(ip + 1);

	if ((void *)(udp + 1) > end || eth->h_proto != __constant_htons(ETH_P_IP) || ip->ihl != 5 ||
	    ip->protocol != IPPROTO_UDP)
		return XDP_PASS;
	struct fwd_key key = {.addr = ip->daddr, .port = udp->dest};
	struct fwd *f = bpf_map_lookup_elem(&ceiling_fwd, &key);
	if (!f)
		return XDP_PASS;
	__builtin_memcpy(eth->h_dest, f->dmac, 6);
	__builtin_memcpy(eth->h_source, f->smac, 6);
	ip->saddr = f->saddr;
	ip->daddr = f->daddr;
	ip->ttl = 64;
	ip->check = 0;
	__u32 s = 0;
	__u16 *w = (__u16 *)ip;
#pragma unroll
	for (int i = 0; i < 10; i++)
		s += w[i];
	ip->check = csum_fold(s);
	udp->source = f->sport;
	udp->dest = f->dport;
	udp->check = 0; // optional over IPv4
	return bpf_redirect(f->ifindex, 0);
}

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char _license[] SEC("license") = "Dual MIT/GPL";
