//! A payment is never held up or failed by bookkeeping, and its evidence is never lost
//! or doubled: Postgres cut mid-stream, the gateway SIGKILLed with evidence spooled,
//! Helcim unreachable or silent.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::gateway_stack::{GatewayOptions, GatewayStack, fresh_key, purchase};

/// `n` purchases by merchant A, each with its own key; every one must be approved.
async fn purchases(s: &GatewayStack, tag: &str, n: usize, keys: &mut Vec<String>) {
    for i in 0..n {
        let key = fresh_key(tag);
        let amount = format!("{}.{:02}", 1 + i % 50, 10 + i % 80);
        let answer = s.buy(&s.a.api_token, Some(&key), &amount, &key[..12]).await;
        assert_eq!(
            answer.status,
            200,
            "{tag} #{i}: {}",
            String::from_utf8_lossy(&answer.body)
        );
        assert_eq!(answer.header("is-valid-partner-token"), Some("1"));
        keys.push(key);
    }
}

async fn evidence_keys(s: &GatewayStack) -> Vec<String> {
    sqlx::query_scalar("SELECT idempotency_key FROM attribution_evidence ORDER BY idempotency_key")
        .fetch_all(&s.db.pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_keep_succeeding_while_postgres_is_cut_and_the_evidence_arrives_exactly_once() {
    let s = GatewayStack::start(GatewayOptions {
        postgres_through_proxy: true,
        ..GatewayOptions::default()
    })
    .await;
    let postgres = s.postgres_proxy.as_ref().unwrap();
    let mut keys = Vec::new();
    purchases(&s, "pg-before", 30, &mut keys).await;
    postgres.cut();
    purchases(&s, "pg-during", 30, &mut keys).await;
    let spooled = s.metric("gateway_spool_depth", "").await;
    assert!(
        spooled >= 25.0,
        "the spool holds what Postgres could not take: {spooled}"
    );
    let ready = s
        .http
        .get(format!("{}/readyz", s.gateway_url))
        .send()
        .await
        .unwrap();
    assert_eq!(
        ready.status(),
        200,
        "Postgres down does not make the gateway unready"
    );
    postgres.restore();
    purchases(&s, "pg-after", 30, &mut keys).await;

    s.expect_evidence(90, Duration::from_secs(30)).await;
    keys.sort();
    assert_eq!(evidence_keys(&s).await, keys, "every request exactly once");
    let answered: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM attribution_evidence
         WHERE outcome = 'answered' AND response_status = 200 AND is_valid_partner_token = 1
           AND transaction_id IS NOT NULL",
    )
    .fetch_one(&s.db.pool)
    .await
    .unwrap();
    assert_eq!(answered, 90);
    assert_eq!(s.metric("gateway_spool_depth", "").await, 0.0);
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_killed_with_evidence_spooled_loses_and_doubles_nothing_after_a_restart() {
    let mut s = GatewayStack::start(GatewayOptions {
        postgres_through_proxy: true,
        ..GatewayOptions::default()
    })
    .await;
    let mut keys = Vec::new();
    // Spooled only: Postgres is cut, then the gateway is killed.
    s.postgres_proxy.as_ref().unwrap().cut();
    purchases(&s, "kill-spooled", 20, &mut keys).await;
    assert_eq!(s.metric("gateway_spool_depth", "").await, 20.0);
    s.postgres_proxy.as_ref().unwrap().restore();
    s.kill_and_restart_gateway().await;
    s.expect_evidence(20, Duration::from_secs(30)).await;

    // Killed mid-drain: some committed, some not, segments not yet deleted.
    purchases(&s, "kill-draining", 40, &mut keys).await;
    s.kill_and_restart_gateway().await;
    s.expect_evidence(60, Duration::from_secs(30)).await;
    keys.sort();
    assert_eq!(
        evidence_keys(&s).await,
        keys,
        "nothing lost, nothing doubled"
    );

    // A retry of an earlier request (same key, same body) is the same evidence.
    let again = &keys[0];
    let original: String = sqlx::query_scalar(
        "SELECT invoice_number FROM attribution_evidence WHERE idempotency_key = $1",
    )
    .bind(again)
    .fetch_one(&s.db.pool)
    .await
    .unwrap();
    let amount: i64 = sqlx::query_scalar(
        "SELECT amount_minor FROM attribution_evidence WHERE idempotency_key = $1",
    )
    .bind(again)
    .fetch_one(&s.db.pool)
    .await
    .unwrap();
    let amount = format!("{}.{:02}", amount / 100, amount % 100);
    let retried = s.buy(&s.a.api_token, Some(again), &amount, &original).await;
    assert_eq!(retried.status, 200);
    s.expect_evidence(60, Duration::from_secs(10)).await;
    let spool: BTreeSet<_> = std::fs::read_dir(&s.spool_dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        spool.len() <= 2,
        "finished segments are deleted once committed: {spool:?}"
    );
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helcim_unreachable_or_silent_gets_a_json_502_or_504_and_the_attempt_is_recorded() {
    let s = GatewayStack::start(GatewayOptions {
        helcim_through_proxy: true,
        extra_env: vec![("GATEWAY_UPSTREAM_TIMEOUT", "700ms".to_string())],
        ..GatewayOptions::default()
    })
    .await;
    let helcim = s.helcim_proxy.as_ref().unwrap();
    let a = &s.a.api_token;

    helcim.cut();
    let k_unreachable = fresh_key("down");
    let body = purchase("31.00", "F-1");
    let refused = s
        .post("/v2/payment/purchase", a, Some(&k_unreachable), None, &body)
        .await;
    assert_eq!(refused.status, 502);
    assert_eq!(refused.header("content-type"), Some("application/json"));
    assert_eq!(refused.json()["error"], "helcim_unreachable");
    assert!(
        refused.json()["message"]
            .as_str()
            .unwrap()
            .contains("idempotency-key")
    );
    helcim.restore();

    helcim.stall();
    let k_silent = fresh_key("slow");
    let silent_body = purchase("32.00", "F-2");
    let started = std::time::Instant::now();
    let timed_out = s
        .post(
            "/v2/payment/purchase",
            a,
            Some(&k_silent),
            None,
            &silent_body,
        )
        .await;
    assert_eq!(timed_out.status, 504);
    assert_eq!(timed_out.json()["error"], "helcim_timeout");
    assert!(started.elapsed() < Duration::from_secs(5));

    s.evidence_count_settles_at(2, Duration::from_secs(10))
        .await;
    let e = s.evidence_of(&k_unreachable).await;
    assert_eq!(
        (e.outcome.as_str(), e.status, e.valid),
        ("unreachable", None, None)
    );
    assert_eq!((e.added, e.amount_minor), (true, Some(3_100)));
    let e = s.evidence_of(&k_silent).await;
    assert_eq!((e.outcome.as_str(), e.status), ("timeout", None));

    // Helcim is back: the client retries both with the same keys, and the evidence of
    // each request now holds Helcim's answer (still one row per request).
    helcim.restore();
    // The held request reaches the simulator now; let it finish before the retry.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (key, body) in [(&k_unreachable, &body), (&k_silent, &silent_body)] {
        let answer = s
            .post("/v2/payment/purchase", a, Some(key), None, body)
            .await;
        assert_eq!(answer.status, 200);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let answered: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM attribution_evidence WHERE outcome = 'answered' AND response_status = 200",
        )
        .fetch_one(&s.db.pool)
        .await
        .unwrap();
        if answered == 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the retries' answers replace the attempts"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(s.evidence_count().await, 2);
    assert!(
        s.metric("gateway_requests_total", "outcome=\"unreachable\"")
            .await
            >= 1.0
    );
    assert!(
        s.metric("gateway_requests_total", "outcome=\"timeout\"")
            .await
            >= 1.0
    );
    s.finish().await;
}
