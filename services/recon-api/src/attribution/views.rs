//! Gaps, their audit trail and post-close notes as JSON: lowerCamelCase names
//! (`docs/api.md`), money as decimal strings, times RFC 3339 in UTC to the second.
//! Optional fields (`reason`, `candidates`, `resolution`, `shareAtRisk`) are left out
//! when they do not apply.

use chrono::{DateTime, SecondsFormat, Utc};
use recon_money::format_minor_units;
use recon_store::attribution::gaps::{Gap, GapEvent, PostCloseNote};
use serde_json::{Value, json};

pub fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn money(minor: i64) -> String {
    format_minor_units(minor, 2)
}

pub fn gap(gap: &Gap) -> Value {
    let mut out = json!({
        "id": gap.id,
        "accountId": gap.account_id,
        "transactionId": gap.transaction_id,
        "evidenceId": gap.evidence_id,
        "class": gap.class,
        "amount": gap.amount_minor.map(money),
        "currency": gap.currency,
        "month": gap.month,
        "deadline": time(gap.deadline),
        "status": gap.status,
        "detectedAt": time(gap.detected_at),
        "updatedAt": time(gap.updated_at),
    });
    if let Some(reason) = gap.reason {
        out["reason"] = json!(reason);
    }
    if let Some(candidates) = &gap.candidates {
        out["candidates"] = json!(candidates);
    }
    if let Some(resolution) = gap.resolution {
        out["resolution"] = json!(resolution);
    }
    if let Some(share) = gap.share_at_risk_minor() {
        out["shareAtRisk"] = json!(money(share));
        out["shareRateBps"] = json!(gap.share_rate_bps);
    }
    out
}

pub fn event(event: &GapEvent) -> Value {
    json!({
        "at": time(event.at),
        "actor": event.actor,
        "fromStatus": event.from_status,
        "toStatus": event.to_status,
        "fromClass": event.from_class,
        "toClass": event.to_class,
        "note": event.note,
    })
}

/// A gap with its audit trail, oldest event first.
pub fn gap_with_events(g: &Gap, events: &[GapEvent]) -> Value {
    let mut out = gap(g);
    out["events"] = events.iter().map(event).collect();
    out
}

pub fn note(note: &PostCloseNote) -> Value {
    json!({
        "id": note.id,
        "month": note.month,
        "accountId": note.account_id,
        "gapId": note.gap_id,
        "evidenceId": note.evidence_id,
        "at": time(note.at),
        "note": note.note,
    })
}
