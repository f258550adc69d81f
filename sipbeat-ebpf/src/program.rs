//! The XDP program itself (compiled for the BPF target only).

use aya_ebpf::bindings::xdp_action;
use aya_ebpf::macros::{map, xdp};
use aya_ebpf::maps::{Array, HashMap, PerCpuArray, XskMap};
use aya_ebpf::programs::XdpContext;
use sipbeat_common::wire::{ETHERNET_LEN, ethertype, ip_protocol, ipv6_next};
use sipbeat_common::{COUNTER_COUNT, Counter, FilterConfig, transport};

/// Largest number of RX queues the program serves.
const MAX_QUEUES: u32 = 256;
/// Ports in the SIP port set.
const MAX_PORTS: u32 = 1024;

#[map(name = "XSKS")]
static XSKS: XskMap = XskMap::with_max_entries(MAX_QUEUES, 0);

#[map(name = "SIP_PORTS")]
static SIP_PORTS: HashMap<u16, u8> = HashMap::with_max_entries(MAX_PORTS, 0);

#[map(name = "FILTER_CONFIG")]
static FILTER_CONFIG: Array<FilterConfig> = Array::with_max_entries(1, 0);

#[map(name = "COUNTERS")]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTER_COUNT, 0);

const MAX_VLAN_TAGS: usize = 2;
const MAX_IPV6_EXTENSIONS: usize = 4;

#[xdp]
pub fn sipbeat(ctx: XdpContext) -> u32 {
    count(Counter::Seen);
    let action = match classify(&ctx) {
        Ok(Verdict::Capture) => {
            // SAFETY: ctx.ctx is the kernel's xdp_md for this invocation.
            let queue = unsafe { (*ctx.ctx).rx_queue_index };
            let action = XSKS
                .redirect(queue, u64::from(xdp_action::XDP_PASS))
                .unwrap_or(xdp_action::XDP_PASS);
            if action == xdp_action::XDP_REDIRECT {
                count(Counter::Redirected);
            }
            action
        }
        Ok(Verdict::Pass) => xdp_action::XDP_PASS,
        Err(()) => {
            count(Counter::Malformed);
            xdp_action::XDP_PASS
        }
    };
    if action == xdp_action::XDP_PASS {
        count(Counter::Passed);
    }
    action
}

enum Verdict {
    Capture,
    Pass,
}

#[inline(always)]
fn count(counter: Counter) {
    if let Some(value) = COUNTERS.get_ptr_mut(counter as u32) {
        // SAFETY: a per-CPU slot; nothing else on this CPU touches it now.
        unsafe { *value += 1 };
    }
}

/// A bounds-checked pointer to a `T` at `offset` in the frame.
#[inline(always)]
fn ptr_at<T>(ctx: &XdpContext, offset: usize) -> Result<*const T, ()> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + offset + core::mem::size_of::<T>() > end {
        return Err(());
    }
    Ok((start + offset) as *const T)
}

#[inline(always)]
fn read_u8(ctx: &XdpContext, offset: usize) -> Result<u8, ()> {
    // SAFETY: ptr_at checked the byte is inside the frame.
    Ok(unsafe { *ptr_at::<u8>(ctx, offset)? })
}

#[inline(always)]
fn read_be16(ctx: &XdpContext, offset: usize) -> Result<u16, ()> {
    // SAFETY: ptr_at checked both bytes are inside the frame; the read is unaligned-safe.
    Ok(u16::from_be(unsafe {
        core::ptr::read_unaligned(ptr_at::<u16>(ctx, offset)?)
    }))
}

fn classify(ctx: &XdpContext) -> Result<Verdict, ()> {
    let mut next_type = read_be16(ctx, 12)?;
    let mut offset = ETHERNET_LEN;
    for _ in 0..MAX_VLAN_TAGS {
        if !ethertype::is_vlan_tag(next_type) {
            break;
        }
        next_type = read_be16(ctx, offset + 2)?;
        offset += 4;
    }
    let (protocol, transport_offset) = match next_type {
        ethertype::IPV4 => {
            let version_ihl = read_u8(ctx, offset)?;
            if version_ihl >> 4 != 4 {
                return Err(());
            }
            let flags_fragment = read_be16(ctx, offset + 6)?;
            if flags_fragment & 0x3fff != 0 {
                return Ok(fragment());
            }
            (
                read_u8(ctx, offset + 9)?,
                offset + usize::from(version_ihl & 0x0f) * 4,
            )
        }
        ethertype::IPV6 => {
            let mut next = read_u8(ctx, offset + 6)?;
            let mut at = offset + 40;
            for _ in 0..MAX_IPV6_EXTENSIONS {
                match next {
                    ipv6_next::HOP_BY_HOP | ipv6_next::ROUTING | ipv6_next::DEST_OPTIONS => {
                        // One bounds check for both bytes: the verifier does
                        // not relate two pointers at variable offsets.
                        // SAFETY: ptr_at checked both bytes are inside the frame.
                        let header = unsafe { *ptr_at::<[u8; 2]>(ctx, at)? };
                        next = header[0];
                        at += (usize::from(header[1]) + 1) * 8;
                    }
                    ipv6_next::FRAGMENT => return Ok(fragment()),
                    _ => break,
                }
            }
            (next, at)
        }
        _ => return Ok(Verdict::Pass),
    };
    let config = FILTER_CONFIG.get(0).copied().unwrap_or_default();
    let wanted = match protocol {
        ip_protocol::UDP => config.transports & transport::UDP != 0,
        ip_protocol::TCP => config.transports & transport::TCP != 0,
        _ => false,
    };
    if !wanted {
        return Ok(Verdict::Pass);
    }
    let src_port = read_be16(ctx, transport_offset)?;
    let dst_port = read_be16(ctx, transport_offset + 2)?;
    // SAFETY: map lookups return references valid for this invocation.
    let sip = unsafe { SIP_PORTS.get(&src_port).is_some() || SIP_PORTS.get(&dst_port).is_some() };
    Ok(if sip { Verdict::Capture } else { Verdict::Pass })
}

#[inline(always)]
fn fragment() -> Verdict {
    count(Counter::Fragments);
    let config = FILTER_CONFIG.get(0).copied().unwrap_or_default();
    if config.redirect_fragments != 0 {
        Verdict::Capture
    } else {
        Verdict::Pass
    }
}

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
