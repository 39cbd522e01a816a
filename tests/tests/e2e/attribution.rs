//! Issue 9's scenario, end to end through the real binaries: a known mix of payments
//! (through the gateway with the right and a wrong partner token, straight to Helcim
//! with and without receipts, late receipts, HelcimPay.js and Smart Terminal payments
//! matched by invoice, an ambiguous pair, a receipt for a transaction that does not
//! exist, a merchant no account has paying through the gateway, declines and refunds) yields **exactly** its gaps through
//! `GET /v1/attribution/gaps` (for the admin, and for a partner only its accounts),
//! with their classes, amounts, currencies and months, each visible within 60 s of its
//! cause; and the month report adds up.
//!
//! The simulator stamps payments with the real time, so the month is the current one;
//! run within 12 minutes of a month's close (in America/Edmonton), the grace-period
//! step (the clock moved 700 s ahead) would cross the close and the gaps would expire.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use recon_attribution::{CloseCalendar, Month};

use crate::attribution_requests::{Receipt, id_of, minor};
use crate::attribution_stack::AttributionStack;
use crate::attribution_watch::{Expected, find, first_seen, seen, watch};

const VISIBLE_WITHIN: Duration = Duration::from_secs(60);
const NO_SUCH_TRANSACTION: i64 = 999_000_001;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_mix_of_payments_yields_exactly_its_gaps_through_the_api_each_within_a_minute_and_a_report_that_adds_up()
 {
    let s = AttributionStack::start(&[("RECON_ATTRIBUTION_GRACE", "600".to_string())]).await;
    let calendar = CloseCalendar::default();
    let (a, b) = (&s.a, &s.b);

    // Through the gateway: A's own valid token added (attributed); a wrong token the
    // client sent itself, kept as sent (token_rejected); B's, the gateway's default
    // token, which Helcim rejects (token_rejected).
    let (status, tagged) = s.gateway_purchase(a, None, "11.00", "CAD", "G-OK").await;
    assert_eq!(status, 200, "{tagged}");
    let g_ok = id_of(&tagged);
    let (status, wrong) = s
        .gateway_purchase(a, Some("not-the-partner-token"), "12.00", "CAD", "G-WRONG")
        .await;
    assert_eq!(status, 200, "{wrong}");
    let g_wrong = id_of(&wrong);
    let (status, on_b) = s.gateway_purchase(b, None, "13.00", "USD", "G-B").await;
    assert_eq!(status, 200, "{on_b}");
    let g_b = id_of(&on_b);
    // Straight to Helcim: with a receipt saying no token was sent (token_missing);
    // without any receipt (unattributed after the grace period), one of which a late
    // receipt then resolves.
    let d_missing = s.direct_purchase(a, "14.00", "USD", "D-MISSING").await;
    let d_plain_a = s
        .sale(a, "15.00", "CAD", "D-PLAIN-A", "purchase", "approve")
        .await;
    let d_plain_b = s
        .sale(b, "16.00", "USD", "D-PLAIN-B", "purchase", "approve")
        .await;
    let d_late = s
        .sale(a, "17.00", "CAD", "D-LATE", "purchase", "approve")
        .await;
    // Matched by invoice, amount and currency: no transaction id in their evidence.
    let hp = s.helcim_pay(a, "18.00", "HP-1").await;
    let term = s.terminal(a, "19.00", "TERM-1").await;
    // Two sales alike and one receipt that fits both.
    let amb_1 = s
        .sale(a, "42.00", "CAD", "AMB-1", "purchase", "approve")
        .await;
    let amb_2 = s
        .sale(a, "42.00", "CAD", "AMB-1", "purchase", "approve")
        .await;
    // A merchant with no account here paying through the gateway: its webhooks are
    // refused, so its evidence never matches (orphan, unregistered account).
    let u = s.unregistered_merchant().await;
    let (status, unregistered) = s
        .gateway_purchase(&u, None, "23.00", "CAD", "G-UNREG")
        .await;
    assert_eq!(status, 200, "{unregistered}");
    let g_unregistered = id_of(&unregistered);
    // Declines and refunds: never gaps.
    let (status, declined) = s
        .gateway_purchase(a, None, "10.05", "CAD", "G-DECLINE")
        .await;
    assert_eq!(status, 500, "an amount ending .05 is declined: {declined}");
    s.sale(b, "21.00", "USD", "D-DECLINE", "purchase", "decline")
        .await;
    s.gateway_refund(a, g_ok, "11.00").await;
    s.sale(b, "5.00", "USD", "D-REFUND", "refund", "approve")
        .await;

    s.until(
        "all 15 transactions stored",
        Duration::from_secs(60),
        "SELECT count(*) FROM card_transactions WHERE reconciliation_status <> 'pending'",
        |n| n == 15,
    )
    .await;
    s.receipts(
        &s.partner_key,
        serde_json::json!([
            Receipt::new("r-missing", &a.id, "14.00", "USD")
                .transaction(d_missing)
                .token(false, None)
                .json(),
            Receipt::new("r-ambiguous", &a.id, "42.00", "CAD")
                .invoice("AMB-1")
                .json(),
            Receipt::new("r-nothing", &a.id, "20.00", "CAD")
                .transaction(NO_SUCH_TRANSACTION)
                .json(),
        ]),
    )
    .await;

    // What needs no grace period shows at once.
    let mut seen_at = BTreeMap::new();
    let month = calendar.month_of(Utc::now());
    let query = format!("month={month}");
    let immediate = watch(&s, &query, Duration::from_secs(90), &mut seen_at, |gaps| {
        find(gaps, "token_rejected", Some(g_wrong)).is_some()
            && find(gaps, "token_rejected", Some(g_b)).is_some()
            && find(gaps, "token_missing", Some(d_missing)).is_some()
            && gaps.iter().any(|g| g["reason"] == "ambiguous")
    })
    .await;
    assert_eq!(
        immediate.len(),
        4,
        "nothing else before the grace period: {immediate:#?}"
    );
    for (tx, class, account) in [
        (g_wrong, "token_rejected", &a.id),
        (g_b, "token_rejected", &b.id),
        (d_missing, "token_missing", &a.id),
    ] {
        let gap = find(&immediate, class, Some(tx)).unwrap();
        let stored = s.stored_at(account, tx).await;
        let evidence = s.evidence_recorded_at(account, Some(tx), None).await;
        let cause = evidence.map_or(stored, |e| e.max(stored));
        let latency = first_seen(&seen_at, gap, "open") - cause;
        eprintln!("{class} of {tx}: visible {latency} after its cause");
        assert!(
            latency.to_std().unwrap_or_default() <= VISIBLE_WITHIN,
            "{class} of {tx} became visible {latency} after its cause"
        );
    }
    let ambiguous = immediate
        .iter()
        .find(|g| g["reason"] == "ambiguous")
        .unwrap();
    let recorded = s
        .evidence_recorded_at(&a.id, None, Some("AMB-1"))
        .await
        .unwrap();
    let latency = first_seen(&seen_at, ambiguous, "open") - recorded;
    assert!(latency.to_std().unwrap_or_default() <= VISIBLE_WITHIN);
    let mut candidates: Vec<i64> = ambiguous["candidates"]
        .as_array()
        .expect("an ambiguous orphan lists its candidates")
        .iter()
        .map(|c| c.as_i64().unwrap())
        .collect();
    candidates.sort();
    let mut both = vec![amb_1, amb_2];
    both.sort();
    assert_eq!(candidates, both);

    // Every transaction and every piece of evidence has its verdict before the clock
    // moves, so the grace period cannot overtake the gateway's evidence.
    s.until(
        "a verdict for every transaction",
        Duration::from_secs(60),
        "SELECT count(*) FROM attribution_transactions",
        |n| n == 15,
    )
    .await;
    s.until(
        "a match for every piece of evidence",
        Duration::from_secs(60),
        "SELECT (SELECT count(*) FROM attribution_evidence)
              - (SELECT count(*) FROM attribution_matches)",
        |n| n == 0,
    )
    .await;
    let by_invoice: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM attribution_transactions
          WHERE transaction_id = ANY($1) AND verdict = 'attributed' AND match_method = 'invoice'",
    )
    .bind(vec![hp, term])
    .fetch_one(&s.db.pool)
    .await
    .unwrap();
    assert_eq!(
        by_invoice, 2,
        "HelcimPay.js and the terminal matched by invoice"
    );

    // The grace period passes (the clock file moves every process 700 s ahead).
    s.set_clock_offset(700);
    let moved = Utc::now();
    let after_grace = watch(&s, &query, Duration::from_secs(90), &mut seen_at, |gaps| {
        [d_plain_a, d_plain_b, d_late, amb_1, amb_2]
            .iter()
            .all(|tx| find(gaps, "unattributed", Some(*tx)).is_some())
            && find(gaps, "orphan_evidence", Some(NO_SUCH_TRANSACTION)).is_some()
            && find(gaps, "orphan_evidence", Some(g_unregistered)).is_some()
    })
    .await;
    for gap in &after_grace {
        let at = first_seen(&seen_at, gap, "open");
        if at > moved {
            assert!(
                (at - moved).to_std().unwrap_or_default() <= VISIBLE_WITHIN,
                "{gap} became visible {} after its grace period ended",
                at - moved
            );
        }
    }

    // A late receipt resolves the gap it explains.
    s.receipts(
        &s.partner_key,
        serde_json::json!([Receipt::new("r-late", &a.id, "17.00", "CAD")
            .transaction(d_late)
            .json()]),
    )
    .await;
    let late = Utc::now();
    let settled = watch(&s, &query, Duration::from_secs(90), &mut seen_at, |gaps| {
        find(gaps, "unattributed", Some(d_late)).is_some_and(|g| g["status"] == "resolved")
    })
    .await;
    let resolved = find(&settled, "unattributed", Some(d_late)).unwrap();
    assert!(
        (first_seen(&seen_at, resolved, "resolved") - late)
            .to_std()
            .unwrap_or_default()
            <= VISIBLE_WITHIN
    );

    // Exactly the known set, for the admin; and for the partner, only A's.
    let mut expected = BTreeSet::new();
    for (account, tx, class, amount, currency) in [
        (&a.id, g_wrong, "token_rejected", "12.00", "CAD"),
        (&b.id, g_b, "token_rejected", "13.00", "USD"),
        (&a.id, d_missing, "token_missing", "14.00", "USD"),
        (&a.id, d_plain_a, "unattributed", "15.00", "CAD"),
        (&b.id, d_plain_b, "unattributed", "16.00", "USD"),
        (&a.id, d_late, "unattributed", "17.00", "CAD"),
        (&a.id, amb_1, "unattributed", "42.00", "CAD"),
        (&a.id, amb_2, "unattributed", "42.00", "CAD"),
    ] {
        let late = tx == d_late;
        expected.insert(Expected {
            account: account.clone(),
            transaction: Some(tx),
            class: class.into(),
            reason: None,
            amount: amount.into(),
            currency: currency.into(),
            month: month_of_transaction(&s, calendar, account, tx)
                .await
                .to_string(),
            status: if late { "resolved" } else { "open" }.into(),
            resolution: late.then(|| "evidence".into()),
        });
    }
    for (tx, reason, amount, receipt) in [
        (None, "ambiguous", "42.00", "r-ambiguous"),
        (
            Some(NO_SUCH_TRANSACTION),
            "no_transaction",
            "20.00",
            "r-nothing",
        ),
    ] {
        expected.insert(Expected {
            account: a.id.clone(),
            transaction: tx,
            class: "orphan_evidence".into(),
            reason: Some(reason.into()),
            amount: amount.into(),
            currency: "CAD".into(),
            month: month_of_receipt(&s, calendar, receipt).await.to_string(),
            status: "open".into(),
            resolution: None,
        });
    }
    let unregistered_month: DateTime<Utc> =
        sqlx::query_scalar("SELECT observed_at FROM attribution_evidence WHERE account_id IS NULL")
            .fetch_one(&s.db.pool)
            .await
            .unwrap();
    expected.insert(Expected {
        account: String::new(),
        transaction: Some(g_unregistered),
        class: "orphan_evidence".into(),
        reason: Some("unregistered_account".into()),
        amount: "23.00".into(),
        currency: "CAD".into(),
        month: calendar.month_of(unregistered_month).to_string(),
        status: "open".into(),
        resolution: None,
    });
    let every = s.gaps(&s.admin_key, "").await;
    let got: BTreeSet<Expected> = every.iter().map(seen).collect();
    assert_eq!(got, expected, "the admin sees exactly the known gaps");
    assert_eq!(every.len(), expected.len(), "no gap twice");
    let deadline = calendar
        .close_of(month)
        .to_rfc3339_opts(SecondsFormat::Secs, true);
    assert!(every.iter().all(|g| g["deadline"] == deadline.as_str()));
    let partner: BTreeSet<Expected> = s.gaps(&s.partner_key, "").await.iter().map(seen).collect();
    let only_a: BTreeSet<Expected> = expected
        .iter()
        .filter(|e| e.account == a.id)
        .cloned()
        .collect();
    assert_eq!(
        partner, only_a,
        "a partner key sees only its accounts' gaps"
    );

    check_report(&s, month).await;
    s.finish().await;
}

