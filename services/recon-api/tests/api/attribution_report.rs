//! `GET /v1/attribution/report` and `/report/notes`: live before the close, the
//! stored bytes after, scoped per key.

use std::collections::BTreeMap;

use recon_attribution::report::{GapCount, Report, Tally, sha256_hex};
use recon_attribution::{GapClass, Kind, Month};
use recon_store::api_keys::Role;
use recon_store::testing::attribution::report_document;
use serde_json::Value;

use crate::gap_support::*;
use crate::harness::*;

const THIRD: &str = "acct-c";

fn frozen_report(month: Month) -> Report {
    let tally = |account: &str, verdict: &str, class: Option<GapClass>, amount: i64| Tally {
        account_id: account.into(),
        currency: "CAD".into(),
        kind: Kind::Revenue,
        verdict: verdict.into(),
        gap_class: class,
        count: 1,
        amount_minor: amount,
    };
    let tallies = [
        tally(ACCOUNT, "attributed", None, 10_000),
        tally(ACCOUNT, "gap", Some(GapClass::Unattributed), 2_500),
        tally(OTHER_ACCOUNT, "gap", Some(GapClass::TokenRejected), 1_000),
        tally(THIRD, "attributed", None, 700),
    ];
    let gaps = [GapCount {
        account_id: ACCOUNT.into(),
        class: GapClass::Unattributed,
        count: 1,
    }];
    let close = close_of(month);
    Report::assemble(
        month,
        close,
        true,
        close,
        &tallies,
        &gaps,
        &BTreeMap::from([(ACCOUNT.to_string(), 300)]),
    )
}

async fn get_report(api: &Harness, query: &str, key: &str, csv: bool) -> reqwest::Response {
    let mut request = api
        .http
        .get(format!("{}/v1/attribution/report?{query}", api.url))
        .bearer_auth(key);
    if csv {
        request = request.header("accept", "text/csv");
    }
    request.send().await.unwrap()
}

fn header(response: &reqwest::Response, name: &str) -> String {
    response.headers()[name].to_str().unwrap().to_string()
}

#[tokio::test]
async fn a_frozen_month_is_served_byte_for_byte_with_its_hash_and_post_close_notes_counted() {
    let api = Harness::start(Options::default()).await;
    let pool = &api.db.pool;
    for a in [ACCOUNT, OTHER_ACCOUNT, THIRD] {
        account(pool, a, None).await;
    }
    let month = this_month().previous();
    let gap_id = gap(pool, ACCOUNT, 5, "unattributed", 2_500, month, "expired").await;
    let whole = frozen_report(month);
    sqlx::query("INSERT INTO attribution_reports (month, frozen_at) VALUES ($1, now())")
        .bind(month.first_day())
        .execute(pool)
        .await
        .unwrap();
    // Stored bytes the API must not re-render: a trailing space a renderer would drop.
    let mut json = whole.to_json();
    json.extend_from_slice(b" ");
    report_document(pool, month, "*", "json", &json).await;
    report_document(pool, month, "*", "csv", &whole.to_csv()).await;
    let mine = whole.only(&|a| a == ACCOUNT).to_json();
    report_document(pool, month, ACCOUNT, "json", &mine).await;
    sqlx::query(
        "INSERT INTO attribution_post_close_notes (month, account_id, gap_id, at, note)
         VALUES ($1, $2, $3, now(), 'evidence #9 (is-valid-partner-token: 1) arrived after the close')",
    )
    .bind(month.first_day())
    .bind(ACCOUNT)
    .bind(gap_id)
    .execute(pool)
    .await
    .unwrap();
    // Late changes to the live tables must not show in the frozen report.
    gap(pool, THIRD, 6, "token_missing", 99_999, month, "open").await;

    let admin = api.key(Role::Admin, None).await;
    let query = format!("month={month}");
    for _ in 0..2 {
        let response = get_report(&api, &query, &admin, false).await;
        assert_eq!(response.status(), 200);
        assert_eq!(
            header(&response, "etag"),
            format!("\"{}\"", sha256_hex(&json))
        );
        assert_eq!(header(&response, "recon-post-close-notes"), "1");
        assert_eq!(header(&response, "content-type"), "application/json");
        assert_eq!(response.bytes().await.unwrap().as_ref(), json.as_slice());
    }
    let csv = get_report(&api, &query, &admin, true).await;
    assert_eq!(header(&csv, "content-type"), "text/csv; charset=utf-8");
    assert_eq!(
        csv.bytes().await.unwrap().as_ref(),
        whole.to_csv().as_slice()
    );

    let etag = format!("\"{}\"", sha256_hex(&json));
    let again = api
        .http
        .get(format!("{}/v1/attribution/report?{query}", api.url))
        .bearer_auth(&admin)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);

    // One account: its own stored document.
    let response = get_report(&api, &format!("{query}&account={ACCOUNT}"), &admin, false).await;
    assert_eq!(response.bytes().await.unwrap().as_ref(), mine.as_slice());

    // A partner of two accounts: the whole month restricted to them, the same bytes
    // every time, its hash as the ETag.
    let partner = api
        .key(Role::Partner, Some(&[ACCOUNT, OTHER_ACCOUNT]))
        .await;
    let expected = whole
        .only(&|a| a == ACCOUNT || a == OTHER_ACCOUNT)
        .to_json();
    for _ in 0..2 {
        let response = get_report(&api, &query, &partner, false).await;
        assert_eq!(
            header(&response, "etag"),
            format!("\"{}\"", sha256_hex(&expected))
        );
        let body = response.bytes().await.unwrap();
        assert_eq!(body.as_ref(), expected.as_slice());
        let report = Report::from_json(&body).unwrap();
        assert!(report.frozen);
        assert!(report.accounts.iter().all(|l| l.account_id != THIRD));
    }
    let outsider = api.key(Role::Partner, Some(&[THIRD])).await;
    let response = get_report(&api, &query, &outsider, false).await;
    assert_eq!(
        header(&response, "recon-post-close-notes"),
        "0",
        "not its notes"
    );

    let notes = api
        .get(
            &format!("/v1/attribution/report/notes?month={month}"),
            Some(&partner),
        )
        .await;
    let notes: Value = notes.json().await.unwrap();
    assert_eq!(notes["notes"][0]["gapId"], gap_id);
    assert!(
        notes["notes"][0]["note"]
            .as_str()
            .unwrap()
            .contains("after the close")
    );
    let notes = api
        .get(
            &format!("/v1/attribution/report/notes?month={month}"),
            Some(&outsider),
        )
        .await;
    let notes: Value = notes.json().await.unwrap();
    assert_eq!(notes["notes"], Value::Array(vec![]));
    api.stop().await;
}

