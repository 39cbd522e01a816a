//! The evidence spool: what makes "a payment is never held up by bookkeeping" and
//! "nothing is lost" hold together.
//!
//! Before the gateway answers a payment request, its evidence is appended to the active
//! segment file in `GATEWAY_SPOOL_DIR` as one JSON line, with one `write` (no fsync on
//! the request path: a `write` lands in the page cache in microseconds). A background
//! syncer fsyncs the active segment every `GATEWAY_SPOOL_FSYNC_INTERVAL`, and each
//! finished segment once. The writer ([`crate::writer`]) reads the segments in order,
//! writes their records to Postgres, and deletes a segment once it is finished and
//! every record in it is committed. Segments left by an earlier process are simply
//! read first: writing is idempotent, so a crash mid-drain doubles nothing.
//!
//! So: a killed process (SIGKILL, OOM) loses nothing, since the kernel still holds
//! the writes; a lost machine loses at most the last fsync interval.
//!
//! When the spool cannot be written (disk full, a read-only volume), the record goes to
//! a bounded queue in memory that the writer drains too, and the payment goes on; past
//! that bound a record is dropped. Both are counted and logged as errors.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Context;
use recon_store::evidence::Evidence;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::metrics;

const SUFFIX: &str = ".spool";
/// After a failed write, how long appends go to memory before the spool is tried again.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// Where a record went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Into the spool file (durable against a crash of the process).
    Spooled,
    /// Into memory only: the spool could not be written.
    InMemory,
    /// Nowhere: the spool failed and the memory queue is full.
    Dropped,
}

#[derive(Debug)]
struct Active {
    id: u64,
    /// `None` between segments: the next append opens `id + 1`.
    file: Option<Arc<File>>,
    bytes: u64,
    opened_at: Instant,
    /// Finished segments not yet fsynced.
    unsynced: Vec<Arc<File>>,
    /// The directory changed (a segment created): fsync it so the file survives.
    dir_dirty: bool,
    failing_until: Option<Instant>,
}

/// Settings of a [`Spool`].
#[derive(Debug, Clone)]
pub struct SpoolConfig {
    pub dir: PathBuf,
    /// A segment is finished once it holds this many bytes.
    pub segment_bytes: u64,
    /// Records held in memory at most while the spool cannot be written.
    pub memory_capacity: usize,
}

