use std::process::ExitCode;

use clap::Parser;
use sipbeat::cli::{Cli, Command};
use sipbeat::config::Config;

/// Exit status of a `read` whose capture had damaged records (skipped and
/// counted; everything else was read).
const DAMAGED_CAPTURE: u8 = 2;

fn main() -> ExitCode {
    // Before anything that may run instructions this CPU lacks.
    let missing = sipbeat::cpu::missing_features();
    if !missing.is_empty() {
        sipbeat::log::error(&format!(
            "this build needs CPU features this machine lacks ({}); \
             build one for it with `cargo build --release` or \
             `cargo xtask build-pgo --cpu x86-64`",
            missing.join(", ")
        ));
        return ExitCode::FAILURE;
    }
    let cli = Cli::parse();
    sipbeat::log::init(cli.log_format);
    let mut damaged = false;
    let result = match cli.command {
        Command::Read(args) => Config::load(args.sip.config.as_deref(), args.sip.overrides())
            .map_err(anyhow::Error::from)
            .and_then(|config| sipbeat::read::run(&args.files, &config, args.quiet))
            .map(|stats| damaged = stats.counts.damaged_records > 0),
        #[cfg(feature = "xdp")]
        Command::Run(args) => Config::load(args.sip.config.as_deref(), args.overrides())
            .map_err(anyhow::Error::from)
            .and_then(|config| sipbeat::run::run(&config)),
        Command::ExportTemplate => {
            let template = sipbeat::fields::index_template();
            println!(
                "{}",
                serde_json::to_string_pretty(&template).expect("JSON value")
            );
            Ok(())
        }
    };
    match result {
        // Every event was written, but the capture had damage (counted).
        Ok(()) if damaged => ExitCode::from(DAMAGED_CAPTURE),
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line: the error and its causes, as the user needs to act on it.
            sipbeat::log::error(&format!("{error:#}"));
            ExitCode::FAILURE
        }
    }
}
