//! The per-frame path every input shares: decode → reassemble → SIP parse →
//! ECS event → sink. A [`Pipeline`] belongs to one thread (one capture file,
//! or later one RX queue) and reuses its buffers; it holds no locks and
//! allocates nothing per frame except for folded header values, reassembled
//! datagrams and TCP bytes that must wait for the rest of their message.

use crate::capture::Frame;
use crate::decode::{self, Packet, Transport, TunnelPorts, protocol};
use crate::event::community_id::FlowKey;
use crate::event::{Agent, Context, EcsConfig, EventBuilder, Ingress, Labels};
use crate::output::{Dataset, EventMeta, OutputError, Sink};
use crate::reassemble::ReassemblyConfig;
use crate::reassemble::defrag::Defragmenter;
use crate::reassemble::tcp::{StreamConsumer, StreamKey, TcpReassembler};
use crate::shard::{Handoff, Kept, Shard};
use crate::sip::{self, Framing, HeaderSlots, Message, StartLine, Status};
use crate::stats::Stats;
use crate::track::call::{CallConfig, Calls};
use crate::track::transaction::{Sighting, TransactionConfig, Transactions};

/// Which transports carry the SIP to decode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum TransportProtocol {
    Udp,
    Tcp,
    /// Both at once (Packetbeat needs one config per transport).
    #[default]
    Both,
}

/// One `type: sip` block: its ports and transports, how its events are
/// shaped and labelled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SipBlock {
    pub ports: Vec<u16>,
    pub transport: TransportProtocol,
    pub ecs: EcsConfig,
    pub labels: Labels,
}

impl SipBlock {
    /// A block without labels.
    pub fn new(
        ports: impl IntoIterator<Item = u16>,
        transport: TransportProtocol,
        ecs: EcsConfig,
    ) -> SipBlock {
        SipBlock {
            ports: ports.into_iter().collect(),
            transport,
            ecs,
            labels: Labels::default(),
        }
    }

    fn carries(&self, transport: TransportProtocol) -> bool {
        self.transport == TransportProtocol::Both || self.transport == transport
    }
}

/// Which block, if any, owns each port of one transport: one load per
/// lookup.
#[derive(Clone, Debug, PartialEq, Eq)]
struct PortBlocks {
    /// The block's index plus one; 0 for none.
    owner: Box<[u8; 65536]>,
}

impl PortBlocks {
    fn new(blocks: &[SipBlock], transport: TransportProtocol) -> PortBlocks {
        let mut owner = Box::new([0u8; 65536]);
        // The first block to claim a port owns it (config validation
        // refuses overlaps).
        for (index, block) in blocks.iter().enumerate().rev() {
            if block.carries(transport) {
                for &port in &block.ports {
                    owner[usize::from(port)] = index as u8 + 1;
                }
            }
        }
        PortBlocks { owner }
    }

    /// The block owning either port (the lower-numbered block when both
    /// are owned).
    #[inline]
    fn either(&self, a: u16, b: u16) -> Option<usize> {
        let (a, b) = (self.owner[usize::from(a)], self.owner[usize::from(b)]);
        match (a, b) {
            (0, 0) => None,
            (0, x) | (x, 0) => Some(usize::from(x) - 1),
            (x, y) => Some(usize::from(x.min(y)) - 1),
        }
    }
}

/// The most SIP blocks a config may have.
pub const MAX_BLOCKS: usize = 255;

/// What a pipeline needs to know, fixed for its lifetime.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PipelineConfig {
    /// At least one, at most [`MAX_BLOCKS`].
    pub blocks: Vec<SipBlock>,
    /// For `network.direction` (validated with the config).
    pub internal_networks: Vec<String>,
    /// Limits of transaction tracking.
    pub transactions: TransactionConfig,
    /// Call records and their limits.
    pub calls: CallConfig,
    /// Headers that give `sip.correlation_id`, in order of preference.
    pub correlation_headers: Vec<String>,
    pub reassembly: ReassemblyConfig,
    /// UDP ports of VXLAN and Geneve tunnels to look into.
    pub tunnels: TunnelPorts,
}

