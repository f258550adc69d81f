//! Newline-delimited JSON on any writer (standard output, a file), buffered
//! in large blocks so one `write` carries many events — and only whole
//! lines, so capture workers sharing stdout or an O_APPEND file never
//! interleave inside an event.

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
        // Flush first if the line would not fit whole: BufWriter would
        // otherwise write out the event and its newline in separate writes.
        if self.out.capacity() - self.out.buffer().len() < json.len() + 1 {
            self.out.flush()?;
        }
        self.out.write_all(json)?;
        self.out.write_all(b"\n")?;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), OutputError> {
        self.out.flush()?;
        Ok(())
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
        // The second event fills the buffer to the last byte, leaving no
        // room for its newline; then sizes that straddle the buffer often.
        let mut events = vec![vec![b'a'; 100], vec![b'b'; BUFFER_SIZE - 101]];
        events.extend((0..3000).map(|i| vec![b'x'; 997 + i % 13]));
        for event in &events {
            sink.publish(event, &EventMeta::default()).unwrap();
        }
        let writes = sink.into_inner().unwrap().0;
        assert!(writes.len() > 1);
        for write in &writes {
            assert_eq!(write.last(), Some(&b'\n'), "a write ends inside an event");
        }
        assert_eq!(
            writes.concat().iter().filter(|&&b| b == b'\n').count(),
            events.len()
        );
    }
}
