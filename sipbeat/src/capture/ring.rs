//! Host mode's ring buffer: the records the TC programs copied, read in
//! place. Each record is a [`PacketHeader`] and the packet's first
//! `captured` bytes; the ring is one buffer shared by every CPU and both
//! directions, so a flow's packets come out in the order the kernel saw
//! them (TCP reassembly needs that; per-CPU buffers would interleave a
//! stream sent from several CPUs in arbitrary order).

use std::io;
use std::os::fd::AsRawFd;

use aya::maps::{MapData, RingBuf};
use sipbeat_common::PacketHeader;

/// The ring, and the clock to turn its boot-time stamps into wall time.
pub struct HostRing {
    ring: RingBuf<MapData>,
    clock: BootClock,
    /// Records too short for their header (never expected; counted as
    /// damaged capture records).
    pub malformed: u64,
}

impl HostRing {
    pub fn new(ring: RingBuf<MapData>) -> HostRing {
        HostRing {
            ring,
            clock: BootClock::now(),
            malformed: 0,
        }
    }

    /// Waits up to `timeout_ms` for records.
    pub fn wait(&mut self, timeout_ms: i32) -> io::Result<()> {
        super::wait_readable(self.ring.as_raw_fd(), timeout_ms)?;
        // Wall time may be stepped; keep the offset fresh between batches.
        self.clock = BootClock::now();
        Ok(())
    }

    /// Hands up to `max` records to `on_packet` (wall-clock ns, header,
    /// bytes), each given back to the kernel right after. Returns how many.
    pub fn receive(
        &mut self,
        max: usize,
        mut on_packet: impl FnMut(u64, &PacketHeader, &[u8]),
    ) -> usize {
        let mut count = 0;
        while count < max {
            let Some(record) = self.ring.next() else {
                break;
            };
            count += 1;
            let size = size_of::<PacketHeader>();
            let Some(header) = record
                .get(..size)
                .map(bytemuck::pod_read_unaligned::<PacketHeader>)
            else {
                self.malformed += 1;
                continue;
            };
            let end = size
                .saturating_add(header.captured as usize)
                .min(record.len());
            on_packet(
                self.clock.wall_ns(header.boot_ns),
                &header,
                &record[size..end],
            );
        }
        count
    }
}

/// `CLOCK_REALTIME - CLOCK_BOOTTIME`, to turn the programs' stamps into
/// capture times.
#[derive(Clone, Copy, Debug)]
struct BootClock {
    offset_ns: i128,
}

fn clock_ns(clock: libc::clockid_t) -> i128 {
    // SAFETY: all-zero is a valid timespec.
    let mut time: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: a valid clock id and a timespec to write.
    unsafe { libc::clock_gettime(clock, &mut time) };
    i128::from(time.tv_sec) * 1_000_000_000 + i128::from(time.tv_nsec)
}

impl BootClock {
    fn now() -> BootClock {
        BootClock {
            offset_ns: clock_ns(libc::CLOCK_REALTIME) - clock_ns(libc::CLOCK_BOOTTIME),
        }
    }

    fn wall_ns(self, boot_ns: u64) -> u64 {
        (i128::from(boot_ns) + self.offset_ns).max(0) as u64
    }
}
