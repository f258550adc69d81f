//! Linux capabilities: what live capture needs, raised from the permitted
//! set into the effective one at start (the image's binary carries them as
//! file capabilities, permitted only, so a non-root user in a container
//! granted them can capture, and one not granted them gets a clear error
//! instead of a failed exec), and checked before anything is loaded.

/// Capability numbers (linux/capability.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Capability {
    NetAdmin = 12,
    NetRaw = 13,
    IpcLock = 14,
    SysAdmin = 21,
    Bpf = 39,
}

impl Capability {
    pub fn name(self) -> &'static str {
        match self {
            Capability::NetAdmin => "CAP_NET_ADMIN",
            Capability::NetRaw => "CAP_NET_RAW",
            Capability::IpcLock => "CAP_IPC_LOCK",
            Capability::SysAdmin => "CAP_SYS_ADMIN",
            Capability::Bpf => "CAP_BPF",
        }
    }
}

/// What host mode needs: loading programs and maps, attaching them to TC.
pub const HOST: &[Capability] = &[Capability::Bpf, Capability::NetAdmin];
/// What mirror mode needs beyond that: AF_XDP sockets and their locked UMEM.
pub const MIRROR: &[Capability] = &[
    Capability::Bpf,
    Capability::NetAdmin,
    Capability::NetRaw,
    Capability::IpcLock,
];

#[repr(C)]
struct Header {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Data {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const VERSION_3: u32 = 0x2008_0522;

fn get() -> Option<[Data; 2]> {
    let mut header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: capget with a version-3 header and room for two data words.
    let rc = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    (rc == 0).then_some(data)
}

fn has(data: &[Data; 2], capability: Capability) -> bool {
    let bit = capability as u32;
    data[(bit / 32) as usize].effective & (1 << (bit % 32)) != 0
}

/// Makes every permitted capability effective (a no-op for root, whose
/// effective set is already full). Failure leaves the set as it was.
pub fn raise_permitted() {
    let Some(mut data) = get() else {
        return;
    };
    for word in &mut data {
        word.effective = word.permitted;
    }
    let mut header = Header {
        version: VERSION_3,
        pid: 0,
    };
    // SAFETY: capset with a version-3 header and two data words.
    unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
}

/// The capabilities of `needed` this process lacks (CAP_SYS_ADMIN stands
/// in for CAP_BPF, as the kernel's check allows).
pub fn missing(needed: &[Capability]) -> Vec<Capability> {
    let Some(data) = get() else {
        return Vec::new();
    };
    needed
        .iter()
        .copied()
        .filter(|&c| !(has(&data, c) || (c == Capability::Bpf && has(&data, Capability::SysAdmin))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process_capabilities() {
        assert!(get().is_some());
        // SAFETY: no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            assert!(missing(MIRROR).is_empty(), "root has them all");
        }
    }
}
