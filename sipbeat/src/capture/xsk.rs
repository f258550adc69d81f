//! AF_XDP sockets, in-house: one socket per RX queue, each with its own
//! UMEM, fill and completion rings and an RX ring (Linux `if_xdp.h`, no TX).
//!
//! Frames are read in place from the UMEM and handed back to the fill ring
//! only after the caller is done with them, so the SIP parser works on the
//! kernel's copy (zero-copy mode) or on the one copy the kernel made (copy
//! mode). The fill ring is topped up in a loop, since the kernel may free
//! fewer slots than there are frames waiting to go back.
//!
//! Licence note: built on `libc` alone rather than a crate such as xdpilone
//! (EUPL-1.2), to keep sipbeat permissively licensed.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

/// Sizes of one socket's memory and rings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XskConfig {
    /// UMEM frames (a power of two); all start on the fill ring.
    pub frames: u32,
    /// Bytes per frame: one of [`super::FRAME_SIZES`].
    pub frame_size: u32,
    /// Entries of the RX ring (a power of two): how many received frames
    /// can wait for the worker. As many as there are frames, so a worker
    /// stalled for a moment (preempted by a kernel thread, say) is caught
    /// by the whole UMEM, not by part of it.
    pub rx_ring: u32,
    /// Ask for zero-copy (the driver must support it).
    pub zero_copy: bool,
}

impl XskConfig {
    /// The sockets' share of the `capture:` block.
    pub fn from_capture(capture: &super::CaptureConfig) -> XskConfig {
        XskConfig {
            frames: capture.frames,
            frame_size: capture.frame_size,
            rx_ring: capture.frames,
            zero_copy: capture.zero_copy,
        }
    }
}

crate::counters! {
    /// Ring statistics the kernel keeps for a socket (`XDP_STATISTICS`).
    pub struct XskStats {
        /// Frames the kernel dropped (a frame larger than a UMEM frame, ...).
        rx_dropped,
        /// Frames lost because the RX ring was full.
        rx_ring_full,
        /// Times the fill ring had no frame to receive into.
        rx_fill_ring_empty,
        /// Invalid descriptors.
        rx_invalid,
    }
}

/// An mmap'd region, unmapped on drop.
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value; access is
// coordinated by the ring protocol (producer/consumer indices).
unsafe impl Send for Mapping {}

impl Mapping {
    fn new(len: usize, fd: Option<RawFd>, offset: u64) -> io::Result<Mapping> {
        let (flags, fd) = match fd {
            Some(fd) => (libc::MAP_SHARED | libc::MAP_POPULATE, fd),
            None => (
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
            ),
        };
        // SAFETY: a fresh mapping; the kernel checks fd and offset.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                fd,
                offset as libc::off_t,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapping {
            ptr: NonNull::new(ptr.cast()).expect("mmap never returns null on success"),
            len,
        })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: ptr/len came from a successful mmap and are unmapped once.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// One single-producer/single-consumer ring shared with the kernel.
struct Ring {
    /// Keeps the ring's memory mapped; the pointers below point into it.
    _map: Mapping,
    producer: *const AtomicU32,
    consumer: *const AtomicU32,
    flags: *const AtomicU32,
    descs: *mut u8,
    mask: u32,
    size: u32,
}

// SAFETY: the pointers are into `map`, which moves with the ring.
unsafe impl Send for Ring {}

impl Ring {
    fn new(
        fd: RawFd,
        offsets: &libc::xdp_ring_offset,
        size: u32,
        entry: usize,
        pgoff: u64,
    ) -> io::Result<Ring> {
        let map = Mapping::new(
            offsets.desc as usize + size as usize * entry,
            Some(fd),
            pgoff,
        )?;
        let base = map.ptr.as_ptr();
        // SAFETY: the kernel placed these fields at the reported offsets
        // inside the mapping it just gave us.
        unsafe {
            Ok(Ring {
                producer: base.add(offsets.producer as usize).cast(),
                consumer: base.add(offsets.consumer as usize).cast(),
                flags: base.add(offsets.flags as usize).cast(),
                descs: base.add(offsets.desc as usize),
                mask: size - 1,
                size,
                _map: map,
            })
        }
    }

    fn producer(&self) -> &AtomicU32 {
        // SAFETY: points into the live mapping; the kernel updates it atomically.
        unsafe { &*self.producer }
    }

    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: as above.
        unsafe { &*self.consumer }
    }

    fn needs_wakeup(&self) -> bool {
        // SAFETY: as above.
        unsafe { &*self.flags }.load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0
    }
}

