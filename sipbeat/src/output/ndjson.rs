//! Newline-delimited JSON on any writer (standard output, a file). Events
//! are written straight into a large batch that goes out in one `write`
//! once it is full — whole lines only, so capture workers sharing stdout or
//! an O_APPEND file never interleave inside an event.

use std::io::Write;
use std::path::PathBuf;

use super::{EventMeta, OutputError, Sink};

/// `output.file`: where the file output writes.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub path: PathBuf,
    /// Add to what the file holds (the default, and what `-o file:PATH`
    /// does), or start it afresh.
    #[serde(default = "appends")]
    pub append: bool,
}

fn appends() -> bool {
    true
}

impl FileConfig {
    /// Appending to `path`.
    pub fn appending(path: impl Into<PathBuf>) -> FileConfig {
        FileConfig {
            path: path.into(),
            append: true,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.path.as_os_str().is_empty() {
            return Err("file: path is empty".into());
        }
        Ok(())
    }

    /// Opens (creates) the file, appending or truncated.
    pub fn open(&self) -> Result<std::fs::File, OutputError> {
        std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(self.append)
            .truncate(!self.append)
            .open(&self.path)
            .map_err(|error| OutputError::Open {
                path: self.path.clone(),
                error,
            })
    }
}

/// Bytes of events that trigger a write.
const BATCH_SIZE: usize = 1 << 20;

/// One event per line.
pub struct NdjsonSink<W: Write> {
    batch: Vec<u8>,
    /// Taken only by [`NdjsonSink::into_inner`].
    out: Option<W>,
}

impl<W: Write> NdjsonSink<W> {
    pub fn new(writer: W) -> NdjsonSink<W> {
        NdjsonSink {
            // Room for a full batch and the event that overflows it.
            batch: Vec::with_capacity(2 * BATCH_SIZE),
            out: Some(writer),
        }
    }

    /// The inner writer, after writing out what is batched.
    pub fn into_inner(mut self) -> Result<W, OutputError> {
        self.write_batch()?;
        Ok(self.out.take().expect("only into_inner takes it"))
    }

    fn write_batch(&mut self) -> Result<(), OutputError> {
        let Some(out) = self.out.as_mut() else {
            return Ok(());
        };
        let written = out.write_all(&self.batch);
        // Written or failed, these events are done with: a failing output
        // is reported, not retried with an ever-growing batch.
        self.batch.clear();
        Ok(written?)
    }
}

impl<W: Write + Send> Sink for NdjsonSink<W> {
    fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.batch
    }

    fn publish(&mut self, _start: usize, _meta: &EventMeta<'_>) -> Result<(), OutputError> {
        self.batch.push(b'\n');
        if self.batch.len() >= BATCH_SIZE {
            self.write_batch()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), OutputError> {
        self.write_batch()?;
        if let Some(out) = self.out.as_mut() {
            out.flush()?;
        }
        Ok(())
    }
}

/// Events batched when a run ends early (a capture file corrupt halfway, a
/// failing pipeline) are still written, as `BufWriter` would: they were
/// published. A failure here has no one left to report to.
impl<W: Write> Drop for NdjsonSink<W> {
    fn drop(&mut self) {
        let _ = self.write_batch();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records the size of every write reaching the inner writer.
    #[derive(Default)]
    struct Writes(Vec<Vec<u8>>);

    impl Write for Writes {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.push(buf.to_vec());
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_write_holds_whole_lines() {
        let mut sink = NdjsonSink::new(Writes::default());
        // The second event fills the batch to the last byte before its
        // newline; then sizes that straddle the batch size often.
        let mut events = vec![vec![b'a'; 100], vec![b'b'; BATCH_SIZE - 102]];
        events.extend((0..3000).map(|i| vec![b'x'; 997 + i % 13]));
        for event in &events {
            sink.publish_copy(event, &EventMeta::default()).unwrap();
        }
        let writes = sink.into_inner().unwrap().0;
        assert!(writes.len() > 1);
        for write in &writes {
            assert_eq!(write.last(), Some(&b'\n'), "a write ends inside an event");
        }
        let lines = writes.concat();
        assert!(lines.ends_with(b"\n"));
        assert_eq!(lines.iter().filter(|&&b| b == b'\n').count(), events.len());
        assert_eq!(
            lines,
            events
                .join(&b"\n"[..])
                .into_iter()
                .chain([b'\n'])
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn batched_events_are_written_when_dropped_unflushed() {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Shared(Arc<Mutex<Vec<u8>>>);
        impl Write for Shared {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let written = Shared::default();
        let mut sink = NdjsonSink::new(written.clone());
        sink.publish_copy(b"{\"a\":1}", &EventMeta::default())
            .unwrap();
        assert!(written.0.lock().unwrap().is_empty(), "still batched");
        drop(sink);
        assert_eq!(*written.0.lock().unwrap(), b"{\"a\":1}\n");
    }
}