impl PipelineConfig {
    /// One SIP block; default reassembly limits and tunnel ports.
    pub fn sip(
        ports: impl IntoIterator<Item = u16>,
        transport: TransportProtocol,
        ecs: EcsConfig,
    ) -> PipelineConfig {
        PipelineConfig {
            blocks: vec![SipBlock::new(ports, transport, ecs)],
            internal_networks: Vec::new(),
            transactions: TransactionConfig::default(),
            calls: CallConfig::default(),
            correlation_headers: Vec::new(),
            reassembly: ReassemblyConfig::default(),
            tunnels: TunnelPorts::default(),
        }
    }
}

/// Decode, reassemble, parse and publish, one frame at a time.
pub struct Pipeline {
    udp: PortBlocks,
    tcp_blocks: PortBlocks,
    tunnels: TunnelPorts,
    tracking: Tracking,
    defrag: Defragmenter,
    tcp: TcpReassembler,
    stats: Stats,
    /// Capture time of the latest frame: the clock for the end of input.
    now_ns: u64,
}

/// How many reassembled datagrams may nest (a fragmented tunnel carrying
/// fragments); beyond this the inner fragments are dropped and counted.
const MAX_REASSEMBLY_DEPTH: u8 = 2;

impl Pipeline {
    /// A pipeline whose events carry `agent`; `local` are this node's
    /// addresses (live capture), for `network.direction`.
    pub fn new(config: PipelineConfig, agent: Agent) -> Pipeline {
        Pipeline::with_local(config, agent, Vec::new())
    }

    /// [`Pipeline::new`], knowing this node's addresses.
    pub fn with_local(
        config: PipelineConfig,
        agent: Agent,
        local: Vec<std::net::IpAddr>,
    ) -> Pipeline {
        let mut networks =
            crate::event::direction::Networks::parse(&config.internal_networks).unwrap_or_default();
        networks.local = local;
        assert!(
            (1..=MAX_BLOCKS).contains(&config.blocks.len()),
            "config validation keeps 1 to {MAX_BLOCKS} blocks"
        );
        Pipeline {
            udp: PortBlocks::new(&config.blocks, TransportProtocol::Udp),
            tcp_blocks: PortBlocks::new(&config.blocks, TransportProtocol::Tcp),
            tunnels: config.tunnels,
            tracking: Tracking {
                events: config
                    .blocks
                    .iter()
                    .map(|block| {
                        EventBuilder::new(block.ecs, agent.clone())
                            .labelled(&block.labels)
                            .correlated(&config.correlation_headers)
                            .with_direction(networks.clone())
                    })
                    .collect(),
                transactions: Transactions::new(config.transactions),
                calls: Calls::new(config.calls),
                shard: None,
            },
            defrag: Defragmenter::new(&config.reassembly),
            tcp: TcpReassembler::new(&config.reassembly),
            stats: Stats::default(),
            now_ns: 0,
        }
    }

    /// This pipeline as one of several workers: messages whose Call-ID
    /// another owns are handed to it (see [`crate::shard`]).
    pub fn sharded(mut self, shard: Shard) -> Pipeline {
        self.tracking.shard = Some(shard);
        self
    }

    /// Tracks and publishes the messages other workers handed over.
    pub fn receive_handoffs(&mut self, sink: &mut dyn Sink) -> Result<(), OutputError> {
        while let Some(handoff) = self.tracking.shard.as_ref().and_then(Shard::receive) {
            let framing = if handoff.flow.protocol == protocol::TCP {
                Framing::Stream
            } else {
                Framing::Datagram
            };
            let mut slots = HeaderSlots::new();
            let Ok(Status::Complete(message)) =
                Message::parse(handoff.message(), &mut slots, framing)
            else {
                // It parsed in the worker that sent it.
                self.stats.rejected(sip::Error::HeadersUnterminated);
                continue;
            };
            let context = Context {
                timestamp_ns: handoff.timestamp_ns,
                flow: handoff.flow,
                ingress: Ingress {
                    interface: handoff.interface(),
                    vlan: handoff.vlan,
                },
            };
            self.now_ns = self.now_ns.max(handoff.timestamp_ns);
            let block = handoff.block.min(self.tracking.events.len() - 1);
            // Its owner is here: tracked, never handed on.
            self.tracking
                .publish(&mut self.stats, (block, false), &message, &context, sink)?;
        }
        Ok(())
    }

