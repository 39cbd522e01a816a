use std::collections::HashMap;

use chrono::NaiveDate;
use helcim_client::mountain_time;
use helcim_client::{
    AccountLimits, BatchQuery, CardBatchId, Currency, Money, TransactionId, TransactionQuery,
    TransactionStatus,
};
use recon_sim::activity::{Status, Transaction};
use recon_sim::{GenerateConfig, SimConfig};

use crate::helpers::*;

fn assert_same(tx: &helcim_client::CardTransaction, truth: &Transaction) {
    assert_eq!(tx.id, TransactionId(truth.transaction_id));
    let currency: Currency = truth.currency.parse().unwrap();
    assert_eq!(
        tx.amount,
        Money::new(truth.amount_minor, currency),
        "amount of {}",
        truth.transaction_id
    );
    assert_eq!(tx.transaction_type.as_str(), truth.kind.as_str());
    let status = match truth.status {
        Status::Approved => TransactionStatus::Approved,
        Status::Declined => TransactionStatus::Declined,
        Status::Held => TransactionStatus::Unrecognized("HELD".into()),
    };
    assert_eq!(tx.status, status);
    assert_eq!(tx.card_batch_id, Some(CardBatchId(truth.card_batch_id)));
    assert_eq!(
        tx.invoice_number.as_deref(),
        Some(truth.invoice_number.as_str())
    );
    // Helcim's offset-less time is exact except in the repeated autumn hour, where it
    // may mean either instant.
    let local = mountain_time::parse_local(&truth.date_created).unwrap();
    if mountain_time::is_ambiguous(local) {
        assert!(mountain_time::candidates(local).contains(&truth.created_at));
    } else {
        assert_eq!(
            tx.created_at, truth.created_at,
            "time of {}",
            truth.transaction_id
        );
    }
}

#[tokio::test]
async fn every_transaction_reads_exactly_as_the_ground_truth_across_pages() {
    let (sim, _, account) = sim_and_client(unlimited_sim()).await;
    let client = client_for(&sim, &account.api_token, no_budget_limits(), fast_retries());
    let truth: HashMap<u64, &Transaction> = sim
        .state()
        .activity
        .transactions
        .iter()
        .filter(|t| t.account_id == account.account_id)
        .map(|t| (t.transaction_id, t))
        .collect();

    // A page size that does not divide the total, so the last page is short.
    let listing = client
        .card_transactions(&TransactionQuery::default().with_limit(37))
        .await
        .unwrap();
    assert!(listing.unreadable.is_empty(), "{:?}", listing.unreadable);
    assert_eq!(
        listing.items.len(),
        truth.len(),
        "paging reached the end exactly"
    );
    for tx in &listing.items {
        assert_same(tx, truth[&tx.id.0]);
    }

    // The quirks were really on the wire, and each read the same.
    let raws: Vec<&serde_json::Value> = listing.items.iter().map(|t| &t.raw).collect();
    assert!(raws.iter().any(|r| r["transactionId"].is_string()));
    assert!(raws.iter().any(|r| r["transactionId"].is_number()));
    assert!(raws.iter().any(|r| r["cardBatchId"].is_string()));
    assert!(raws.iter().any(|r| r["status"] == "APPROVAL"));
    assert!(raws.iter().any(|r| r["amount"].is_string()));
    assert!(raws.iter().any(|r| {
        r["amount"]
            .to_string()
            .split('.')
            .nth(1)
            .is_some_and(|d| d.len() == 4)
    }));
    assert!(raws.iter().any(|r| {
        r["amount"].is_number()
            && r["amount"]
                .to_string()
                .split('.')
                .nth(1)
                .is_some_and(|d| d.len() == 2)
    }));

    sim.stop().await;
}

#[tokio::test]
async fn a_four_decimal_string_and_a_two_decimal_number_give_exact_cents() {
    let (sim, _, account) = sim_and_client(unlimited_sim()).await;
    let client = client_for(
        &sim,
        &account.api_token,
        AccountLimits::unlimited(),
        fast_retries(),
    );
    let listing = client
        .card_transactions(&TransactionQuery::default())
        .await
        .unwrap();
    let mut seen_string = false;
    let mut seen_number = false;
    for tx in &listing.items {
        let raw = &tx.raw["amount"];
        // The text as sent, whatever its JSON type.
        let text = raw
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| raw.to_string());
        let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
        let cents: i64 = whole.parse::<i64>().unwrap() * 100
            + format!("{:0<2}", &fraction[..fraction.len().min(2)])
                .parse::<i64>()
                .unwrap();
        assert_eq!(tx.amount.minor_units, cents, "{text}");
        seen_string |= raw.is_string() && fraction.len() == 4;
        seen_number |= raw.is_number() && fraction.len() == 2;
    }
    assert!(seen_string && seen_number);
    sim.stop().await;
}

