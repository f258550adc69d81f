//! One validated configuration from defaults, the YAML file and flags.
//!
//! The file is a `packetbeat.yml` as Packetbeat users write it (dotted keys,
//! `packetbeat.protocols`, any number of `type: sip` blocks, `output.kafka`
//! in Beats' keys, `name`/`tags`/`fields`): [`beats`] turns it into
//! sipbeat's shape and names what means nothing here, for one warning
//! line. sipbeat's own blocks (`capture`, `reassembly`, `http`) sit beside.
//! Flags override the file. Every mistake — an unknown key, a port of 0,
//! one port in two blocks — is a one-line error naming it.

mod beats;

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::capture::{AttachMode, CaptureConfig, CaptureMode};
use crate::event::{Agent, EcsConfig, Labels};
use crate::metrics::HttpConfig;
use crate::output::Output;
use crate::output::queue::{ByteSize, DiskQueueConfig};
pub use crate::pipeline::TransportProtocol;
use crate::pipeline::{MAX_BLOCKS, PipelineConfig, SipBlock};
use crate::reassemble::ReassemblyConfig;
use crate::track::call::CallConfig;
use crate::track::transaction::TransactionConfig;

/// The default SIP port set, as in Packetbeat.
pub const DEFAULT_PORTS: &[u16] = &[5060];

/// Largest config file read: far beyond any real one, small enough that a
/// wrong path (`/dev/zero`, a capture) fails at once.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;
/// Deepest nesting of YAML collections accepted: a real config has four.
pub const MAX_CONFIG_DEPTH: usize = 32;
/// Longest error message shown; longer ones (a huge offending value) are
/// cut in the middle.
const MAX_ERROR_CHARS: usize = 300;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    // The OS and YAML errors are in the messages and deliberately not a
    // `source`: they would be printed twice in the one-line error.
    #[error("cannot read config {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("config {path}: {}", shorten(&error.to_string()))]
    Parse {
        path: String,
        error: serde_norway::Error,
    },
    #[error("config {path}: {reason}")]
    Refused { path: String, reason: String },
    #[error("{}", shorten(.0))]
    Invalid(String),
}

/// `text` cut to [`MAX_ERROR_CHARS`], its middle replaced by an ellipsis.
fn shorten(text: &str) -> String {
    let chars = text.chars().count();
    if chars <= MAX_ERROR_CHARS {
        return text.to_string();
    }
    let keep = MAX_ERROR_CHARS / 2;
    let head: String = text.chars().take(keep).collect();
    let tail: String = text.chars().skip(chars - keep).collect();
    format!("{head} … ({} characters cut) … {tail}", chars - 2 * keep)
}

/// The deepest nesting of YAML collections in `text`, by flow brackets and
/// by block indentation, with the line where it is exceeded: checked before
/// parsing, whose cost grows with depth squared.
fn nesting_too_deep(text: &str) -> Option<usize> {
    let mut flow_depth = 0usize;
    let mut indents: Vec<usize> = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let indent = line.len() - line.trim_start_matches([' ', '-']).len();
        let content = line.trim_start();
        if flow_depth == 0 && !content.is_empty() && !content.starts_with('#') {
            while indents.last().is_some_and(|&i| i >= indent) {
                indents.pop();
            }
            indents.push(indent);
        }
        let mut quote = None;
        for c in line.chars() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '\'' | '"') => quote = Some(c),
                (None, '#') => break,
                (None, '[' | '{') => {
                    flow_depth += 1;
                    if flow_depth + indents.len() > MAX_CONFIG_DEPTH {
                        return Some(number + 1);
                    }
                }
                (None, ']' | '}') => flow_depth = flow_depth.saturating_sub(1),
                _ => {}
            }
        }
        if flow_depth + indents.len() > MAX_CONFIG_DEPTH {
            return Some(number + 1);
        }
    }
    None
}