    /// End of a sharded run: hands nothing over from now on, and takes in
    /// what other workers still hand over until every one has stopped
    /// handing over (at most `patience`).
    pub fn close_shard(
        &mut self,
        sink: &mut dyn Sink,
        patience: std::time::Duration,
    ) -> Result<(), OutputError> {
        let deadline = std::time::Instant::now() + patience;
        while let Some(shard) = self.tracking.shard.as_mut() {
            let all_closed = shard.close();
            self.receive_handoffs(sink)?;
            let empty = self.tracking.shard.as_ref().is_none_or(Shard::is_empty);
            if (all_closed && empty) || std::time::Instant::now() > deadline {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        Ok(())
    }

    /// Whether this pipeline shares Call-IDs with other workers.
    pub fn is_sharded(&self) -> bool {
        self.tracking.shard.is_some()
    }

    /// Counters so far, reassembly's included.
    pub fn stats(&self) -> Stats {
        let mut stats = self.stats.clone();
        stats.tcp = *self.tcp.stats();
        stats.transactions = *self.tracking.transactions.stats();
        stats.calls = *self.tracking.calls.stats();
        stats.defrag = *self.defrag.stats();
        stats
    }

    /// Mutable counters, for sources that count on the pipeline's behalf.
    pub fn stats_mut(&mut self) -> &mut Stats {
        &mut self.stats
    }

    /// Runs one frame through the pipeline. Only a failing sink is an error;
    /// anything wrong with the frame is counted.
    pub fn process(&mut self, frame: Frame<'_>, sink: &mut dyn Sink) -> Result<(), OutputError> {
        self.stats.counts.frames += 1;
        self.stats.counts.frame_bytes += frame.data.len() as u64;
        self.now_ns = self.now_ns.max(frame.timestamp_ns);
        let ingress = Ingress {
            interface: frame.interface,
            vlan: decode::link::outer_vlan(frame.link, frame.data),
        };
        match decode::decode_with(frame.link, frame.data, &self.tunnels) {
            Ok(packet) => self.packet(packet, frame.timestamp_ns, ingress, sink, 0),
            Err(error) => {
                self.stats.decode_error(error);
                Ok(())
            }
        }
    }

    fn packet(
        &mut self,
        packet: Packet<'_>,
        timestamp_ns: u64,
        ingress: Ingress<'_>,
        sink: &mut dyn Sink,
        depth: u8,
    ) -> Result<(), OutputError> {
        let Packet {
            src,
            dst,
            transport,
        } = packet;
        match transport {
            Transport::Udp(udp) => {
                let Some(block) = self.udp.either(udp.src_port, udp.dst_port) else {
                    let tcp_port = self.tcp_blocks.either(udp.src_port, udp.dst_port);
                    self.not_sip(tcp_port.is_some());
                    return Ok(());
                };
                let context = Context {
                    timestamp_ns,
                    flow: FlowKey {
                        src,
                        dst,
                        src_port: udp.src_port,
                        dst_port: udp.dst_port,
                        protocol: protocol::UDP,
                    },
                    ingress,
                };
                self.datagram(block, udp.payload, &context, sink)
            }
            Transport::Tcp(segment) => {
                if self
                    .tcp_blocks
                    .either(segment.src_port, segment.dst_port)
                    .is_none()
                {
                    let udp_port = self.udp.either(segment.src_port, segment.dst_port);
                    self.not_sip(udp_port.is_some());
                    return Ok(());
                }
                let key = StreamKey {
                    src,
                    dst,
                    src_port: segment.src_port,
                    dst_port: segment.dst_port,
                };
                let mut framer = SipFramer {
                    tracking: &mut self.tracking,
                    hand_over: true,
                    blocks: &self.tcp_blocks,
                    ingress,
                    stats: &mut self.stats,
                    sink,
                    failed: None,
                };
                self.tcp.segment(timestamp_ns, key, &segment, &mut framer);
                framer.failed.map_or(Ok(()), Err)
            }
            Transport::Fragment {
                protocol,
                fragment,
                payload,
            } => {
                if depth >= MAX_REASSEMBLY_DEPTH {
                    self.stats
                        .decode_error(decode::DecodeError::TooManyEncapsulations);
                    return Ok(());
                }
                let Some(whole) =
                    self.defrag
                        .add(timestamp_ns, src, dst, protocol, fragment, payload)
                else {
                    return Ok(());
                };
                match decode::transport(src, dst, whole.protocol, &whole.payload, &self.tunnels) {
                    Ok(packet) => self.packet(packet, timestamp_ns, ingress, sink, depth + 1),
                    Err(error) => {
                        self.stats.decode_error(error);
                        Ok(())
                    }
                }
            }
        }
    }

    /// Counts a datagram or segment no block takes: on no SIP port, or on
    /// one whose block leaves out its transport.
    fn not_sip(&mut self, on_other_transports_port: bool) {
        if on_other_transports_port {
            self.stats.counts.transport_disabled += 1;
        } else {
            self.stats.counts.other_ports += 1;
        }
    }

    /// One UDP payload holds at most one SIP message (RFC 3261 §18.3).
    fn datagram(
        &mut self,
        block: usize,
        payload: &[u8],
        context: &Context,
        sink: &mut dyn Sink,
    ) -> Result<(), OutputError> {
        let mut slots = HeaderSlots::new();
        match Message::parse(payload, &mut slots, Framing::Datagram) {
            Ok(Status::Complete(message)) => {
                self.tracking
                    .publish(&mut self.stats, (block, true), &message, context, sink)
            }
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

    /// End of input: open TCP streams close, unfinished datagrams are dropped.
    pub fn finish(&mut self, sink: &mut dyn Sink) -> Result<(), OutputError> {
        // Streams closed at the end are tracked here, whoever owns them.
        let mut framer = SipFramer {
            tracking: &mut self.tracking,
            hand_over: false,
            blocks: &self.tcp_blocks,
            // Streams closed at the end of input: no packet brought them.
            ingress: Ingress::default(),
            stats: &mut self.stats,
            sink,
            failed: None,
        };
        self.tcp.finish(self.now_ns, &mut framer);
        self.defrag.finish();
        framer.failed.map_or(Ok(()), Err)?;
        self.tracking.calls.finish();
        self.tracking.write_calls(&mut self.stats, sink)
    }

    /// Live capture, between frames: calls whose timers ran out by `now_ns`
    /// (wall clock, as frames are stamped) are recorded.
    pub fn tick(&mut self, now_ns: u64, sink: &mut dyn Sink) -> Result<(), OutputError> {
        self.tracking.calls.expire(now_ns.max(self.now_ns));
        self.tracking.write_calls(&mut self.stats, sink)
    }
}

/// What publishing a message updates besides the counters: the event
/// builders (its block's, and those of calls it ends), the transactions,
/// the calls, and the other workers' share of Call-IDs.
struct Tracking {
    /// One per block.
    events: Vec<EventBuilder>,
    /// Every block's transactions.
    transactions: Transactions,
    /// Every block's calls.
    calls: Calls,
    /// Live, with several workers: which Call-IDs are this one's.
    shard: Option<Shard>,
}

impl Tracking {
    /// Tracks `message`, which came in on `block`, and publishes its event
    /// and the records of the calls that ended; with `hand_over`, a message
    /// whose Call-ID another worker owns goes to that worker instead.
    fn publish(
        &mut self,
        stats: &mut Stats,
        (block, hand_over): (usize, bool),
        message: &Message<'_>,
        context: &Context,
        sink: &mut dyn Sink,
    ) -> Result<(), OutputError> {
        let shard = self.shard.as_ref().filter(|_| hand_over);
        if let (Some(shard), Some(call_id)) = (shard, message.call_id) {
            match shard.hand_over(call_id, || Handoff::new(message.raw, block, context)) {
                Ok(()) => {
                    stats.counts.handed_over += 1;
                    return Ok(());
                }
                Err(Kept::InboxFull) => stats.counts.kept_inbox_full += 1,
                Err(Kept::Owned) => {}
            }
        }
        stats.counts.messages += 1;
        let flow = &context.flow;
        let sighting = Sighting {
            src: (flow.src, flow.src_port),
            dst: (flow.dst, flow.dst_port),
            now_ns: context.timestamp_ns,
            udp: flow.protocol == protocol::UDP,
        };
        let seen = self.transactions.track(message, &sighting);
        stats.kpis.record(message, &seen);
        let start = sink.buffer().len();
        self.events[block].build(sink.buffer(), message, context, &seen);
        let meta = EventMeta {
            call_id: message.call_id,
            method: match message.start {
                StartLine::Request { method, .. } => Some(method),
                StartLine::Response { .. } => message.cseq.map(|c| c.method),
            },
            sip_type: Some(message.sip_type()),
            timestamp_ns: context.timestamp_ns,
            dataset: Dataset::Sip,
        };
        sink.publish(start, &meta)?;
        stats.counts.events += 1;
        let builder = &self.events[block];
        self.calls.track(message, &sighting, &seen, block, || {
            builder.correlation_id(message)
        });
        if self.calls.has_ended() {
            self.write_calls(stats, sink)?;
        }
        Ok(())
    }

    /// Writes the records of the calls that ended.
    fn write_calls(&mut self, stats: &mut Stats, sink: &mut dyn Sink) -> Result<(), OutputError> {
        for record in self.calls.take_ended() {
            stats.kpis.record_call(&record);
            let start = sink.buffer().len();
            let block = record.block.min(self.events.len() - 1);
            self.events[block].build_call(sink.buffer(), &record);
            let meta = EventMeta {
                call_id: Some(record.info.call_id()),
                method: Some(b"INVITE"),
                sip_type: None,
                timestamp_ns: record.end_ns,
                dataset: Dataset::Call,
            };
            sink.publish(start, &meta)?;
            stats.counts.events += 1;
        }
        Ok(())
    }
}

/// SIP framing over a TCP byte stream (RFC 3261 §18.3): messages end at
/// Content-Length (at the headers' end without one). After a gap or a
/// broken message it skips to the next line that is a SIP start line.
struct SipFramer<'a> {
    tracking: &'a mut Tracking,
    /// Whether messages another worker owns go to it.
    hand_over: bool,
    /// Which block a stream's ports belong to.
    blocks: &'a PortBlocks,
    /// Where the segment being fed came in.
    ingress: Ingress<'a>,
    stats: &'a mut Stats,
    sink: &'a mut dyn Sink,
    /// The first output failure; the stream is consumed regardless.
    failed: Option<OutputError>,
}

/// Bytes of an unterminated line kept while looking for a start line.
const MAX_START_LINE: usize = 8 * 1024;

impl StreamConsumer for SipFramer<'_> {
    fn consume(&mut self, key: &StreamKey, bytes: &[u8], in_sync: &mut bool, now_ns: u64) -> usize {
        let context = Context {
            timestamp_ns: now_ns,
            flow: FlowKey {
                src: key.src,
                dst: key.dst,
                src_port: key.src_port,
                dst_port: key.dst_port,
                protocol: protocol::TCP,
            },
            ingress: self.ingress,
        };
        let mut used = 0;
        loop {
            // CRLF keep-alives (RFC 5626) between messages.
            used += bytes[used..]
                .iter()
                .take_while(|&&b| b == b'\r' || b == b'\n')
                .count();
            let rest = &bytes[used..];
            if rest.is_empty() {
                return used;
            }
            if !*in_sync {
                match sip::find_start_line(rest) {
                    Some(offset) => {
                        self.stats.counts.stream_bytes_skipped += offset as u64;
                        used += offset;
                        *in_sync = true;
                        continue;
                    }
                    None => {
                        // Keep the unterminated last line: it may be a start line.
                        let keep = rest
                            .iter()
                            .rposition(|&b| b == b'\n')
                            .map_or(rest.len(), |nl| rest.len() - nl - 1);
                        let keep = if keep > MAX_START_LINE { 0 } else { keep };
                        self.stats.counts.stream_bytes_skipped += (rest.len() - keep) as u64;
                        return used + rest.len() - keep;
                    }
                }
            }
            let mut slots = HeaderSlots::new();
            match Message::parse(rest, &mut slots, Framing::Stream) {
                Ok(Status::Complete(message)) => {
                    used += message.consumed;
                    // Streams exist only on ports a block owns.
                    let block = self.blocks.either(key.src_port, key.dst_port).unwrap_or(0);
                    let published = self.tracking.publish(
                        self.stats,
                        (block, self.hand_over),
                        &message,
                        &context,
                        self.sink,
                    );
                    if let Err(error) = published {
                        self.failed.get_or_insert(error);
                    }
                }
                Ok(Status::Partial) => return used,
                Err(error) => {
                    self.stats.rejected(error);
                    *in_sync = false;
                    // Past the offending start line, then look for the next.
                    used += rest
                        .iter()
                        .position(|&b| b == b'\n')
                        .map_or(rest.len(), |nl| nl + 1);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::LinkType;
    use crate::decode::testing::udp4_frame;

    #[derive(Default)]
    struct Collect(Vec<(Vec<u8>, Option<Vec<u8>>)>, Vec<u8>);

    impl Sink for Collect {
        fn buffer(&mut self) -> &mut Vec<u8> {
            &mut self.1
        }
        fn publish(&mut self, start: usize, meta: &EventMeta<'_>) -> Result<(), OutputError> {
            let json = self.1.split_off(start);
            self.0.push((json, meta.call_id.map(<[u8]>::to_vec)));
            Ok(())
        }
        fn flush(&mut self) -> Result<(), OutputError> {
            Ok(())
        }
    }

    fn pipeline() -> Pipeline {
        Pipeline::new(
            PipelineConfig::sip([5060], TransportProtocol::Both, EcsConfig::default()),
            Agent::named("test", "host"),
        )
    }

    const OPTIONS: &[u8] = b"OPTIONS sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:alice@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\nCall-ID: abc@h\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";

    fn frame(data: &[u8]) -> Frame<'_> {
        Frame {
            timestamp_ns: 1_500_000_000_000_000_000,
            link: LinkType::Ethernet,
            data,
            interface: None,
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
        assert_eq!(pipeline.stats().counts.events, 1);
    }

    #[test]
    fn via_elements_are_via_parms_whether_listed_or_not() {
        let message = |vias: &str| {
            format!(
                "OPTIONS sip:bob@example.com SIP/2.0\r\n{vias}From: <sip:a@h>;tag=1\r\n\
                 To: <sip:b@h>\r\nCall-ID: v@h\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
            )
        };
        for (vias, expected) in [
            (
                "Via: SIP/2.0/UDP a;branch=1\r\nv: SIP/2.0/TCP b\r\n",
                &["SIP/2.0/UDP a;branch=1", "SIP/2.0/TCP b"][..],
            ),
            (
                "Via: SIP/2.0/UDP a;branch=1 , SIP/2.0/TCP b\r\nVia: SIP/2.0/UDP c\r\n",
                &["SIP/2.0/UDP a;branch=1", "SIP/2.0/TCP b", "SIP/2.0/UDP c"],
            ),
        ] {
            let mut pipeline = pipeline();
            let mut sink = Collect::default();
            let payload = message(vias);
            let bytes = udp4_frame(
                [192, 0, 2, 1],
                [192, 0, 2, 2],
                40000,
                5060,
                payload.as_bytes(),
            );
            pipeline.process(frame(&bytes), &mut sink).unwrap();
            let event: serde_json::Value = serde_json::from_slice(&sink.0[0].0).unwrap();
            assert_eq!(
                event["sip"]["via"]["original"],
                serde_json::json!(expected),
                "{vias}"
            );
        }
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
        assert_eq!(stats.counts.other_ports, 1);
        assert_eq!(stats.rejected_by(sip::Error::NotSip), 1);
        assert_eq!(stats.malformed_frames(), 1);
        assert_eq!(stats.counts.frames, 3);
    }

    #[test]
    fn port_block_edges() {
        let blocks = [
            SipBlock::new(
                [0, 63, 64, 65535],
                TransportProtocol::Udp,
                EcsConfig::default(),
            ),
            SipBlock::new([5060, 65535], TransportProtocol::Both, EcsConfig::default()),
        ];
        let udp = PortBlocks::new(&blocks, TransportProtocol::Udp);
        let tcp = PortBlocks::new(&blocks, TransportProtocol::Tcp);
        for port in [0, 63, 64, 65535] {
            assert_eq!(udp.either(port, 1), Some(0), "{port}");
            assert_eq!(udp.either(1, port), Some(0), "{port}");
        }
        assert_eq!(udp.either(5060, 1), Some(1));
        assert_eq!(udp.either(5060, 64), Some(0), "the lower block of two");
        assert_eq!(udp.either(1, 2), None);
        assert_eq!(tcp.either(64, 1), None, "block 0 is UDP only");
        assert_eq!(tcp.either(65535, 1), Some(1));
    }
}
