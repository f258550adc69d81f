//! The per-frame path every input shares: decode → SIP parse → ECS event →
//! sink. A [`Pipeline`] belongs to one thread (one capture file, or later one
//! RX queue) and reuses its buffers; it holds no locks and allocates nothing
//! per frame except for folded header values.

use crate::capture::Frame;
use crate::decode::{self, Packet, Transport};
use crate::event::community_id::FlowKey;
use crate::event::{Agent, Context, EcsConfig, EventBuilder};
use crate::output::{OutputError, Sink};
use crate::sip::{self, Framing, HeaderSlots, Message, Status};
use crate::stats::Stats;

/// A set of ports as a bitmap: one load and a mask per lookup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortSet {
    bits: Box<[u64; 1024]>,
}

impl PortSet {
    pub fn new(ports: impl IntoIterator<Item = u16>) -> PortSet {
        let mut bits = Box::new([0u64; 1024]);
        for port in ports {
            bits[usize::from(port >> 6)] |= 1 << (port & 63);
        }
        PortSet { bits }
    }

    #[inline]
    pub fn contains(&self, port: u16) -> bool {
        self.bits[usize::from(port >> 6)] & (1 << (port & 63)) != 0
    }
}

/// What a pipeline needs to know, fixed for its lifetime.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PipelineConfig {
    pub ports: PortSet,
    pub ecs: EcsConfig,
}

/// Decode, parse and publish, one frame at a time.
pub struct Pipeline {
    ports: PortSet,
    events: EventBuilder,
    stats: Stats,
}

impl Pipeline {
    pub fn new(config: PipelineConfig, agent: Agent) -> Pipeline {
        Pipeline {
            ports: config.ports,
            events: EventBuilder::new(config.ecs, agent),
            stats: Stats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Mutable counters, for sources that count on the pipeline's behalf.
    pub fn stats_mut(&mut self) -> &mut Stats {
        &mut self.stats
    }

    /// Runs one frame through the pipeline. Only a failing sink is an error;
    /// anything wrong with the frame is counted.
    pub fn process(&mut self, frame: Frame<'_>, sink: &mut dyn Sink) -> Result<(), OutputError> {
        self.stats.frames += 1;
        self.stats.bytes += frame.data.len() as u64;
        let packet = match decode::decode(frame.link, frame.data) {
            Ok(packet) => packet,
            Err(error) => {
                self.stats.decode_error(error);
                return Ok(());
            }
        };
        let Packet {
            src,
            dst,
            transport,
        } = packet;
        match transport {
            Transport::Udp(udp) => {
                if !self.ports.contains(udp.src_port) && !self.ports.contains(udp.dst_port) {
                    self.stats.other_ports += 1;
                    return Ok(());
                }
                let context = Context {
                    timestamp_ns: frame.timestamp_ns,
                    flow: FlowKey {
                        src,
                        dst,
                        src_port: udp.src_port,
                        dst_port: udp.dst_port,
                        protocol: decode::protocol::UDP,
                    },
                };
                self.datagram(udp.payload, &context, sink)
            }
        }
    }

    /// One UDP payload holds at most one SIP message (RFC 3261 §18.3).
    fn datagram(
        &mut self,
        payload: &[u8],
        context: &Context,
        sink: &mut dyn Sink,
    ) -> Result<(), OutputError> {
        let mut slots = HeaderSlots::new();
        match Message::parse(payload, &mut slots, Framing::Datagram) {
            Ok(Status::Complete(message)) => self.publish(&message, context, sink),
            // A datagram parse never waits for more bytes.
            Ok(Status::Partial) => {
                self.stats.rejected(sip::Error::HeadersUnterminated);
                Ok(())
            }
            Err(error) => {
                self.stats.rejected(error);
                Ok(())
            }
        }
    }

    fn publish(
        &mut self,
        message: &Message<'_>,
        context: &Context,
        sink: &mut dyn Sink,
    ) -> Result<(), OutputError> {
        self.stats.messages += 1;
        let json = self.events.build(message, context);
        sink.publish(json, message.call_id)?;
        self.stats.events += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::LinkType;
    use crate::decode::testing::udp4_frame;

    #[derive(Default)]
    struct Collect(Vec<(Vec<u8>, Option<Vec<u8>>)>);

    impl Sink for Collect {
        fn publish(&mut self, json: &[u8], key: Option<&[u8]>) -> Result<(), OutputError> {
            self.0.push((json.to_vec(), key.map(<[u8]>::to_vec)));
            Ok(())
        }
        fn flush(&mut self) -> Result<(), OutputError> {
            Ok(())
        }
    }

    fn pipeline() -> Pipeline {
        Pipeline::new(
            PipelineConfig {
                ports: PortSet::new([5060]),
                ecs: EcsConfig::default(),
            },
            Agent {
                version: "test".into(),
                hostname: "host".into(),
            },
        )
    }

    const OPTIONS: &[u8] = b"OPTIONS sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:alice@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\nCall-ID: abc@h\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";

    fn frame(data: &[u8]) -> Frame<'_> {
        Frame {
            timestamp_ns: 1_500_000_000_000_000_000,
            link: LinkType::Ethernet,
            data,
        }
    }

    #[test]
    fn sip_port_message_becomes_one_keyed_event() {
        let mut pipeline = pipeline();
        let mut sink = Collect::default();
        let bytes = udp4_frame([192, 0, 2, 1], [192, 0, 2, 2], 40000, 5060, OPTIONS);
        pipeline.process(frame(&bytes), &mut sink).unwrap();
        assert_eq!(sink.0.len(), 1);
        assert_eq!(sink.0[0].1.as_deref(), Some(&b"abc@h"[..]));
        let event: serde_json::Value = serde_json::from_slice(&sink.0[0].0).unwrap();
        assert_eq!(event["sip"]["method"], "OPTIONS");
        assert_eq!(event["source"]["port"], 40000);
        assert_eq!(event["@timestamp"], "2017-07-14T02:40:00.000Z");
        assert_eq!(pipeline.stats().events, 1);
    }

    #[test]
    fn other_ports_and_garbage_are_counted_not_published() {
        let mut pipeline = pipeline();
        let mut sink = Collect::default();
        let other = udp4_frame([192, 0, 2, 1], [192, 0, 2, 2], 40000, 53, OPTIONS);
        let garbage = udp4_frame(
            [192, 0, 2, 1],
            [192, 0, 2, 2],
            40000,
            5060,
            b"\x16\x03\x01binary",
        );
        for bytes in [&other, &garbage] {
            pipeline.process(frame(bytes), &mut sink).unwrap();
        }
        pipeline.process(frame(&[0u8; 5]), &mut sink).unwrap();
        assert!(sink.0.is_empty());
        let stats = pipeline.stats();
        assert_eq!(stats.other_ports, 1);
        assert_eq!(stats.rejected_by(sip::Error::NotSip), 1);
        assert_eq!(stats.malformed_frames(), 1);
        assert_eq!(stats.frames, 3);
    }

    #[test]
    fn port_set_edges() {
        let set = PortSet::new([0, 63, 64, 65535]);
        for port in [0, 63, 64, 65535] {
            assert!(set.contains(port));
        }
        assert!(!set.contains(5060));
    }
}