#[tokio::test]
async fn one_transaction_by_id_matches_its_listing() {
    let (sim, client, account) = sim_and_client(SimConfig::default()).await;
    let truth = sim
        .state()
        .activity
        .transactions
        .iter()
        .find(|t| t.account_id == account.account_id && t.kind.as_str() == "refund")
        .unwrap()
        .clone();
    let tx = client
        .card_transaction(TransactionId(truth.transaction_id))
        .await
        .unwrap()
        .into_inner();
    assert_same(&tx, &truth);
    sim.stop().await;
}

#[tokio::test]
async fn batches_read_with_their_stats_and_the_open_one_has_no_close_time() {
    let (sim, client, account) = sim_and_client(unlimited_sim()).await;
    let listing = client.card_batches(&BatchQuery::default()).await.unwrap();
    assert!(listing.unreadable.is_empty(), "{:?}", listing.unreadable);
    let truth: Vec<_> = sim
        .state()
        .activity
        .batches
        .iter()
        .filter(|b| b.account_id == account.account_id)
        .collect();
    assert_eq!(listing.items.len(), truth.len());
    for (batch, truth) in listing.items.iter().zip(&truth) {
        assert_eq!(batch.id, CardBatchId(truth.card_batch_id));
        assert_eq!(batch.closed_at, truth.closed_at);
        assert_eq!(batch.closed, truth.closed_at.is_some());
        assert_eq!(batch.batch_number, Some(truth.batch_number));
        let stats = batch.stats.as_ref().expect("collect-stats was asked for");
        assert_eq!(stats.total_sales, truth.stats.total_sales);
        assert_eq!(stats.net_sales, truth.stats.net_sales);
        assert_eq!(stats.total_refunds, truth.stats.total_refunds);
        assert_eq!(stats.total_reversed, truth.stats.total_reversed);
        assert_eq!(
            stats.total_refunds_reversed,
            truth.stats.total_refunds_reversed
        );
        assert_eq!(stats.count_total, truth.stats.count_total);
        assert_eq!(stats.count_approved, truth.stats.count_approved);
        assert_eq!(stats.count_declined, truth.stats.count_declined);
    }
    let open = listing
        .items
        .iter()
        .find(|b| b.closed_at.is_none())
        .expect("one batch is open");
    assert_eq!(open.raw["dateClosed"], "0000-00-00 00:00:00");
    let again = client.card_batch(open.id).await.unwrap().into_inner();
    assert_eq!(again.stats, open.stats);

    // Filtering one batch's transactions gives exactly its count.
    let members = client
        .card_transactions(&TransactionQuery::batch(open.id))
        .await
        .unwrap();
    assert_eq!(
        members.items.len() as u64,
        open.stats.as_ref().unwrap().count_total
    );
    sim.stop().await;
}

/// Lists each Mountain Time day of `config`'s window and checks each transaction's UTC
/// time against the truth.
async fn dates_convert_exactly(config: GenerateConfig, change_utc: &str) {
    let (sim, _, account) = sim_and_client(SimConfig {
        generate: config.clone(),
        ..unlimited_sim()
    })
    .await;
    let client = client_for(
        &sim,
        &account.api_token,
        AccountLimits::unlimited(),
        fast_retries(),
    );
    let change: chrono::DateTime<chrono::Utc> = change_utc.parse().unwrap();
    let (mut before, mut after) = (0, 0);
    for offset in 0..config.days {
        let day = config.start + chrono::Duration::days(i64::from(offset));
        let listing = client
            .card_transactions(&TransactionQuery::dates(day, day))
            .await
            .unwrap();
        let expected: Vec<&Transaction> = sim
            .state()
            .activity
            .transactions
            .iter()
            .filter(|t| {
                t.account_id == account.account_id && t.date_created.starts_with(&day.to_string())
            })
            .collect();
        assert_eq!(listing.items.len(), expected.len(), "transactions on {day}");
        for (tx, truth) in listing.items.iter().zip(expected) {
            assert_same(tx, truth);
            assert_eq!(mountain_time::date_of(tx.created_at), day);
            if tx.created_at < change {
                before += 1
            } else {
                after += 1
            }
        }
    }
    assert!(
        before > 0 && after > 0,
        "activity on both sides of {change_utc}"
    );
    sim.stop().await;
}

#[tokio::test]
async fn mountain_time_converts_on_both_sides_of_the_spring_change() {
    let config = GenerateConfig {
        start: NaiveDate::from_ymd_opt(2026, 3, 6).unwrap(),
        days: 4,
        transactions_per_account: 400,
        ..GenerateConfig::default()
    };
    dates_convert_exactly(config, "2026-03-08T09:00:00Z").await;
}

#[tokio::test]
async fn mountain_time_converts_on_both_sides_of_the_autumn_change() {
    let config = GenerateConfig {
        transactions_per_account: 400,
        ..GenerateConfig::default()
    };
    dates_convert_exactly(config, "2026-11-01T08:00:00Z").await;
}
