//! The evidence writer: one background task that moves records from the spool (and
//! the memory queue, when the spool could not be written) into Postgres in batches,
//! with [`EvidenceStore::record`], and deletes each finished segment once all of it is
//! committed. While Postgres is unreachable it retries the same batch with backoff;
//! the spool grows meanwhile (`gateway_spool_depth`) and drains when Postgres is back.
//! A batch written twice (a crash between commit and delete) is one row per request:
//! the store is idempotent by `dedupe_key`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use recon_store::evidence::{Evidence, EvidenceStore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::spool::{Spool, read_lines, tail_is_torn};
use crate::{metrics, rejected};

/// An active segment whose records are all committed is finished (and deleted) once
/// this old, so an idle gateway keeps no committed records on disk for long.
const IDLE_SEGMENT_AGE: Duration = Duration::from_secs(5);
/// How long one batch may take in Postgres before it counts as failed (and is retried).
const WRITE_TIMEOUT: Duration = Duration::from_secs(15);
/// After being woken by a new record, how long the writer waits for more before
/// writing: a few records per transaction instead of one keeps Postgres's commits (and
/// the CPU they cost next to the payment path) down, for 20 ms more before a row shows.
const LINGER: Duration = Duration::from_millis(20);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub struct Writer {
    spool: Arc<Spool>,
    store: EvidenceStore,
    batch: usize,
    /// Where reading stopped: (segment id, byte offset).
    cursor: Option<(u64, u64)>,
}

impl Writer {
    pub fn new(spool: Arc<Spool>, store: EvidenceStore, batch: usize) -> Self {
        Writer {
            spool,
            store,
            batch: batch.max(1),
            cursor: None,
        }
    }

