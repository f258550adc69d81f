//! Arbitrary bytes as a pcap or pcapng file: no panic, no hang; every
//! frame handed out lies inside the file, and what was skipped as damaged
//! is no more than the file holds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sipbeat::capture::pcap::PcapFile;

fuzz_target!(|data: &[u8]| {
    let Ok(mut file) = PcapFile::from_bytes("fuzz", data) else {
        return;
    };
    let mut bytes = 0usize;
    let Ok(stats) = file.for_each_frame(|frame| bytes += frame.data.len()) else {
        return;
    };
    assert!(bytes <= data.len());
    assert!(stats.damaged_bytes as usize <= data.len());
});
