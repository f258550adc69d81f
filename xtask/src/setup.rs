//! Installs what the tests need, quickly when it is already there.

use std::process::Command;

use anyhow::{Result, bail};

/// Debian packages the test suite calls, by the command that proves each.
const APT_PACKAGES: &[(&str, &str)] = &[
    ("tshark", "tshark"),
    ("python3", "python3"),
    // Peak memory figures of `cargo xtask bench-flood`.
    ("/usr/bin/time", "time"),
];

fn have(command: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {command} >/dev/null 2>&1")])
        .status()
        .is_ok_and(|s| s.success())
}

/// tansu, the Kafka-protocol broker the Kafka tests run against (no Apache
/// Kafka can be installed here). Building it takes 10–45 minutes on two
/// cores, so it is installed once and kept in cargo's bin directory.
const TANSU: &[&str] = &[
    "install",
    "tansu",
    "--version",
    "0.6.0",
    "--locked",
    "--no-default-features",
    "--features",
    "dynostore",
];

/// Where cargo installs binaries.
pub fn cargo_bin(name: &str) -> std::path::PathBuf {
    let home = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cargo")
        });
    home.join("bin").join(name)
}

/// Installs tansu unless it is already there.
pub fn tansu() -> Result<std::path::PathBuf> {
    let path = cargo_bin("tansu");
    if !path.exists() && !have("tansu") {
        eprintln!("xtask: building the tansu broker for the Kafka tests (10-45 minutes, once)");
        crate::run_command(Command::new("cargo").args(TANSU))?;
    }
    Ok(path)
}

/// Installs missing apt packages (as root; otherwise says what to install).
pub fn test_dependencies() -> Result<()> {
    apt_packages()?;
    tansu().map(|_| ())
}

fn apt_packages() -> Result<()> {
    let missing: Vec<&str> = APT_PACKAGES
        .iter()
        .filter(|(command, _)| !have(command))
        .map(|&(_, package)| package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "missing packages {missing:?}: run `sudo apt-get install -y {}`",
            missing.join(" ")
        );
    }
    crate::run_command(Command::new("apt-get").args(["update", "-qq"]))?;
    crate::run_command(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}
