//! Any bytes through the SIP parser, as a datagram and as a stream, and the
//! parsed message through the ECS event writer: no panic, and strict JSON
//! out (no key twice in an object, which Elasticsearch rejects).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sipbeat::event::community_id::FlowKey;
use sipbeat::event::{Agent, Context, EcsConfig, EventBuilder};
use sipbeat::sip::{Framing, HeaderSlots, Message, Status, find_start_line};

fuzz_target!(|data: &[u8]| {
    let mut events = EventBuilder::new(
        EcsConfig::default(),
        Agent::named("fuzz", "fuzz"),
    );
    let context = Context {
        timestamp_ns: 0,
        flow: FlowKey {
            src: [192, 0, 2, 1].into(),
            dst: [192, 0, 2, 2].into(),
            src_port: 5060,
            dst_port: 5060,
            protocol: 17,
        },
        ingress: Default::default(),
    };
    for framing in [Framing::Datagram, Framing::Stream] {
        let mut slots = HeaderSlots::new();
        if let Ok(Status::Complete(message)) = Message::parse(data, &mut slots, framing) {
            assert!(message.consumed <= data.len());
            let mut json = Vec::new();
            events.build(&mut json, &message, &context, &Default::default());
            if let Err(error) = sipbeat_testkit::json::parse_event(&json) {
                panic!("{error}: {}", String::from_utf8_lossy(&json));
            }
        }
    }
    if let Some(at) = find_start_line(data) {
        assert!(at < data.len());
    }
});
