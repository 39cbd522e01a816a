use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{FieldError, optional_whole_number, required, whole_number};
use crate::money::parse_minor_units;
use crate::mountain_time;
use crate::wire::{Scalar, WireBatch, text};

/// Helcim's card batch id (`id` on a batch, `cardBatchId` on a transaction).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CardBatchId(pub u64);

impl fmt::Display for CardBatchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The totals Helcim computes for a batch when asked with `collect-stats=true`.
///
/// Amounts are minor units in the currency of the batch's terminal: a batch carries no
/// currency of its own, so it is taken from its transactions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchStats {
    pub net_sales: i64,
    pub total_sales: i64,
    pub total_refunds: i64,
    pub total_reversed: i64,
    pub total_refunds_reversed: i64,
    pub count_total: u64,
    pub count_approved: u64,
    pub count_declined: u64,
}

/// A card batch as Helcim's API reports it, with the JSON it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct CardBatch {
    pub id: CardBatchId,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
    /// `None` while the batch is open (Helcim writes `0000-00-00 00:00:00`).
    pub closed_at: Option<DateTime<Utc>>,
    pub closed: bool,
    pub terminal_id: Option<String>,
    pub batch_number: Option<u64>,
    /// Present when the batch was fetched with `collect-stats=true`.
    pub stats: Option<BatchStats>,
    /// The object exactly as received.
    pub raw: Value,
}

impl CardBatch {
    /// Reads one batch object from Helcim's JSON, keeping the JSON.
    pub fn from_json(raw: Value) -> Result<Self, FieldError> {
        let wire: WireBatch =
            serde_json::from_value(raw.clone()).map_err(|e| FieldError::new("(object)", e))?;
        let time = |field: &'static str, value: &Option<Scalar>| match value {
            Some(scalar) => {
                mountain_time::parse_optional(&scalar.0).map_err(|e| FieldError::new(field, e))
            }
            None => Ok(None),
        };
        let closed_at = time("dateClosed", &wire.date_closed)?;
        let closed = match wire.closed.as_ref().and_then(Scalar::non_empty) {
            Some(flag) => parse_flag("closed", flag)?,
            None => closed_at.is_some(),
        };
        Ok(CardBatch {
            id: CardBatchId(whole_number("id", &wire.id)?),
            created_at: time("dateCreated", &wire.date_created)?,
            updated_at: time("dateUpdated", &wire.date_updated)?,
            closed_at,
            closed,
            terminal_id: text(&wire.terminal_id),
            batch_number: optional_whole_number("batchNumber", &wire.batch_number)?,
            stats: read_stats(&wire)?,
            raw,
        })
    }
}

/// Stats are all there or all absent; a partial set is an error, never zero-filled.
fn read_stats(wire: &WireBatch) -> Result<Option<BatchStats>, FieldError> {
    let fields = [
        &wire.net_sales,
        &wire.total_sales,
        &wire.total_refunds,
        &wire.total_reversed,
        &wire.total_refunds_reversed,
        &wire.count_total,
        &wire.count_approved,
        &wire.count_declined,
    ];
    if fields.iter().all(|field| field.is_none()) {
        return Ok(None);
    }
    let amount = |field: &'static str, value: &Option<Scalar>| -> Result<i64, FieldError> {
        let scalar = value
            .as_ref()
            .ok_or_else(|| FieldError::new(field, "missing from the batch stats"))?;
        parse_minor_units(required(field, scalar)?, 2).map_err(|e| FieldError::new(field, e))
    };
    let count = |field: &'static str, value: &Option<Scalar>| -> Result<u64, FieldError> {
        let scalar = value
            .as_ref()
            .ok_or_else(|| FieldError::new(field, "missing from the batch stats"))?;
        whole_number(field, scalar)
    };
    Ok(Some(BatchStats {
        net_sales: amount("netSales", &wire.net_sales)?,
        total_sales: amount("totalSales", &wire.total_sales)?,
        total_refunds: amount("totalRefunds", &wire.total_refunds)?,
        total_reversed: amount("totalReversed", &wire.total_reversed)?,
        total_refunds_reversed: amount("totalRefundsReversed", &wire.total_refunds_reversed)?,
        count_total: count("countTotal", &wire.count_total)?,
        count_approved: count("countApproved", &wire.count_approved)?,
        count_declined: count("countDeclined", &wire.count_declined)?,
    }))
}

fn parse_flag(field: &'static str, text: &str) -> Result<bool, FieldError> {
    match text.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" => Ok(true),
        "0" | "false" | "no" => Ok(false),
        other => Err(FieldError::new(
            field,
            format!("{other:?} is not a yes/no flag"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(json: &str) -> Result<CardBatch, FieldError> {
        CardBatch::from_json(serde_json::from_str(json).unwrap())
    }

    #[test]
    fn the_documented_mixed_types_read_exactly() {
        let batch = read(
            r#"{"id":3121,"dateCreated":"2026-01-13 17:00:01","dateUpdated":"2026-01-14 17:00:00",
            "dateClosed":"2026-01-14 17:00:00","closed":1,"terminalId":"T1","batchNumber":"12",
            "netSales":790.01,"totalSales":"819.0000","totalRefunds":"28.99","totalReversed":0,
            "totalRefundsReversed":"0.0000","countTotal":9,"countApproved":"7","countDeclined":"2"}"#,
        )
        .unwrap();
        let stats = batch.stats.unwrap();
        assert_eq!(stats.total_sales, 81900);
        assert_eq!(stats.net_sales, 79001);
        assert_eq!(stats.count_approved, 7);
        assert!(batch.closed);
        assert_eq!(batch.batch_number, Some(12));
        assert_eq!(
            batch.closed_at.unwrap().to_rfc3339(),
            "2026-01-15T00:00:00+00:00"
        );
    }

    #[test]
    fn an_open_batch_has_no_close_time() {
        let batch = read(
            r#"{"id":"3122","dateCreated":"2026-01-14 17:00:01","dateClosed":"0000-00-00 00:00:00","closed":"0"}"#,
        )
        .unwrap();
        assert_eq!(batch.closed_at, None);
        assert!(!batch.closed);
        assert_eq!(batch.stats, None);
    }

    #[test]
    fn partial_stats_are_an_error_not_zeros() {
        let err = read(r#"{"id":1,"totalSales":"1.00"}"#).unwrap_err();
        assert_eq!(err.field, "netSales");
    }
}
