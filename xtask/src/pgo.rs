//! `cargo xtask build-pgo`: sipbeat built with profile-guided optimisation,
//! the build the benchmarks measure and a deployment should ship.
//!
//! An instrumented build reads a training set, `llvm-profdata` merges what
//! it counted, and a second build lays out and inlines the hot paths by
//! those counts (−10 to −14 % CPU per message, benchmarks/history.md). The training
//! set is the bundled real-world captures (`testdata/pcaps`, many times
//! over) and a generated capture of carrier calls whose seed differs from
//! the benchmark capture's: the benchmark never trains its own binary.
//!
//! It is compiled for x86-64-v3 unless `--cpu` says otherwise (4 % less CPU
//! per message than for the portable baseline, benchmarks/history.md); the binary
//! refuses to start on a CPU without those instructions (`sipbeat::cpu`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::{bench, root, run_command};

/// Seed of the training capture (the benchmark's is `callgen::BENCH_SEED`).
const TRAINING_SEED: u64 = 0x7a1e_0000_0000_0001;
/// Seed of the capture `check` compares the two builds on.
const CHECK_SEED: u64 = 0xc4ec_0000_0000_0001;
/// Messages in the training capture.
const TRAINING_MESSAGES: usize = 50_000;
/// Times the bundled captures are read: a few hundred messages each pass.
const CAPTURE_PASSES: usize = 100;

/// The instruction-set level `build` compiles for by default.
pub const DEFAULT_CPU: &str = "x86-64-v3";

/// The levels `--cpu` takes: rustc's names for the x86-64 microarchitecture
/// levels (`native` is left out: a build should not depend on where it ran).
const CPUS: [&str; 4] = ["x86-64", "x86-64-v2", "x86-64-v3", "x86-64-v4"];

/// Builds `target/pgo/optimised/HOST/release/sipbeat` for `cpu` (one of
/// [`CPUS`]); returns its path.
pub fn build(cpu: &str) -> Result<PathBuf> {
    if !CPUS.contains(&cpu) {
        bail!("unknown --cpu {cpu}: one of {}", CPUS.join(", "));
    }
    let host = host()?;
    let profdata = llvm_profdata(&host)?;
    let pgo = root().join("target/pgo");
    let profiles = pgo.join("profiles");
    let _ = std::fs::remove_dir_all(&profiles);
    std::fs::create_dir_all(&profiles)?;

    let instrumented = cargo_build(
        &pgo.join("instrumented"),
        &host,
        &format!(
            "-Cprofile-generate={} -Ctarget-cpu={cpu}",
            profiles.display()
        ),
    )?;
    train(&instrumented)?;

    let merged = pgo.join("sipbeat.profdata");
    run_command(
        Command::new(&profdata)
            .arg("merge")
            .arg("-o")
            .arg(&merged)
            .arg(&profiles),
    )?;
    // Ext-TSP orders each function's blocks by the profile's branch
    // counts (what BOLT does after linking; −1 % CPU time, benchmarks/history.md).
    cargo_build(
        &pgo.join("optimised"),
        &host,
        &format!(
            "-Cprofile-use={} -Cllvm-args=-enable-ext-tsp-block-placement -Ctarget-cpu={cpu}",
            merged.display()
        ),
    )
}

/// [`build`] for [`DEFAULT_CPU`], as the path string benchmarks pass to
/// commands.
pub fn sipbeat() -> Result<String> {
    build(DEFAULT_CPU)?
        .to_str()
        .map(str::to_string)
        .context("UTF-8 path")
}

/// `cargo build --release -p sipbeat` for `target` into `target_dir` with
/// `rustflags`. Naming the target, even the host, keeps the flags off build
/// scripts and proc-macros, which run here rather than where sipbeat will.
fn cargo_build(target_dir: &Path, target: &str, rustflags: &str) -> Result<PathBuf> {
    run_command(
        Command::new("cargo")
            .args(["build", "--release", "--quiet", "--package", "sipbeat"])
            .args(["--target", target])
            .arg("--target-dir")
            .arg(target_dir)
            .env("RUSTFLAGS", rustflags),
    )?;
    Ok(target_dir.join(target).join("release/sipbeat"))
}

/// Builds both binaries and checks they publish the same events, byte for
/// byte, over the bundled captures and a generated one (`cargo xtask test`:
/// the build that ships must behave as the one the tests ran).
pub fn check() -> Result<()> {
    let plain = crate::bench::release_sipbeat()?;
    let optimised = build(DEFAULT_CPU)?;
    let mut files = captures()?;
    files.push(bench::generate_named("check", 20_000, CHECK_SEED)?);
    let events = |binary: &Path| -> Result<Vec<u8>> {
        let output = Command::new(binary)
            .arg("read")
            .arg("--quiet")
            .args(&files)
            .output()?;
        if !output.status.success() {
            bail!(
                "{}: {}",
                binary.display(),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(output.stdout)
    };
    let (expected, got) = (events(Path::new(&plain))?, events(&optimised)?);
    if expected != got {
        bail!("the PGO build's events differ from the release build's");
    }
    let count = expected.iter().filter(|&&b| b == b'\n').count();
    if count < 20_000 {
        bail!("only {count} events compared");
    }
    eprintln!("xtask: PGO build publishes the same {count} events as the release build");
    Ok(())
}

/// The target triple rustc runs on.
fn host() -> Result<String> {
    Ok(crate::setup::rustc(&["-vV"])?
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .context("rustc -vV names the host")?
        .to_string())
}

/// The bundled captures, in a fixed order.
fn captures() -> Result<Vec<PathBuf>> {
    let mut captures: Vec<PathBuf> = walk(&root().join("testdata/pcaps"))?
        .into_iter()
        .filter(|f| f.extension().is_some_and(|e| e == "pcap" || e == "pcapng"))
        .collect();
    captures.sort();
    Ok(captures)
}

/// Runs the instrumented binary over the training set.
fn train(instrumented: &Path) -> Result<()> {
    let captures = captures()?;
    let training = bench::generate_named("training", TRAINING_MESSAGES, TRAINING_SEED)?;
    let mut command = Command::new(instrumented);
    command.arg("read").arg("--quiet");
    for _ in 0..CAPTURE_PASSES {
        command.args(&captures);
    }
    command.arg(&training);
    let status = command
        .current_dir(root())
        .stdout(Stdio::null())
        .status()
        .context("training run")?;
    if !status.success() {
        bail!("training run failed: {status}");
    }
    Ok(())
}

fn walk(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            files.extend(walk(&path)?);
        } else {
            files.push(path);
        }
    }
    Ok(files)
}

/// `llvm-profdata` of the active toolchain (rustup's `llvm-tools`, whose
/// LLVM matches rustc's), installed when missing.
fn llvm_profdata(host: &str) -> Result<PathBuf> {
    let sysroot = crate::setup::rustc(&["--print", "sysroot"])?;
    let path = Path::new(&sysroot).join(format!("lib/rustlib/{host}/bin/llvm-profdata"));
    if !path.exists() {
        run_command(Command::new("rustup").args(["component", "add", "llvm-tools"]))?;
    }
    if !path.exists() {
        bail!("{} missing after installing llvm-tools", path.display());
    }
    Ok(path)
}
