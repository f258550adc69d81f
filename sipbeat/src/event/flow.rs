//! The fields an event takes from its flow alone — `network.*` with the
//! Community ID, `source`, `destination`, `client`, `server` — written once
//! per flow and reused. A SIP flow carries many messages, and these are a
//! third of an event's fields.

use std::net::IpAddr;

use super::community_id::{self, FlowKey, community_id};
use super::direction::Networks;
use super::ecs;
use super::json::QuotedIp;
use super::slots::Slots;

/// One flow's pre-written fields.
pub struct FlowFields {
    key: FlowKey,
    /// Members for [`super::json::JsonWriter::members`].
    pub members: Vec<u8>,
    /// The source address as a JSON string, for `related.ip`.
    pub src: QuotedIp,
    /// The destination address as a JSON string.
    pub dst: QuotedIp,
    /// `network.community_id`, the same for both directions of the flow.
    community_id: [u8; community_id::LEN],
}

/// Slots of the cache.
const SLOTS: usize = 1024;

/// A direct-mapped cache of [`FlowFields`] (see `event/slots.rs`).
#[derive(Debug, Default)]
pub struct FlowCache {
    slots: Slots<FlowFields, SLOTS>,
    /// What `network.direction` is derived from; none: no direction.
    networks: Option<Box<Networks>>,
}

impl FlowCache {
    /// A cache whose flows get a `network.direction` from `networks`.
    pub fn with_direction(networks: Networks) -> FlowCache {
        FlowCache {
            slots: Slots::default(),
            networks: (!networks.is_empty()).then(|| Box::new(networks)),
        }
    }

    /// The fields of `flow`, written on first use of its slot.
    pub fn get(&mut self, flow: &FlowKey) -> &FlowFields {
        let at = slot_of(flow);
        if self.slots[at]
            .as_ref()
            .is_none_or(|cached| cached.key != *flow)
        {
            // A new flow is most often the answer to one just seen (a
            // response, the callee's first request): its Community ID and
            // addresses are those of the reverse flow.
            let reverse = flow.reversed();
            let known = self.slots[slot_of(&reverse)]
                .as_ref()
                .filter(|cached| cached.key == reverse)
                .map(|cached| Endpoints {
                    src: cached.dst,
                    dst: cached.src,
                    community_id: cached.community_id,
                })
                .unwrap_or_else(|| Endpoints::of(flow));
            let direction = self
                .networks
                .as_ref()
                .and_then(|n| n.direction(flow.src, flow.dst));
            // The evicted flow's fields are overwritten in place: its
            // buffer takes the new one's (no allocation per new flow), and
            // nothing as large as `FlowFields` is built aside and moved.
            match &mut self.slots[at] {
                Some(evicted) => evicted.rewrite(flow, known, direction),
                empty => *empty = Some(FlowFields::new(flow, known, direction)),
            }
        }
        self.slots[at].as_ref().expect("filled above")
    }
}

/// What a flow's fields are written from besides its ports and protocol.
struct Endpoints {
    src: QuotedIp,
    dst: QuotedIp,
    community_id: [u8; community_id::LEN],
}

impl Endpoints {
    fn of(flow: &FlowKey) -> Endpoints {
        Endpoints {
            src: QuotedIp::new(&flow.src),
            dst: QuotedIp::new(&flow.dst),
            community_id: community_id(flow),
        }
    }
}

impl FlowFields {
    /// The fields of `flow`.
    fn new(flow: &FlowKey, endpoints: Endpoints, direction: Option<&'static str>) -> FlowFields {
        let mut fields = FlowFields {
            key: *flow,
            members: Vec::new(),
            src: endpoints.src,
            dst: endpoints.dst,
            community_id: endpoints.community_id,
        };
        fields.write_members(direction);
        fields
    }

    /// These fields made those of `flow`, in the same buffer.
    fn rewrite(&mut self, flow: &FlowKey, endpoints: Endpoints, direction: Option<&'static str>) {
        self.key = *flow;
        self.src = endpoints.src;
        self.dst = endpoints.dst;
        self.community_id = endpoints.community_id;
        self.write_members(direction);
    }

    fn write_members(&mut self, direction: Option<&'static str>) {
        self.members.clear();
        ecs::write_flow_members(
            &mut self.members,
            &self.key,
            &self.community_id,
            direction,
            &self.src,
            &self.dst,
        );
    }
}

/// The slot of `flow`: its addresses, ports and protocol hashed.
fn slot_of(flow: &FlowKey) -> usize {
    let address = |ip: &IpAddr| match ip {
        IpAddr::V4(v4) => u64::from(v4.to_bits()),
        IpAddr::V6(v6) => {
            let bits = v6.to_bits();
            (bits as u64) ^ (bits >> 64) as u64
        }
    };
    let ports =
        u64::from(flow.src_port) << 24 | u64::from(flow.dst_port) << 8 | u64::from(flow.protocol);
    Slots::<FlowFields, SLOTS>::slot_of([ports, address(&flow.src), address(&flow.dst)])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(src: &str, sport: u16, dst: &str, dport: u16) -> FlowKey {
        FlowKey {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            src_port: sport,
            dst_port: dport,
            protocol: 17,
        }
    }

    #[test]
    fn cached_fields_are_those_of_the_flow_asked_for() {
        let mut cache = FlowCache::default();
        // Enough flows that some share a slot and evict each other, each
        // followed by its reverse, whose fields come from the forward one's
        // while it is still cached.
        let flows: Vec<FlowKey> = (0..3 * SLOTS as u16)
            .map(|n| flow("192.0.2.1", 5060 + n, "2001:db8::2", 5060))
            .flat_map(|f| [f, f.reversed()])
            .collect();
        for _ in 0..2 {
            for f in &flows {
                let fields = cache.get(f);
                // A reused or derived slot holds exactly what a fresh one would.
                let fresh = FlowFields::new(f, Endpoints::of(f), None);
                assert_eq!(fields.members, fresh.members);
                assert_eq!(fields.community_id, community_id(f));
                let text = String::from_utf8(fields.members.clone()).unwrap();
                let id = String::from_utf8(community_id(f).to_vec()).unwrap();
                assert!(text.contains(&id), "{text}");
                assert!(text.contains(&format!("\"port\":{}", f.src_port)), "{text}");
                assert_eq!(fields.src.as_bytes(), format!("\"{}\"", f.src).as_bytes());
                assert_eq!(fields.dst.as_bytes(), format!("\"{}\"", f.dst).as_bytes());
            }
        }
    }

    #[test]
    fn slots_spread() {
        let mut used = vec![false; SLOTS];
        for n in 0..SLOTS as u16 {
            used[slot_of(&flow("10.0.0.1", 5060, "10.0.0.2", 10000 + n))] = true;
        }
        // A perfect spread fills 63 % of the slots with SLOTS random keys.
        assert!(used.iter().filter(|&&u| u).count() > SLOTS / 2);
    }
}
