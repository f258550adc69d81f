//! The kernel half of sipbeat, two ways to see SIP:
//!
//! - **mirror** (XDP): frames carrying SIP (a configured UDP/TCP port at
//!   either end, under VLAN tags and tunnels, over IPv4 or IPv6) and every
//!   IP fragment go to the AF_XDP socket of the frame's RX queue; the rest
//!   goes on to the kernel. It *takes* what it redirects, so it belongs on
//!   a SPAN/TAP port that carries no traffic of the node's own. Redirects
//!   carry the XDP_PASS fallback: a queue without a bound socket hands its
//!   frames to the kernel.
//! - **host** (TC clsact, ingress and egress): the same packets are
//!   *copied* into a ring buffer and always continue (TC_ACT_UNSPEC); a full
//!   ring is counted, never a reason to hold a packet.
//!
//! Both decide with `sipbeat_common::filter`, the logic user-space tests
//! check against `sipbeat::decode`. Fragments: only the first fragment of a
//! datagram has ports, so all are captured and user space reassembles and
//! filters them.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

#[cfg(target_arch = "bpf")]
mod program;

/// Host builds of the workspace compile nothing to run: the program exists
/// for the BPF target only (`sipbeat/build.rs` builds it with aya-build).
#[cfg(not(target_arch = "bpf"))]
fn main() {}
