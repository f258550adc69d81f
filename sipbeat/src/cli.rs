//! Command-line arguments. Only shape is checked here; meaning (ports,
//! outputs, the config file) is validated by [`crate::config`].

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{Overrides, TransportProtocol};
use crate::output::Output;

/// Passive SIP sensor: SIP packets in, Packetbeat-compatible ECS events out.
#[derive(Debug, Parser)]
#[command(name = "sipbeat", version, about)]
pub struct Cli {
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
    /// Interface to attach to (a NIC, or the SPAN/mirror port).
    #[arg(long, short, value_name = "IF")]
    pub interface: String,

    /// RX queues to serve, from 0 [default: all of the interface's].
    #[arg(long, value_name = "N")]
    pub queues: Option<u32>,

    /// Where the XDP program runs; driver falls back to skb with a warning.
    #[arg(long, value_enum, default_value_t = crate::capture::xdp::AttachMode::Driver)]
    pub xdp_mode: crate::capture::xdp::AttachMode,

    /// Ask for zero-copy AF_XDP (the NIC driver must support it).
    #[arg(long)]
    pub zero_copy: bool,

    /// UMEM frames per queue (a power of two), and the depth of its RX ring.
    #[arg(long, value_name = "N", default_value_t = 16384)]
    pub frames: u32,

    /// Bytes per UMEM frame: 2048 takes frames up to 1792 bytes (MTU 1500
    /// with tags), 4096 up to 3840; larger ones are dropped and counted.
    #[arg(long, value_name = "BYTES", default_value_t = 2048, value_parser = frame_size)]
    pub frame_size: u32,

    /// Seconds between stats lines on stderr (0: only at exit).
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub stats_interval: u64,

    #[command(flatten)]
    pub sip: SipArgs,
}

/// `--frame-size`: one of the sizes the sockets accept.
#[cfg(feature = "xdp")]
fn frame_size(text: &str) -> Result<u32, String> {
    use crate::capture::xsk::XskConfig;
    text.parse()
        .ok()
        .filter(|size| XskConfig::FRAME_SIZES.contains(size))
        .ok_or_else(|| format!("{text} is not a frame size: 2048 or 4096"))
}

#[derive(Debug, Args)]
pub struct ReadArgs {
    /// Capture files (pcap or pcapng), read in order.
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
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub parse_authorization: Option<bool>,

    /// Parse SDP bodies into sip.sdp.* [default: true].
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub parse_body: Option<bool>,

    /// Keep the whole message in event.original [default: true].
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub keep_original: Option<bool>,

    /// Where events go: stdout or file:PATH [default: stdout].
    #[arg(long, short, value_name = "OUTPUT", value_parser = Output::parse)]
    pub output: Option<Output>,
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
        }
    }
}
