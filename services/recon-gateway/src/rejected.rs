//! Evidence Postgres refuses for what it holds (a NUL in an `invoiceNumber`, which
//! Postgres text cannot hold; a record breaking a CHECK of `attribution_evidence`).
//! No retry would change the answer, and the writer writes in order, so such a record
//! would hold back every record after it forever. It is set aside instead: appended,
//! whole, to `rejected.jsonl` in the spool directory (fsynced before the writer moves
//! on), counted in `gateway_evidence_rejected_total` and logged, for an operator to
//! read, correct and insert by hand. Nothing reads the file back.
//!
//! Only a refusal for the data is final. Anything else (the connection lost, a
//! timeout, a table missing before the migrations ran) is retried, forever.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use chrono::{DateTime, Utc};
use recon_store::evidence::Evidence;
use serde::Serialize;

/// The file in `GATEWAY_SPOOL_DIR` (not a `.spool` segment: the writer never reads it).
pub const FILE: &str = "rejected.jsonl";

/// Why Postgres refused a write, when it is for the data written: SQLSTATE class 22
/// (data exception) or 23 (integrity constraint violation). `None`: retry.
pub fn refused_for_its_data(error: &sqlx::Error) -> Option<Refusal> {
    match error {
        sqlx::Error::Database(db) => {
            let code = db.code()?;
            (code.starts_with("22") || code.starts_with("23")).then(|| Refusal {
                sqlstate: code.into_owned(),
                // The message, not the detail: the detail quotes the row.
                reason: db.message().to_string(),
            })
        }
        _ => None,
    }
}

/// Postgres's answer to a record it will never take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub sqlstate: String,
    pub reason: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Line<'a> {
    rejected_at: DateTime<Utc>,
    sqlstate: &'a str,
    reason: &'a str,
    /// As spooled: holds no secret and no card data (see `Evidence`).
    record: &'a Evidence,
}

/// Appends `evidence` to the file in `dir` and fsyncs it. A record may appear twice
/// (a crash after this and before the spool moved past it); it is the same record.
pub fn set_aside(dir: &Path, evidence: &Evidence, refusal: &Refusal) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(&Line {
        rejected_at: Utc::now(),
        sqlstate: &refusal.sqlstate,
        reason: &refusal.reason,
        record: evidence,
    })?;
    line.push(b'\n');
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(FILE))?;
    file.write_all(&line)?;
    file.sync_data()
}
