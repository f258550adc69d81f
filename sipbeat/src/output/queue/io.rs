//! The disk queue's file work, on a thread of its own: a capture worker
//! hands it batches of encoded records, reads, removals and the `acked`
//! value through a bounded channel, and never waits for the disk itself.
//! Jobs are done in the order given, so a read sees every write asked
//! before it. Every job is answered with one [`Done`].

use std::fs::{self, File, OpenOptions};
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::segment::{END_MARK, segment_header, segment_name, spare_name, write_acked};

/// Jobs waiting for the thread at most (a write is a batch of records).
const JOBS: usize = 16;
/// Delivered segments' files kept for reuse: writing into pages the file
/// already has costs a copy, where a new file's pages are allocated,
/// reserved on disk and freed again.
const SPARES: usize = 2;

/// Records for one segment, appended in seq order.
#[derive(Debug)]
pub(super) struct Batch {
    /// The segment's first seq (its name).
    pub segment: u64,
    /// The segment's first batch this run: the file is made, magic first.
    pub fresh: bool,
    /// Where in the segment file its bytes start.
    pub offset: u64,
    pub seqs: Range<u64>,
    pub bytes: Vec<u8>,
}

/// Work for the thread.
#[derive(Debug)]
pub(super) enum Job {
    Write(Batch),
    /// Up to `len` bytes of a segment from `offset`, into `buffer` (its
    /// old contents go).
    Read {
        segment: u64,
        offset: u64,
        len: u64,
        buffer: Vec<u8>,
    },
    /// A delivered segment goes.
    Remove {
        segment: u64,
    },
    /// Every seq below this is delivered.
    SaveAcked(u64),
}

/// What became of a job.
#[derive(Debug)]
pub(super) enum Done {
    /// The batch, as given (its events are produced from it), and the
    /// error if it did not reach the file.
    Written(Batch, Option<io::Error>),
    Read {
        segment: u64,
        offset: u64,
        bytes: io::Result<Vec<u8>>,
    },
    Removed(io::Result<()>),
    SavedAcked(io::Result<()>),
}

/// The worker's end.
#[derive(Debug)]
pub(super) struct Io {
    jobs: Option<Sender<Job>>,
    done: Receiver<Done>,
    /// Jobs given and not yet answered through [`Io::poll`] or [`Io::wait`].
    outstanding: usize,
}

impl Io {
    /// Starts the thread for the queue in `dir`.
    pub fn start(dir: &Path) -> io::Result<Io> {
        let (jobs, inbox) = crossbeam_channel::bounded(JOBS);
        // Unbounded, but never longer than the jobs given and not polled.
        let (answers, done) = crossbeam_channel::unbounded();
        let dir = dir.to_path_buf();
        std::thread::Builder::new()
            .name("sipbeat-queue".into())
            .spawn(move || serve(&dir, &inbox, &answers))?;
        Ok(Io {
            jobs: Some(jobs),
            done,
            outstanding: 0,
        })
    }

    /// Gives `job` to the thread unless its queue is full (the job comes
    /// back).
    pub fn offer(&mut self, job: Job) -> Result<(), Job> {
        // A deadline already past: one try.
        self.give(job, Instant::now())
    }

    /// Gives `job` to the thread, waiting for room until `deadline`.
    pub fn give(&mut self, job: Job, deadline: Instant) -> Result<(), Job> {
        let Some(jobs) = &self.jobs else {
            return Err(job);
        };
        match jobs.send_deadline(job, deadline) {
            Ok(()) => {
                self.outstanding += 1;
                Ok(())
            }
            Err(error) => Err(error.into_inner()),
        }
    }

    /// The next answer in, without waiting.
    pub fn poll(&mut self) -> Option<Done> {
        let done = self.done.try_recv().ok()?;
        self.outstanding -= 1;
        Some(done)
    }