/// The config file, after [`beats::normalize`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub protocols: Vec<ProtocolConfig>,
    /// Beats' `name`: `agent.name` (and `observer.name`).
    pub name: Option<String>,
    /// Beats' `tags`, on every event.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Beats' `fields`, on every event under `fields` (or at the top with
    /// `fields_under_root`).
    #[serde(default)]
    pub fields: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    pub fields_under_root: bool,
    /// Networks whose addresses are internal, for `network.direction`:
    /// CIDRs and Beats' named ranges (`private`, `loopback`, ...).
    #[serde(default)]
    pub internal_networks: Vec<String>,
    /// Keys that mean nothing to sipbeat, left out (one warning line).
    #[serde(skip)]
    pub ignored: Vec<String>,
    #[serde(default, with = "serde_norway::with::singleton_map")]
    pub output: Option<Output>,
    /// Limits of IP and TCP reassembly.
    #[serde(default)]
    pub reassembly: ReassemblyConfig,
    /// Limits of transaction tracking.
    #[serde(default)]
    pub transactions: TransactionConfig,
    /// Call records (`sip.call`) and their limits.
    #[serde(default)]
    pub calls: CallConfig,
    /// `queue.disk`: events wait on disk until Kafka has them.
    #[serde(default)]
    pub queue: QueueConfig,
    /// Headers whose value is `sip.correlation_id` (B2BUA legs of one call),
    /// in order of preference: `X-CID`, `Session-ID`, `P-Charging-Vector`...
    #[serde(default)]
    pub correlation_headers: Vec<String>,
    /// Live capture: interfaces, mode, rings; tunnel ports.
    #[serde(default)]
    pub capture: CaptureConfig,
    /// The metrics and health endpoint of `sipbeat run`.
    #[serde(default)]
    pub http: HttpConfig,
}

/// One `type: sip` entry of `protocols` (other protocols' entries and
/// disabled ones are left out before this).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProtocolConfig {
    #[serde(rename = "type")]
    pub kind: String,
    pub ports: Option<Vec<u16>>,
    pub parse_authorization: Option<bool>,
    pub parse_body: Option<bool>,
    pub keep_original: Option<bool>,
    pub transport_protocol: Option<TransportProtocol>,
    /// This block's events' `tags`, after the top-level ones.
    #[serde(default)]
    pub tags: Vec<String>,
    /// This block's events' `fields`, over the top-level ones.
    #[serde(default)]
    pub fields: serde_json::Map<String, serde_json::Value>,
    pub fields_under_root: Option<bool>,
}

/// Values given on the command line, each overriding the file.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub ports: Option<Vec<u16>>,
    pub transport: Option<TransportProtocol>,
    pub parse_authorization: Option<bool>,
    pub parse_body: Option<bool>,
    pub keep_original: Option<bool>,
    pub output: Option<Output>,
    /// `--disk-queue DIR` and `--disk-queue-max-size SIZE`.
    pub disk_queue: Option<PathBuf>,
    pub disk_queue_max_size: Option<ByteSize>,
    pub capture: CaptureOverrides,
    /// `--http HOST:PORT`.
    pub http: Option<HttpConfig>,
}

/// `queue:` (Beats' key); only its `disk` is sipbeat's.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    pub disk: Option<DiskQueueConfig>,
}

/// `sipbeat run`'s flags, each overriding its key of the `capture:` block.
#[derive(Clone, Debug, Default)]
pub struct CaptureOverrides {
    pub interfaces: Option<Vec<String>>,
    pub mode: Option<CaptureMode>,
    pub force_mirror: Option<bool>,
    pub queues: Option<u32>,
    pub xdp_mode: Option<AttachMode>,
    pub frames: Option<u32>,
    pub frame_size: Option<u32>,
    pub zero_copy: Option<bool>,
    pub ring_size: Option<u32>,
    pub max_copy: Option<u32>,
    pub stats_interval: Option<u64>,
}

impl CaptureOverrides {
    /// `file` with every flag given applied over it.
    fn apply(self, file: CaptureConfig) -> CaptureConfig {
        CaptureConfig {
            interfaces: self.interfaces.unwrap_or(file.interfaces),
            mode: self.mode.unwrap_or(file.mode),
            force_mirror: self.force_mirror.unwrap_or(file.force_mirror),
            queues: self.queues.or(file.queues),
            xdp_mode: self.xdp_mode.unwrap_or(file.xdp_mode),
            frames: self.frames.unwrap_or(file.frames),
            frame_size: self.frame_size.unwrap_or(file.frame_size),
            zero_copy: self.zero_copy.unwrap_or(file.zero_copy),
            ring_size: self.ring_size.unwrap_or(file.ring_size),
            max_copy: self.max_copy.unwrap_or(file.max_copy),
            stats_interval: self.stats_interval.unwrap_or(file.stats_interval),
            ..file
        }
    }
}

