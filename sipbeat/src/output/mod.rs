//! Where finished events go. A sink receives each event's JSON and its key
//! (the Call-ID, for partitioned outputs) and knows nothing of SIP or ECS.

pub mod ndjson;

use std::path::PathBuf;

/// Why an output failed.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("cannot open output file {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write events: {0}")]
    Write(#[from] std::io::Error),
}

/// A destination for events.
pub trait Sink {
    /// Publishes one event (`json` is one JSON object without a newline).
    fn publish(&mut self, json: &[u8], key: Option<&[u8]>) -> Result<(), OutputError>;

    /// Pushes out anything buffered.
    fn flush(&mut self) -> Result<(), OutputError>;
}

/// Which sink a run writes to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Newline-delimited JSON on standard output (the default).
    Stdout,
    /// Newline-delimited JSON appended to a file.
    File(PathBuf),
}

impl Output {
    /// Parses `stdout` or `file:PATH`.
    pub fn parse(spec: &str) -> Result<Output, String> {
        if spec == "stdout" || spec == "-" {
            return Ok(Output::Stdout);
        }
        if let Some(path) = spec.strip_prefix("file:") {
            if path.is_empty() {
                return Err("file output needs a path: file:PATH".to_string());
            }
            return Ok(Output::File(PathBuf::from(path)));
        }
        Err(format!(
            "unknown output {spec:?}: expected stdout or file:PATH"
        ))
    }

    /// Opens the sink.
    pub fn open(&self) -> Result<Box<dyn Sink>, OutputError> {
        Ok(match self {
            Output::Stdout => Box::new(ndjson::NdjsonSink::new(std::io::stdout())),
            Output::File(path) => {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|source| OutputError::Open {
                        path: path.clone(),
                        source,
                    })?;
                Box::new(ndjson::NdjsonSink::new(file))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_specs() {
        assert_eq!(Output::parse("stdout"), Ok(Output::Stdout));
        assert_eq!(
            Output::parse("file:/tmp/x.ndjson"),
            Ok(Output::File("/tmp/x.ndjson".into()))
        );
        assert!(Output::parse("file:").is_err());
        assert!(Output::parse("kafka://x").is_err());
    }
}
