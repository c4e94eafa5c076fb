//! The writer thread of one worker's snapshots: it serializes the parts the
//! worker handed over as shared values ([`Body::Value`]), writes them (and
//! those the worker serialized itself, [`Body::Bytes`]), syncs and renames
//! them, and reports each one back. The worker pauses only to hand a part
//! over: for a value, the time to share it (e.g. clone a map of `Arc`s);
//! never for the serialization of a large state, nor for the disk.
//!
//! What waits for the thread is bounded by bytes ([`Writer::new`]'s
//! budget; a value counts as large as its part was last time): a worker
//! that hands over more waits for the thread to catch up (back-pressure
//! from a slow disk, never a growing queue). The reports are bounded by
//! what was handed over. Dropping the writer lets the thread write what it
//! holds, then joins it.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Instant;

use super::Time;

/// One part to write: `bytes` go to `path` (through a temporary name).
pub(super) struct Job {
    /// The snapshot point.
    pub point: Time,
    /// The part's name.
    pub part: String,
    /// Where it goes; its directory is created if needed.
    pub path: PathBuf,
    /// What it holds.
    pub body: Body,
    /// The bytes it counts for against the budget (its length if known).
    pub size: usize,
}

/// Serializes a shared value into a buffer, on the writer thread.
pub(super) type Serialize = Box<dyn FnOnce(&mut Vec<u8>) -> bincode::Result<()> + Send>;

/// What a [`Job`] writes.
pub(super) enum Body {
    /// Serialized already, by the worker.
    Bytes(Vec<u8>),
    /// To serialize on the writer thread; the value it holds is dropped
    /// before the disk write, so a worker that shares state with it (an
    /// `Arc` it will modify) copies only what it changes meanwhile.
    Value(Serialize),
}

/// What became of one [`Job`].
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Written {
    /// The snapshot point.
    pub point: Time,
    /// The part's name.
    pub part: String,
    /// Whether it is on disk, whole (a failure was logged).
    pub ok: bool,
    /// Its length, bytes (0 if it failed).
    pub bytes: usize,
}

/// The writer thread of one worker (or, if it could not be started, the
/// worker itself: then [`Writer::submit`] writes before it returns).
pub(super) struct Writer {
    inner: Arc<Inner>,
    thread: Option<JoinHandle<()>>,
    budget: usize,
}

struct Inner {
    queue: Mutex<Queue>,
    changed: Condvar,
    worker: String,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    written: Vec<Written>,
    /// Bytes handed over and not yet written (queued or being written).
    unwritten: usize,
    /// Jobs handed over and not yet reported.
    pending: usize,
    closed: bool,
    /// The thread takes no job while set (tests).
    held: bool,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A panic while holding the lock leaves a queue that is still whole.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wait<'a>(&self, q: MutexGuard<'a, Queue>) -> MutexGuard<'a, Queue> {
        self.changed.wait(q).unwrap_or_else(PoisonError::into_inner)
    }

    fn run(&self) {
        let mut q = self.lock();
        loop {
            let job = if q.held { None } else { q.jobs.pop_front() };
            match job {
                Some(job) => {
                    drop(q);
                    let size = job.size;
                    let written = write(&self.worker, job);
                    q = self.lock();
                    q.unwritten -= size;
                    q.pending -= 1;
                    q.written.push(written);
                    self.changed.notify_all();
                }
                None if q.closed && (q.jobs.is_empty() || q.held) => return,
                None => q = self.wait(q),
            }
        }
    }
}

impl Writer {
    /// The writer of `worker`'s parts; a worker waits once more than
    /// `budget` bytes it handed over are unwritten.
    pub fn new(worker: usize, budget: usize) -> Self {
        let inner = Arc::new(Inner {
            queue: Mutex::default(),
            changed: Condvar::new(),
            worker: worker.to_string(),
        });
        let thread = {
            let inner = inner.clone();
            std::thread::Builder::new()
                .name(format!("pace-snapshot-w{worker}"))
                .spawn(move || inner.run())
        };
        let thread = match thread {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::warn!(worker, error = %e, "no snapshot writer thread: the worker writes its parts itself");
                None
            }
        };
        Self {
            inner,
            thread,
            budget,
        }
    }

    /// Hands `job` to the thread (waiting while the budget is spent) and
    /// returns what was written since the last call.
    pub fn submit(&self, job: Job) -> Vec<Written> {
        if self.thread.is_none() {
            let mut written = self.written();
            written.push(write(&self.inner.worker, job));
            return written;
        }
        let mut q = self.inner.lock();
        let mut written = std::mem::take(&mut q.written);
        while q.unwritten > 0 && q.unwritten + job.size > self.budget {
            q = self.inner.wait(q);
            written.append(&mut q.written);
        }
        q.unwritten += job.size;
        q.pending += 1;
        q.jobs.push_back(job);
        self.inner.changed.notify_all();
        written
    }

    /// What was written since the last call, without waiting.
    pub fn written(&self) -> Vec<Written> {
        std::mem::take(&mut self.inner.lock().written)
    }

    /// Waits until everything handed over is written; what was written
    /// since the last call.
    pub fn drain(&self) -> Vec<Written> {
        let mut q = self.inner.lock();
        let mut written = std::mem::take(&mut q.written);
        while self.thread.is_some() && !q.held && q.pending > 0 {
            q = self.inner.wait(q);
            written.append(&mut q.written);
        }
        written
    }

    /// Stops (`true`) or lets (`false`) the thread take jobs: a test's
    /// view of a part that is still being written.
    #[cfg(test)]
    pub fn hold(&self, held: bool) {
        self.inner.lock().held = held;
        self.inner.changed.notify_all();
    }
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("worker", &self.inner.worker)
            .field("threaded", &self.thread.is_some())
            .finish_non_exhaustive()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.inner.lock().closed = true;
        self.inner.changed.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Serializes `job` if it is a value, writes it to a temporary name, syncs
/// it and renames it into place, with its metrics; what became of it.
fn write(worker: &str, job: Job) -> Written {
    let t0 = Instant::now();
    let Job {
        point,
        part,
        path,
        body,
        ..
    } = job;
    let bytes = match body {
        Body::Bytes(bytes) => Ok(bytes),
        Body::Value(serialize) => {
            let mut bytes = Vec::new();
            serialize(&mut bytes).map(|()| bytes)
        }
    };
    let tmp = path.with_extension("tmp");
    let result = bytes
        .map_err(|e| format!("not serialized: {e}"))
        .and_then(|bytes| {
            (|| -> std::io::Result<usize> {
                use std::io::Write;
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                let mut file = std::fs::File::create(&tmp)?;
                file.write_all(&bytes)?;
                file.sync_all()?;
                std::fs::rename(&tmp, &path)?;
                Ok(bytes.len())
            })()
            .map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                e.to_string()
            })
        });
    let ok = match &result {
        Ok(len) => {
            let m = observability::metrics();
            m.snapshot_write
                .with_label_values(&[part.as_str()])
                .observe(t0.elapsed().as_secs_f64());
            m.snapshot_bytes
                .with_label_values(&[worker, part.as_str()])
                .set(*len as i64);
            tracing::debug!(
                point,
                part,
                bytes = len,
                ms = t0.elapsed().as_millis() as u64,
                "snapshot part written"
            );
            true
        }
        Err(e) => {
            tracing::warn!(point, part, error = %e, "snapshot part not written");
            false
        }
    };
    Written {
        point,
        part,
        ok,
        bytes: *result.as_ref().unwrap_or(&0),
    }
}