#[tokio::test]
async fn before_the_close_the_live_report_sums_the_verdicts_for_the_keys_accounts() {
    let api = Harness::start(Options::default()).await;
    let pool = &api.db.pool;
    account(pool, ACCOUNT, Some(1_000)).await;
    account(pool, OTHER_ACCOUNT, None).await;
    let month = this_month();
    gap(pool, ACCOUNT, 1, "token_rejected", 5_000, month, "open").await;
    gap(pool, OTHER_ACCOUNT, 2, "unattributed", 700, month, "open").await;
    let partner = api.key(Role::Partner, Some(&[ACCOUNT])).await;
    let response = get_report(&api, &format!("month={month}"), &partner, false).await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers().get("etag").is_none(),
        "a live report changes"
    );
    assert_eq!(header(&response, "recon-post-close-notes"), "0");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["frozen"], false);
    assert_eq!(body["month"], month.to_string());
    let lines = body["accounts"].as_array().unwrap();
    assert_eq!(lines.len(), 1, "{body}");
    assert_eq!(lines[0]["accountId"], ACCOUNT);
    assert_eq!(lines[0]["atRiskVolume"], "50.00");
    assert_eq!(lines[0]["shareAtRisk"], "5.00");
    let csv = get_report(&api, &format!("month={month}"), &partner, true).await;
    let text = csv.text().await.unwrap();
    assert!(text.starts_with("month,closes_at,frozen"), "{text}");
    assert_eq!(text.lines().count(), 2, "{text}");
    api.stop().await;
}

#[tokio::test]
async fn a_report_needs_a_good_month_and_an_account_in_scope() {
    let api = Harness::start(Options::default()).await;
    let pool = &api.db.pool;
    account(pool, ACCOUNT, None).await;
    account(pool, OTHER_ACCOUNT, None).await;
    let partner = api.key(Role::Partner, Some(&[ACCOUNT])).await;
    for (query, status, code) in [
        ("", 400, "missing_month"),
        ("month=2026-1", 400, "invalid_month"),
        ("month=2026-11&acount=x", 400, "unknown_parameter"),
        (
            &format!("month=2026-11&account={OTHER_ACCOUNT}") as &str,
            404,
            "not_found",
        ),
        ("month=2026-11&account=nobody", 404, "not_found"),
    ] {
        let response = get_report(&api, query, &partner, false).await;
        assert_eq!(response.status().as_u16(), status, "{query}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], code, "{query}: {body}");
    }
    let missing = api
        .get("/v1/attribution/report/notes", Some(&partner))
        .await;
    assert_eq!(missing.status(), 400);
    api.stop().await;
}
