//! Kafka output settings: typed for what sipbeat cares about, verbatim
//! passthrough for the rest of librdkafka (TLS `ssl.*`, SASL `sasl.*`, ...).

use std::collections::BTreeMap;

use rdkafka::ClientConfig;
use serde::Deserialize;

/// `output.kafka` in the config file, or `--output kafka://...`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// `host:port` of one or more brokers to bootstrap from.
    pub brokers: Vec<String>,
    /// Topic name; may hold `%{[sip.method]}`, `%{[sip.type]}`, `%{[event.dataset]}`
    /// or `%{[sip.call_id]}`.
    pub topic: String,
    /// Message key template; empty for no key. Default: the Call-ID.
    #[serde(default = "default_key")]
    pub key: String,
    #[serde(default)]
    pub compression: Compression,
    #[serde(default)]
    pub acks: Acks,
    /// Exactly-once per partition on the broker side (librdkafka idempotence).
    #[serde(default = "yes")]
    pub idempotence: bool,
    /// How long librdkafka waits to fill a batch.
    #[serde(default = "default_linger_ms")]
    pub linger_ms: u32,
    /// Largest batch in bytes.
    #[serde(default = "default_batch_bytes")]
    pub batch_bytes: u32,
    /// Events held while the broker is slow or away (librdkafka's queue).
    #[serde(default = "default_queue_messages")]
    pub queue_max_messages: u32,
    /// Bytes held while the broker is slow or away.
    #[serde(default = "default_queue_kbytes")]
    pub queue_max_kbytes: u32,
    /// How long a worker may wait for room when the queue is full before it
    /// drops the event (counted). `None`: wait as long as it takes, which
    /// suits reading files but not live capture.
    #[serde(default)]
    pub max_block_ms: Option<u64>,
    /// How long a final flush waits for outstanding deliveries.
    #[serde(default = "default_flush_secs")]
    pub flush_timeout_secs: u64,
    /// Any other librdkafka property, verbatim.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// The config's `queue.disk` (a top-level key, as in Beats), set when
    /// the config is built.
    #[serde(skip)]
    pub disk_queue: Option<crate::output::queue::DiskQueueConfig>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    #[default]
    Lz4,
    Zstd,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub enum Acks {
    #[default]
    #[serde(rename = "all")]
    All,
    #[serde(rename = "1")]
    Leader,
    #[serde(rename = "0")]
    None,
}

fn default_key() -> String {
    "%{[sip.call_id]}".to_string()
}
fn yes() -> bool {
    true
}
fn default_linger_ms() -> u32 {
    5
}
fn default_batch_bytes() -> u32 {
    1_000_000
}
fn default_queue_messages() -> u32 {
    500_000
}
fn default_queue_kbytes() -> u32 {
    256 * 1024
}
fn default_flush_secs() -> u64 {
    60
}

/// Properties the typed settings own; setting them under `options` is refused.
const TYPED: &[&str] = &[
    "bootstrap.servers",
    "compression.codec",
    "compression.type",
    "acks",
    "request.required.acks",
    "enable.idempotence",
    "linger.ms",
    "queue.buffering.max.ms",
    "batch.size",
    "queue.buffering.max.messages",
    "queue.buffering.max.kbytes",
];

impl KafkaConfig {
    /// Parses `kafka://HOST:PORT[,HOST:PORT...]/TOPIC`; everything else default.
    pub fn from_url(url: &str) -> Result<KafkaConfig, String> {
        let rest = url
            .strip_prefix("kafka://")
            .ok_or_else(|| format!("{url:?}: expected kafka://HOST:PORT[,HOST:PORT...]/TOPIC"))?;
        let (brokers, topic) = rest
            .split_once('/')
            .ok_or_else(|| format!("{url:?}: no topic (kafka://HOST:PORT/TOPIC)"))?;
        let config = KafkaConfig {
            brokers: brokers.split(',').map(str::to_string).collect(),
            topic: topic.to_string(),
            ..KafkaConfig::with_defaults()
        };
        config.validate()?;
        Ok(config)
    }

    fn with_defaults() -> KafkaConfig {
        KafkaConfig {
            brokers: Vec::new(),
            topic: String::new(),
            key: default_key(),
            compression: Compression::default(),
            acks: Acks::default(),
            idempotence: true,
            linger_ms: default_linger_ms(),
            batch_bytes: default_batch_bytes(),
            queue_max_messages: default_queue_messages(),
            queue_max_kbytes: default_queue_kbytes(),
            max_block_ms: None,
            disk_queue: None,
            flush_timeout_secs: default_flush_secs(),
            options: BTreeMap::new(),
        }
    }

