//! Any bytes as a frame of every link type, through the whole pipeline
//! (decode, tunnels, reassembly, SIP, events): no panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sipbeat::capture::{Frame, LinkType};
use sipbeat::config::TransportProtocol;
use sipbeat::event::{Agent, EcsConfig};
use sipbeat::output::{EventMeta, OutputError, Sink};
use sipbeat::pipeline::{Pipeline, PipelineConfig, PortSet};
use sipbeat::reassemble::ReassemblyConfig;

struct Discard;

impl Sink for Discard {
    fn publish(&mut self, json: &[u8], _: &EventMeta<'_>) -> Result<(), OutputError> {
        assert!(std::str::from_utf8(json).is_ok());
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
        PipelineConfig {
            // Any port: the fuzzer should not have to guess 5060.
            ports: PortSet::new(0..=u16::MAX),
            transport: TransportProtocol::Both,
            ecs: EcsConfig::default(),
            reassembly: ReassemblyConfig::default(),
        },
        Agent {
            version: "fuzz".into(),
            hostname: "fuzz".into(),
        },
    );
    let link = LinkType::ALL[usize::from(selector) % LinkType::ALL.len()];
    pipeline
        .process(
            Frame {
                timestamp_ns: 0,
                link,
                data: frame,
            },
            &mut Discard,
        )
        .unwrap();
    pipeline.finish(&mut Discard).unwrap();
});