/// One AF_XDP socket bound to `(interface, queue)`.
pub struct XskSocket {
    // Rings and UMEM unmap before the socket closes (field order).
    rx: Ring,
    fill: Ring,
    _completion: Ring,
    umem: Mapping,
    fd: OwnedFd,
    frame_size: u32,
    /// Frames consumed from RX and not yet back on the fill ring.
    to_fill: Vec<u64>,
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn set<T>(fd: RawFd, option: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: value points to a T of the size passed.
    check(unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_XDP,
            option,
            (value as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    })
}

impl XskSocket {
    /// Creates the socket, its UMEM and rings, and binds it to `queue` of
    /// the interface `ifindex`. Falls back from zero-copy to copy mode.
    pub fn bind(ifindex: u32, queue: u32, config: &XskConfig) -> io::Result<XskSocket> {
        if !config.frames.is_power_of_two() || !config.rx_ring.is_power_of_two() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "frames and rx_ring must be powers of two",
            ));
        }
        if !super::FRAME_SIZES.contains(&config.frame_size) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the frame size must be 2048 or 4096",
            ));
        }
        // SAFETY: plain socket creation.
        let raw = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        check(raw)?;
        // SAFETY: raw is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let umem_len = config.frames as usize * config.frame_size as usize;
        let umem = Mapping::new(umem_len, None, 0)?;
        let registration = libc::xdp_umem_reg {
            addr: umem.ptr.as_ptr() as u64,
            len: umem_len as u64,
            chunk_size: config.frame_size,
            headroom: 0,
            flags: 0,
            tx_metadata_len: 0,
        };
        set(raw, libc::XDP_UMEM_REG, &registration)?;
        let completion_size: u32 = 64;
        set(raw, libc::XDP_UMEM_FILL_RING, &config.frames)?;
        set(raw, libc::XDP_UMEM_COMPLETION_RING, &completion_size)?;
        set(raw, libc::XDP_RX_RING, &config.rx_ring)?;
        // SAFETY: all-zero is a valid xdp_mmap_offsets.
        let mut offsets: libc::xdp_mmap_offsets = unsafe { std::mem::zeroed() };
        let mut len = size_of::<libc::xdp_mmap_offsets>() as libc::socklen_t;
        // SAFETY: offsets has room for len bytes.
        check(unsafe {
            libc::getsockopt(
                raw,
                libc::SOL_XDP,
                libc::XDP_MMAP_OFFSETS,
                (&mut offsets as *mut libc::xdp_mmap_offsets).cast(),
                &mut len,
            )
        })?;
        let rx = Ring::new(
            raw,
            &offsets.rx,
            config.rx_ring,
            size_of::<libc::xdp_desc>(),
            libc::XDP_PGOFF_RX_RING as u64,
        )?;
        let fill = Ring::new(
            raw,
            &offsets.fr,
            config.frames,
            size_of::<u64>(),
            libc::XDP_UMEM_PGOFF_FILL_RING,
        )?;
        let completion = Ring::new(
            raw,
            &offsets.cr,
            completion_size,
            size_of::<u64>(),
            libc::XDP_UMEM_PGOFF_COMPLETION_RING,
        )?;
        let mut socket = XskSocket {
            rx,
            fill,
            _completion: completion,
            umem,
            fd,
            frame_size: config.frame_size,
            to_fill: (0..u64::from(config.frames))
                .map(|i| i * u64::from(config.frame_size))
                .collect(),
        };
        socket.refill();
        let mut address = libc::sockaddr_xdp {
            sxdp_family: libc::AF_XDP as u16,
            sxdp_flags: libc::XDP_USE_NEED_WAKEUP
                | if config.zero_copy {
                    libc::XDP_ZEROCOPY
                } else {
                    libc::XDP_COPY
                },
            sxdp_ifindex: ifindex,
            sxdp_queue_id: queue,
            sxdp_shared_umem_fd: 0,
        };
        let bind = |address: &libc::sockaddr_xdp| {
            // SAFETY: address is a valid sockaddr_xdp of the size passed.
            check(unsafe {
                libc::bind(
                    raw,
                    (address as *const libc::sockaddr_xdp).cast(),
                    size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
                )
            })
        };
        match bind(&address) {
            Ok(()) => {}
            Err(error) if config.zero_copy => {
                crate::log::warn(&format!(
                    "queue {queue}: zero-copy unavailable ({error}); using copy mode"
                ));
                address.sxdp_flags = libc::XDP_USE_NEED_WAKEUP | libc::XDP_COPY;
                bind(&address)?;
            }
            Err(error) => return Err(error),
        }
        Ok(socket)
    }

    fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The descriptor to put in the XSKMAP.
    pub fn fd_handle(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.fd.as_fd()
    }

    /// Waits up to `timeout_ms` for frames.
    pub fn wait(&self, timeout_ms: i32) -> io::Result<()> {
        super::wait_readable(self.fd(), timeout_ms)
    }

    /// Asks the CPU to bring the bytes of `desc`'s frame into its cache.
    #[inline(always)]
    fn prefetch(&self, desc: &libc::xdp_desc) {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            let start = desc.addr as usize;
            let end = (start + desc.len as usize).min(self.umem.len);
            for line in (start..end).step_by(64) {
                // SAFETY: a prefetch never faults; the address is inside the UMEM.
                unsafe { _mm_prefetch::<_MM_HINT_T0>(self.umem.ptr.as_ptr().add(line).cast()) };
            }
        }
    }

    /// Hands up to `max` received frames to `on_frame`, then returns their
    /// buffers to the kernel. Returns how many frames there were.
    pub fn receive(&mut self, max: u32, mut on_frame: impl FnMut(&[u8])) -> usize {
        let consumer = self.rx.consumer().load(Ordering::Relaxed);
        let available = self
            .rx
            .producer()
            .load(Ordering::Acquire)
            .wrapping_sub(consumer);
        let count = available.min(max);
        let desc_at = |i: u32| {
            let index = (consumer.wrapping_add(i) & self.rx.mask) as usize;
            // SAFETY: index < ring size; the kernel wrote this descriptor
            // before publishing the producer index we read with Acquire.
            unsafe { std::ptr::read(self.rx.descs.cast::<libc::xdp_desc>().add(index)) }
        };
        for i in 0..count {
            let desc = desc_at(i);
            // The kernel wrote the next frame, on another core: fetch all of
            // its lines (and its page's translation) while this one is
            // parsed. 2.08–2.32 M instead of 1.96–2.03 M frames through in
            // 3 s at 800 k/s offered (benchmarks/history.md, session 4).
            if i + 1 < count {
                self.prefetch(&desc_at(i + 1));
            }
            let start = desc.addr as usize;
            let end = start + desc.len as usize;
            if end <= self.umem.len {
                // SAFETY: [start, end) lies inside the UMEM, and the kernel
                // does not touch this frame until we put it back on the fill ring.
                let frame = unsafe {
                    std::slice::from_raw_parts(self.umem.ptr.as_ptr().add(start), end - start)
                };
                on_frame(frame);
            }
            // Back to the start of its chunk (aligned mode).
            self.to_fill
                .push(desc.addr & !(u64::from(self.frame_size) - 1));
        }
        self.rx
            .consumer()
            .store(consumer.wrapping_add(count), Ordering::Release);
        self.refill();
        count as usize
    }

    /// Puts as many waiting frames on the fill ring as it has room for.
    fn refill(&mut self) {
        loop {
            let producer = self.fill.producer().load(Ordering::Relaxed);
            let consumer = self.fill.consumer().load(Ordering::Acquire);
            let free = self.fill.size - producer.wrapping_sub(consumer);
            let count = (free as usize).min(self.to_fill.len());
            if count == 0 {
                break;
            }
            for (i, addr) in self.to_fill.drain(self.to_fill.len() - count..).enumerate() {
                let index = (producer.wrapping_add(i as u32) & self.fill.mask) as usize;
                // SAFETY: index < ring size, and the slot is ours until the
                // producer index below is published.
                unsafe { self.fill.descs.cast::<u64>().add(index).write(addr) };
            }
            self.fill
                .producer()
                .store(producer.wrapping_add(count as u32), Ordering::Release);
        }
        if self.fill.needs_wakeup() {
            // SAFETY: a zero-length, non-blocking receive only kicks the driver.
            unsafe {
                libc::recvfrom(
                    self.fd(),
                    std::ptr::null_mut(),
                    0,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                )
            };
        }
    }

    /// The kernel's counters for this socket.
    pub fn statistics(&self) -> io::Result<XskStats> {
        // SAFETY: all-zero is a valid xdp_statistics.
        let mut stats: libc::xdp_statistics = unsafe { std::mem::zeroed() };
        let mut len = size_of::<libc::xdp_statistics>() as libc::socklen_t;
        // SAFETY: stats has room for len bytes.
        check(unsafe {
            libc::getsockopt(
                self.fd(),
                libc::SOL_XDP,
                libc::XDP_STATISTICS,
                (&mut stats as *mut libc::xdp_statistics).cast(),
                &mut len,
            )
        })?;
        Ok(XskStats {
            rx_dropped: stats.rx_dropped,
            rx_ring_full: stats.rx_ring_full,
            rx_fill_ring_empty: stats.rx_fill_ring_empty_descs,
            rx_invalid: stats.rx_invalid_descs,
        })
    }
}