/// Everything a run needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The SIP blocks, at least one.
    pub sip: Vec<SipBlock>,
    /// `agent.name`, when the config gives one.
    pub name: Option<String>,
    pub internal_networks: Vec<String>,
    /// Keys of the file that mean nothing to sipbeat.
    pub ignored: Vec<String>,
    pub reassembly: ReassemblyConfig,
    pub transactions: TransactionConfig,
    pub calls: CallConfig,
    pub correlation_headers: Vec<String>,
    pub capture: CaptureConfig,
    pub http: HttpConfig,
    pub output: Output,
}

impl Config {
    /// Reads `path` (if given), applies `overrides`, validates.
    pub fn load(path: Option<&Path>, overrides: Overrides) -> Result<Config, ConfigError> {
        let file = match path {
            Some(path) => FileConfig::read(path)?,
            None => FileConfig::default(),
        };
        Config::build(file, overrides)
    }

    /// Merges a parsed file with overrides and validates the result.
    pub fn build(file: FileConfig, overrides: Overrides) -> Result<Config, ConfigError> {
        let mut blocks = file.protocols;
        if blocks.is_empty() {
            blocks.push(ProtocolConfig {
                kind: "sip".into(),
                ..ProtocolConfig::default()
            });
        }
        if blocks.len() > MAX_BLOCKS {
            return invalid(format!("protocols: at most {MAX_BLOCKS} sip blocks"));
        }
        let defaults = EcsConfig::default();
        let mut sip = Vec::new();
        for block in blocks {
            if block.kind != "sip" {
                return invalid(format!(
                    "protocols: unsupported type {:?} (sipbeat decodes sip)",
                    block.kind
                ));
            }
            let ports = overrides
                .ports
                .clone()
                .or(block.ports)
                .unwrap_or_else(|| DEFAULT_PORTS.to_vec());
            if ports.is_empty() {
                return invalid("ports: at least one SIP port is needed".into());
            }
            if ports.contains(&0) {
                return invalid("ports: 0 is not a port".into());
            }
            let mut fields = file.fields.clone();
            fields.extend(block.fields);
            sip.push(SipBlock {
                ports,
                transport: overrides
                    .transport
                    .or(block.transport_protocol)
                    .unwrap_or_default(),
                ecs: EcsConfig {
                    parse_authorization: overrides
                        .parse_authorization
                        .or(block.parse_authorization)
                        .unwrap_or(defaults.parse_authorization),
                    parse_body: overrides
                        .parse_body
                        .or(block.parse_body)
                        .unwrap_or(defaults.parse_body),
                    keep_original: overrides
                        .keep_original
                        .or(block.keep_original)
                        .unwrap_or(defaults.keep_original),
                },
                labels: Labels {
                    tags: file.tags.iter().cloned().chain(block.tags).collect(),
                    fields,
                    fields_under_root: block.fields_under_root.unwrap_or(file.fields_under_root),
                },
            });
        }
        check_blocks(&sip)?;
        file.reassembly.validate().map_err(ConfigError::Invalid)?;
        file.transactions.validate().map_err(ConfigError::Invalid)?;
        file.calls.validate().map_err(ConfigError::Invalid)?;
        if let Some(bad) = file
            .correlation_headers
            .iter()
            .find(|h| h.is_empty() || !h.bytes().all(|b| b.is_ascii_graphic() && b != b':'))
        {
            return invalid(format!("correlation_headers: {bad:?} is not a header name"));
        }
        let capture = overrides.capture.apply(file.capture);
        capture.validate().map_err(ConfigError::Invalid)?;
        crate::event::direction::Networks::parse(&file.internal_networks)
            .map_err(ConfigError::Invalid)?;
        if file.name.as_deref().is_some_and(str::is_empty) {
            return invalid("name: empty".into());
        }
        // The file's output is looked at only when no flag replaces it: an
        // output the flag overrides cannot fail the run.
        let mut output = match (overrides.output, file.output) {
            (Some(output), _) => output,
            (None, file) => {
                let output = file.unwrap_or(Output::Stdout {});
                output.validate().map_err(ConfigError::Invalid)?;
                output
            }
        };
        let mut disk = file.queue.disk;
        if let Some(path) = overrides.disk_queue {
            disk = Some(match disk {
                Some(disk) => DiskQueueConfig { path, ..disk },
                None => DiskQueueConfig::new(path, DiskQueueConfig::DEFAULT_MAX_SIZE),
            });
        }
        if let Some(size) = overrides.disk_queue_max_size {
            match &mut disk {
                Some(disk) => disk.max_size = size,
                None => {
                    return invalid(
                        "--disk-queue-max-size needs --disk-queue DIR (or queue.disk.path)".into(),
                    );
                }
            }
        }
        if let Some(disk) = disk {
            disk.validate().map_err(ConfigError::Invalid)?;
            match &mut output {
                #[cfg(feature = "kafka")]
                Output::Kafka(kafka) => kafka.disk_queue = Some(disk),
                _ => {
                    return invalid(
                        "queue.disk keeps events until Kafka has them: it needs the kafka output"
                            .into(),
                    );
                }
            }
        }
        Ok(Config {
            sip,
            name: file.name,
            internal_networks: file.internal_networks,
            ignored: file.ignored,
            reassembly: file.reassembly,
            transactions: file.transactions,
            calls: file.calls,
            correlation_headers: file.correlation_headers,
            capture,
            http: overrides.http.unwrap_or(file.http),
            output,
        })
    }

