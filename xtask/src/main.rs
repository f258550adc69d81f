//! `cargo xtask`: everything around the build that cargo alone does not do.
//!
//! - `run`: set up, then read the bundled capture to stdout (the README's demo).
//! - `test`: set up, then the whole suite with every oracle required, the
//!   fuzz targets, and the PGO build checked against the plain one (CI).
//! - `setup`: install what the tests need (apt packages), idempotently.
//! - `gen-bench-data`: write a large pcap of realistic SIP calls.
//! - `build-pgo`: the profile-guided release build the benchmarks measure;
//!   `check-pgo`: it publishes the same events as the plain build.
//! - `bench`: sipbeat (plain and PGO builds) vs tshark on that pcap, one core each.
//! - `bench-kafka [MESSAGES]`: the benchmark capture into a tansu broker,
//!   without and with the disk queue, then `bench-queue`.
//! - `bench-queue [EVENTS]`: the disk queue's own write and replay rates.
//! - `bench-live`: loss-free rate of `sipbeat run` (mirror and host modes) vs tcpdump on a veth.
//! - `bench-flood [N]`: peak memory under N half-open streams and fragment chains.
//! - `fuzz [SECONDS]`: every fuzz target for SECONDS (default 60) each.
//! - `image [--plain]`: the container image (podman, offline), tagged and archived.

mod bench;
mod callgen;
mod fuzz;
mod image;
mod live;
mod pgo;
mod setup;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

const USAGE: &str = "usage: cargo xtask <run|test|setup|build-pgo [--cpu LEVEL]|check-pgo|gen-bench-data [MESSAGES]|bench [MESSAGES]|bench-kafka [MESSAGES]|bench-queue [EVENTS]|bench-live|bench-flood [N]|fuzz [SECONDS]|image [--plain]>";

/// Seconds each fuzz target runs within `cargo xtask test`.
const TEST_FUZZ_SECONDS: u64 = 15;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let count = |index: usize, default: usize| -> Result<usize> {
        args.get(index).map_or(Ok(default), |s| {
            s.parse().context("MESSAGES must be a number")
        })
    };
    match args.first().map(String::as_str) {
        Some("run") => run(&args[1..]),
        Some("test") => test(),
        Some("setup") => setup::test_dependencies().and_then(|()| fuzz::setup()),
        Some("gen-bench-data") => bench::generate(count(1, bench::DEFAULT_MESSAGES)?).map(|_| ()),
        Some("check-pgo") => pgo::check(),
        Some("build-pgo") => {
            let cpu = match &args[1..] {
                [] => pgo::DEFAULT_CPU,
                [flag, cpu] if flag == "--cpu" => cpu,
                _ => bail!(
                    "usage: cargo xtask build-pgo [--cpu x86-64|x86-64-v2|x86-64-v3|x86-64-v4]"
                ),
            };
            println!("{}", pgo::build(cpu)?.display());
            Ok(())
        }
        Some("bench") => bench::run(count(1, bench::DEFAULT_MESSAGES)?),
        Some("bench-kafka") => bench::kafka(count(1, bench::DEFAULT_MESSAGES)?),
        Some("bench-queue") => bench::disk_queue_rates(count(1, bench::DEFAULT_MESSAGES)?),
        Some("bench-live") => live::run(),
        // Internal: the traffic generator bench-live runs inside a namespace.
        Some("gen-traffic") => match &args[1..] {
            [interface, rate, seconds, pcap] => live::generate_traffic(
                interface,
                rate.parse().context("rate")?,
                seconds.parse().context("seconds")?,
                Path::new(pcap),
            ),
            _ => bail!("usage: gen-traffic INTERFACE RATE SECONDS PCAP"),
        },
        Some("bench-flood") => bench::flood(count(1, 1_000_000)?),
        Some("fuzz") => fuzz::run(count(1, 60)? as u64).map(|_| ()),
        Some("image") => match &args[1..] {
            [] => image::build(false).map(|_| ()),
            [flag] if flag == "--plain" => image::build(true).map(|_| ()),
            _ => bail!("usage: cargo xtask image [--plain]"),
        },
        _ => bail!(USAGE),
    }
}

/// The workspace root (xtask lives one level below it).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is inside the workspace")
        .to_path_buf()
}

/// Runs a command in the workspace root, failing on a non-zero exit.
pub fn run_command(command: &mut Command) -> Result<()> {
    let shown = format!("{command:?}");
    eprintln!("xtask: {shown}");
    let status = command
        .current_dir(root())
        .status()
        .with_context(|| format!("cannot start {shown}"))?;
    if !status.success() {
        bail!("{shown} failed with {status}");
    }
    Ok(())
}

/// The demo: the bundled capture through `sipbeat read`, events on stdout.
fn run(extra: &[String]) -> Result<()> {
    setup::build_toolchain()?;
    let capture = root().join("testdata/pcaps/suricata-verify/sip-method--sip.pcap");
    run_command(
        Command::new("cargo")
            .args([
                "run",
                "--release",
                "--quiet",
                "--package",
                "sipbeat",
                "--",
                "read",
            ])
            .args(extra)
            .arg(capture),
    )
}

/// The whole suite, as CI runs it: formatting, lints, every test with the
/// oracles (tshark, the shared corpus, tansu, root) required rather than
/// skipped, then each fuzz target for a short while.
fn test() -> Result<()> {
    setup::warn_if_disk_short();
    setup::test_dependencies()?;
    run_command(Command::new("cargo").args(["fmt", "--all", "--", "--check"]))?;
    run_command(Command::new("cargo").args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    run_command(
        Command::new("cargo")
            .args(["test", "--workspace", "--all-targets"])
            .env("SIPBEAT_REQUIRE_ORACLES", "1"),
    )?;
    fuzz::run(TEST_FUZZ_SECONDS)?;
    pgo::check()?;
    release_binary_is_sipbeat()
}

/// The `target/release/sipbeat` a run leaves behind is sipbeat itself (it
/// once was the eBPF crate's empty host build of the same name).
fn release_binary_is_sipbeat() -> Result<()> {
    run_command(Command::new("cargo").args(["build", "--release", "--quiet", "--workspace"]))?;
    let binary = root().join("target/release/sipbeat");
    let output = Command::new(&binary)
        .arg("--version")
        .output()
        .with_context(|| format!("cannot run {}", binary.display()))?;
    let version = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() || !version.starts_with("sipbeat ") {
        bail!(
            "{} --version printed {version:?}: not the sipbeat binary",
            binary.display()
        );
    }
    eprintln!("xtask: {} is {}", binary.display(), version.trim());
    Ok(())
}
