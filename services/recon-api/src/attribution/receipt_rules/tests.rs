use chrono::TimeZone;
use serde_json::json;

use super::*;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap()
}

fn good() -> Value {
    json!({
        "receiptId": "r-1",
        "accountId": "acct-a",
        "transactionId": 25_745_757,
        "invoiceNumber": "INV-1",
        "amount": "100.99",
        "currency": "CAD",
        "partnerTokenSent": true,
        "isValidPartnerToken": 1,
        "observedAt": "2026-11-01T05:00:00-06:00"
    })
}

fn with(changes: Value) -> Value {
    let mut item = good();
    for (k, v) in changes.as_object().unwrap() {
        if v == &json!("<absent>") {
            item.as_object_mut().unwrap().remove(k);
        } else {
            item[k] = v.clone();
        }
    }
    item
}

fn faults(item: Value) -> String {
    check_item(&item, now()).unwrap_err().join("; ")
}

fn batch(items: Vec<Value>) -> Vec<u8> {
    serde_json::to_vec(&json!({"receipts": items})).unwrap()
}

#[test]
fn a_good_receipt_becomes_minor_units_and_utc() {
    let receipt = check_item(&good(), now()).unwrap();
    assert_eq!(receipt.amount_minor, 10_099);
    assert_eq!(receipt.currency, "CAD");
    assert_eq!(receipt.transaction_id, Some(25_745_757));
    assert_eq!(receipt.is_valid_partner_token, Some(1));
    assert_eq!(
        receipt.observed_at,
        Utc.with_ymd_and_hms(2026, 11, 1, 11, 0, 0).unwrap()
    );
}

#[test]
fn a_transaction_id_may_be_a_numeric_string_and_either_id_may_be_absent() {
    let receipt = check_item(&with(json!({"transactionId": "42"})), now()).unwrap();
    assert_eq!(receipt.transaction_id, Some(42));
    let receipt = check_item(&with(json!({"transactionId": "<absent>"})), now()).unwrap();
    assert_eq!(receipt.transaction_id, None);
    let receipt = check_item(&with(json!({"invoiceNumber": null})), now()).unwrap();
    assert_eq!(receipt.invoice_number, None);
    for bad in [
        json!("4 2"),
        json!("-1"),
        json!(0),
        json!(1.5),
        json!(""),
        json!(true),
    ] {
        let reason = faults(with(json!({"transactionId": bad})));
        assert!(reason.contains("transactionId"), "{bad}: {reason}");
    }
}

#[test]
fn a_receipt_with_neither_id_is_refused_because_it_cannot_be_matched() {
    let reason = faults(with(
        json!({"transactionId": "<absent>", "invoiceNumber": null}),
    ));
    assert!(
        reason.contains("neither transactionId nor invoiceNumber"),
        "{reason}"
    );
}

#[test]
fn amounts_are_exact_plain_decimals_within_the_currency_s_decimals() {
    for (text, minor) in [("10", 1_000), ("10.5", 1_050), ("0.01", 1), ("007.50", 750)] {
        let receipt = check_item(&with(json!({"amount": text})), now()).unwrap();
        assert_eq!(receipt.amount_minor, minor, "{text}");
    }
    for (bad, says) in [
        (json!("10.500"), "3 decimals; CAD has 2"),
        (json!("10.001"), "3 decimals"),
        (json!("1e1"), "plain decimal"),
        (json!("-5.00"), "plain decimal"),
        (json!("10."), "plain decimal"),
        (json!(".5"), "plain decimal"),
        (json!(" 10"), "plain decimal"),
        (json!(10.5), "decimal string"),
        (json!("0.00"), "greater than zero"),
        (json!("99999999999999999999"), "too large"),
        (json!("<absent>"), "amount is required"),
    ] {
        let reason = faults(with(json!({"amount": bad})));
        assert!(reason.contains(says), "{bad}: {reason}");
    }
}

#[test]
fn only_the_currencies_helcim_processes_spelt_as_codes_are_accepted() {
    for bad in ["EUR", "cad", " CAD", ""] {
        let reason = faults(with(json!({"currency": bad})));
        assert!(reason.contains("CAD"), "{bad}: {reason}");
    }
}

#[test]
fn is_valid_partner_token_is_1_0_or_null_and_must_be_present() {
    let receipt = check_item(&with(json!({"isValidPartnerToken": null})), now()).unwrap();
    assert_eq!(receipt.is_valid_partner_token, None);
    let receipt = check_item(&with(json!({"isValidPartnerToken": 0})), now()).unwrap();
    assert_eq!(receipt.is_valid_partner_token, Some(0));
    for bad in [
        json!("1"),
        json!(2),
        json!(true),
        json!(1.0),
        json!("<absent>"),
    ] {
        let reason = faults(with(json!({"isValidPartnerToken": bad})));
        assert!(reason.contains("isValidPartnerToken"), "{bad}: {reason}");
    }
}

#[test]
fn a_valid_token_that_was_never_sent_is_a_contradiction() {
    let reason = faults(with(
        json!({"partnerTokenSent": false, "isValidPartnerToken": 1}),
    ));
    assert!(
        reason.contains("cannot accept a token that was not sent"),
        "{reason}"
    );
    // Not sent and not valid (or no header) is a plain fact worth recording.
    for answer in [json!(0), json!(null)] {
        let item = with(json!({"partnerTokenSent": false, "isValidPartnerToken": answer}));
        assert!(check_item(&item, now()).is_ok(), "{answer}");
    }
}

