//! The eBPF programs on interfaces: loaded from the object `build.rs` made,
//! configured (SIP ports, tunnel ports, transports), attached, and their
//! per-CPU counters read back. Mirror mode attaches the XDP program and
//! points RX queues at AF_XDP sockets ([`super::xsk`]); host mode attaches
//! the TC programs on ingress and egress and hands out the ring buffer they
//! copy into ([`super::ring`]).
//!
//! Detaching: every attachment is a link owned by this process (TCX links
//! and XDP links; on older kernels netlink attachments removed on drop). If
//! the process dies the links go with it. In mirror mode a queue whose
//! socket is gone falls back to XDP_PASS; in host mode nothing ever waited
//! on sipbeat.

use std::net::IpAddr;
use std::os::fd::AsRawFd;

use aya::maps::{Array, HashMap, MapData, PerCpuArray, RingBuf, XskMap};
use aya::programs::{SchedClassifier, TcAttachType, Xdp, XdpMode};
use aya::{Ebpf, EbpfLoader};
use sipbeat_common::filter::{UdpTunnel, link};
use sipbeat_common::{
    Counter, FilterConfig, MAP_COUNTERS, MAP_FILTER_CONFIG, MAP_HOST_RING, MAP_SIP_PORTS,
    MAP_TUNNEL_PORTS, MAP_XSKS, PROGRAM_HOST_EGRESS, PROGRAM_HOST_INGRESS, PROGRAM_MIRROR,
};

use super::AttachMode;

/// The object built from `sipbeat-ebpf`.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sipbeat-ebpf"));

/// Why live capture could not start.
#[derive(Debug, thiserror::Error)]
pub enum EbpfError {
    #[error("interface {0:?} not found")]
    NoInterface(String),
    #[error("loading the eBPF programs needs root (CAP_BPF, CAP_NET_ADMIN, CAP_NET_RAW): {0}")]
    Permission(String),
    #[error("eBPF program: {0}")]
    Load(String),
    #[error("cannot attach to {interface}: {reason}")]
    Attach { interface: String, reason: String },
    #[error("eBPF map {0}: {1}")]
    Map(&'static str, String),
    #[error("interface {interface:?}: {reason}")]
    Interface { interface: String, reason: String },
}

/// What the programs capture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterSettings {
    pub sip_ports: Vec<u16>,
    pub tunnel_ports: Vec<(u16, UdpTunnel)>,
    /// [`sipbeat_common::transport`] bits.
    pub transports: u32,
    /// Host mode: bytes copied of one packet at most.
    pub max_copy: u32,
}

/// The loaded programs and their maps.
pub struct Programs {
    ebpf: Ebpf,
}

/// A permission failure anywhere in `error`'s chain becomes
/// [`EbpfError::Permission`]; anything else goes through `otherwise`.
fn permission_or(
    error: impl std::error::Error,
    otherwise: impl FnOnce(String) -> EbpfError,
) -> EbpfError {
    let mut text = error.to_string();
    let mut source: Option<&dyn std::error::Error> = error.source();
    let mut denied = false;
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            denied |= matches!(io.raw_os_error(), Some(libc::EPERM | libc::EACCES));
        }
        source = cause.source();
    }
    if denied || text.contains("Operation not permitted") {
        EbpfError::Permission(text)
    } else {
        otherwise(text)
    }
}

/// The interface index of `name`.
pub fn if_index(name: &str) -> Result<u32, EbpfError> {
    let c_name =
        std::ffi::CString::new(name).map_err(|_| EbpfError::NoInterface(name.to_string()))?;
    // SAFETY: a valid NUL-terminated name.
    match unsafe { libc::if_nametoindex(c_name.as_ptr()) } {
        0 => Err(EbpfError::NoInterface(name.to_string())),
        index => Ok(index),
    }
}

/// RX queues of `interface`, from sysfs.
pub fn rx_queues(interface: &str) -> u32 {
    std::fs::read_dir(format!("/sys/class/net/{interface}/queues"))
        .map(|dir| {
            dir.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
                .count() as u32
        })
        .unwrap_or(1)
        .max(1)
}

