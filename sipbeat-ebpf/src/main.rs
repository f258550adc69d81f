//! The kernel half of sipbeat: an XDP program that sends frames carrying
//! SIP (a configured UDP/TCP port at either end, under any VLAN tags, over
//! IPv4 or IPv6) and every IP fragment to the AF_XDP socket of the frame's
//! RX queue, and everything else on to the kernel.
//!
//! Fragments: only the first fragment of a datagram has ports, and a large
//! INVITE over UDP arrives fragmented. Tracking first-fragment IDs would need
//! an LRU map and still miss fragments that arrive before their first; so
//! all fragments are redirected (they are rare on signalling links) and
//! user space reassembles and filters them. Redirects carry the XDP_PASS
//! fallback: a queue without a bound socket hands its frames to the kernel,
//! so nothing is black-holed when sipbeat is not running.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

#[cfg(target_arch = "bpf")]
mod program;

/// Host builds of the workspace compile nothing to run: the program exists
/// for the BPF target only (`sipbeat/build.rs` builds it with aya-build).
#[cfg(not(target_arch = "bpf"))]
fn main() {}
