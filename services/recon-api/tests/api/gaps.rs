//! `GET /v1/attribution/gaps[/{id}]` and `POST .../acknowledge|resolve`, on gaps
//! written by SQL as the engine would leave them.

use recon_store::api_keys::Role;
use serde_json::{Value, json};

use crate::gap_support::*;
use crate::harness::*;

async fn json_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

fn ids(body: &Value) -> Vec<i64> {
    body["gaps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["id"].as_i64().unwrap())
        .collect()
}

async fn post(api: &Harness, path: &str, key: &str, body: Value) -> (u16, Value) {
    let response = api
        .http
        .post(format!("{}{path}", api.url))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    json_of(response).await
}

#[tokio::test]
async fn a_partner_pages_through_only_its_own_gaps_and_a_gap_added_meanwhile_is_neither_lost_nor_doubled()
 {
    let api = Harness::start(Options::default()).await;
    let pool = &api.db.pool;
    let month = this_month();
    account(pool, ACCOUNT, Some(250)).await;
    account(pool, OTHER_ACCOUNT, None).await;
    let mut mine = vec![];
    for (n, class) in ["token_rejected", "unattributed", "token_missing"]
        .iter()
        .enumerate()
    {
        mine.push(gap(pool, ACCOUNT, 100 + n as i64, class, 1_000, month, "open").await);
    }
    let theirs = gap(pool, OTHER_ACCOUNT, 200, "unattributed", 900, month, "open").await;
    let orphan = unregistered_orphan(pool, month).await;
    let partner = api.key(Role::Partner, Some(&[ACCOUNT])).await;

    let (status, first) = json_of(
        api.get("/v1/attribution/gaps?limit=2", Some(&partner))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(ids(&first), mine[..2]);
    let cursor = first["nextCursor"].as_str().unwrap().to_string();
    let added = gap(pool, ACCOUNT, 300, "unattributed", 500, month, "open").await;
    let (_, second) = json_of(
        api.get(
            &format!("/v1/attribution/gaps?limit=2&cursor={cursor}"),
            Some(&partner),
        )
        .await,
    )
    .await;
    assert_eq!(ids(&second), vec![mine[2], added]);
    // Exactly the rest: no further page is promised.
    assert_eq!(second["nextCursor"], Value::Null, "{second}");

    // Asking for another account's gaps by name is a 404, as for an account that
    // does not exist: the answer says nothing of the other partner.
    let (status, other) = json_of(
        api.get(
            &format!("/v1/attribution/gaps?account={OTHER_ACCOUNT}"),
            Some(&partner),
        )
        .await,
    )
    .await;
    assert_eq!(status, 404, "{other}");
    let (status, missing) = json_of(
        api.get(
            "/v1/attribution/gaps?account=no-such-account",
            Some(&partner),
        )
        .await,
    )
    .await;
    assert_eq!((status, &missing), (404, &other));

    // An unscoped key sees every gap, the unregistered account's too; a finance key
    // scoped to both accounts does not see the unregistered one.
    let admin = api.key(Role::Admin, None).await;
    let (_, all) = json_of(api.get("/v1/attribution/gaps", Some(&admin)).await).await;
    assert_eq!(
        ids(&all),
        vec![mine[0], mine[1], mine[2], theirs, orphan, added]
    );
    let unregistered = &all["gaps"][4];
    assert_eq!(unregistered["accountId"], Value::Null);
    assert_eq!(unregistered["reason"], "unregistered_account");
    let finance = api
        .key(Role::Finance, Some(&[ACCOUNT, OTHER_ACCOUNT]))
        .await;
    let (_, scoped) = json_of(api.get("/v1/attribution/gaps", Some(&finance)).await).await;
    assert_eq!(ids(&scoped), vec![mine[0], mine[1], mine[2], theirs, added]);

    // Filters combine.
    let (_, filtered) = json_of(
        api.get(
            &format!("/v1/attribution/gaps?month={month}&class=unattributed&status=open"),
            Some(&admin),
        )
        .await,
    )
    .await;
    assert_eq!(ids(&filtered), vec![mine[1], theirs, added]);
    let (_, other_month) = json_of(
        api.get(
            &format!("/v1/attribution/gaps?month={}", month.previous()),
            Some(&admin),
        )
        .await,
    )
    .await;
    assert_eq!(ids(&other_month), Vec::<i64>::new());
    api.stop().await;
}

#[tokio::test]
async fn bad_filters_get_a_400_that_names_the_reason() {
    let api = Harness::start(Options::default()).await;
    let pool = &api.db.pool;
    account(pool, ACCOUNT, None).await;
    for n in 0..3 {
        gap(pool, ACCOUNT, n, "unattributed", 100, this_month(), "open").await;
    }
    let admin = api.key(Role::Admin, None).await;
    let (_, page) = json_of(api.get("/v1/attribution/gaps?limit=1", Some(&admin)).await).await;
    let cursor = page["nextCursor"].as_str().unwrap().to_string();
    let cases = [
        ("month=2026-13", "invalid_month", "out of range"),
        ("month=November", "invalid_month", "YYYY-MM"),
        (
            "class=lost",
            "invalid_class",
            "token_rejected, token_missing, unattributed, orphan_evidence",
        ),
        (
            "status=closed",
            "invalid_status",
            "open, acknowledged, resolved, expired",
        ),
        ("limit=0", "invalid_limit", "1 to 1000"),
        ("limit=1001", "invalid_limit", "1 to 1000"),
        ("cursor=not-a-cursor", "invalid_cursor", "start again"),
        ("mnth=2026-11", "unknown_parameter", "month, account, class"),
    ];
    for (query, code, says) in cases {
        let (status, body) = json_of(
            api.get(&format!("/v1/attribution/gaps?{query}"), Some(&admin))
                .await,
        )
        .await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"], code, "{query}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains(says),
            "{query}: {body}"
        );
    }
    // A cursor replayed with other filters would skip rows: refused.
    let (status, body) = json_of(
        api.get(
            &format!("/v1/attribution/gaps?limit=1&class=unattributed&cursor={cursor}"),
            Some(&admin),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_cursor")),
        "{body}"
    );
    assert!(
        body["message"].as_str().unwrap().contains("other filters"),
        "{body}"
    );
    api.stop().await;
}

#[tokio::test]
async fn a_gap_shows_its_money_share_deadline_and_audit_trail() {
    let api = Harness::start(Options::default()).await;
    let pool = &api.db.pool;
    let month = this_month();
    account(pool, ACCOUNT, Some(250)).await;
    let id = gap(pool, ACCOUNT, 4242, "token_rejected", 6_999, month, "open").await;
    let partner = api.key(Role::Partner, Some(&[ACCOUNT])).await;
    let (status, body) = json_of(
        api.get(&format!("/v1/attribution/gaps/{id}"), Some(&partner))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accountId"], ACCOUNT);
    assert_eq!(body["transactionId"], 4242);
    assert_eq!(body["class"], "token_rejected");
    assert_eq!(body["amount"], "69.99");
    assert_eq!(body["currency"], "CAD");
    assert_eq!(body["month"], month.to_string());
    let deadline = close_of(month).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    assert_eq!(body["deadline"], deadline);
    assert_eq!(body["status"], "open");
    assert_eq!(body["shareAtRisk"], "1.74", "69.99 × 2.5 %, rounded down");
    assert!(
        body.get("resolution").is_none() && body.get("reason").is_none(),
        "{body}"
    );
    assert!(
        body["detectedAt"].as_str().unwrap().ends_with('Z'),
        "{body}"
    );
    assert_eq!(body["events"][0]["actor"], "engine");
    assert_eq!(body["events"][0]["toStatus"], "open");
    let (status, _) = json_of(api.get("/v1/attribution/gaps/999999", Some(&partner)).await).await;
    assert_eq!(status, 404);
    api.stop().await;
}

#[tokio::test]
async fn acknowledging_then_resolving_records_who_and_why_and_waives_the_verdict() {
    let api = Harness::start(Options::default()).await;
    let pool = &api.db.pool;
    account(pool, ACCOUNT, Some(100)).await;
    let id = gap(
        pool,
        ACCOUNT,
        77,
        "token_missing",
        2_000,
        this_month(),
        "open",
    )
    .await;
    let partner = api.key(Role::Partner, Some(&[ACCOUNT])).await;
    let prefix = &partner[..recon_store::api_keys::PREFIX_LEN];
    let ack = format!("/v1/attribution/gaps/{id}/acknowledge");
    let resolve = format!("/v1/attribution/gaps/{id}/resolve");

    for (body, code) in [
        (json!({"note": "   "}), "invalid_note"),
        (json!({"note": "x".repeat(2_001)}), "invalid_note"),
        (json!({}), "missing_note"),
        (json!({"note": 5}), "missing_note"),
    ] {
        let (status, answer) = post(&api, &ack, &partner, body).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (400, Some(code)),
            "{answer}"
        );
    }
    let raw = api
        .http
        .post(format!("{}{ack}", api.url))
        .bearer_auth(&partner)
        .body("note=hi")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    assert_eq!(events(pool, id).await, 1, "refused requests change nothing");

    let (status, body) = post(
        &api,
        &ack,
        &partner,
        json!({"note": "  the POS sends no token; fixing  "}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "acknowledged");
    let event = &body["events"][1];
    assert_eq!(event["actor"], format!("api-key:{prefix}"));
    assert_eq!(event["fromStatus"], "open");
    assert_eq!(event["toStatus"], "acknowledged");
    assert_eq!(event["note"], "the POS sends no token; fixing");
    assert_eq!(verdict(pool, ACCOUNT, 77).await, "gap", "still at risk");

    let (status, body) = post(&api, &ack, &partner, json!({"note": "again"})).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["status"], "acknowledged");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("already acknowledged"),
        "{body}"
    );

    let (status, body) = post(&api, &resolve, &partner, json!({"note": "written off"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["status"].as_str(), body["resolution"].as_str()),
        (Some("resolved"), Some("person"))
    );
    assert!(
        body.get("shareAtRisk").is_none(),
        "nothing at risk once resolved: {body}"
    );
    assert_eq!(verdict(pool, ACCOUNT, 77).await, "waived");
    assert_eq!(events(pool, id).await, 3);

    let (status, body) = post(&api, &resolve, &partner, json!({"note": "again"})).await;
    assert_eq!(status, 409);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("already resolved (by person)"),
        "{body}"
    );
    assert_eq!(events(pool, id).await, 3);
    api.stop().await;
}

#[tokio::test]
async fn another_partners_gap_answers_404_like_a_missing_one_and_stays_as_it_was() {
    let api = Harness::start(Options::default()).await;
    let pool = &api.db.pool;
    account(pool, ACCOUNT, None).await;
    account(pool, OTHER_ACCOUNT, None).await;
    let id = gap(pool, ACCOUNT, 1, "unattributed", 100, this_month(), "open").await;
    let orphan = unregistered_orphan(pool, this_month()).await;
    let other = api.key(Role::Partner, Some(&[OTHER_ACCOUNT])).await;
    let note = json!({"note": "mine now"});
    let (status, foreign) = post(
        &api,
        &format!("/v1/attribution/gaps/{id}/acknowledge"),
        &other,
        note.clone(),
    )
    .await;
    let (missing_status, missing) = post(
        &api,
        "/v1/attribution/gaps/987654/acknowledge",
        &other,
        note.clone(),
    )
    .await;
    assert_eq!((status, missing_status), (404, 404));
    assert_eq!(
        foreign, missing,
        "out of scope must look exactly like absent"
    );
    let (status, _) = post(
        &api,
        &format!("/v1/attribution/gaps/{id}/resolve"),
        &other,
        note.clone(),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = json_of(
        api.get(&format!("/v1/attribution/gaps/{id}"), Some(&other))
            .await,
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(events(pool, id).await, 1);
    assert_eq!(verdict(pool, ACCOUNT, 1).await, "gap");

    // The unregistered account's gap: only an unscoped key may touch it.
    let finance = api
        .key(Role::Finance, Some(&[ACCOUNT, OTHER_ACCOUNT]))
        .await;
    let (status, _) = post(
        &api,
        &format!("/v1/attribution/gaps/{orphan}/acknowledge"),
        &finance,
        note.clone(),
    )
    .await;
    assert_eq!(status, 404);
    let admin = api.key(Role::Admin, None).await;
    let (status, body) = post(
        &api,
        &format!("/v1/attribution/gaps/{orphan}/acknowledge"),
        &admin,
        note,
    )
    .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("acknowledged")),
        "{body}"
    );
    api.stop().await;
}

#[tokio::test]
async fn an_expired_gap_and_a_gap_of_a_closed_month_refuse_changes_with_409() {
    let api = Harness::start(Options::default()).await;
    let pool = &api.db.pool;
    account(pool, ACCOUNT, None).await;
    let past = this_month().previous();
    let expired = gap(pool, ACCOUNT, 1, "unattributed", 100, past, "expired").await;
    // The close passed but the worker has not expired it yet: still refused, so the
    // frozen report does not depend on when the close was processed.
    let lagging = gap(pool, ACCOUNT, 2, "unattributed", 100, past, "open").await;
    let admin = api.key(Role::Admin, None).await;
    let note = json!({"note": "too late"});
    let (status, body) = post(
        &api,
        &format!("/v1/attribution/gaps/{expired}/resolve"),
        &admin,
        note.clone(),
    )
    .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (409, Some("expired")),
        "{body}"
    );
    assert!(
        body["message"].as_str().unwrap().contains("is expired"),
        "{body}"
    );
    let (status, body) = post(
        &api,
        &format!("/v1/attribution/gaps/{lagging}/acknowledge"),
        &admin,
        note,
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("month closed at"),
        "{body}"
    );
    assert_eq!(events(pool, expired).await + events(pool, lagging).await, 2);
    api.stop().await;
}

#[tokio::test]
async fn concurrent_resolves_of_one_gap_change_it_once() {
    let api = Harness::start(Options::default()).await;
    let pool = &api.db.pool;
    account(pool, ACCOUNT, None).await;
    let id = gap(pool, ACCOUNT, 1, "unattributed", 100, this_month(), "open").await;
    let admin = api.key(Role::Admin, None).await;
    let path = format!("/v1/attribution/gaps/{id}/resolve");
    let answers = futures::future::join_all(
        (0..8).map(|n| post(&api, &path, &admin, json!({"note": format!("try {n}")}))),
    )
    .await;
    let mut statuses: Vec<u16> = answers.iter().map(|(s, _)| *s).collect();
    statuses.sort_unstable();
    assert_eq!(
        statuses,
        [200, 409, 409, 409, 409, 409, 409, 409],
        "{answers:?}"
    );
    assert_eq!(events(pool, id).await, 2, "one detection, one resolution");
    api.stop().await;
}