#[test]
fn observed_at_takes_any_offset_is_truncated_to_microseconds_and_not_in_the_future() {
    let receipt = check_item(
        &with(json!({"observedAt": "2026-11-01T11:00:00.123456789+00:00"})),
        now(),
    )
    .unwrap();
    assert_eq!(receipt.observed_at.timestamp_subsec_nanos(), 123_456_000);
    // Within the tolerance for clock drift.
    assert!(check_item(&with(json!({"observedAt": "2026-11-01T12:04:00Z"})), now()).is_ok());
    let reason = faults(with(json!({"observedAt": "2026-11-01T12:06:00Z"})));
    assert!(reason.contains("in the future"), "{reason}");
    for bad in ["2026-11-01 noon", "2026-11-01T12:00:00", "1730000000"] {
        let reason = faults(with(json!({"observedAt": bad})));
        assert!(reason.contains("RFC 3339"), "{bad}: {reason}");
    }
}

#[test]
fn unknown_fields_are_named_and_every_fault_of_an_item_is_listed() {
    let reason = faults(with(json!({
        "isValidPartnerTokn": 1,
        "amount": 10.5,
        "receiptId": "has space",
        "partnerTokenSent": "yes",
    })));
    for says in [
        "unknown field `isValidPartnerTokn`",
        "amount must be a decimal string",
        "receiptId must be 1 to 128",
        "partnerTokenSent must be true or false",
    ] {
        assert!(reason.contains(says), "{says}: {reason}");
    }
    let reason = faults(json!([1]));
    assert!(reason.contains("JSON object"), "{reason}");
}

#[test]
fn a_receipt_id_is_printable_ascii_up_to_128() {
    assert!(check_item(&with(json!({"receiptId": "x".repeat(128)})), now()).is_ok());
    for bad in [
        json!("x".repeat(129)),
        json!(""),
        json!("é"),
        json!(7),
        json!("<absent>"),
    ] {
        let reason = faults(with(json!({"receiptId": bad})));
        assert!(reason.contains("receiptId"), "{bad}: {reason}");
    }
}

#[test]
fn the_envelope_must_be_a_non_empty_receipts_array_of_at_most_1000() {
    let cases: Vec<(&[u8], BatchError)> = vec![
        (b"{", BatchError::NotJson(String::new())),
        (b"[]", BatchError::NotABatch(String::new())),
        (b"{}", BatchError::NotABatch(String::new())),
        (b"{\"receipts\": {}}", BatchError::NotABatch(String::new())),
        (
            b"{\"receipts\": [], \"extra\": 1}",
            BatchError::NotABatch(String::new()),
        ),
        (b"{\"receipts\": []}", BatchError::Empty),
    ];
    for (body, expected) in cases {
        let error = check(body, now()).unwrap_err();
        assert_eq!(
            std::mem::discriminant(&error),
            std::mem::discriminant(&expected),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    let error = check(b"{\"receipts\": [], \"extra\": 1}", now()).unwrap_err();
    assert!(error.to_string().contains("`extra`"), "{error}");
    let numbered = |n: usize| -> Vec<Value> {
        (0..n)
            .map(|i| with(json!({"receiptId": format!("r-{i}")})))
            .collect()
    };
    let full = check(&batch(numbered(MAX_RECEIPTS)), now()).unwrap();
    assert_eq!((full.receipts.len(), full.errors.len()), (MAX_RECEIPTS, 0));
    let over = batch(numbered(MAX_RECEIPTS + 1));
    assert_eq!(check(&over, now()).unwrap_err(), BatchError::TooMany(1_001));
}

#[test]
fn every_bad_item_is_listed_by_index_and_the_good_ones_kept() {
    let body = batch(vec![
        good(),
        with(json!({"receiptId": "r-2", "amount": "1.001"})),
        with(json!({"receiptId": "r-3"})),
        with(json!({"receiptId": "r-4", "accountId": 5})),
    ]);
    let checked = check(&body, now()).unwrap();
    let indexes: Vec<usize> = checked.errors.iter().map(|e| e.index).collect();
    assert_eq!(indexes, vec![1, 3]);
    assert_eq!(checked.errors[0].receipt_id.as_deref(), Some("r-2"));
    assert!(
        checked.errors[1]
            .reason
            .contains("accountId must be a string")
    );
    let kept: Vec<usize> = checked.receipts.iter().map(|(i, _)| *i).collect();
    assert_eq!(kept, vec![0, 2]);
    assert_eq!(checked.accounts, vec!["acct-a".to_string()]);
}

#[test]
fn the_same_receipt_id_twice_for_one_account_is_refused_but_not_across_accounts() {
    let body = batch(vec![good(), with(json!({"accountId": "acct-b"})), good()]);
    let checked = check(&body, now()).unwrap();
    assert_eq!(checked.errors.len(), 1);
    assert_eq!(checked.errors[0].index, 2);
    assert!(
        checked.errors[0]
            .reason
            .contains("already appears at index 0")
    );
    assert_eq!(checked.accounts, vec!["acct-a", "acct-b"]);
}

#[test]
fn only_json_content_types_are_taken() {
    assert!(is_json(Some("application/json")));
    assert!(is_json(Some("Application/JSON; charset=utf-8")));
    assert!(!is_json(Some("text/plain")));
    assert!(!is_json(Some("application/jsonx")));
    assert!(!is_json(None));
}