    /// Every SIP port of every block, once each, in order.
    pub fn sip_ports(&self) -> Vec<u16> {
        let mut ports: Vec<u16> = self
            .sip
            .iter()
            .flat_map(|b| b.ports.iter().copied())
            .collect();
        ports.sort_unstable();
        ports.dedup();
        ports
    }

    /// This sensor's identity: the host's, named as the config says.
    pub fn agent(&self) -> Agent {
        let agent = Agent::current();
        Agent {
            name: self.name.clone().unwrap_or(agent.name.clone()),
            ..agent
        }
    }

    /// The pipeline's share of the config.
    pub fn pipeline(&self) -> PipelineConfig {
        PipelineConfig {
            blocks: self.sip.clone(),
            internal_networks: self.internal_networks.clone(),
            transactions: self.transactions,
            calls: self.calls,
            correlation_headers: self.correlation_headers.clone(),
            reassembly: self.reassembly,
            tunnels: self.capture.tunnels(),
        }
    }
}

impl FileConfig {
    /// Reads and parses a YAML config file of at most [`MAX_CONFIG_BYTES`]
    /// and [`MAX_CONFIG_DEPTH`] levels.
    pub fn read(path: &Path) -> Result<FileConfig, ConfigError> {
        use std::io::Read as _;
        let shown = path.display().to_string();
        let read_error = |error| ConfigError::Read {
            path: shown.clone(),
            error,
        };
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|file| file.take(MAX_CONFIG_BYTES + 1).read_to_end(&mut bytes))
            .map_err(read_error)?;
        let refused = |reason: String| ConfigError::Refused {
            path: shown.clone(),
            reason,
        };
        if bytes.len() as u64 > MAX_CONFIG_BYTES {
            return Err(refused(format!(
                "larger than {} KiB; is it a config file?",
                MAX_CONFIG_BYTES >> 10
            )));
        }
        let text = String::from_utf8(bytes).map_err(|e| {
            refused(format!(
                "not UTF-8 text (byte {})",
                e.utf8_error().valid_up_to()
            ))
        })?;
        FileConfig::from_yaml(&shown, &text)
    }

    /// Parses the YAML of the config named `shown`, refusing nesting deeper
    /// than [`MAX_CONFIG_DEPTH`] before the parser sees it.
    pub fn from_yaml(shown: &str, text: &str) -> Result<FileConfig, ConfigError> {
        if let Some(line) = nesting_too_deep(text) {
            return Err(ConfigError::Refused {
                path: shown.to_string(),
                reason: format!("nested deeper than {MAX_CONFIG_DEPTH} levels at line {line}"),
            });
        }
        FileConfig::parse(text).map_err(|error| match error {
            ParseError::Yaml(error) => ConfigError::Parse {
                path: shown.to_string(),
                error,
            },
            ParseError::Beats(reason) => ConfigError::Refused {
                path: shown.to_string(),
                reason,
            },
        })
    }

    /// Parses YAML text: Beats' shape normalized, then sipbeat's keys.
    pub fn parse(text: &str) -> Result<FileConfig, ParseError> {
        if text.trim().is_empty() {
            return Ok(FileConfig::default());
        }
        let document: serde_norway::Value =
            serde_norway::from_str(text).map_err(ParseError::Yaml)?;
        let normalized = beats::normalize(document).map_err(ParseError::Beats)?;
        let mut file: FileConfig =
            serde_norway::from_value(normalized.value).map_err(ParseError::Yaml)?;
        file.ignored = normalized.ignored;
        Ok(file)
    }
}

