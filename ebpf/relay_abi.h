// SPDX-License-Identifier: MIT OR Apache-2.0
//
// relay_abi.h: what relay_xdp.c and relayd share through the BPF maps -- the key and value
// layouts, flag bits, map sizes and counter indices. relayd's copies are in
// backend/src/xdp/abi.rs; backend/build.rs compiles ebpf/abi_layout.c against this header
// and the Rust side asserts every size, offset and value at compile time, so a change on
// one side alone fails the build.

#ifndef RELAY_ABI_H
#define RELAY_ABI_H

#include <linux/types.h>

// Key of `flows`: the relay's own media socket.
struct flow_key {
	__u8 family; // 4 or 6
	__u8 pad;
	__be16 port; // network byte order, as in the UDP header
	__u8 addr[16]; // IPv4 in the first 4 bytes, rest zero
};

// flow_val.flags: drop what does not come from peer.
#define FLOW_STRICT_SOURCE 1

// Value of `flows`: what the program checks before steering.
struct flow_val {
	__u32 flags;
	__be16 peer_port;
	__u16 pad;
	__u8 peer_addr[16];
};

// Key of `own_addrs` (the relay's own addresses; value unused).
struct own_key {
	__u8 family; // 4 or 6
	__u8 pad[3];
	__u8 addr[16]; // IPv4 in the first 4 bytes, rest zero
};

#define OWN_ADDRS_MAX 1024

// settings[0]: the interface is loopback itself (a lab relay), where loopback and own
// sources are normal.
#define SETTING_LOCAL_SOURCES 1

// Indices of the per-CPU `stats` array.
enum relay_stat {
	STAT_STEERED = 0,     // redirected into an AF_XDP socket
	STAT_PASS_OTHER,      // not IPv4/IPv6 + UDP: ARP, ICMP, TCP, ...
	STAT_PASS_NO_FLOW,    // UDP, but not to a relay media socket (SIP, ng, DNS, ...)
	STAT_PASS_NO_SOCKET,  // a media flow, but no AF_XDP socket on this queue
	STAT_PASS_UNPARSED,   // truncated headers, IPv4 options or fragments, IPv6 extension headers
	STAT_DROP_SOURCE,     // strict source: not from the flow's peer
	STAT_DROP_MARTIAN,    // from loopback, unspecified, multicast, broadcast, link-local, or us
	STAT_PASS_NOT_MEDIA,  // to a media socket, but not RTP/RTCP by the first byte: STUN, DTLS, empty
	STAT_MAX,
};

#endif
