use std::collections::HashMap;

use super::*;

fn small() -> GenerateConfig {
    GenerateConfig {
        transactions_per_account: 400,
        accounts: 3,
        ..GenerateConfig::default()
    }
}

#[test]
fn the_same_seed_gives_the_same_activity() {
    let a = serde_json::to_string(&generate(&small())).unwrap();
    let b = serde_json::to_string(&generate(&small())).unwrap();
    assert_eq!(a, b);
    let other = serde_json::to_string(&generate(&GenerateConfig { seed: 2, ..small() })).unwrap();
    assert_ne!(a, other);
}

#[test]
fn every_kind_of_transaction_and_both_currencies_appear() {
    let activity = generate(&small());
    assert_eq!(activity.transactions.len(), 1200);
    for kind in [
        Kind::Purchase,
        Kind::Preauth,
        Kind::Verify,
        Kind::Capture,
        Kind::Refund,
        Kind::Reverse,
    ] {
        assert!(
            activity.transactions.iter().any(|t| t.kind == kind),
            "no {kind:?}"
        );
    }
    assert!(
        activity
            .transactions
            .iter()
            .any(|t| t.status == Status::Declined)
    );
    for currency in ["CAD", "USD"] {
        assert!(
            activity.transactions.iter().any(|t| t.currency == currency),
            "no {currency}"
        );
    }
    assert!(!activity.terminal_cancels.is_empty());
}

#[test]
fn ids_increase_with_time_and_are_unique() {
    let activity = generate(&small());
    for pair in activity.transactions.windows(2) {
        assert!(pair[0].transaction_id < pair[1].transaction_id);
        assert!(pair[0].created_at <= pair[1].created_at);
    }
}

#[test]
fn follow_ups_never_exceed_what_they_act_on() {
    let activity = generate(&small());
    let mut refunded: HashMap<u64, i64> = HashMap::new();
    for tx in activity
        .transactions
        .iter()
        .filter(|t| t.status == Status::Approved)
    {
        let Some(original_id) = tx.original_transaction_id else {
            continue;
        };
        let original = activity.transaction(original_id).unwrap();
        assert_eq!(original.account_id, tx.account_id);
        assert_eq!(original.currency, tx.currency);
        assert_eq!(original.status, Status::Approved);
        match tx.kind {
            Kind::Capture => {
                assert_eq!(original.kind, Kind::Preauth);
                assert!(tx.amount_minor <= original.amount_minor);
            }
            Kind::Refund => {
                let total = refunded.entry(original_id).or_default();
                *total += tx.amount_minor;
                assert!(
                    *total <= original.amount_minor,
                    "over-refunded {original_id}"
                );
            }
            Kind::Reverse => {
                assert_eq!(
                    original.card_batch_id, tx.card_batch_id,
                    "reversed across batches"
                );
                assert_eq!(original.amount_minor, tx.amount_minor);
            }
            _ => panic!("{:?} has an original", tx.kind),
        }
    }
}

#[test]
fn batches_close_daily_and_their_stats_agree_with_their_transactions() {
    let config = small();
    let activity = generate(&config);
    let end = config.end();
    for batch in &activity.batches {
        let members: Vec<_> = activity
            .transactions
            .iter()
            .filter(|t| t.card_batch_id == batch.card_batch_id)
            .collect();
        assert!(!members.is_empty());
        assert!(
            members
                .iter()
                .all(|t| t.terminal_id == batch.terminal_id && t.currency == batch.currency)
        );
        assert_eq!(
            batch.stats,
            BatchStats::of(members.iter().copied(), &activity)
        );
        assert_eq!(batch.stats.count_total as usize, members.len());
        match batch.closed_at {
            Some(closed) => {
                assert!(closed <= end);
                assert!(members.iter().all(|t| t.created_at < closed));
                let local = closed.with_timezone(&HELCIM_TIME_ZONE);
                assert_eq!(local.format("%H:%M").to_string(), "17:00");
            }
            None => assert!(
                members
                    .iter()
                    .all(|t| t.created_at >= end - Duration::days(1))
            ),
        }
    }
    assert!(
        activity.batches.iter().any(|b| b.closed_at.is_none()),
        "some batch is still open"
    );
}

#[test]
fn activity_crosses_the_autumn_daylight_saving_change() {
    let activity = generate(&GenerateConfig {
        transactions_per_account: 3000,
        ..small()
    });
    let change = mountain_instant(NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(), 3);
    assert!(activity.transactions.iter().any(|t| t.created_at < change));
    assert!(activity.transactions.iter().any(|t| t.created_at > change));
    // Some land in the hour that happens twice, the hard case for Helcim's format.
    assert!(
        activity
            .transactions
            .iter()
            .any(|t| t.date_created.starts_with("2026-11-01 01:"))
    );
}