/// Why config text did not parse.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("{0}")]
    Yaml(serde_norway::Error),
    #[error("{0}")]
    Beats(String),
}

/// Refuses a port claimed twice for one transport, and too many ports.
fn check_blocks(blocks: &[SipBlock]) -> Result<(), ConfigError> {
    use crate::pipeline::TransportProtocol::{Both, Tcp, Udp};
    let mut seen = std::collections::BTreeSet::new();
    for block in blocks {
        let transports: &[TransportProtocol] = match block.transport {
            Udp => &[Udp],
            Tcp => &[Tcp],
            Both => &[Udp, Tcp],
        };
        for &port in &block.ports {
            for transport in transports {
                if !seen.insert((port, *transport as u8)) {
                    return invalid(format!(
                        "protocols: port {port} ({}) is in two sip blocks",
                        if *transport == Udp { "udp" } else { "tcp" }
                    ));
                }
            }
        }
    }
    let ports: std::collections::BTreeSet<u16> = seen.iter().map(|(port, _)| *port).collect();
    if ports.len() > sipbeat_common::MAX_PORTS as usize {
        return invalid(format!(
            "ports: at most {} SIP ports",
            sipbeat_common::MAX_PORTS
        ));
    }
    Ok(())
}

fn invalid<T>(message: String) -> Result<T, ConfigError> {
    Err(ConfigError::Invalid(message))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = "
protocols:
  - type: sip
    ports: [5060, 5080]
    parse_authorization: true
    parse_body: false
    keep_original: true
    #transport_protocol: tcp
output:
  file:
    path: /tmp/events.ndjson
";

    #[test]
    fn seed_config_and_overrides() {
        let config = Config::build(FileConfig::parse(SEED).unwrap(), Overrides::default()).unwrap();
        assert_eq!(config.sip[0].ports, [5060, 5080]);
        assert!(!config.sip[0].ecs.parse_body);
        assert_eq!(
            config.output,
            Output::File(crate::output::ndjson::FileConfig::appending(
                "/tmp/events.ndjson"
            ))
        );

        let overrides = Overrides {
            ports: Some(vec![5062]),
            parse_body: Some(true),
            output: Some(Output::Stdout {}),
            ..Overrides::default()
        };
        let config = Config::build(FileConfig::parse(SEED).unwrap(), overrides).unwrap();
        assert_eq!(config.sip[0].ports, [5062]);
        assert!(config.sip[0].ecs.parse_body);
        assert_eq!(config.output, Output::Stdout {});
    }

    /// The repository's realistic `packetbeat.yml`: two SIP blocks, Beats'
    /// metadata and Kafka keys, all mapped.
    #[cfg(feature = "kafka")]
    #[test]
    fn a_packetbeat_yml_builds() {
        let text = include_str!("../../../testdata/config/packetbeat.yml");
        let config = Config::build(FileConfig::parse(text).unwrap(), Overrides::default()).unwrap();
        assert_eq!(config.sip.len(), 2);
        assert_eq!(config.sip[0].transport, TransportProtocol::Udp);
        assert_eq!(config.sip[1].transport, TransportProtocol::Tcp);
        assert_eq!(config.sip[1].labels.tags, ["voip", "lab", "sip-tcp"]);
        assert_eq!(config.name.as_deref(), Some("sbc-lab-1"));
        assert_eq!(config.internal_networks, ["private"]);
        let Output::Kafka(kafka) = &config.output else {
            panic!("kafka output: {:?}", config.output);
        };
        assert_eq!(kafka.brokers, ["kafka-1:9092", "kafka-2:9092"]);
        assert_eq!(kafka.acks, crate::output::kafka::config::Acks::Leader);
        assert!(!kafka.idempotence);
        assert_eq!(
            kafka.compression,
            crate::output::kafka::config::Compression::Gzip
        );
        let rd = kafka.client_config();
        assert_eq!(rd.get("message.max.bytes"), Some("1000000"));
        assert_eq!(rd.get("client.id"), Some("packetbeat-sbc-lab-1"));
        assert_eq!(config.sip_ports(), [5060]);
    }

    #[test]
    fn defaults_without_a_file() {
        let config = Config::build(FileConfig::default(), Overrides::default()).unwrap();
        assert_eq!(config.sip[0].ports, DEFAULT_PORTS);
        assert_eq!(config.sip[0].ecs, EcsConfig::default());
        assert_eq!(config.sip[0].transport, TransportProtocol::Both);
        assert_eq!(config.reassembly, ReassemblyConfig::default());
        assert_eq!(config.output, Output::Stdout {});
    }

    #[cfg(feature = "kafka")]
    #[test]
    fn an_output_flag_replaces_a_broken_file_output() {
        let broken = "output:\n  kafka:\n    brokers: []\n    topic: sip\n";
        assert!(Config::build(FileConfig::parse(broken).unwrap(), Overrides::default()).is_err());
        let overrides = Overrides {
            output: Some(Output::Stdout {}),
            ..Overrides::default()
        };
        let config = Config::build(FileConfig::parse(broken).unwrap(), overrides).unwrap();
        assert_eq!(config.output, Output::Stdout {});
    }

    #[test]
    fn capture_block_and_flags_over_it() {
        let yaml = "
capture:
  interfaces: [eth1, eth2]
  mode: mirror
  frames: 4096
  frame_size: 4096
  vxlan_ports: [4789, 8472]
";
        let config = Config::build(FileConfig::parse(yaml).unwrap(), Overrides::default()).unwrap();
        assert_eq!(config.capture.interfaces, ["eth1", "eth2"]);
        assert_eq!(config.capture.mode, CaptureMode::Mirror);
        assert_eq!(config.capture.frames, 4096);
        assert_eq!(config.capture.ring_size, CaptureConfig::default().ring_size);
        let tunnels = config.pipeline().tunnels;
        assert_eq!(
            tunnels.get(8472),
            Some(sipbeat_common::filter::UdpTunnel::Vxlan)
        );
        assert_eq!(
            tunnels.get(6081),
            Some(sipbeat_common::filter::UdpTunnel::Geneve)
        );
        let flags = Overrides {
            capture: CaptureOverrides {
                interfaces: Some(vec!["eth9".into()]),
                mode: Some(CaptureMode::Host),
                frames: Some(1024),
                ..CaptureOverrides::default()
            },
            ..Overrides::default()
        };
        let config = Config::build(FileConfig::parse(yaml).unwrap(), flags).unwrap();
        assert_eq!(config.capture.interfaces, ["eth9"]);
        assert_eq!(config.capture.mode, CaptureMode::Host);
        assert_eq!(config.capture.frames, 1024);
        assert_eq!(
            config.capture.frame_size, 4096,
            "the file's, not overridden"
        );
        let defaults = Config::build(FileConfig::default(), Overrides::default()).unwrap();
        assert_eq!(defaults.capture.mode, CaptureMode::Host, "the safe mode");
    }

    #[test]
    fn oversized_deep_and_long_configs_fail_fast_with_one_short_line() {
        let dir = std::env::temp_dir().join(format!("sipbeat-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let started = std::time::Instant::now();
        let zero = FileConfig::read(Path::new("/dev/zero"))
            .unwrap_err()
            .to_string();
        assert!(zero.contains("larger than 1024 KiB"), "{zero}");
        let deep = dir.join("deep.yml");
        std::fs::write(
            &deep,
            format!("protocols: {}{}", "[".repeat(100_000), "]".repeat(100_000)),
        )
        .unwrap();
        let error = FileConfig::read(&deep).unwrap_err().to_string();
        assert!(
            error.contains("nested deeper than 32 levels at line 1"),
            "{error}"
        );
        let mut block = String::new();
        for level in 0..40 {
            block.push_str(&format!("{}k{level}:\n", "  ".repeat(level)));
        }
        std::fs::write(&deep, block).unwrap();
        let error = FileConfig::read(&deep).unwrap_err().to_string();
        assert!(
            error.contains("nested deeper than 32 levels at line 33"),
            "{error}"
        );
        let long = dir.join("long.yml");
        std::fs::write(
            &long,
            format!(
                "protocols:\n  - type: sip\n    ports: [{}]\n",
                "9".repeat(500_000)
            ),
        )
        .unwrap();
        let error = FileConfig::read(&long).unwrap_err().to_string();
        assert!(error.len() < 500 && !error.contains('\n'), "{error}");
        assert!(error.contains("characters cut"), "{error}");
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        // What a real config looks like still passes.
        let seed = dir.join("seed.yml");
        std::fs::write(&seed, SEED).unwrap();
        FileConfig::read(&seed).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn mistakes_are_named() {
        let unknown_key =
            FileConfig::parse("protocols:\n  - type: sip\n    portz: [1]\n").unwrap_err();
        assert!(unknown_key.to_string().contains("portz"), "{unknown_key}");
        let cases = [
            ("protocols:\n  - type: sip\n    ports: []\n", "at least one"),
            (
                "protocols:\n  - type: sip\n    ports: [0]\n",
                "0 is not a port",
            ),
            (
                "protocols:\n  - type: sip\n  - type: sip\n",
                "port 5060 (udp) is in two sip blocks",
            ),
            (
                "protocols:\n  - type: sip\n    ports: [5060]\n    transport_protocol: tcp\n  - type: sip\n    ports: [5060, 5070]\n",
                "port 5060 (tcp) is in two sip blocks",
            ),
            ("internal_networks: [intranet]\n", "no CIDR"),
            ("correlation_headers: ['X CID']\n", "not a header name"),
            ("name: ''\n", "name: empty"),
            ("reassembly:\n  tcp_max_streams: 0\n", "tcp_max_streams"),
            (
                "capture:\n  frames: 1000\n",
                "frames must be a power of two",
            ),
            (
                "capture:\n  frame_size: 3000\n",
                "frame_size must be 2048 or 4096",
            ),
            ("capture:\n  queues: 0\n", "queues must be 1 to 256"),
            ("capture:\n  ring_size: 4096\n", "ring_size"),
            (
                "capture:\n  max_copy: 70000\n",
                "max_copy must be 64 to 65536",
            ),
            ("capture:\n  vxlan_ports: [0]\n", "0 is not a tunnel port"),
            (
                "capture:\n  interfaces: [averyveryverylongname]\n",
                "1 to 15 characters",
            ),
        ];
        for (yaml, expected) in cases {
            let error =
                Config::build(FileConfig::parse(yaml).unwrap(), Overrides::default()).unwrap_err();
            assert!(error.to_string().contains(expected), "{yaml}: {error}");
        }
        let unknown_mode = FileConfig::parse("capture:\n  mode: inline\n").unwrap_err();
        assert!(
            unknown_mode.to_string().contains("inline"),
            "{unknown_mode}"
        );
        let unknown_limit = FileConfig::parse("reassembly:\n  tcp_streams: 5\n").unwrap_err();
        assert!(
            unknown_limit.to_string().contains("tcp_streams"),
            "{unknown_limit}"
        );
        let limits = FileConfig::parse("reassembly:\n  fragment_timeout_secs: 5\n").unwrap();
        assert_eq!(limits.reassembly.fragment_timeout_secs, 5);
        assert_eq!(
            limits.reassembly.tcp_max_streams,
            ReassemblyConfig::default().tcp_max_streams
        );
        let bad_port = FileConfig::parse("protocols:\n  - type: sip\n    ports: [70000]\n");
        assert!(bad_port.is_err());
    }
}
