//! `sipbeat read`: capture files through the pipeline, in order, on this thread.

use std::path::Path;
use std::time::Instant;

use anyhow::Context as _;

use crate::capture::pcap::PcapFile;
use crate::config::Config;
use crate::output::Sink;
use crate::pipeline::Pipeline;
use crate::stats::Stats;

/// Reads every file into `sink`; returns the totals.
pub fn read_files(
    files: &[impl AsRef<Path>],
    config: &Config,
    sink: &mut dyn Sink,
) -> anyhow::Result<Stats> {
    let mut captures = open_all(files)?;
    let mut pipeline = Pipeline::new(config.pipeline(), config.agent());
    read_into(&mut captures, &mut pipeline, sink)?;
    Ok(pipeline.stats())
}

/// Opens every file first: a typo in the last file should not cost a long
/// run.
fn open_all(files: &[impl AsRef<Path>]) -> anyhow::Result<Vec<PcapFile>> {
    Ok(files
        .iter()
        .map(PcapFile::open)
        .collect::<Result<Vec<_>, _>>()?)
}

/// Reads every file through `pipeline` into `sink`; the counters stay in
/// the pipeline, whatever happens.
fn read_into(
    captures: &mut [PcapFile],
    pipeline: &mut Pipeline,
    sink: &mut dyn Sink,
) -> anyhow::Result<()> {
    for capture in captures {
        let mut sink_error = None;
        let file_stats = capture.for_each_frame(|frame| {
            if sink_error.is_none()
                && let Err(error) = pipeline.process(frame, sink)
            {
                sink_error = Some(error);
            }
        })?;
        let stats = pipeline.stats_mut();
        stats.counts.unsupported_link_frames += file_stats.unsupported_link;
        stats.counts.damaged_records += file_stats.damaged_records;
        stats.counts.damaged_bytes += file_stats.damaged_bytes;
        if let Some(error) = sink_error {
            return Err(error).context("output failed");
        }
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
    Ok(())
}

/// Whether `error` is the output's reader having gone away (`| head`):
/// the end of a run, not a failure.
pub fn is_closed_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<crate::output::OutputError>()
            .is_some_and(crate::output::OutputError::is_closed_pipe)
    })
}

/// `sipbeat read` as the CLI runs it: the summary on stderr unless quiet,
/// also when the output failed; nothing when the output's reader went away.
pub fn run(files: &[impl AsRef<Path>], config: &Config, quiet: bool) -> anyhow::Result<Stats> {
    let started = Instant::now();
    let mut captures = open_all(files)?;
    let mut sink = config.output.open()?;
    let mut pipeline = Pipeline::new(config.pipeline(), config.agent());
    let result = read_into(&mut captures, &mut pipeline, sink.as_mut());
    let stats = pipeline.stats();
    let closed = result.as_ref().err().is_some_and(is_closed_pipe);
    if !quiet && !closed {
        let mut text = stats.summary(started.elapsed());
        let mut json = stats.to_json();
        if let Some(line) = sink.summary() {
            text.push_str(&line);
            text.push('\n');
        }
        let output = sink.counters();
        if !output.is_empty() {
            json["output"] = crate::stats::json_object(output);
        }
        crate::log::stats(&text, json);
    }
    result.map(|()| stats)
}
