//! The ground truth written the way Helcim's API writes it, quirks and all: ids and
//! amounts as numbers or strings, `APPROVAL` for `APPROVED`, amounts with two or four
//! decimals, Mountain Time without an offset, the open-batch sentinel, and mixed
//! string/number batch totals.
//!
//! Which quirk an object gets depends on the seed and its id only, so an object reads
//! the same on every request.

use std::str::FromStr;

use serde_json::{Number, Value, json};

use crate::activity::{Batch, Status, TerminalCancel, Transaction};
use crate::format_mountain;

/// The value Helcim puts in `dateClosed` while a batch is open.
pub const OPEN_BATCH_SENTINEL: &str = "0000-00-00 00:00:00";

/// A card transaction as `GET /v2/card-transactions[/{id}]` returns it.
pub fn transaction(tx: &Transaction, seed: u64) -> Value {
    let pick = Picker::new(seed, tx.transaction_id);
    let status = match (tx.status, pick.one_in(5, 0)) {
        (Status::Approved, true) => "APPROVAL",
        (Status::Approved, false) => "APPROVED",
        (Status::Declined, _) => "DECLINED",
        (Status::Held, _) => "HELD",
    };
    json!({
        "transactionId": id_value(tx.transaction_id, pick.one_in(4, 1)),
        "dateCreated": tx.date_created,
        "cardBatchId": id_value(tx.card_batch_id, pick.one_in(3, 2)),
        "status": status,
        "user": tx.user,
        "type": tx.kind.as_str(),
        "amount": amount_value(tx.amount_minor, pick.choose(5, 3)),
        "currency": tx.currency,
        "avsResponse": tx.avs_response,
        "cvvResponse": tx.cvv_response,
        "cardType": tx.card_type,
        "approvalCode": tx.approval_code,
        "cardToken": tx.card_token,
        "cardNumber": tx.card_number,
        "cardHolderName": tx.card_holder_name,
        "customerCode": tx.customer_code,
        "invoiceNumber": tx.invoice_number,
        "warning": "",
    })
}

/// A card batch as `GET /v2/card-batches[/{id}]` returns it; totals only with
/// `collect-stats`.
pub fn batch(batch: &Batch, with_stats: bool, seed: u64) -> Value {
    let pick = Picker::new(seed, batch.card_batch_id);
    let closed = batch.closed_at.is_some();
    let mut value = json!({
        "id": id_value(batch.card_batch_id, pick.one_in(5, 0)),
        "dateCreated": format_mountain(batch.created_at),
        "dateUpdated": format_mountain(batch.updated_at),
        "dateClosed": batch.closed_at.map_or(OPEN_BATCH_SENTINEL.to_string(), format_mountain),
        "closed": match pick.choose(3, 1) {
            0 => json!(u8::from(closed)),
            1 => json!(closed),
            _ => json!(u8::from(closed).to_string()),
        },
        "terminalId": batch.terminal_id,
        "batchNumber": id_value(batch.batch_number, pick.one_in(2, 2)),
    });
    if with_stats {
        let mut stats = batch.stats.clone();
        stats.total_sales += batch.stats_offset_minor;
        stats.net_sales += batch.stats_offset_minor;
        let stats = &stats;
        let fields = value.as_object_mut().expect("built as an object");
        // The documented mix: netSales a number, totalSales a four-decimal string,
        // countTotal a number, countApproved a string; the rest vary.
        fields.insert("netSales".into(), amount_value(stats.net_sales, 0));
        fields.insert("totalSales".into(), amount_value(stats.total_sales, 2));
        fields.insert(
            "totalRefunds".into(),
            amount_value(stats.total_refunds, pick.choose(5, 3)),
        );
        fields.insert(
            "totalReversed".into(),
            amount_value(stats.total_reversed, pick.choose(5, 4)),
        );
        fields.insert(
            "totalRefundsReversed".into(),
            amount_value(stats.total_refunds_reversed, pick.choose(5, 5)),
        );
        fields.insert("countTotal".into(), json!(stats.count_total));
        fields.insert(
            "countApproved".into(),
            json!(stats.count_approved.to_string()),
        );
        fields.insert(
            "countDeclined".into(),
            id_value(stats.count_declined, pick.one_in(2, 6)),
        );
    }
    value
}

/// The body of a `cardTransaction` webhook: only what to fetch, the id a string.
pub fn card_transaction_webhook(tx: &Transaction) -> String {
    json!({"id": tx.transaction_id.to_string(), "type": "cardTransaction"}).to_string()
}