    /// Runs until `stop`; see [`wait_until_drained`] for a graceful end.
    pub fn spawn(mut self, stop: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut backoff = FIRST_BACKOFF;
            loop {
                if stop.is_cancelled() {
                    return;
                }
                let idle = match self.pass().await {
                    Ok(progressed) => {
                        backoff = FIRST_BACKOFF;
                        !progressed
                    }
                    Err(error) => {
                        ::metrics::counter!(metrics::EVIDENCE_WRITE_FAILURES).increment(1);
                        tracing::warn!(
                            error = %error,
                            spooled = self.spool.depth(),
                            retry_in_ms = backoff.as_millis() as u64,
                            "evidence could not be written to Postgres; it stays in the spool and is retried"
                        );
                        tokio::select! {
                            () = tokio::time::sleep(backoff) => {}
                            () = stop.cancelled() => return,
                        }
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        continue;
                    }
                };
                if idle {
                    tokio::select! {
                        () = self.spool.arrived.notified() => {
                            tokio::select! {
                                () = tokio::time::sleep(LINGER) => {}
                                () = stop.cancelled() => return,
                            }
                        }
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        () = stop.cancelled() => return,
                    }
                }
            }
        })
    }

    /// Writes one batch if there is one; `Ok(false)` when there was nothing to do.
    pub async fn pass(&mut self) -> anyhow::Result<bool> {
        let in_memory = self.spool.take_from_memory(self.batch);
        if !in_memory.is_empty() {
            if let Err(error) = self.record(&in_memory).await {
                self.spool.return_to_memory(in_memory);
                return Err(error);
            }
            return Ok(true);
        }
        for id in self.spool.segments()? {
            let path = self.spool.path(id);
            let offset = match self.cursor {
                Some((at, offset)) if at == id => offset,
                _ => 0,
            };
            // Asked before reading: a segment finished by now has all its lines on disk.
            let finished = self.spool.is_finished(id);
            let (lines, next) = read_lines(&path, offset, self.batch)?;
            if !lines.is_empty() {
                let records = parse(id, &lines);
                if !records.is_empty() {
                    self.record(&records).await?;
                }
                self.spool.committed_from_files(lines.len());
                self.cursor = Some((id, next));
                return Ok(true);
            }
            if !finished {
                // The active segment, all committed.
                self.spool.finish_if_older(id, IDLE_SEGMENT_AGE);
                return Ok(false);
            }
            if tail_is_torn(&path, next)? {
                ::metrics::counter!(metrics::SPOOL_UNREADABLE).increment(1);
                tracing::error!(
                    segment = id,
                    "a spooled record was cut short (a crash or a failed write mid-record); it is lost"
                );
            }
            std::fs::remove_file(&path)?;
            self.cursor = None;
        }
        Ok(false)
    }

    /// Writes `records`; when Postgres refuses the batch for what a record holds, writes
    /// them one at a time and sets aside each one it refuses ([`crate::rejected`]), so
    /// one bad record cannot hold back the rest. Any other failure is returned (and
    /// the batch retried).
    async fn record(&self, records: &[Evidence]) -> anyhow::Result<()> {
        match self.write(records).await {
            Ok(()) => Ok(()),
            Err(Failed::Retry(error)) => Err(error),
            Err(Failed::Refused(_)) => {
                for record in records {
                    match self.write(std::slice::from_ref(record)).await {
                        Ok(()) => {}
                        Err(Failed::Retry(error)) => return Err(error),
                        Err(Failed::Refused(refusal)) => self.set_aside(record, &refusal)?,
                    }
                }
                Ok(())
            }
        }
    }

    fn set_aside(&self, record: &Evidence, refusal: &rejected::Refusal) -> anyhow::Result<()> {
        let dir = self.spool.dir();
        rejected::set_aside(dir, record, refusal).map_err(|error| {
            anyhow::anyhow!(
                "a record Postgres refuses ({}) could not be set aside in {}: {error}",
                refusal.sqlstate,
                dir.join(rejected::FILE).display()
            )
        })?;
        ::metrics::counter!(metrics::EVIDENCE_REJECTED).increment(1);
        tracing::error!(
            dedupe_key = %record.dedupe_key,
            sqlstate = %refusal.sqlstate,
            reason = %refusal.reason,
            file = %dir.join(rejected::FILE).display(),
            "EVIDENCE SET ASIDE: Postgres refuses this record for what it holds; it is kept \
             in the file named, to be corrected and inserted by hand, and the writer goes on"
        );
        Ok(())
    }

    async fn write(&self, records: &[Evidence]) -> Result<(), Failed> {
        let started = Instant::now();
        let recorded = match tokio::time::timeout(WRITE_TIMEOUT, self.store.record(records)).await {
            Err(_) => {
                return Err(Failed::Retry(anyhow::anyhow!(
                    "Postgres did not commit within {WRITE_TIMEOUT:?}"
                )));
            }
            Ok(Err(error)) => {
                return Err(match rejected::refused_for_its_data(&error) {
                    Some(refusal) => Failed::Refused(refusal),
                    None => Failed::Retry(error.into()),
                });
            }
            Ok(Ok(recorded)) => recorded,
        };
        ::metrics::histogram!(metrics::EVIDENCE_WRITE_SECONDS)
            .record(started.elapsed().as_secs_f64());
        ::metrics::counter!(metrics::EVIDENCE_COMMITTED).increment(records.len() as u64);
        tracing::debug!(
            records = records.len(),
            inserted = recorded.inserted,
            answered_later = recorded.answered_later,
            "evidence written"
        );
        Ok(())
    }
}

/// Why a write failed.
enum Failed {
    /// Postgres refuses what a record holds: no retry will change that.
    Refused(rejected::Refusal),
    /// Anything else: retried.
    Retry(anyhow::Error),
}

/// Spool lines as records; a line that does not parse is logged (by segment and
/// position, never its content) and skipped, so one bad line cannot stop the writer.
fn parse(segment: u64, lines: &[Vec<u8>]) -> Vec<Evidence> {
    lines
        .iter()
        .enumerate()
        .filter_map(|(i, line)| match serde_json::from_slice::<Evidence>(line) {
            Ok(evidence) => Some(evidence),
            Err(error) => {
                ::metrics::counter!(metrics::SPOOL_UNREADABLE).increment(1);
                tracing::error!(
                    segment,
                    line = i,
                    error = error_kind(&error),
                    "a spooled record does not parse; it is skipped and lost"
                );
                None
            }
        })
        .collect()
}

/// The kind of error only: serde's message may quote part of the line.
fn error_kind(error: &serde_json::Error) -> &'static str {
    match error.classify() {
        serde_json::error::Category::Io => "io",
        serde_json::error::Category::Syntax => "syntax",
        serde_json::error::Category::Data => "data",
        serde_json::error::Category::Eof => "eof",
    }
}

/// Waits (at most `within`) until the spool and the memory queue are empty; returns
/// whether they are. A graceful shutdown calls it after the last request.
pub async fn wait_until_drained(spool: &Spool, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if spool.depth() == 0 && spool.in_memory() == 0 {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
