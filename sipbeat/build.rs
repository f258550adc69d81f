//! Builds the XDP program (`sipbeat-ebpf`) for the BPF target with
//! aya-build, when the `xdp` feature is on; the object lands in `OUT_DIR`
//! and is embedded by `capture::xsk`. Needs the `nightly` toolchain with
//! rust-src and bpf-linker: `cargo xtask setup` installs both.

fn main() -> anyhow::Result<()> {
    if std::env::var_os("CARGO_FEATURE_XDP").is_none() {
        return Ok(());
    }
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../sipbeat-ebpf");
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "sipbeat-ebpf",
            root_dir: root,
            no_default_features: false,
            features: &[],
        }],
        aya_build::Toolchain::default(),
    )
}
