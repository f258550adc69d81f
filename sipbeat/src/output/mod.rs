//! Where finished events go. A sink receives each event's JSON and a few
//! fields it may route by ([`EventMeta`]: the Call-ID as a partition key,
//! the method for per-method topics) and knows nothing else of SIP or ECS.

#[cfg(feature = "kafka")]
pub mod kafka;
pub mod ndjson;
pub mod queue;

use std::path::PathBuf;

/// Why an output failed.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    // The OS error is in the message and deliberately not a `source`: it
    // would be printed twice in the one-line error.
    #[error("cannot open output file {path}: {error}")]
    Open {
        path: PathBuf,
        error: std::io::Error,
    },
    // As above: the OS error in the message, not a `source`.
    #[error("cannot write events: {0}")]
    Write(std::io::Error),
    #[error("kafka: {0}")]
    Kafka(String),
}

impl OutputError {
    /// Whether the reader of a pipe we write to has gone away (EPIPE).
    pub fn is_closed_pipe(&self) -> bool {
        matches!(self, OutputError::Write(error) if error.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

impl From<std::io::Error> for OutputError {
    fn from(error: std::io::Error) -> OutputError {
        OutputError::Write(error)
    }
}

/// The worker name of `sipbeat read` (one pipeline): its disk queue's
/// subdirectory.
pub const ONLY_WORKER: &str = "main";

/// `event.dataset`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Dataset {
    /// A SIP message.
    #[default]
    Sip,
    /// A call record.
    Call,
}

impl Dataset {
    pub fn name(self) -> &'static str {
        match self {
            Dataset::Sip => "sip",
            Dataset::Call => "sip.call",
        }
    }
}

/// The fields of an event an output may route by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventMeta<'a> {
    /// `sip.call_id`.
    pub call_id: Option<&'a [u8]>,
    /// `sip.method` of a request, the CSeq method of a response.
    pub method: Option<&'a [u8]>,
    /// `sip.type`; none for call records.
    pub sip_type: Option<crate::sip::SipType>,
    pub dataset: Dataset,
    /// `@timestamp`: capture time, nanoseconds since the Unix epoch (the
    /// Kafka record's CreateTime).
    pub timestamp_ns: u64,
}

/// A destination for events; each capture worker owns one.
///
/// Events are written straight into the sink's own buffer
/// ([`Sink::buffer`]) and then published from where they start: a sink
/// that batches text (newline-delimited JSON) keeps them in place, one
/// that hands events on one by one (Kafka) takes each and clears the
/// buffer. Either way an event is never copied between buffers of ours.
pub trait Sink: Send {
    /// Where the next event is appended.
    fn buffer(&mut self) -> &mut Vec<u8>;

