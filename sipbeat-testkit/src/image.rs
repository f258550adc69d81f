//! The container image's build context, assembled from a sipbeat binary:
//! `rootfs/` with the binary, the shared libraries `ldd` names (copied
//! whole, at the paths the loader looks in), the binary's file
//! capabilities, CA certificates, `/etc/passwd`
//! and `/etc/group` with the non-root user, and the Containerfile in
//! `deploy/container`. Shared by `cargo xtask image` and the image test.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The user the image runs as (the "nonroot" of distroless images).
pub const USER_ID: u32 = 65532;

/// The capabilities the image's binary may use: live capture's, both modes.
pub const FILE_CAPABILITIES: &str = "cap_bpf,cap_net_admin,cap_net_raw,cap_ipc_lock+p";

/// The Containerfile, in the repository.
pub fn containerfile() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/container/Containerfile")
}

/// Writes the build context for `binary` into `context` (emptied first).
pub fn assemble(binary: &Path, context: &Path) -> io::Result<()> {
    let _ = std::fs::remove_dir_all(context);
    let rootfs = context.join("rootfs");
    std::fs::create_dir_all(rootfs.join("usr/bin"))?;
    std::fs::create_dir_all(rootfs.join("etc"))?;
    let installed = rootfs.join("usr/bin/sipbeat");
    std::fs::copy(binary, &installed)?;
    // Permitted file capabilities (not effective: sipbeat raises them
    // itself, so a container granted fewer still starts and says what is
    // missing). Within the container's bounding set only, as always.
    let setcap = Command::new("setcap")
        .arg(FILE_CAPABILITIES)
        .arg(&installed)
        .status()?;
    if !setcap.success() {
        return Err(io::Error::other(format!(
            "setcap {FILE_CAPABILITIES} failed (needs root and the libcap2-bin package)"
        )));
    }
    for library in shared_libraries(binary)? {
        let target = rootfs.join(library.strip_prefix("/").unwrap_or(&library));
        std::fs::create_dir_all(target.parent().expect("a library has a directory"))?;
        // Follows symlinks: the real file, under the name the loader asks for.
        std::fs::copy(&library, &target)?;
    }
    for certificates in ["/etc/ssl/certs/ca-certificates.crt"] {
        if Path::new(certificates).exists() {
            let target = rootfs.join(&certificates[1..]);
            std::fs::create_dir_all(target.parent().expect("in a directory"))?;
            std::fs::copy(certificates, target)?;
        }
    }
    std::fs::write(
        rootfs.join("etc/passwd"),
        format!(
            "root:x:0:0:root:/:/nonexistent\nsipbeat:x:{USER_ID}:{USER_ID}:sipbeat:/:/nonexistent\n"
        ),
    )?;
    std::fs::write(
        rootfs.join("etc/group"),
        format!("root:x:0:\nsipbeat:x:{USER_ID}:\n"),
    )?;
    std::fs::write(rootfs.join("etc/nsswitch.conf"), "hosts: files dns\n")?;
    std::fs::copy(containerfile(), context.join("Containerfile"))?;
    Ok(())
}

/// The shared libraries `binary` loads, the dynamic loader included.
fn shared_libraries(binary: &Path) -> io::Result<Vec<PathBuf>> {
    let output = Command::new("ldd").arg(binary).output()?;
    if !output.status.success() {
        // A static binary: nothing to copy.
        return Ok(Vec::new());
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let path = match line.split_once("=>") {
                Some((_, rest)) => rest.split_whitespace().next()?,
                None => line.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect())
}