/// The body of a `terminalCancel` webhook: no top-level id, the amount in dollars.
pub fn terminal_cancel_webhook(cancel: &TerminalCancel) -> String {
    json!({
        "type": "terminalCancel",
        "data": {
            "invoiceNumber": cancel.invoice_number,
            "deviceCode": cancel.device_code,
            "transactionAmount": amount_value(cancel.amount_minor, 4),
            "currency": cancel.currency,
            "customerCode": cancel.customer_code,
            "cancelledAt": cancel.cancelled_at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        }
    })
    .to_string()
}

fn id_value(id: u64, as_string: bool) -> Value {
    if as_string {
        json!(id.to_string())
    } else {
        json!(id)
    }
}

/// Minor units in one of Helcim's shapes: 0 number `19.99`, 1 number `19.9900`,
/// 2 string `"19.9900"`, 3 string `"19.99"`, 4 a bare integer when whole (`15`).
pub fn amount_value(minor_units: i64, shape: u64) -> Value {
    let sign = if minor_units < 0 { "-" } else { "" };
    let (whole, cents) = (
        minor_units.unsigned_abs() / 100,
        minor_units.unsigned_abs() % 100,
    );
    let two = format!("{sign}{whole}.{cents:02}");
    let four = format!("{two}00");
    let number =
        |text: &str| Value::Number(Number::from_str(text).expect("a decimal is a JSON number"));
    match shape {
        1 => number(&four),
        2 => Value::String(four),
        3 => Value::String(two),
        4 if cents == 0 => number(&format!("{sign}{whole}")),
        _ => number(&two),
    }
}

/// Deterministic per-object choices: SplitMix64 of seed, object id and question.
#[derive(Debug, Clone, Copy)]
struct Picker {
    seed: u64,
    id: u64,
}

impl Picker {
    fn new(seed: u64, id: u64) -> Self {
        Picker { seed, id }
    }

    fn choose(self, options: u64, question: u64) -> u64 {
        let mut z = self
            .seed
            .wrapping_add(self.id.wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .wrapping_add(question.wrapping_mul(0xBF58_476D_1CE4_E5B9));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % options
    }

    fn one_in(self, n: u64, question: u64) -> bool {
        self.choose(n, question) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_take_every_helcim_shape() {
        assert_eq!(amount_value(1999, 0).to_string(), "19.99");
        assert_eq!(amount_value(10099, 1).to_string(), "100.9900");
        assert_eq!(amount_value(81900, 2).to_string(), "\"819.0000\"");
        assert_eq!(amount_value(1999, 3).to_string(), "\"19.99\"");
        assert_eq!(amount_value(1500, 4).to_string(), "15");
        assert_eq!(amount_value(1501, 4).to_string(), "15.01");
        assert_eq!(amount_value(-5, 0).to_string(), "-0.05");
    }

    #[test]
    fn webhook_bodies_carry_only_what_to_fetch() {
        let activity = crate::generate(&crate::GenerateConfig::default());
        let body = card_transaction_webhook(&activity.transactions[0]);
        let json: Value = serde_json::from_str(&body).unwrap();
        assert!(json["id"].is_string());
        assert_eq!(json["type"], "cardTransaction");
        let cancel: Value =
            serde_json::from_str(&terminal_cancel_webhook(&activity.terminal_cancels[0])).unwrap();
        assert!(cancel.get("id").is_none());
        assert!(
            cancel["data"]["cancelledAt"]
                .as_str()
                .unwrap()
                .ends_with('Z')
        );
    }

    #[test]
    fn an_object_renders_the_same_every_time_and_quirks_vary_across_objects() {
        let activity = crate::generate(&crate::GenerateConfig::default());
        let first: Vec<Value> = activity
            .transactions
            .iter()
            .map(|t| transaction(t, 7))
            .collect();
        let again: Vec<Value> = activity
            .transactions
            .iter()
            .map(|t| transaction(t, 7))
            .collect();
        assert_eq!(first, again);
        assert!(first.iter().any(|t| t["transactionId"].is_string()));
        assert!(first.iter().any(|t| t["transactionId"].is_number()));
        assert!(first.iter().any(|t| t["status"] == "APPROVAL"));
        assert!(first.iter().any(|t| t["amount"].is_string()));
        let open = activity
            .batches
            .iter()
            .find(|b| b.closed_at.is_none())
            .unwrap();
        assert_eq!(batch(open, true, 7)["dateClosed"], OPEN_BATCH_SENTINEL);
    }
}