    /// Refuses settings that cannot work together.
    pub fn validate(&self) -> Result<(), String> {
        if self.brokers.is_empty()
            || self
                .brokers
                .iter()
                .any(|b| !b.contains(':') || b.starts_with(':'))
        {
            return Err(format!(
                "kafka: brokers must be HOST:PORT, got {:?}",
                self.brokers
            ));
        }
        if self.topic.is_empty() {
            return Err("kafka: topic is empty".to_string());
        }
        super::sink::Template::parse(&self.topic).map_err(|e| format!("kafka: topic: {e}"))?;
        super::sink::Template::parse(&self.key).map_err(|e| format!("kafka: key: {e}"))?;
        if self.idempotence && self.acks != Acks::All {
            return Err("kafka: idempotence needs acks: all".to_string());
        }
        if let Some(name) = self.options.keys().find(|k| TYPED.contains(&k.as_str())) {
            return Err(format!(
                "kafka: options.{name} conflicts with a typed setting; set that instead"
            ));
        }
        Ok(())
    }

    /// The librdkafka configuration.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", self.brokers.join(","))
            .set(
                "compression.codec",
                match self.compression {
                    Compression::None => "none",
                    Compression::Gzip => "gzip",
                    Compression::Snappy => "snappy",
                    Compression::Lz4 => "lz4",
                    Compression::Zstd => "zstd",
                },
            )
            .set(
                "acks",
                match self.acks {
                    Acks::All => "all",
                    Acks::Leader => "1",
                    Acks::None => "0",
                },
            )
            .set("enable.idempotence", self.idempotence.to_string())
            .set("linger.ms", self.linger_ms.to_string())
            .set("batch.size", self.batch_bytes.to_string())
            .set(
                "queue.buffering.max.messages",
                self.queue_max_messages.to_string(),
            )
            .set(
                "queue.buffering.max.kbytes",
                self.queue_max_kbytes.to_string(),
            )
            // Events wait for a broker that is away rather than expire: the
            // queue bound, not a timer, decides when something is dropped.
            .set("message.timeout.ms", "0")
            // Retry counts come from librdkafka's statistics.
            .set("statistics.interval.ms", "1000");
        for (name, value) in &self.options {
            config.set(name, value);
        }
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_form() {
        let config = KafkaConfig::from_url("kafka://a:9092,b:9093/sip-events").unwrap();
        assert_eq!(config.brokers, ["a:9092", "b:9093"]);
        assert_eq!(config.topic, "sip-events");
        assert_eq!(config.key, "%{[sip.call_id]}");
        assert_eq!(config.compression, Compression::Lz4);
        let rd = config.client_config();
        assert_eq!(rd.get("bootstrap.servers"), Some("a:9092,b:9093"));
        assert_eq!(rd.get("compression.codec"), Some("lz4"));
        assert_eq!(rd.get("acks"), Some("all"));
        assert_eq!(rd.get("enable.idempotence"), Some("true"));
        for bad in [
            "kafka://a:9092",
            "http://a:9092/t",
            "kafka:///t",
            "kafka://a/t",
            "kafka://a:1/%{[sip.nope]}",
        ] {
            assert!(KafkaConfig::from_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn yaml_form_with_passthrough() {
        let yaml = "brokers: [k1:9092]\ntopic: sip-%{[sip.method]}\ncompression: zstd\nacks: all\noptions:\n  security.protocol: SASL_SSL\n  sasl.mechanism: SCRAM-SHA-512\n";
        let config: KafkaConfig = serde_norway::from_str(yaml).unwrap();
        config.validate().unwrap();
        let rd = config.client_config();
        assert_eq!(rd.get("compression.codec"), Some("zstd"));
        assert_eq!(rd.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
    }

    #[test]
    fn conflicts_are_refused() {
        let mut config = KafkaConfig::from_url("kafka://a:9092/t").unwrap();
        config.acks = Acks::Leader;
        assert!(config.validate().unwrap_err().contains("idempotence"));
        config.idempotence = false;
        config.validate().unwrap();
        config.options.insert("linger.ms".into(), "50".into());
        assert!(config.validate().unwrap_err().contains("linger.ms"));
    }
}