#[derive(Debug)]
pub struct Spool {
    config: SpoolConfig,
    active: Mutex<Active>,
    /// Records in segment files not yet committed to Postgres.
    pending: AtomicI64,
    memory: Mutex<VecDeque<Evidence>>,
    dirty: AtomicBool,
    /// Wakes the writer when a record arrives.
    pub(crate) arrived: Notify,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind: keep going.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Spool {
    /// Opens (creating) the directory and counts the records left in it by an earlier
    /// process; they are written before anything new.
    pub fn open(config: SpoolConfig) -> anyhow::Result<Spool> {
        std::fs::create_dir_all(&config.dir).with_context(|| {
            format!(
                "Failed to create GATEWAY_SPOOL_DIR {} (does the volume exist and is it writable?)",
                config.dir.display()
            )
        })?;
        let probe = config.dir.join(".write-test");
        std::fs::write(&probe, b"ok")
            .and_then(|()| std::fs::remove_file(&probe))
            .with_context(|| {
                format!(
                    "GATEWAY_SPOOL_DIR {} is not writable: evidence could not survive a crash",
                    config.dir.display()
                )
            })?;
        let segments = segments(&config.dir)?;
        let mut left = 0_i64;
        for id in &segments {
            left += count_lines(&segment_path(&config.dir, *id))? as i64;
        }
        if left > 0 {
            tracing::info!(
                segments = segments.len(),
                records = left,
                "evidence left in the spool by an earlier run: writing it to Postgres first"
            );
        }
        let spool = Spool {
            active: Mutex::new(Active {
                id: segments.last().copied().unwrap_or(0),
                file: None,
                bytes: 0,
                opened_at: Instant::now(),
                unsynced: Vec::new(),
                dir_dirty: false,
                failing_until: None,
            }),
            pending: AtomicI64::new(left),
            memory: Mutex::new(VecDeque::new()),
            dirty: AtomicBool::new(false),
            arrived: Notify::new(),
            config,
        };
        spool.publish_depth();
        Ok(spool)
    }

    pub fn dir(&self) -> &Path {
        &self.config.dir
    }

    /// Appends one record: to the spool file, else to memory, else nowhere (counted).
    /// Never fails and never waits on anything but one `write`.
    pub fn append(&self, evidence: &Evidence) -> Appended {
        let mut line = match serde_json::to_vec(evidence) {
            Ok(line) => line,
            Err(error) => {
                // Cannot happen for these types; handled rather than unwrapped anyway.
                tracing::error!(%error, "evidence could not be serialised for the spool");
                return self.keep_in_memory(evidence);
            }
        };
        line.push(b'\n');
        let written = {
            let mut active = lock(&self.active);
            self.write_line(&mut active, &line)
        };
        match written {
            Ok(()) => {
                self.pending.fetch_add(1, Ordering::Relaxed);
                self.dirty.store(true, Ordering::Release);
                self.publish_depth();
                self.arrived.notify_one();
                Appended::Spooled
            }
            Err(error) => {
                ::metrics::counter!(metrics::SPOOL_WRITE_FAILURES).increment(1);
                tracing::error!(
                    error = %error,
                    dir = %self.config.dir.display(),
                    "EVIDENCE AT RISK: the spool cannot be written; keeping evidence in memory \
                     until it can (a crash now loses it). Free space on the spool volume."
                );
                self.keep_in_memory(evidence)
            }
        }
    }

    fn write_line(&self, active: &mut Active, line: &[u8]) -> std::io::Result<()> {
        if let Some(until) = active.failing_until {
            if Instant::now() < until {
                return Err(std::io::Error::other(
                    "the spool failed less than a second ago",
                ));
            }
            active.failing_until = None;
        }
        if active.bytes >= self.config.segment_bytes {
            self.finish_segment(active);
        }
        let file = match &active.file {
            Some(file) => Arc::clone(file),
            None => {
                let id = active.id + 1;
                let file = OpenOptions::new()
                    .create_new(true)
                    .append(true)
                    .open(segment_path(&self.config.dir, id))
                    .inspect_err(|_| {
                        active.failing_until = Some(Instant::now() + RETRY_AFTER_FAILURE);
                    })?;
                let file = Arc::new(file);
                active.id = id;
                active.file = Some(Arc::clone(&file));
                active.bytes = 0;
                active.opened_at = Instant::now();
                active.dir_dirty = true;
                file
            }
        };
        match (&*file).write_all(line) {
            Ok(()) => {
                active.bytes += line.len() as u64;
                Ok(())
            }
            Err(error) => {
                // The segment may now end in part of a line: finish it there (the
                // reader skips an unterminated tail) and start a fresh one later.
                self.finish_segment(active);
                active.failing_until = Some(Instant::now() + RETRY_AFTER_FAILURE);
                Err(error)
            }
        }
    }

    fn finish_segment(&self, active: &mut Active) {
        if let Some(file) = active.file.take() {
            active.unsynced.push(file);
        }
    }

    fn keep_in_memory(&self, evidence: &Evidence) -> Appended {
        let mut memory = lock(&self.memory);
        if memory.len() >= self.config.memory_capacity {
            drop(memory);
            ::metrics::counter!(metrics::EVIDENCE_DROPPED).increment(1);
            tracing::error!(
                capacity = self.config.memory_capacity,
                "EVIDENCE LOST: the spool cannot be written and the memory queue is full; \
                 this payment's attribution evidence is dropped"
            );
            return Appended::Dropped;
        }
        memory.push_back(evidence.clone());
        ::metrics::gauge!(metrics::EVIDENCE_IN_MEMORY).set(memory.len() as f64);
        drop(memory);
        self.arrived.notify_one();
        Appended::InMemory
    }

    /// Up to `max` records from the memory queue (the writer puts them back with
    /// [`Spool::return_to_memory`] if Postgres refuses them).
    pub(crate) fn take_from_memory(&self, max: usize) -> Vec<Evidence> {
        let mut memory = lock(&self.memory);
        let n = memory.len().min(max);
        let taken: Vec<Evidence> = memory.drain(..n).collect();
        ::metrics::gauge!(metrics::EVIDENCE_IN_MEMORY).set(memory.len() as f64);
        taken
    }

    pub(crate) fn return_to_memory(&self, records: Vec<Evidence>) {
        let mut memory = lock(&self.memory);
        for record in records.into_iter().rev() {
            memory.push_front(record);
        }
        ::metrics::gauge!(metrics::EVIDENCE_IN_MEMORY).set(memory.len() as f64);
    }

    /// Records held in memory only.
    pub fn in_memory(&self) -> usize {
        lock(&self.memory).len()
    }

    /// Records in the spool not yet committed to Postgres.
    pub fn depth(&self) -> i64 {
        self.pending.load(Ordering::Relaxed).max(0)
    }

    pub(crate) fn committed_from_files(&self, n: usize) {
        self.pending.fetch_sub(n as i64, Ordering::Relaxed);
        self.publish_depth();
    }

    fn publish_depth(&self) {
        ::metrics::gauge!(metrics::SPOOL_DEPTH).set(self.depth() as f64);
    }

    /// Whether segment `id` will receive no more records.
    pub(crate) fn is_finished(&self, id: u64) -> bool {
        let active = lock(&self.active);
        id < active.id || (id == active.id && active.file.is_none())
    }

    /// Finishes the active segment if it is `id` and older than `age`, so the writer,
    /// having committed all of it, can delete it (an idle spool holds no old records).
    pub(crate) fn finish_if_older(&self, id: u64, age: Duration) {
        let mut active = lock(&self.active);
        if active.id == id && active.file.is_some() && active.opened_at.elapsed() >= age {
            self.finish_segment(&mut active);
        }
    }

    /// Finishes the active segment now (a graceful stop, once everything is committed,
    /// so the writer deletes it and the next start has nothing to replay).
    pub fn finish_active(&self) {
        let mut active = lock(&self.active);
        self.finish_segment(&mut active);
        drop(active);
        self.arrived.notify_one();
    }

    /// The segment ids on disk, oldest first.
    pub fn segments(&self) -> std::io::Result<Vec<u64>> {
        segments(&self.config.dir)
    }

    pub(crate) fn path(&self, id: u64) -> PathBuf {
        segment_path(&self.config.dir, id)
    }

    /// Fsyncs what was written since the last call: the active segment, finished
    /// segments, and the directory when a segment was created. Blocking.
    pub fn sync(&self) -> std::io::Result<()> {
        let (active, finished, dir_dirty) = {
            let mut active = lock(&self.active);
            let dirty = self.dirty.swap(false, Ordering::AcqRel);
            (
                active.file.clone().filter(|_| dirty),
                std::mem::take(&mut active.unsynced),
                std::mem::take(&mut active.dir_dirty),
            )
        };
        for file in finished.iter().chain(active.iter()) {
            file.sync_data()?;
        }
        if dir_dirty {
            File::open(&self.config.dir)?.sync_all()?;
        }
        Ok(())
    }

    /// Fsyncs every `interval` until `stop`, then once more.
    pub fn spawn_syncer(self: &Arc<Self>, interval: Duration, stop: CancellationToken) {
        let spool = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let stopping = tokio::select! {
                    _ = tick.tick() => false,
                    () = stop.cancelled() => true,
                };
                let worker = Arc::clone(&spool);
                match tokio::task::spawn_blocking(move || worker.sync()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => {
                        ::metrics::counter!(metrics::SPOOL_WRITE_FAILURES).increment(1);
                        tracing::error!(%error, "EVIDENCE AT RISK: fsync of the spool failed");
                    }
                    Err(error) => tracing::error!(%error, "the spool syncer panicked"),
                }
                if stopping {
                    return;
                }
            }
        });
    }
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}{SUFFIX}"))
}