    /// Publishes the event appended to [`Sink::buffer`] from `start` on
    /// (one JSON object, no newline).
    fn publish(&mut self, start: usize, meta: &EventMeta<'_>) -> Result<(), OutputError>;

    /// Publishes an event written elsewhere.
    fn publish_copy(&mut self, json: &[u8], meta: &EventMeta<'_>) -> Result<(), OutputError> {
        let buffer = self.buffer();
        let start = buffer.len();
        buffer.extend_from_slice(json);
        self.publish(start, meta)
    }

    /// Pushes out anything batched here, without waiting on a remote peer:
    /// a live capture worker calls it twice a second and must not stall.
    fn flush(&mut self) -> Result<(), OutputError>;

    /// The worker has nothing else to do for now: hand on what waits here,
    /// without waiting (called at every idle turn of a live worker).
    fn idle(&mut self) -> Result<(), OutputError> {
        Ok(())
    }

    /// [`Sink::flush`], then waits (boundedly) until a remote output has
    /// acknowledged every event: the end of a run, or a SIGTERM drain.
    fn drain(&mut self) -> Result<(), OutputError> {
        self.flush()
    }

    /// Whether events published now can reach their destination (Kafka:
    /// a broker is up and the producer is not failed), for `/readyz`.
    fn ready(&self) -> bool {
        true
    }

    /// One line of the output's own counters for the run summary, if it has any.
    fn summary(&self) -> Option<String> {
        None
    }

    /// The output's own counters by name (for the metrics endpoint).
    fn counters(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }

    /// The output's own gauges by name (the disk queue's depth and age).
    fn gauges(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
}

/// Which sink a run writes to: the config's `output:` block (exactly one
/// of its keys, each sink's own settings) or `-o`. Declared once; the
/// config file deserializes straight into it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
pub enum Output {
    /// Newline-delimited JSON on standard output (the default).
    Stdout {},
    /// Newline-delimited JSON in a file.
    File(ndjson::FileConfig),
    /// A Kafka topic.
    #[cfg(feature = "kafka")]
    Kafka(Box<kafka::KafkaConfig>),
}

impl Output {
    /// Parses `stdout`, `file:PATH` (appending) or
    /// `kafka://HOST:PORT[,HOST:PORT...]/TOPIC`.
    pub fn parse(spec: &str) -> Result<Output, String> {
        #[cfg(feature = "kafka")]
        if spec.starts_with("kafka://") {
            return kafka::KafkaConfig::from_url(spec).map(|c| Output::Kafka(Box::new(c)));
        }
        if spec == "stdout" || spec == "-" {
            return Ok(Output::Stdout {});
        }
        if let Some(path) = spec.strip_prefix("file:") {
            if path.is_empty() {
                return Err("file output needs a path: file:PATH".to_string());
            }
            return Ok(Output::File(ndjson::FileConfig::appending(path)));
        }
        Err(format!(
            "unknown output {spec:?}: expected stdout, file:PATH or kafka://HOST:PORT/TOPIC"
        ))
    }

    /// Refuses settings that cannot work (checked when the config is built).
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Output::Stdout {} => Ok(()),
            Output::File(file) => file.validate(),
            #[cfg(feature = "kafka")]
            Output::Kafka(kafka) => kafka.validate(),
        }
    }

    /// Opens the sink of `sipbeat read`.
    pub fn open(&self) -> Result<Box<dyn Sink>, OutputError> {
        self.open_for(ONLY_WORKER)
    }

    /// Opens the sink of the worker called `worker` (its own disk queue,
    /// when there is one, is in a subdirectory of that name).
    pub fn open_for(&self, worker: &str) -> Result<Box<dyn Sink>, OutputError> {
        let _ = worker;
        Ok(match self {
            Output::Stdout {} => Box::new(ndjson::NdjsonSink::new(std::io::stdout())),
            Output::File(file) => Box::new(ndjson::NdjsonSink::new(file.open()?)),
            #[cfg(feature = "kafka")]
            Output::Kafka(config) => Box::new(kafka::KafkaSink::for_worker(config, worker)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_specs() {
        assert_eq!(Output::parse("stdout"), Ok(Output::Stdout {}));
        assert_eq!(
            Output::parse("file:/tmp/x.ndjson"),
            Ok(Output::File(ndjson::FileConfig::appending("/tmp/x.ndjson")))
        );
        assert!(Output::parse("file:").is_err());
        assert!(Output::parse("kafka://x").is_err());
        assert!(Output::parse("nats://x").is_err());
        #[cfg(feature = "kafka")]
        assert!(matches!(
            Output::parse("kafka://k:9092/sip"),
            Ok(Output::Kafka(_))
        ));
    }

    #[test]
    fn yaml_forms() {
        let parse = |yaml: &str| -> Result<Output, String> {
            serde_norway::with::singleton_map::deserialize(serde_norway::Deserializer::from_str(
                yaml,
            ))
            .map_err(|e| e.to_string())
        };
        assert_eq!(parse("stdout: {}"), Ok(Output::Stdout {}));
        assert_eq!(parse("stdout:"), Ok(Output::Stdout {}));
        assert_eq!(
            parse("file: {path: /x}"),
            Ok(Output::File(ndjson::FileConfig::appending("/x")))
        );
        let Ok(Output::File(truncating)) = parse("file: {path: /x, append: false}") else {
            panic!("a file output");
        };
        assert!(!truncating.append);
        assert!(
            parse("file: {path: /x, rotate: 1}")
                .unwrap_err()
                .contains("rotate")
        );
        assert!(parse("nats: {}").is_err());
    }
}
