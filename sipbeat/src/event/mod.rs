//! SIP message → one ECS event, in Packetbeat's SIP module's shape.
//!
//! [`EventBuilder`] owns everything an event needs besides the message: the
//! switches of the SIP config, the agent's identity, a reused JSON buffer and
//! caches for timestamps, each flow's fields ([`flow`]) and token lists
//! ([`lists`]). [`ecs`] decides which fields an event has and what they
//! mean; [`json`] only writes them.

pub mod call;
pub mod community_id;
pub mod direction;
pub mod ecs;
pub mod flow;
pub mod json;
pub mod lists;
mod slots;
pub mod timestamp;

use community_id::FlowKey;
use flow::FlowCache;

use crate::sip::Message;

/// The SIP config switches that shape events, as in Packetbeat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EcsConfig {
    /// Fill `sip.auth.*` and `user.name` from (Proxy-)Authorization.
    pub parse_authorization: bool,
    /// Fill `sip.sdp.*` from SDP bodies.
    pub parse_body: bool,
    /// Copy the whole message into `event.original`.
    pub keep_original: bool,
}

impl Default for EcsConfig {
    fn default() -> Self {
        EcsConfig {
            parse_authorization: true,
            parse_body: true,
            keep_original: true,
        }
    }
}

/// Where and when a message was seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Context<'a> {
    /// Capture time, nanoseconds since the Unix epoch.
    pub timestamp_ns: u64,
    pub flow: FlowKey,
    pub ingress: Ingress<'a>,
}

/// Where a packet came in: `observer.ingress.*`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ingress<'a> {
    /// The interface it was captured on, when known.
    pub interface: Option<&'a str>,
    /// Its outermost VLAN tag.
    pub vlan: Option<u16>,
}

/// Identity of this sensor, written into every event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Agent {
    /// `@metadata.version` and `agent.version`.
    pub version: String,
    /// `host.name` (and `observer.hostname` live).
    pub hostname: String,
    /// `agent.name` (and `observer.name` live): Beats' `name` setting, the
    /// host name by default.
    pub name: String,
    /// `agent.id`: the same for this node across restarts.
    pub id: String,
    /// Live capture only: `agent.ephemeral_id`, new for each process; and
    /// with it the `observer.*` of a sensor. Files read give the same
    /// bytes each time, so they carry neither.
    pub ephemeral_id: Option<String>,
}

impl Agent {
    /// This build's version and the machine's host name.
    pub fn current() -> Agent {
        let hostname = hostname();
        let machine = std::fs::read_to_string("/etc/machine-id").unwrap_or_default();
        let machine = machine.trim();
        Agent {
            version: env!("CARGO_PKG_VERSION").to_string(),
            id: node_id(if machine.is_empty() {
                &hostname
            } else {
                machine
            }),
            name: hostname.clone(),
            hostname,
            ephemeral_id: None,
        }
    }

    /// An agent with this version and host name, its id derived from the
    /// host name (tests, benchmarks).
    pub fn named(version: &str, hostname: &str) -> Agent {
        Agent {
            version: version.to_string(),
            hostname: hostname.to_string(),
            name: hostname.to_string(),
            id: node_id(hostname),
            ephemeral_id: None,
        }
    }

    /// This agent for live capture: with an ephemeral id of its own.
    pub fn live(self) -> Agent {
        let mut random = [0u8; 16];
        // SAFETY: the buffer is valid for writes of its length.
        let got = unsafe { libc::getrandom(random.as_mut_ptr().cast(), random.len(), 0) };
        if got != random.len() as isize {
            // No entropy source: time and process id still differ per run.
            let seed = format!("{:?}{}", std::time::SystemTime::now(), std::process::id());
            use sha1::Digest as _;
            random = sha1::Sha1::digest(seed.as_bytes())[..16]
                .try_into()
                .expect("16 bytes");
        }
        Agent {
            ephemeral_id: Some(uuid(random, 4)),
            ..self
        }
    }
}

/// A name-based UUID (version 5 layout, SHA-1) for `node` in sipbeat's
/// own namespace: stable for a node, and revealing nothing of its
/// machine id.
fn node_id(node: &str) -> String {
    use sha1::Digest as _;
    let digest = sha1::Sha1::new()
        .chain_update(b"sipbeat agent.id\0")
        .chain_update(node.as_bytes())
        .finalize();
    uuid(digest[..16].try_into().expect("16 bytes"), 5)
}

/// RFC 9562 text of 16 bytes, with `version` and the variant set.
fn uuid(mut bytes: [u8; 16], version: u8) -> String {
    bytes[6] = (bytes[6] & 0x0f) | (version << 4);
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// Beats' `tags` and `fields` that a SIP block's events carry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Labels {
    /// `tags`.
    pub tags: Vec<String>,
    /// `fields.*`, or top-level fields with `fields_under_root`.
    pub fields: serde_json::Map<String, serde_json::Value>,
    pub fields_under_root: bool,
}