async fn month_of_transaction(
    s: &AttributionStack,
    calendar: CloseCalendar,
    account: &str,
    tx: i64,
) -> Month {
    let created: DateTime<Utc> = sqlx::query_scalar(
        "SELECT created_at FROM card_transactions WHERE account_id = $1 AND transaction_id = $2",
    )
    .bind(account)
    .bind(tx)
    .fetch_one(&s.db.pool)
    .await
    .unwrap();
    calendar.month_of(created)
}

async fn month_of_receipt(s: &AttributionStack, calendar: CloseCalendar, receipt: &str) -> Month {
    let observed: DateTime<Utc> =
        sqlx::query_scalar("SELECT observed_at FROM attribution_evidence WHERE receipt_id = $1")
            .bind(receipt)
            .fetch_one(&s.db.pool)
            .await
            .unwrap();
    calendar.month_of(observed)
}

/// The report's lines: volume = attributed + at risk + pending + waived on every line,
/// and the known figures of each account and currency.
async fn check_report(s: &AttributionStack, month: Month) {
    let report = s.report(&s.admin_key, &format!("month={month}")).await;
    assert_eq!(report["month"], month.to_string());
    assert_eq!(report["frozen"], false);
    let lines = report["accounts"].as_array().unwrap();
    let mut figures = BTreeMap::new();
    let mut gap_counts: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    for line in lines {
        let parts = minor(&line["attributedVolume"])
            + minor(&line["atRiskVolume"])
            + minor(&line["pendingVolume"])
            + minor(&line["waivedVolume"]);
        assert_eq!(minor(&line["volume"]), parts, "the line adds up: {line}");
        let account = line["accountId"].as_str().unwrap().to_string();
        figures.insert(
            (
                account.clone(),
                line["currency"].as_str().unwrap().to_string(),
            ),
            (
                line["transactions"].as_i64().unwrap(),
                minor(&line["volume"]),
                minor(&line["attributedVolume"]),
                minor(&line["atRiskVolume"]),
                line["refunds"].as_i64().unwrap(),
                minor(&line["refundVolume"]),
            ),
        );
        for (class, n) in line["gaps"].as_object().unwrap() {
            *gap_counts
                .entry(account.clone())
                .or_default()
                .entry(class.clone())
                .or_default() += n.as_i64().unwrap();
        }
    }
    let (a, b) = (s.a.id.clone(), s.b.id.clone());
    let expected = BTreeMap::from([
        // G-OK, G-WRONG, D-PLAIN-A, D-LATE, HP-1, TERM-1 and the ambiguous pair; the
        // late receipt attributed D-LATE; G-OK was refunded.
        (
            (a.clone(), "CAD".to_string()),
            (8, 17600, 6500, 11100, 1, 1100),
        ),
        ((a.clone(), "USD".to_string()), (1, 1400, 0, 1400, 0, 0)),
        ((b.clone(), "USD".to_string()), (2, 2900, 0, 2900, 1, 500)),
    ]);
    assert_eq!(figures, expected, "the report's figures: {report:#}");
    let counts = |pairs: &[(&str, i64)]| -> BTreeMap<String, i64> {
        pairs.iter().map(|(c, n)| (c.to_string(), *n)).collect()
    };
    assert_eq!(
        gap_counts,
        BTreeMap::from([
            (
                a.clone(),
                counts(&[
                    ("token_rejected", 1),
                    ("token_missing", 1),
                    ("unattributed", 3),
                    ("orphan_evidence", 2)
                ])
            ),
            (
                b.clone(),
                counts(&[("token_rejected", 1), ("unattributed", 1)])
            ),
        ])
    );
    let partner = s.report(&s.partner_key, &format!("month={month}")).await;
    assert!(
        partner["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["accountId"] == a.as_str()),
        "a partner's report holds only its accounts: {partner:#}"
    );
}