fn segments(dir: &Path) -> std::io::Result<Vec<u64>> {
    let mut ids: Vec<u64> = std::fs::read_dir(dir)?
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| {
            let name = entry.file_name();
            let name = name.to_str()?;
            name.strip_suffix(SUFFIX)?.parse::<u64>().ok()
        })
        .collect();
    ids.sort_unstable();
    Ok(ids)
}

fn count_lines(path: &Path) -> std::io::Result<usize> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    Ok(bytes.iter().filter(|b| **b == b'\n').count())
}

/// Complete lines of a segment from `offset`: at most `max`, and the offset just past
/// the last one returned. An unterminated tail is left (still being written, or torn
/// by a crash: [`tail_is_torn`] tells once the segment is finished).
pub(crate) fn read_lines(
    path: &Path,
    offset: u64,
    max: usize,
) -> std::io::Result<(Vec<Vec<u8>>, u64)> {
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(offset))?;
    let mut reader = BufReader::with_capacity(256 * 1024, file);
    let mut lines = Vec::new();
    let mut consumed = 0_u64;
    while lines.len() < max {
        let mut line = Vec::new();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 || line.last() != Some(&b'\n') {
            break;
        }
        consumed += n as u64;
        line.pop();
        lines.push(line);
    }
    Ok((lines, offset + consumed))
}

/// Bytes after `offset` in a finished segment: a line torn by a crash or a failed write.
pub(crate) fn tail_is_torn(path: &Path, offset: u64) -> std::io::Result<bool> {
    Ok(std::fs::metadata(path)?.len() > offset)
}

#[cfg(test)]
mod tests;
