//! Newline-delimited JSON on any writer (standard output, a file), buffered
//! in large blocks so one `write` carries many events.

use std::io::{BufWriter, Write};

use super::{EventMeta, OutputError, Sink};

const BUFFER_SIZE: usize = 1 << 20;

/// One event per line.
pub struct NdjsonSink<W: Write> {
    out: BufWriter<W>,
}

impl<W: Write> NdjsonSink<W> {
    pub fn new(writer: W) -> NdjsonSink<W> {
        NdjsonSink {
            out: BufWriter::with_capacity(BUFFER_SIZE, writer),
        }
    }

    /// The inner writer, after flushing.
    pub fn into_inner(self) -> Result<W, OutputError> {
        self.out
            .into_inner()
            .map_err(|e| OutputError::Write(e.into_error()))
    }
}

impl<W: Write + Send> Sink for NdjsonSink<W> {
    fn publish(&mut self, json: &[u8], _meta: &EventMeta<'_>) -> Result<(), OutputError> {
        self.out.write_all(json)?;
        self.out.write_all(b"\n")?;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), OutputError> {
        self.out.flush()?;
        Ok(())
    }
}
