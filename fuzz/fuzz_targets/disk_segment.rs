//! Arbitrary bytes as a disk-queue segment file: no panic, no hang; every
//! record lies inside the file and what was read up to is no more than it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sipbeat::output::queue::read_segment;

fuzz_target!(|data: &[u8]| {
    let mut bytes = 0usize;
    if let Some(walked) = read_segment(data, |record| bytes += record.payload.len()) {
        assert!(walked.whole <= data.len());
        assert!(bytes <= data.len());
        assert!(walked.corrupt_bytes <= data.len());
    }
});
