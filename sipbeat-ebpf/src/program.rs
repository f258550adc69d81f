//! The eBPF programs themselves (compiled for the BPF target only): the
//! mirror-mode XDP program and the host-mode TC programs, both deciding with
//! [`sipbeat_common::filter::classify`].

use aya_ebpf::bindings::{
    BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP, TC_ACT_UNSPEC, xdp_action,
};
use aya_ebpf::helpers::{bpf_ktime_get_boot_ns, bpf_skb_load_bytes, bpf_xdp_load_bytes};
use aya_ebpf::macros::{classifier, map, xdp};
use aya_ebpf::maps::{Array, HashMap, PerCpuArray, RingBuf, XskMap};
use aya_ebpf::programs::{TcContext, XdpContext};
use sipbeat_common::filter::{self, Bytes, Lookup, UdpTunnel, Verdict};
use sipbeat_common::{
    COUNTER_COUNT, Counter, FilterConfig, MAX_COPY, MAX_PORTS, MAX_QUEUES, MAX_TUNNEL_PORTS,
    PacketHeader, direction,
};

#[map(name = "XSKS")]
static XSKS: XskMap = XskMap::with_max_entries(MAX_QUEUES, 0);

#[map(name = "SIP_PORTS")]
static SIP_PORTS: HashMap<u16, u8> = HashMap::with_max_entries(MAX_PORTS, 0);

#[map(name = "TUNNEL_PORTS")]
static TUNNEL_PORTS: HashMap<u16, u8> = HashMap::with_max_entries(MAX_TUNNEL_PORTS, 0);

#[map(name = "FILTER_CONFIG")]
static FILTER_CONFIG: Array<FilterConfig> = Array::with_max_entries(1, 0);

#[map(name = "COUNTERS")]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTER_COUNT, 0);

/// Bytes waiting in the ring that make the programs wake its reader.
const WAKEUP_BYTES: u64 = sipbeat_common::HOST_RING_WAKEUP_BYTES as u64;

/// Host mode's copies; user space sets the size before loading.
#[map(name = "HOST_RING")]
static HOST_RING: RingBuf = RingBuf::with_byte_size(1 << 24, 0);

#[inline(always)]
fn count(counter: Counter) {
    if let Some(value) = COUNTERS.get_ptr_mut(counter as u32) {
        // SAFETY: a per-CPU slot; nothing else on this CPU touches it now.
        unsafe { *value += 1 };
    }
}

#[inline(always)]
fn config() -> FilterConfig {
    FILTER_CONFIG.get(0).copied().unwrap_or_default()
}

/// The port maps.
struct Maps;

impl Lookup for Maps {
    #[inline(always)]
    fn sip_port(&self, port: u16) -> bool {
        // SAFETY: the reference is not kept past this call.
        unsafe { SIP_PORTS.get(&port).is_some() }
    }

    #[inline(always)]
    fn udp_tunnel(&self, port: u16) -> Option<UdpTunnel> {
        // SAFETY: the value is copied out at once.
        UdpTunnel::from_u8(unsafe { *TUNNEL_PORTS.get(&port)? })
    }
}

/// An XDP frame, read with `bpf_xdp_load_bytes` (bounds checked by the
/// kernel, so offsets can grow through tunnels without verifier proofs).
struct XdpBytes<'a>(&'a XdpContext);

impl Bytes for XdpBytes<'_> {
    #[inline(always)]
    fn load<const N: usize>(&self, offset: usize) -> Option<[u8; N]> {
        let mut out = [0u8; N];
        // SAFETY: `out` has room for the N bytes asked for.
        let rc = unsafe {
            bpf_xdp_load_bytes(self.0.ctx, offset as u32, out.as_mut_ptr().cast(), N as u32)
        };
        (rc == 0).then_some(out)
    }
}

/// A socket buffer at TC, read with `bpf_skb_load_bytes` (which also
/// reaches paged data of GRO/GSO packets).
struct SkbBytes<'a>(&'a TcContext);

impl Bytes for SkbBytes<'_> {
    #[inline(always)]
    fn load<const N: usize>(&self, offset: usize) -> Option<[u8; N]> {
        self.0.load::<[u8; N]>(offset).ok()
    }
}

/// Whether to capture what the filter decided on, counting fragments and
/// malformed frames on the way.
#[inline(always)]
fn wanted(verdict: Verdict, config: &FilterConfig) -> bool {
    match verdict {
        Verdict::Sip => true,
        Verdict::Fragment => {
            count(Counter::Fragments);
            config.capture_fragments != 0
        }
        Verdict::Malformed => {
            count(Counter::Malformed);
            false
        }
        Verdict::Other => false,
    }
}

