//! Command-line arguments. Only shape is checked here; meaning (ports,
//! outputs, the config file) is validated by [`crate::config`].

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[cfg(feature = "xdp")]
use crate::capture::{AttachMode, CaptureMode};
use crate::config::{CaptureOverrides, Overrides};
use crate::output::Output;
use crate::pipeline::TransportProtocol;

/// Passive SIP sensor: SIP packets in, Packetbeat-compatible ECS events out.
#[derive(Debug, Parser)]
#[command(name = "sipbeat", version, about)]
pub struct Cli {
    /// How messages and stats on stderr are written: text lines for
    /// terminals, or one JSON object per line for log pipelines.
    #[arg(long, value_enum, global = true, default_value_t)]
    pub log_format: crate::log::Format,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read pcap/pcapng files and write one event per SIP message.
    Read(ReadArgs),
    /// Capture SIP live from an interface (XDP + AF_XDP) until SIGINT/SIGTERM.
    #[cfg(feature = "xdp")]
    Run(RunArgs),
    /// Print the Elasticsearch index template for sipbeat events.
    ExportTemplate,
}

#[cfg(feature = "xdp")]
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Interfaces to capture on, comma-separated or repeated [config: capture.interfaces].
    #[arg(long, short, value_name = "IF", value_delimiter = ',')]
    pub interface: Option<Vec<String>>,

    /// host: copy SIP on a node that carries its own traffic, never taking a
    /// packet (default); mirror: XDP redirect on a dedicated SPAN/TAP port.
    #[arg(long, value_enum)]
    pub mode: Option<CaptureMode>,

    /// Allow mirror mode on an interface with IP addresses: it takes the
    /// node's SIP and IP fragments away from the node.
    #[arg(long)]
    pub force_mirror: bool,

    /// Mirror: RX queues to serve, from 0 [default: all of the interface's].
    #[arg(long, value_name = "N")]
    pub queues: Option<u32>,

    /// Mirror: where the XDP program runs; driver falls back to skb with a warning [default: driver].
    #[arg(long, value_enum)]
    pub xdp_mode: Option<AttachMode>,

    /// Mirror: ask for zero-copy AF_XDP (the NIC driver must support it).
    #[arg(long)]
    pub zero_copy: bool,

    /// Mirror: UMEM frames per queue (a power of two), and the depth of its RX ring [default: 16384].
    #[arg(long, value_name = "N")]
    pub frames: Option<u32>,

    /// Mirror: bytes per UMEM frame: 2048 takes frames up to 1792 bytes (MTU
    /// 1500 with tags), 4096 up to 3840; larger ones are dropped and counted [default: 2048].
    #[arg(long, value_name = "BYTES")]
    pub frame_size: Option<u32>,

    /// Host: bytes of the ring buffer packets are copied into (a power of two) [default: 33554432].
    #[arg(long, value_name = "BYTES")]
    pub ring_size: Option<u32>,

    /// Host: bytes copied of one packet at most; longer ones are truncated and counted [default: 65536].
    #[arg(long, value_name = "BYTES")]
    pub max_copy: Option<u32>,

    /// Seconds between stats lines on stderr (0: only at exit) [default: 10].
    #[arg(long, value_name = "SECS")]
    pub stats_interval: Option<u64>,

    /// Serve /metrics, /healthz and /readyz here [config: http.enabled, http.host, http.port].
    #[arg(long, value_name = "HOST:PORT", value_parser = crate::metrics::HttpConfig::parse_flag)]
    pub http: Option<crate::metrics::HttpConfig>,

    #[command(flatten)]
    pub sip: SipArgs,
}

#[cfg(feature = "xdp")]
impl RunArgs {
    /// The SIP flags and the capture flags, overriding the file.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            capture: CaptureOverrides {
                interfaces: self.interface.clone(),
                mode: self.mode,
                force_mirror: self.force_mirror.then_some(true),
                queues: self.queues,
                xdp_mode: self.xdp_mode,
                frames: self.frames,
                frame_size: self.frame_size,
                zero_copy: self.zero_copy.then_some(true),
                ring_size: self.ring_size,
                max_copy: self.max_copy,
                stats_interval: self.stats_interval,
            },
            http: self.http.clone(),
            ..self.sip.overrides()
        }
    }
}

#[derive(Debug, Args)]
pub struct ReadArgs {
    /// Capture files (pcap or pcapng, gzip or zstd compressed too), read in
    /// order; `-` is standard input.
    #[arg(required = true, value_name = "PCAP")]
    pub files: Vec<PathBuf>,

    #[command(flatten)]
    pub sip: SipArgs,

    /// Don't print the summary on standard error.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Options shared by every subcommand that runs the pipeline.
#[derive(Debug, Args)]
pub struct SipArgs {
    /// YAML config file (a `protocols:` list with one `type: sip` block).
    #[arg(long, short, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// SIP ports, comma-separated [default: 5060].
    #[arg(long, value_delimiter = ',', value_name = "PORT,...")]
    pub ports: Option<Vec<u16>>,

    /// Transport carrying SIP.
    #[arg(long, value_enum, value_name = "PROTO")]
    pub transport: Option<TransportProtocol>,

    /// Parse (Proxy-)Authorization into sip.auth.* and user.name [default: true].
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub parse_authorization: Option<bool>,

    /// Parse SDP bodies into sip.sdp.* [default: true].
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub parse_body: Option<bool>,

    /// Keep the whole message in event.original [default: true].
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub keep_original: Option<bool>,

    /// Where events go: stdout, file:PATH (appended to) or
    /// kafka://HOST:PORT[,HOST:PORT...]/TOPIC [default: stdout].
    #[arg(long, short, value_name = "OUTPUT", value_parser = Output::parse)]
    pub output: Option<Output>,

    /// Keep events on disk here until Kafka has them (each worker in its
    /// own subdirectory) [config: queue.disk.path].
    #[arg(long, value_name = "DIR")]
    pub disk_queue: Option<PathBuf>,

    /// The disk queue's size, e.g. 256MiB or 10GB [config: queue.disk.max_size; default: 10GB].
    #[arg(long, value_name = "SIZE", value_parser = crate::output::queue::ByteSize::parse)]
    pub disk_queue_max_size: Option<crate::output::queue::ByteSize>,
}

impl SipArgs {
    /// The flags that override the config file.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            ports: self.ports.clone(),
            transport: self.transport,
            parse_authorization: self.parse_authorization,
            parse_body: self.parse_body,
            keep_original: self.keep_original,
            output: self.output.clone(),
            disk_queue: self.disk_queue.clone(),
            disk_queue_max_size: self.disk_queue_max_size,
            capture: CaptureOverrides::default(),
            http: None,
        }
    }
}
