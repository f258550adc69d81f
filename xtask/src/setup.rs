//! Installs what the tests need, quickly when it is already there.

use std::process::Command;

use anyhow::{Result, bail};
use sipbeat_testkit::cargo_bin;

/// Debian packages the test suite calls, by the command that proves each.
const APT_PACKAGES: &[(&str, &str)] = &[
    ("tshark", "tshark"),
    ("python3", "python3"),
    // Peak memory figures of `cargo xtask bench-flood`.
    ("/usr/bin/time", "time"),
    // The live tests: real SIP peers, namespaces, mirroring, ping.
    ("sipp", "sip-tester"),
    ("ip", "iproute2"),
    ("tc", "iproute2"),
    ("ping", "iputils-ping"),
    // Loss injected into a namespace (this kernel has no netem).
    ("iptables", "iptables"),
    // The AF_PACKET baseline of `cargo xtask bench-live`.
    ("tcpdump", "tcpdump"),
    // Captures replayed live onto a veth (the tunnel tests).
    ("tcpreplay", "tcpreplay"),
    // The metrics endpoint's scraper and its format checker.
    ("prometheus", "prometheus"),
    ("promtool", "prometheus"),
    // The image and its least-privilege test.
    ("podman", "podman"),
    ("runc", "runc"),
    ("setcap", "libcap2-bin"),
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

/// Installs tansu unless it is already there.
pub fn tansu() -> Result<std::path::PathBuf> {
    if let Some(path) = sipbeat_testkit::tansu_binary() {
        return Ok(path);
    }
    eprintln!("xtask: building the tansu broker for the Kafka tests (10-45 minutes, once)");
    crate::run_command(Command::new("cargo").args(TANSU))?;
    Ok(cargo_bin("tansu"))
}

/// Disk a whole `cargo xtask test` writes in a fresh clone: build, fuzz and
/// PGO directories (5.8 GiB measured).
const TEST_RUN_WRITES: u64 = 6 << 30;
/// Room to spare beyond that before a run is warned about.
const DISK_MARGIN: u64 = 2 << 30;

/// Says so when the workspace's file system has less room than a test run
/// writes: a full disk otherwise surfaces minutes later as a compiler's
/// "IO failure on output stream" in the middle of a build.
pub fn warn_if_disk_short() {
    let Ok(path) = std::ffi::CString::new(crate::root().as_os_str().as_encoded_bytes()) else {
        return;
    };
    // SAFETY: all-zero is a valid value of this plain C struct.
    let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated; statvfs writes only `stats`.
    if unsafe { libc::statvfs(path.as_ptr(), &mut stats) } != 0 {
        return;
    }
    let free = stats.f_bavail as u64 * stats.f_frsize as u64;
    if free < TEST_RUN_WRITES + DISK_MARGIN {
        eprintln!(
            "xtask: warning: only {:.1} GiB free where the workspace is; a whole test run writes about {} GiB",
            free as f64 / (1u64 << 30) as f64,
            TEST_RUN_WRITES >> 30
        );
    }
}

/// Everything the tests need: the build toolchain, apt packages, PyPI
/// tools, tansu.
pub fn test_dependencies() -> Result<()> {
    build_toolchain()?;
    apt_packages()?;
    pypi_tools()?;
    tansu().map(|_| ())
}

/// podman and runc, for the image and its test.
pub fn podman() -> Result<()> {
    if have("podman") && have("runc") {
        return Ok(());
    }
    install_apt(&["podman", "runc"])
}

/// `kubernetes-validate` (offline Kubernetes schemas) for the manifest test.
fn pypi_tools() -> Result<()> {
    if have("kubernetes-validate") {
        return Ok(());
    }
    let install = |extra: &[&str]| {
        Command::new("python3")
            .args(["-m", "pip", "install", "--quiet"])
            .args(extra)
            .arg("kubernetes-validate")
            .status()
            .is_ok_and(|s| s.success())
    };
    // A Debian system Python refuses pip without the override (PEP 668).
    if !install(&[]) && !install(&["--break-system-packages"]) {
        bail!("cannot install kubernetes-validate with pip");
    }
    if !have("kubernetes-validate") {
        bail!("kubernetes-validate installed but not on PATH");
    }
    Ok(())
}

/// What building sipbeat needs beyond stable Rust: the XDP program is built
/// with the `nightly` toolchain's rust-src and bpf-linker.
pub fn build_toolchain() -> Result<()> {
    let components = Command::new("rustup")
        .args(["component", "list", "--toolchain", "nightly", "--installed"])
        .output()?;
    if !String::from_utf8_lossy(&components.stdout)
        .lines()
        .any(|c| c.starts_with("rust-src"))
    {
        crate::run_command(Command::new("rustup").args([
            "component",
            "add",
            "rust-src",
            "--toolchain",
            "nightly",
        ]))?;
    }
    bpf_linker()
}

/// What `rustc ARGS` prints, trimmed (`--print sysroot`, `-vV`).
pub(crate) fn rustc(args: &[&str]) -> Result<String> {
    let output = Command::new("rustc").args(args).output()?;
    if !output.status.success() {
        bail!(
            "rustc {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8(output.stdout)?.trim().to_string())
}

/// bpf-linker, built against the LLVM that ships inside the nightly
/// toolchain (no LLVM download needed): a prefix directory of symlinks to
/// it, kept in a stable place because the binary's RUNPATH points there.
fn bpf_linker() -> Result<()> {
    let linker = cargo_bin("bpf-linker");
    let works = |path: &std::path::Path| {
        Command::new(path)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if works(&linker) {
        return Ok(());
    }
    let lib = std::path::PathBuf::from(rustc(&["+nightly", "--print", "sysroot"])?).join("lib");
    let llvm = std::fs::read_dir(&lib)?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|name| name.starts_with("libLLVM.so."))
        .ok_or_else(|| anyhow::anyhow!("no libLLVM.so.* in {}", lib.display()))?;
    // libLLVM.so.22.1-rust-1.97.0-nightly → llvm-22
    let major = llvm
        .trim_start_matches("libLLVM.so.")
        .split('.')
        .next()
        .unwrap_or_default()
        .to_string();
    let home = std::env::var_os("HOME")
        .map(std::path::PathBuf::from)
        .unwrap_or_default();
    let prefix = home.join(".local/share/sipbeat/llvm");
    std::fs::create_dir_all(prefix.join("lib"))?;
    for name in ["libLLVM.so".to_string(), llvm.clone()] {
        let link = prefix.join("lib").join(&name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(lib.join(&llvm), &link)?;
    }
    eprintln!(
        "xtask: building bpf-linker against the nightly toolchain's LLVM {major} (a few minutes, once)"
    );
    crate::run_command(
        Command::new("cargo")
            .args([
                "install",
                "bpf-linker",
                "--locked",
                "--no-default-features",
                "--features",
                &format!("llvm-{major}"),
            ])
            .env("LLVM_PREFIX", &prefix),
    )?;
    if !works(&linker) {
        bail!("bpf-linker installed but does not run");
    }
    Ok(())
}

/// Installs missing apt packages (as root; otherwise says what to install).
fn apt_packages() -> Result<()> {
    let missing: Vec<&str> = APT_PACKAGES
        .iter()
        .filter(|(command, _)| !have(command))
        .map(|&(_, package)| package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    install_apt(&missing)
}

/// `apt-get install`s `packages` (as root; otherwise says what to install).
fn install_apt(packages: &[&str]) -> Result<()> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "missing packages {packages:?}: run `sudo apt-get install -y {}`",
            packages.join(" ")
        );
    }
    crate::run_command(Command::new("apt-get").args(["update", "-qq"]))?;
    crate::run_command(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(packages)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}
