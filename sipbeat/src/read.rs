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
        stats.counts.unsupported_link_frames += file_stats.unsupported_link;
        stats.counts.damaged_records += file_stats.damaged_records;
        stats.counts.damaged_bytes += file_stats.damaged_bytes;
        if file_stats.damaged_records > 0 {
            crate::log::warn(&format!(
                "{} is damaged: {} places, {} bytes skipped; read the rest",
                capture.path().display(),
                file_stats.damaged_records,
                file_stats.damaged_bytes
            ));
        }
        if file_stats.truncated {
            crate::log::warn(&format!(
                "{} ends mid-record (cut short?); read what came before",
                capture.path().display()
            ));
        }
    }
    pipeline.finish(sink).context("output failed")?;
    sink.drain().context("output failed")?;
    Ok(pipeline.stats())
}

/// `sipbeat read` as the CLI runs it: summary on stderr unless quiet.
pub fn run(files: &[impl AsRef<Path>], config: &Config, quiet: bool) -> anyhow::Result<Stats> {
    let started = Instant::now();
    let mut sink = config.output.open()?;
    let result = read_files(files, config, sink.as_mut());
    if !quiet {
        if let Ok(stats) = &result {
            let mut text = stats.summary(started.elapsed());
            let mut json = stats.to_json();
            if let Some(line) = sink.summary() {
                text.push_str(&line);
                text.push('\n');
            }
            let output: serde_json::Map<_, _> = sink
                .counters()
                .into_iter()
                .map(|(name, value)| (name.to_string(), value.into()))
                .collect();
            if !output.is_empty() {
                json["output"] = output.into();
            }
            crate::log::stats(&text, json);
        } else if let Some(line) = sink.summary() {
            crate::log::stats(&format!("{line}\n"), serde_json::Value::Null);
        }
    }
    result
}