/// Mirror mode: SIP frames and IP fragments to the AF_XDP socket of their
/// RX queue (with the XDP_PASS fallback when the queue has none),
/// everything else to the kernel.
#[xdp]
pub fn sipbeat(ctx: XdpContext) -> u32 {
    count(Counter::Seen);
    let config = config();
    let capture = wanted(filter::classify(&XdpBytes(&ctx), &Maps, &config), &config);
    let mut action = xdp_action::XDP_PASS;
    if capture {
        // SAFETY: ctx.ctx is the kernel's xdp_md for this invocation.
        let queue = unsafe { (*ctx.ctx).rx_queue_index };
        action = XSKS
            .redirect(queue, u64::from(xdp_action::XDP_PASS))
            .unwrap_or(xdp_action::XDP_PASS);
    }
    if action == xdp_action::XDP_REDIRECT {
        count(Counter::Redirected);
    } else {
        count(Counter::Passed);
    }
    action
}

/// Host mode, packets arriving at the node.
#[classifier]
pub fn sipbeat_ingress(ctx: TcContext) -> i32 {
    host(&ctx, direction::INGRESS)
}

/// Host mode, packets the node sends.
#[classifier]
pub fn sipbeat_egress(ctx: TcContext) -> i32 {
    host(&ctx, direction::EGRESS)
}

/// Copies SIP packets and IP fragments into the ring; the verdict is
/// always "no opinion" (TC_ACT_UNSPEC: the next program or the kernel's
/// default decides), whatever the ring's state.
#[inline(always)]
fn host(ctx: &TcContext, direction: u32) -> i32 {
    count(Counter::Seen);
    let config = config();
    if wanted(filter::classify(&SkbBytes(ctx), &Maps, &config), &config) {
        copy_packet(ctx, direction, &config);
    }
    count(Counter::Passed);
    TC_ACT_UNSPEC
}

/// A ring record: the header, then room for `N` packet bytes.
#[repr(C)]
struct Record<const N: usize> {
    header: PacketHeader,
    data: [u8; N],
}

#[inline(always)]
fn copy_packet(ctx: &TcContext, direction: u32, config: &FilterConfig) {
    let len = ctx.len();
    let limit = if config.max_copy == 0 || config.max_copy > MAX_COPY {
        MAX_COPY
    } else {
        config.max_copy
    };
    let captured = if len > limit { limit } else { len };
    if captured < len {
        count(Counter::Truncated);
    }
    // Reservations are of constant size: power-of-two size classes keep a
    // short SIP message from taking 64 KiB of ring (at most twice its size).
    let header = PacketHeader {
        // SAFETY: no preconditions.
        boot_ns: unsafe { bpf_ktime_get_boot_ns() },
        len,
        captured,
        // SAFETY: ctx.skb points to the kernel's __sk_buff for this run.
        ifindex: unsafe { (*ctx.skb.skb).ifindex },
        direction,
    };
    let outcome = if captured <= 512 {
        copy_into::<512>(ctx, header)
    } else if captured <= 1024 {
        copy_into::<1024>(ctx, header)
    } else if captured <= 2048 {
        copy_into::<2048>(ctx, header)
    } else if captured <= 8192 {
        copy_into::<8192>(ctx, header)
    } else {
        copy_into::<{ MAX_COPY as usize }>(ctx, header)
    };
    count(outcome);
}

/// One record of `N` bytes' room (`N` a power of two); the counter saying
/// how it went.
#[inline(always)]
fn copy_into<const N: usize>(ctx: &TcContext, header: PacketHeader) -> Counter {
    let Some(mut entry) = HOST_RING.reserve::<Record<N>>(0) else {
        return Counter::RingFull;
    };
    let record = entry.as_mut_ptr();
    let captured = header.captured;
    // Bounds the verifier can see: at least one byte, at most N.
    if captured == 0 || captured > N as u32 {
        entry.discard(0);
        return Counter::Malformed;
    }
    // SAFETY: `record` is this reservation, sized for a Record<N>; the load
    // writes at most N bytes into its data array.
    let rc = unsafe {
        (*record).header = header;
        // Read back opaquely and masked into [1, N]: the same value (it is
        // in that range already), in a form whose bounds the verifier sees
        // and the compiler cannot fold away.
        let captured = core::ptr::read_volatile(&raw const (*record).header.captured);
        let len = (captured.wrapping_sub(1) & (N as u32 - 1)) + 1;
        bpf_skb_load_bytes(
            ctx.skb.skb.cast(),
            0,
            (*record).data.as_mut_ptr().cast(),
            len,
        )
    };
    if rc != 0 {
        entry.discard(0);
        return Counter::Malformed;
    }
    // Wake the reader only once a batch is waiting: a wakeup per record
    // costs the CPU that carries the packet more than the copy. The reader
    // polls with a short timeout, which bounds the delay of a quiet ring.
    let flags = if HOST_RING.query(u64::from(BPF_RB_AVAIL_DATA)) >= WAKEUP_BYTES {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    };
    entry.submit(u64::from(flags));
    Counter::Copied
}

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
