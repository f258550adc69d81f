//! `cargo xtask image [--plain]`: the container image, built offline. The
//! build context is assembled from the profile-guided binary (or the plain
//! release build with `--plain`) by `sipbeat_testkit::image`, then
//! `podman build` runs `deploy/container/Containerfile` on it (FROM
//! scratch: nothing is pulled). Tags `localhost/sipbeat:<version>` and
//! `localhost/sipbeat:latest` in podman's local storage and writes an OCI
//! archive to `target/image/sipbeat-<version>.oci.tar`.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result};

use crate::{root, run_command};

/// The version the image is tagged with: the workspace's.
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Builds and tags the image; returns the OCI archive's path.
pub fn build(plain: bool) -> Result<PathBuf> {
    crate::setup::podman()?;
    let binary = if plain {
        PathBuf::from(crate::bench::release_sipbeat()?)
    } else {
        crate::pgo::build(crate::pgo::DEFAULT_CPU)?
    };
    let context = root().join("target/image/context");
    sipbeat_testkit::image::assemble(&binary, &context).context("assembling the image's files")?;
    let tag = format!("localhost/sipbeat:{VERSION}");
    run_command(
        Command::new("podman")
            .args([
                "build",
                "--quiet",
                "--tag",
                &tag,
                "--tag",
                "localhost/sipbeat:latest",
                "--file",
            ])
            .arg(context.join("Containerfile"))
            .arg(&context),
    )?;
    let archive = root().join(format!("target/image/sipbeat-{VERSION}.oci.tar"));
    let _ = std::fs::remove_file(&archive);
    run_command(
        Command::new("podman")
            .args(["save", "--quiet", "--format", "oci-archive", "--output"])
            .arg(&archive)
            .arg(&tag),
    )?;
    println!("{tag} (also :latest), {}", archive.display());
    Ok(archive)
}