/// How frames on `interface` start, as a [`link`] value: Ethernet (and
/// loopback, which has an all-zero Ethernet header), or raw IP (tun,
/// WireGuard and other devices without a link header).
pub fn link_kind(interface: &str) -> Result<u32, EbpfError> {
    let path = format!("/sys/class/net/{interface}/type");
    let kind = std::fs::read_to_string(&path).map_err(|e| EbpfError::Interface {
        interface: interface.to_string(),
        reason: format!("cannot read {path}: {e}"),
    })?;
    match kind.trim() {
        // ARPHRD_ETHER, ARPHRD_LOOPBACK
        "1" | "772" => Ok(link::ETHERNET),
        // ARPHRD_NONE (tun), ARPHRD_RAWIP
        "65534" | "519" => Ok(link::RAW_IP),
        other => Err(EbpfError::Interface {
            interface: interface.to_string(),
            reason: format!("link type {other} is neither Ethernet nor raw IP"),
        }),
    }
}

/// The addresses of `interface` that carry the node's traffic: every IPv4
/// address, and IPv6 addresses other than link-local (which a SPAN port
/// that is merely up gets by itself).
pub fn node_addresses(interface: &str) -> Vec<IpAddr> {
    let mut addresses = Vec::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list`, freed below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return addresses;
    }
    let mut entry = list;
    while !entry.is_null() {
        // SAFETY: a node of the list getifaddrs returned, alive until freeifaddrs.
        let ifa = unsafe { &*entry };
        entry = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: a NUL-terminated name owned by the list.
        let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) };
        if name.to_bytes() != interface.as_bytes() {
            continue;
        }
        // SAFETY: ifa_addr is non-null; its family says which sockaddr it is.
        let address = unsafe {
            match i32::from((*ifa.ifa_addr).sa_family) {
                libc::AF_INET => {
                    let sin = &*ifa.ifa_addr.cast::<libc::sockaddr_in>();
                    Some(IpAddr::from(
                        u32::from_be(sin.sin_addr.s_addr).to_be_bytes(),
                    ))
                }
                libc::AF_INET6 => {
                    let sin6 = &*ifa.ifa_addr.cast::<libc::sockaddr_in6>();
                    Some(IpAddr::from(sin6.sin6_addr.s6_addr))
                }
                _ => None,
            }
        };
        match address {
            Some(IpAddr::V6(v6)) if v6.is_unicast_link_local() => {}
            Some(address) => addresses.push(address),
            None => {}
        }
    }
    // SAFETY: the list from getifaddrs above, freed once.
    unsafe { libc::freeifaddrs(list) };
    addresses
}

impl Programs {
    /// Loads the object and fills its maps. `ring_size` is the host-mode
    /// ring's size in bytes (`None`: mirror mode, the smallest ring).
    pub fn load(
        filter: &FilterSettings,
        link: u32,
        ring_size: Option<u32>,
    ) -> Result<Programs, EbpfError> {
        raise_memlock_limit();
        let page = 4096;
        let mut ebpf = EbpfLoader::new()
            .map_max_entries(MAP_HOST_RING, ring_size.unwrap_or(page))
            .load(OBJECT)
            .map_err(|e| permission_or(e, EbpfError::Load))?;
        let config = FilterConfig {
            transports: filter.transports,
            capture_fragments: 1,
            link,
            max_copy: filter.max_copy,
        };
        let mut array: Array<_, FilterConfig> = map(&mut ebpf, MAP_FILTER_CONFIG)?;
        array
            .set(0, config, 0)
            .map_err(|e| EbpfError::Map(MAP_FILTER_CONFIG, e.to_string()))?;
        let mut sip_ports: HashMap<_, u16, u8> = map(&mut ebpf, MAP_SIP_PORTS)?;
        for &port in &filter.sip_ports {
            sip_ports
                .insert(port, 1, 0)
                .map_err(|e| EbpfError::Map(MAP_SIP_PORTS, e.to_string()))?;
        }
        let mut tunnel_ports: HashMap<_, u16, u8> = map(&mut ebpf, MAP_TUNNEL_PORTS)?;
        for &(port, tunnel) in &filter.tunnel_ports {
            tunnel_ports
                .insert(port, tunnel as u8, 0)
                .map_err(|e| EbpfError::Map(MAP_TUNNEL_PORTS, e.to_string()))?;
        }
        Ok(Programs { ebpf })
    }

    /// Mirror mode: the XDP program on `interface`; returns the mode it
    /// ended up attached in.
    pub fn attach_mirror(
        &mut self,
        interface: &str,
        mode: AttachMode,
    ) -> Result<AttachMode, EbpfError> {
        if_index(interface)?;
        let program: &mut Xdp = program(&mut self.ebpf, PROGRAM_MIRROR)?;
        program
            .load()
            .map_err(|e| permission_or(e, EbpfError::Load))?;
        let attach_error = |error: aya::programs::ProgramError| {
            permission_or(error, |reason| EbpfError::Attach {
                interface: interface.to_string(),
                reason,
            })
        };
        if mode == AttachMode::Driver {
            match program.attach(interface, XdpMode::Driver) {
                Ok(_) => return Ok(AttachMode::Driver),
                Err(error) => crate::log::warn(&format!(
                    "driver-mode XDP on {interface} failed ({error}); using generic (skb) mode"
                )),
            }
        }
        program
            .attach(interface, XdpMode::Skb)
            .map_err(attach_error)?;
        Ok(AttachMode::Skb)
    }

    /// Mirror mode: points RX queue `queue` at an AF_XDP socket.
    pub fn bind_queue(&mut self, queue: u32, socket: &impl AsRawFd) -> Result<(), EbpfError> {
        let mut sockets: XskMap<_> = map(&mut self.ebpf, MAP_XSKS)?;
        sockets
            .set(queue, socket.as_raw_fd(), 0)
            .map_err(|e| EbpfError::Map(MAP_XSKS, e.to_string()))
    }

    /// Host mode: the TC programs on `interface`'s ingress and egress.
    pub fn attach_host(&mut self, interface: &str) -> Result<(), EbpfError> {
        if_index(interface)?;
        // Kernels before 6.6 attach through the clsact qdisc (TCX needs none).
        let tcx = aya::util::KernelVersion::current()
            .is_ok_and(|v| v >= aya::util::KernelVersion::new(6, 6, 0));
        if !tcx {
            let _ = aya::programs::tc::qdisc_add_clsact(interface);
        }
        for (name, attach) in [
            (PROGRAM_HOST_INGRESS, TcAttachType::Ingress),
            (PROGRAM_HOST_EGRESS, TcAttachType::Egress),
        ] {
            let program: &mut SchedClassifier = program(&mut self.ebpf, name)?;
            // Loaded once; attached to every interface.
            if program.fd().is_err() {
                program
                    .load()
                    .map_err(|e| permission_or(e, EbpfError::Load))?;
            }
            program.attach(interface, attach).map_err(|error| {
                permission_or(error, |reason| EbpfError::Attach {
                    interface: interface.to_string(),
                    reason,
                })
            })?;
        }
        Ok(())
    }

    /// Host mode: the ring the TC programs copy into (once).
    pub fn take_ring(&mut self) -> Result<RingBuf<MapData>, EbpfError> {
        let map = self
            .ebpf
            .take_map(MAP_HOST_RING)
            .ok_or_else(|| EbpfError::Map(MAP_HOST_RING, "missing or taken".into()))?;
        RingBuf::try_from(map).map_err(|e| EbpfError::Map(MAP_HOST_RING, e.to_string()))
    }

    /// The programs' counters, summed over CPUs, in [`Counter::ALL`] order.
    pub fn counters(&self) -> Result<[u64; Counter::ALL.len()], EbpfError> {
        let map = self
            .ebpf
            .map(MAP_COUNTERS)
            .ok_or_else(|| EbpfError::Map(MAP_COUNTERS, "missing".into()))?;
        let counters: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(map).map_err(|e| EbpfError::Map(MAP_COUNTERS, e.to_string()))?;
        let mut sums = [0u64; Counter::ALL.len()];
        for counter in Counter::ALL {
            let values = counters
                .get(&(counter as u32), 0)
                .map_err(|e| EbpfError::Map(MAP_COUNTERS, e.to_string()))?;
            sums[counter as usize] = values.iter().sum();
        }
        Ok(sums)
    }
}

/// The program `name` of the object, as its type.
fn program<'a, T: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>>(
    ebpf: &'a mut Ebpf,
    name: &str,
) -> Result<T, EbpfError> {
    ebpf.program_mut(name)
        .ok_or_else(|| EbpfError::Load(format!("no program {name} in the object")))?
        .try_into()
        .map_err(|e| EbpfError::Load(format!("{e}")))
}

fn map<'a, T: TryFrom<&'a mut aya::maps::Map, Error = aya::maps::MapError>>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<T, EbpfError> {
    let map = ebpf
        .map_mut(name)
        .ok_or_else(|| EbpfError::Map(name, "missing from the object".into()))?;
    T::try_from(map).map_err(|e| EbpfError::Map(name, e.to_string()))
}

/// Kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK.
fn raise_memlock_limit() {
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: a valid rlimit; failure only matters on old kernels, where
    // loading then reports the real error.
    unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) };
}
