//! The XDP program on an interface: loaded from the object `build.rs` made,
//! configured (SIP ports, transports), attached in driver mode or generic
//! mode, and its per-CPU counters read back.
//!
//! Detaching: the attachment is a bpf_link owned by this process (or, on
//! kernels without XDP links, a netlink attachment removed on drop). If the
//! process dies the link goes with it, and in any case a queue whose socket
//! is gone redirects to nothing and falls back to XDP_PASS: SIP keeps
//! reaching the host.

use std::os::fd::AsRawFd;

use aya::Ebpf;
use aya::maps::{Array, HashMap, MapData, PerCpuArray, XskMap};
use aya::programs::{Xdp, XdpMode};
use sipbeat_common::{
    Counter, FilterConfig, MAP_COUNTERS, MAP_FILTER_CONFIG, MAP_SIP_PORTS, MAP_XSKS, transport,
};

use crate::config::TransportProtocol;

/// The XDP object built from `sipbeat-ebpf`.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sipbeat"));

/// Why live capture could not start.
#[derive(Debug, thiserror::Error)]
pub enum XdpError {
    #[error("interface {0:?} not found")]
    NoInterface(String),
    #[error("loading the XDP program needs root (CAP_BPF, CAP_NET_ADMIN, CAP_NET_RAW): {0}")]
    Permission(String),
    #[error("XDP program: {0}")]
    Load(String),
    #[error("cannot attach XDP to {interface}: {reason}")]
    Attach { interface: String, reason: String },
    #[error("XDP map {0}: {1}")]
    Map(&'static str, String),
}

/// Where the program runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum AttachMode {
    /// In the driver (native XDP); falls back to generic with a warning.
    #[default]
    Driver,
    /// Generic XDP in the kernel's receive path (any interface, slower).
    Skb,
}

/// The loaded, attached program and its maps.
pub struct XdpProgram {
    ebpf: Ebpf,
    /// The mode it ended up attached in.
    pub mode: AttachMode,
}

/// A permission failure anywhere in `error`'s chain becomes
/// [`XdpError::Permission`]; anything else goes through `otherwise`.
fn permission_or(error: impl std::error::Error, otherwise: fn(String) -> XdpError) -> XdpError {
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
        XdpError::Permission(text)
    } else {
        otherwise(text)
    }
}

/// The interface index of `name`.
pub fn if_index(name: &str) -> Result<u32, XdpError> {
    let c_name =
        std::ffi::CString::new(name).map_err(|_| XdpError::NoInterface(name.to_string()))?;
    // SAFETY: a valid NUL-terminated name.
    match unsafe { libc::if_nametoindex(c_name.as_ptr()) } {
        0 => Err(XdpError::NoInterface(name.to_string())),
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

impl XdpProgram {
    /// Loads the program, configures it, attaches it to `interface`.
    pub fn attach(
        interface: &str,
        mode: AttachMode,
        ports: &[u16],
        transports: TransportProtocol,
    ) -> Result<XdpProgram, XdpError> {
        if_index(interface)?;
        raise_memlock_limit();
        let mut ebpf = Ebpf::load(OBJECT).map_err(|e| permission_or(e, XdpError::Load))?;
        {
            let mut config: Array<_, FilterConfig> = map(&mut ebpf, MAP_FILTER_CONFIG)?;
            let transports = match transports {
                TransportProtocol::Udp => transport::UDP,
                TransportProtocol::Tcp => transport::TCP,
                TransportProtocol::Both => transport::UDP | transport::TCP,
            };
            let filter = FilterConfig {
                transports,
                redirect_fragments: 1,
            };
            config
                .set(0, filter, 0)
                .map_err(|e| XdpError::Map(MAP_FILTER_CONFIG, e.to_string()))?;
            let mut sip_ports: HashMap<_, u16, u8> = map(&mut ebpf, MAP_SIP_PORTS)?;
            for &port in ports {
                sip_ports
                    .insert(port, 1, 0)
                    .map_err(|e| XdpError::Map(MAP_SIP_PORTS, e.to_string()))?;
            }
        }
        let program: &mut Xdp = ebpf
            .program_mut("sipbeat")
            .ok_or_else(|| XdpError::Load("no program named sipbeat in the object".into()))?
            .try_into()
            .map_err(|e| XdpError::Load(format!("{e}")))?;
        program
            .load()
            .map_err(|e| permission_or(e, XdpError::Load))?;
        let attach_error = |error: aya::programs::ProgramError| XdpError::Attach {
            interface: interface.to_string(),
            reason: error.to_string(),
        };
        let attached = match mode {
            AttachMode::Driver => match program.attach(interface, XdpMode::Driver) {
                Ok(_) => AttachMode::Driver,
                Err(error) => {
                    eprintln!(
                        "sipbeat: warning: driver-mode XDP on {interface} failed ({error}); using generic (skb) mode"
                    );
                    program
                        .attach(interface, XdpMode::Skb)
                        .map_err(attach_error)?;
                    AttachMode::Skb
                }
            },
            AttachMode::Skb => {
                program
                    .attach(interface, XdpMode::Skb)
                    .map_err(attach_error)?;
                AttachMode::Skb
            }
        };
        Ok(XdpProgram {
            ebpf,
            mode: attached,
        })
    }

    /// Points RX queue `queue` at an AF_XDP socket.
    pub fn bind_queue(&mut self, queue: u32, socket: &impl AsRawFd) -> Result<(), XdpError> {
        let mut sockets: XskMap<_> = map(&mut self.ebpf, MAP_XSKS)?;
        sockets
            .set(queue, socket.as_raw_fd(), 0)
            .map_err(|e| XdpError::Map(MAP_XSKS, e.to_string()))
    }

    /// The program's counters, summed over CPUs, in [`Counter::ALL`] order.
    pub fn counters(&self) -> Result<[u64; Counter::ALL.len()], XdpError> {
        let map = self
            .ebpf
            .map(MAP_COUNTERS)
            .ok_or_else(|| XdpError::Map(MAP_COUNTERS, "missing".into()))?;
        let counters: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(map).map_err(|e| XdpError::Map(MAP_COUNTERS, e.to_string()))?;
        let mut sums = [0u64; Counter::ALL.len()];
        for counter in Counter::ALL {
            let values = counters
                .get(&(counter as u32), 0)
                .map_err(|e| XdpError::Map(MAP_COUNTERS, e.to_string()))?;
            sums[counter as usize] = values.iter().sum();
        }
        Ok(sums)
    }
}

fn map<'a, T: TryFrom<&'a mut aya::maps::Map, Error = aya::maps::MapError>>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<T, XdpError> {
    let map = ebpf
        .map_mut(name)
        .ok_or_else(|| XdpError::Map(name, "missing from the object".into()))?;
    T::try_from(map).map_err(|e| XdpError::Map(name, e.to_string()))
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