impl Labels {
    /// The JSON members these labels add to an event.
    fn members(&self) -> Vec<u8> {
        json::JsonWriter::fragment(|w| {
            if !self.tags.is_empty() {
                w.raw(
                    "tags",
                    serde_json::to_string(&self.tags)
                        .expect("strings")
                        .as_bytes(),
                );
            }
            if self.fields_under_root {
                for (key, value) in &self.fields {
                    w.raw(key, value.to_string().as_bytes());
                }
            } else if !self.fields.is_empty() {
                w.raw(
                    "fields",
                    serde_json::Value::Object(self.fields.clone())
                        .to_string()
                        .as_bytes(),
                );
            }
        })
    }
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for writes of its length; gethostname
    // NUL-terminates within it on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".to_string();
    }
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..len]).into_owned()
}

/// What every event of a builder repeats, fixed when it is made.
#[derive(Debug)]
struct Fixed {
    config: EcsConfig,
    /// Members every event repeats, written once (see [`ecs::metadata_members`]).
    metadata: Vec<u8>,
    agent: Vec<u8>,
    observer: Vec<u8>,
    /// Headers whose value is `sip.correlation_id`, in order of preference
    /// (lower case).
    correlation: Vec<Vec<u8>>,
}

impl Fixed {
    fn env(&self) -> ecs::Env<'_> {
        ecs::Env {
            config: &self.config,
            metadata: &self.metadata,
            agent: &self.agent,
            observer: &self.observer,
            correlation: &self.correlation,
        }
    }
}

/// Turns messages into JSON events.
#[derive(Debug)]
pub struct EventBuilder {
    fixed: Fixed,
    memo: ecs::Memo,
    flows: FlowCache,
}

impl EventBuilder {
    pub fn new(config: EcsConfig, agent: Agent) -> EventBuilder {
        EventBuilder {
            fixed: Fixed {
                config,
                metadata: ecs::metadata_members(&agent),
                agent: ecs::agent_members(&agent),
                observer: ecs::observer_members(&agent),
                correlation: Vec::new(),
            },
            memo: ecs::Memo::default(),
            flows: FlowCache::default(),
        }
    }

    /// This builder with `sip.correlation_id` from the first of `headers`
    /// a message has (X-CID, RFC 7989 Session-ID, P-Charging-Vector's icid,
    /// or any other header's value).
    pub fn correlated(mut self, headers: &[String]) -> EventBuilder {
        self.fixed.correlation = headers
            .iter()
            .map(|h| h.to_ascii_lowercase().into_bytes())
            .collect();
        self
    }

    /// This builder with `network.direction` from `networks`.
    pub fn with_direction(mut self, networks: direction::Networks) -> EventBuilder {
        self.flows = FlowCache::with_direction(networks);
        self
    }

    /// This builder with `labels` on every event.
    pub fn labelled(mut self, labels: &Labels) -> EventBuilder {
        let members = labels.members();
        if !members.is_empty() {
            // Two runs of members joined into one.
            self.fixed.agent.push(b',');
            self.fixed.agent.extend_from_slice(&members);
        }
        self
    }

    /// Appends the event for `message` to `out` as one line of JSON (no
    /// trailing newline).
    /// `seen`: what transaction tracking said of the message.
    pub fn build(
        &mut self,
        out: &mut Vec<u8>,
        message: &Message<'_>,
        context: &Context,
        seen: &crate::track::transaction::Seen,
    ) {
        ecs::write_event(
            out,
            &self.fixed.env(),
            &mut self.memo,
            self.flows.get(&context.flow),
            message,
            context,
            seen,
        );
    }

