//! Arbitrary fragment sequences through IP reassembly with tight limits: no
//! panic, limits hold after every fragment, whatever completes is whole.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sipbeat::decode::ip::Fragment;
use sipbeat::reassemble::ReassemblyConfig;
use sipbeat::reassemble::defrag::Defragmenter;

fuzz_target!(|data: &[u8]| {
    let config = ReassemblyConfig {
        fragment_max_datagrams: 4,
        fragment_max_bytes: 131_072,
        fragment_timeout_secs: 3,
        ..ReassemblyConfig::default()
    };
    let mut defrag = Defragmenter::new(&config);
    let mut rest = data;
    // Each record: id (1), offset in 8-byte units (2), flags (1), clock (1), length (1), payload.
    while let [id, o0, o1, flags, clock, len, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let (payload, next) = tail.split_at(len);
        rest = next;
        let v6 = flags & 2 != 0;
        let (src, dst) = if v6 {
            (
                "2001:db8::1".parse().unwrap(),
                "2001:db8::2".parse().unwrap(),
            )
        } else {
            ([192, 0, 2, 1].into(), [192, 0, 2, 2].into())
        };
        let fragment = Fragment {
            id: u32::from(id % 8),
            offset: usize::from(u16::from_be_bytes([*o0, *o1]) & 0x1fff) * 8,
            more: flags & 1 != 0,
        };
        let now = u64::from(*clock) * 1_000_000_000;
        if let Some(whole) = defrag.add(now, src, dst, 17, fragment, payload) {
            assert!(whole.payload.len() <= 65_535);
        }
        assert!(defrag.in_flight() <= config.fragment_max_datagrams);
        assert!(defrag.bytes_held() <= config.fragment_max_bytes);
    }
    defrag.finish();
    assert_eq!(defrag.bytes_held(), 0);
});
