use std::process::ExitCode;

use clap::Parser;
use sipbeat::cli::{Cli, Command};
use sipbeat::config::Config;

/// Exit status of a `read` whose capture had damaged records (skipped and
/// counted; everything else was read). 2 is clap's, for usage errors.
const DAMAGED_CAPTURE: u8 = 3;

/// One line naming the config keys that mean nothing to sipbeat.
fn warn_ignored(config: &Config) {
    if !config.ignored.is_empty() {
        sipbeat::log::warn(&format!(
            "config: left out, as they mean nothing to sipbeat: {}",
            config.ignored.join(", ")
        ));
    }
}

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
            .inspect(warn_ignored)
            .and_then(|config| sipbeat::read::run(&args.files, &config, args.quiet))
            .map(|stats| damaged = stats.counts.damaged_records > 0),
        #[cfg(feature = "xdp")]
        Command::Run(args) => Config::load(args.sip.config.as_deref(), args.overrides())
            .map_err(anyhow::Error::from)
            .inspect(warn_ignored)
            .and_then(|config| sipbeat::run::run(&config)),
        Command::ExportTemplate => {
            use std::io::Write as _;
            let template = sipbeat::fields::index_template();
            let text = serde_json::to_string_pretty(&template).expect("JSON value");
            writeln!(std::io::stdout(), "{text}")
                .map_err(|error| sipbeat::output::OutputError::Write(error).into())
        }
    };
    match result {
        // The reader of our output went away (`| head`): done, quietly.
        Err(error) if sipbeat::read::is_closed_pipe(&error) => ExitCode::SUCCESS,
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