    /// The message's correlation id (`sip.correlation_id`), from the
    /// configured headers.
    pub fn correlation_id<'m>(&self, message: &Message<'m>) -> Option<&'m [u8]> {
        ecs::correlation_id(message, &self.fixed.correlation)
    }

    /// Appends the `sip.call` event for `record` to `out` (one line of
    /// JSON, no trailing newline).
    pub fn build_call(&mut self, out: &mut Vec<u8>, record: &crate::track::call::CallRecord) {
        call::write_call(
            out,
            &self.fixed.env(),
            &mut self.memo,
            self.flows.get(&call::flow(record)),
            record,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::{Framing, HeaderSlots, Status};
    use serde_json::{Value, json};

    fn event(builder: &mut EventBuilder, headers: &str) -> Value {
        let text = format!(
            "OPTIONS sip:bob@example.com SIP/2.0\r\nCall-ID: a@b\r\nCSeq: 1 OPTIONS\r\n{headers}\r\n"
        );
        let mut slots = HeaderSlots::new();
        let Ok(Status::Complete(message)) =
            Message::parse(text.as_bytes(), &mut slots, Framing::Datagram)
        else {
            panic!("not a message: {text}");
        };
        let context = Context {
            timestamp_ns: 1,
            flow: FlowKey {
                src: "192.0.2.1".parse().unwrap(),
                dst: "192.0.2.2".parse().unwrap(),
                src_port: 5060,
                dst_port: 5060,
                protocol: 17,
            },
            ingress: Ingress::default(),
        };
        let mut out = Vec::new();
        builder.build(&mut out, &message, &context, &Default::default());
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn correlation_ids_come_from_the_preferred_header_present() {
        let headers = [
            "X-CID".to_string(),
            "Session-ID".into(),
            "P-Charging-Vector".into(),
        ];
        let mut builder =
            EventBuilder::new(EcsConfig::default(), Agent::named("t", "h")).correlated(&headers);
        let cases = [
            ("X-CID: abc-123\r\nSession-ID: ffff\r\n", Some("abc-123")),
            (
                "session-id : ab30317f1a784dc48ff824d0d3715d86;remote=47755a9de7794ba387653f2099600ef2\r\n",
                Some("ab30317f1a784dc48ff824d0d3715d86"),
            ),
            (
                "P-Charging-Vector: icid-value=1234bc9876e;icid-generated-at=192.0.6.8\r\nSession-ID: 0123\r\n",
                Some("0123"),
            ),
            (
                "P-Charging-Vector: icid-value=1234bc9876e;icid-generated-at=192.0.6.8\r\n",
                Some("1234bc9876e"),
            ),
            ("X-Other: 1\r\n", None),
        ];
        for (headers, expected) in cases {
            let event = event(&mut builder, headers);
            assert_eq!(
                event["sip"]["correlation_id"].as_str(),
                expected,
                "{headers}"
            );
        }
        // Not configured: never looked for.
        let mut plain = EventBuilder::new(EcsConfig::default(), Agent::named("t", "h"));
        assert!(
            event(&mut plain, "X-CID: abc\r\n")["sip"]
                .get("correlation_id")
                .is_none()
        );
    }

    #[test]
    fn token_lists_are_the_same_whether_cached_or_not() {
        let long = vec!["X-METHOD"; 40].join(", ");
        let cases = [
            (
                "Allow: INVITE, Ack,BYE\r\n",
                json!(["invite", "ack", "bye"]),
            ),
            // Several lines: not cached, elements in header order.
            (
                "Allow: INVITE\r\nSupported: timer\r\nAllow: ACK, BYE\r\n",
                json!(["invite", "ack", "bye"]),
            ),
            // Longer than the cache takes.
            (
                &format!("Allow: {long}\r\n"),
                Value::Array(vec![json!("x-method"); 40]),
            ),
            ("Allow:\r\n", Value::Null),
            ("Allow: ,\r\n", Value::Null),
        ];
        let mut builder = EventBuilder::new(EcsConfig::default(), Agent::current());
        // Twice: written, then (where cached) copied.
        for round in 0..2 {
            for (headers, allow) in &cases {
                let event = event(&mut builder, headers);
                assert_eq!(&event["sip"]["allow"], allow, "round {round}: {headers}");
            }
        }
        let event = event(&mut builder, "Supported: 100rel\r\nAllow: ,\r\n");
        assert_eq!(event["sip"]["supported"], json!(["100rel"]));
        assert!(event["sip"].get("allow").is_none());
    }

    #[test]
    fn sdp_media_lists_are_the_same_whether_cached_or_not() {
        let pcma = "a=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n";
        let many = "a=rtpmap:0 PCMU/8000\r\n".repeat(20);
        let body = |media: &[(&str, &str)]| {
            let sections: String = media
                .iter()
                .map(|(m, lines)| format!("m=audio {m}\r\n{lines}"))
                .collect();
            format!("Content-Type: application/sdp\r\n\r\nv=0\r\n{sections}")
        };
        let cases = [
            (
                body(&[("4000 RTP/AVP 8 101", pcma)]),
                json!([["8", "101"]]),
                json!([["8 PCMA/8000", "101 telephone-event/8000"]]),
            ),
            // The same lines in another call (another port): from the cache.
            (
                body(&[("5000 RTP/AVP 8 101", pcma)]),
                json!([["8", "101"]]),
                json!([["8 PCMA/8000", "101 telephone-event/8000"]]),
            ),
            // Other formats and lines; two sections, each its own.
            (
                body(&[
                    ("6000 RTP/AVP 0", "a=rtpmap:0 PCMU/8000\r\n"),
                    ("6002 RTP/AVP 8 101", pcma),
                ]),
                json!([["0"], ["8", "101"]]),
                json!([["0 PCMU/8000"], ["8 PCMA/8000", "101 telephone-event/8000"]]),
            ),
            // Lines longer than the cache takes.
            (
                body(&[("7000 RTP/AVP 0", &many)]),
                json!([["0"]]),
                json!([vec!["0 PCMU/8000"; 20]]),
            ),
            // No formats, no rtpmap lines: no fields.
            (
                body(&[("8000 RTP/AVP", "a=ptime:20\r\n")]),
                json!([null]),
                json!([null]),
            ),
        ];
        let mut builder = EventBuilder::new(EcsConfig::default(), Agent::current());
        for round in 0..2 {
            for (headers, formats, rtpmaps) in &cases {
                let event = event(&mut builder, headers);
                let media = event["sip"]["sdp"]["media"].as_array().unwrap();
                let field =
                    |name: &str| Value::Array(media.iter().map(|m| m[name].clone()).collect());
                assert_eq!(&field("formats"), formats, "round {round}: {headers}");
                assert_eq!(&field("rtpmap"), rtpmaps, "round {round}: {headers}");
            }
        }
    }
}
