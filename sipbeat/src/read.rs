//! `sipbeat read`: capture files through the pipeline, in order, on this thread.

use std::path::Path;
use std::time::Instant;

use anyhow::Context as _;

use crate::capture::pcap::PcapFile;
use crate::config::Config;
use crate::event::Agent;
use crate::output::Sink;
use crate::pipeline::Pipeline;
use crate::stats::Stats;

/// Reads every file into `sink`; returns the totals.
pub fn read_files(
    files: &[impl AsRef<Path>],
    config: &Config,
    sink: &mut dyn Sink,
) -> anyhow::Result<Stats> {
    // Open everything first: a typo in the last file should not cost a long run.
    let captures = files
        .iter()
        .map(PcapFile::open)
        .collect::<Result<Vec<_>, _>>()?;
    let mut pipeline = Pipeline::new(config.pipeline(), Agent::current());
    for capture in &captures {
        let mut sink_error = None;
        let file_stats = capture.for_each_frame(|frame| {
            if sink_error.is_none()
                && let Err(error) = pipeline.process(frame, sink)
            {
                sink_error = Some(error);
            }
        })?;
        if let Some(error) = sink_error {
            return Err(error).context("output failed");
        }
        let stats = pipeline.stats_mut();
        stats.unsupported_link += file_stats.unsupported_link;
        stats.damaged_records += file_stats.damaged_records;
        stats.damaged_bytes += file_stats.damaged_bytes;
        if file_stats.damaged_records > 0 {
            eprintln!(
                "sipbeat: warning: {} is damaged: {} places, {} bytes skipped; read the rest",
                capture.path().display(),
                file_stats.damaged_records,
                file_stats.damaged_bytes
            );
        }
        if file_stats.truncated {
            eprintln!(
                "sipbeat: warning: {} ends mid-record (cut short?); read what came before",
                capture.path().display()
            );
        }
    }
    pipeline.finish(sink).context("output failed")?;
    sink.flush().context("output failed")?;
    Ok(pipeline.stats())
}

/// `sipbeat read` as the CLI runs it: summary on stderr unless quiet.
pub fn run(files: &[impl AsRef<Path>], config: &Config, quiet: bool) -> anyhow::Result<Stats> {
    let started = Instant::now();
    let mut sink = config.output.open()?;
    let result = read_files(files, config, sink.as_mut());
    if !quiet {
        if let Ok(stats) = &result {
            eprint!("{}", stats.summary(started.elapsed()));
        }
        if let Some(line) = sink.summary() {
            eprintln!("{line}");
        }
    }
    result
}
