//! Property tests for the pure parsing: no input panics, and values round-trip.

use chrono::{DateTime, TimeZone, Utc};
use helcim_client::money::{format_minor_units, parse_minor_units};
use helcim_client::{ApiErrors, CardBatch, CardTransaction, mountain_time};
use proptest::prelude::*;
use serde_json::json;

proptest! {
    #[test]
    fn any_text_as_an_amount_is_an_answer_not_a_panic(text in ".{0,40}") {
        let _ = parse_minor_units(&text, 2);
    }

    #[test]
    fn numeric_looking_text_never_panics(text in "[-+]?[0-9]{0,30}(\\.[0-9]{0,30})?([eE][-+]?[0-9]{0,4})?") {
        let _ = parse_minor_units(&text, 2);
    }

    #[test]
    fn minor_units_round_trip_through_decimal_text(cents in -10_i64.pow(15)..10_i64.pow(15), zeros in 0_usize..6) {
        let text = format_minor_units(cents, 2);
        prop_assert_eq!(parse_minor_units(&text, 2), Ok(cents));
        // Helcim's four-decimal form, and longer zero tails, mean the same.
        let padded = format!("{text}{}", "0".repeat(zeros));
        prop_assert_eq!(parse_minor_units(&padded, 2), Ok(cents));
    }

    #[test]
    fn json_numbers_and_strings_give_the_same_cents(cents in 0_i64..10_i64.pow(12)) {
        let text = format_minor_units(cents, 2);
        for amount in [json!(text.clone()), serde_json::from_str::<serde_json::Value>(&text).unwrap()] {
            let raw = json!({"transactionId": 1, "dateCreated": "2026-01-14 11:38:18",
                "status": "APPROVED", "type": "purchase", "amount": amount, "currency": "CAD"});
            let tx = CardTransaction::from_json(raw).unwrap();
            prop_assert_eq!(tx.amount.minor_units, cents);
        }
    }

    #[test]
    fn a_sub_cent_digit_is_always_refused(cents in 0_i64..10_i64.pow(12), digit in 1_u8..10) {
        let text = format!("{}{digit}", format_minor_units(cents, 2));
        prop_assert!(parse_minor_units(&text, 2).is_err());
    }

    #[test]
    fn any_text_as_a_time_is_an_answer_not_a_panic(text in ".{0,30}") {
        let _ = mountain_time::parse_optional(&text);
    }

    #[test]
    fn time_shaped_text_never_panics(y in 0_u32..10000, mo in 0_u32..15, d in 0_u32..40, h in 0_u32..30, mi in 0_u32..70, s in 0_u32..70) {
        let _ = mountain_time::parse_optional(&format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}"));
    }

    #[test]
    fn utc_instants_round_trip_through_helcims_format(secs in 0_i64..4_102_444_800) {
        let instant: DateTime<Utc> = Utc.timestamp_opt(secs, 0).unwrap();
        let text = mountain_time::format(instant);
        let local = mountain_time::parse_local(&text).unwrap();
        prop_assert!(mountain_time::candidates(local).contains(&instant));
        if !mountain_time::is_ambiguous(local) {
            prop_assert_eq!(mountain_time::parse(&text), Ok(instant));
        }
    }

    #[test]
    fn any_error_body_gives_a_message_not_a_panic(body in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = ApiErrors::from_bytes(&body).to_string();
    }

    #[test]
    fn arbitrary_scalars_in_every_field_never_panic(
        fields in proptest::collection::vec((0_usize..12, scalar()), 0..12)
    ) {
        const NAMES: [&str; 12] = ["transactionId", "dateCreated", "cardBatchId", "status", "type",
            "amount", "currency", "id", "dateClosed", "closed", "totalSales", "countApproved"];
        let mut object = serde_json::Map::new();
        for (index, value) in fields {
            object.insert(NAMES[index].to_string(), value);
        }
        let _ = CardTransaction::from_json(serde_json::Value::Object(object.clone()));
        let _ = CardBatch::from_json(serde_json::Value::Object(object));
    }
}

fn scalar() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        "[0-9]{1,20}\\.[0-9]{0,8}"
            .prop_map(|t| serde_json::from_str(&t).unwrap_or(serde_json::Value::Null)),
        ".{0,20}".prop_map(serde_json::Value::from),
        Just(json!([1, 2])),
        Just(json!({"a": 1})),
    ]
}
