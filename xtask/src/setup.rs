//! Installs what the tests need, quickly when it is already there.

use std::process::Command;

use anyhow::{Result, bail};

/// Debian packages the test suite calls, by the command that proves each.
const APT_PACKAGES: &[(&str, &str)] = &[("tshark", "tshark"), ("python3", "python3")];

fn have(command: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {command} >/dev/null 2>&1")])
        .status()
        .is_ok_and(|s| s.success())
}

/// Installs missing apt packages (as root; otherwise says what to install).
pub fn test_dependencies() -> Result<()> {
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
