//! Any bytes as a frame of every link type, through the whole pipeline
//! (decode, tunnels, reassembly, SIP, events): no panic, and every event
//! strict JSON (no key twice in an object, which Elasticsearch rejects).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sipbeat::capture::{Frame, LinkType};
use sipbeat::pipeline::TransportProtocol;
use sipbeat::event::{Agent, EcsConfig};
use sipbeat::output::{EventMeta, OutputError, Sink};
use sipbeat::pipeline::{Pipeline, PipelineConfig};

struct Discard(Vec<u8>);

impl Sink for Discard {
    fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
    fn publish(&mut self, start: usize, _: &EventMeta<'_>) -> Result<(), OutputError> {
        assert_eq!(start, 0);
        if let Err(error) = sipbeat_testkit::json::parse_event(&self.0) {
            panic!("{error}: {}", String::from_utf8_lossy(&self.0));
        }
        self.0.clear();
        Ok(())
    }
    fn flush(&mut self) -> Result<(), OutputError> {
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, frame)) = data.split_first() else {
        return;
    };
    let mut pipeline = Pipeline::new(
        PipelineConfig::sip(0..=u16::MAX, TransportProtocol::Both, EcsConfig::default()),
        Agent::named("fuzz", "fuzz"),
    );
    let link = LinkType::ALL[usize::from(selector) % LinkType::ALL.len()];
    let mut sink = Discard(Vec::new());
    pipeline
        .process(
            Frame {
                timestamp_ns: 0,
                link,
                data: frame,
                interface: Some("fuzz0"),
            },
            &mut sink,
        )
        .unwrap();
    pipeline.finish(&mut sink).unwrap();
});