    /// The next answer, waiting until `deadline` (`None`: nothing is
    /// outstanding, or the deadline passed).
    pub fn wait(&mut self, deadline: Instant) -> Option<Done> {
        if self.outstanding == 0 {
            return None;
        }
        match self.done.recv_deadline(deadline) {
            Ok(done) => {
                self.outstanding -= 1;
                Some(done)
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => None,
        }
    }

    pub fn outstanding(&self) -> usize {
        self.outstanding
    }

    /// No more jobs: the thread ends once it has done those given.
    pub fn close(&mut self) {
        self.jobs = None;
    }
}

/// The thread: does each job in turn until the worker's end is dropped.
fn serve(dir: &Path, jobs: &Receiver<Job>, done: &Sender<Done>) {
    let mut files = Files {
        dir: dir.to_path_buf(),
        open: None,
        failed: None,
        spares: Vec::new(),
    };
    for job in jobs {
        let answer = match job {
            Job::Write(mut batch) => {
                let result = files.append(&mut batch);
                Done::Written(batch, result.err())
            }
            Job::Read {
                segment,
                offset,
                len,
                mut buffer,
            } => {
                let path = dir.join(segment_name(segment));
                let bytes = read_at(&path, offset, len, &mut buffer).map(|()| buffer);
                Done::Read {
                    segment,
                    offset,
                    bytes,
                }
            }
            Job::Remove { segment } => Done::Removed(files.retire(segment)),
            Job::SaveAcked(acked) => Done::SavedAcked(write_acked(dir, acked)),
        };
        if done.send(answer).is_err() {
            return;
        }
    }
}

/// The segment files.
struct Files {
    dir: PathBuf,
    /// The segment being written.
    open: Option<(u64, File)>,
    /// A segment whose write failed: what follows for it fails too (its
    /// file may end in a partial record, and the worker has moved on).
    failed: Option<u64>,
    /// Files of delivered segments, to reuse.
    spares: Vec<PathBuf>,
}

impl Files {
    fn append(&mut self, batch: &mut Batch) -> io::Result<()> {
        if self.failed == Some(batch.segment) {
            return Err(io::Error::other("an earlier write to this segment failed"));
        }
        let result = self.write(batch);
        if result.is_err() {
            self.open = None;
            self.failed = Some(batch.segment);
        }
        result
    }

    /// Writes the batch where it belongs, then the end mark (which the next
    /// batch overwrites), in one call.
    fn write(&mut self, batch: &mut Batch) -> io::Result<()> {
        let file = match &mut self.open {
            Some((segment, file)) if *segment == batch.segment => file,
            open => {
                let path = self.dir.join(segment_name(batch.segment));
                let file = if batch.fresh {
                    let file = match self.spares.pop() {
                        Some(spare) => {
                            fs::rename(&spare, &path)?;
                            OpenOptions::new().write(true).open(&path)?
                        }
                        None => OpenOptions::new()
                            .create(true)
                            .write(true)
                            .truncate(true)
                            .open(&path)?,
                    };
                    file.write_all_at(&segment_header(batch.segment), 0)?;
                    file
                } else {
                    OpenOptions::new().write(true).open(&path)?
                };
                &mut open.insert((batch.segment, file)).1
            }
        };
        let len = batch.bytes.len();
        batch.bytes.extend_from_slice(&END_MARK);
        let written = file.write_all_at(&batch.bytes, batch.offset);
        batch.bytes.truncate(len);
        written
    }

    /// A delivered segment: its file becomes a spare, or goes.
    fn retire(&mut self, segment: u64) -> io::Result<()> {
        if self.open.as_ref().is_some_and(|(open, _)| *open == segment) {
            self.open = None;
        }
        let path = self.dir.join(segment_name(segment));
        let retired = if self.spares.len() < SPARES {
            let spare = self.dir.join(spare_name(segment));
            fs::rename(&path, &spare).map(|()| self.spares.push(spare))
        } else {
            fs::remove_file(path)
        };
        match retired {
            // Delivered before any of it was written: no file was made.
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
            retired => retired,
        }
    }
}

/// Up to `len` bytes of `path` from `offset` (fewer at its end) into
/// `bytes`.
fn read_at(path: &Path, offset: u64, len: u64, bytes: &mut Vec<u8>) -> io::Result<()> {
    let file = File::open(path)?;
    bytes.clear();
    bytes.resize(len as usize, 0);
    let mut got = 0;
    while got < bytes.len() {
        match file.read_at(&mut bytes[got..], offset + got as u64)? {
            0 => break,
            n => got += n,
        }
    }
    bytes.truncate(got);
    Ok(())
}
