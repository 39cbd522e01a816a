//! A transaction Helcim never shows ends in the dead-letter queue with its reason and is
//! reconciled once replayed; the API answers it only to keys whose scope holds it.

use std::time::Duration;

use serde_json::{Value, json};

use crate::stack::{RECONCILED, Stack, StackOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_is_replayed_into_the_ledger_and_the_api_respects_key_scopes() {
    // The first transaction of the run stays invisible at the API until revealed.
    let activity = recon_sim::generate(&recon_sim::GenerateConfig {
        seed: 44,
        transactions_per_account: 60,
        ..recon_sim::GenerateConfig::default()
    });
    let hidden = activity.transactions[0].clone();
    let faults = json!({"api": {"hiddenTransactionIds": [hidden.transaction_id]}}).to_string();
    let stack = Stack::start(StackOptions {
        seed: 44,
        transactions_per_account: 60,
        sim_faults: &faults,
        worker_env: vec![("WORKER_MAX_RETRIES", "2".to_string())],
        sim_env: vec![],
    })
    .await;
    let total = activity.transactions.len() as i64;
    stack.start_deliveries().await;
    stack.deliveries_finished(Duration::from_secs(60)).await;
    stack
        .ledger_until(
            Duration::from_secs(60),
            "all but the hidden one",
            |n| n == total - 1,
            RECONCILED,
        )
        .await;

    // It waits in the dead-letter queue, with the reason; its ledger row is pending.
    let mut listing = String::new();
    for _ in 0..40 {
        listing = stack.reconctl(&["dlq", "list"]);
        if listing.starts_with("1 dead letters") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(listing.starts_with("1 dead letters"), "{listing}");
    assert!(
        listing.contains(&hidden.transaction_id.to_string()),
        "{listing}"
    );
    assert!(
        listing.contains("not at Helcim yet") && listing.contains("gave up after 2 retries"),
        "{listing}"
    );
    let status: String = sqlx::query_scalar(
        "SELECT reconciliation_status FROM card_transactions WHERE transaction_id = $1",
    )
    .bind(hidden.transaction_id as i64)
    .fetch_one(&stack.db.pool)
    .await
    .unwrap();
    assert_eq!(status, "pending");

    // Replayed while Helcim still does not show it: it fails again and comes back,
    // not lost, its replay counted.
    assert!(stack.reconctl(&["dlq", "replay"]).contains("replayed 1"));
    let mut again = String::new();
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        again = stack.reconctl(&["dlq", "list"]);
        if again.starts_with("1 dead letters") {
            break;
        }
    }
    assert!(
        again.starts_with("1 dead letters") && again.contains("replays 1"),
        "{again}"
    );

    // Helcim shows it now; the operator replays; it is reconciled once.
    stack.put_faults(json!({})).await;
    let replayed = stack.reconctl(&["dlq", "replay"]);
    assert!(replayed.contains("replayed 1"), "{replayed}");
    stack
        .ledger_until(
            Duration::from_secs(30),
            "the replayed one",
            |n| n == total,
            RECONCILED,
        )
        .await;
    assert!(
        stack
            .reconctl(&["dlq", "list"])
            .starts_with("0 dead letters")
    );

    // The API, by key.
    let account_a = hidden.account_id.clone();
    let other = activity
        .transactions
        .iter()
        .find(|t| t.account_id != account_a)
        .unwrap()
        .clone();
    let admin_key = last_line(&stack.reconctl(&["api-keys", "create", "--role", "admin"]));
    let partner_key = last_line(&stack.reconctl(&[
        "api-keys",
        "create",
        "--role",
        "partner",
        "--accounts",
        &account_a,
    ]));
    let get = |account: &str, id: u64, key: Option<&str>| {
        let mut request = stack.http.get(format!(
            "{}/v1/accounts/{account}/transactions/{id}",
            stack.api_url
        ));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        request.send()
    };
    assert_eq!(
        get(&account_a, hidden.transaction_id, None)
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        get(&account_a, hidden.transaction_id, Some("hrk_not-a-key"))
            .await
            .unwrap()
            .status(),
        401
    );

    let response = get(&account_a, hidden.transaction_id, Some(&admin_key))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let cents = hidden.amount_minor;
    assert_eq!(
        body["amount"],
        format!("{}.{:02}", cents / 100, cents % 100)
    );
    assert_eq!(body["currency"], hidden.currency);
    assert_eq!(body["type"], hidden.kind.as_str());
    assert_eq!(body["status"], serde_json::to_value(hidden.status).unwrap());
    assert_eq!(body["cardBatchId"], hidden.card_batch_id);
    assert_eq!(body["transactionId"], hidden.transaction_id);
    assert_eq!(body["reconciliation"]["status"], "matched");

    let partner_view = get(&account_a, hidden.transaction_id, Some(&partner_key))
        .await
        .unwrap();
    assert_eq!(partner_view.status(), 200);
    let partner_body: Value = partner_view.json().await.unwrap();
    assert_eq!(partner_body["amount"], body["amount"]);
    for card_field in [
        "cardNumber",
        "customerCode",
        "approvalCode",
        "invoiceNumber",
    ] {
        assert!(body.get(card_field).is_some(), "admin sees {card_field}");
        assert!(
            partner_body.get(card_field).is_none(),
            "a partner sees {card_field}"
        );
    }
    let outside = get(&other.account_id, other.transaction_id, Some(&partner_key))
        .await
        .unwrap();
    assert_eq!(
        outside.status(),
        404,
        "another account's transaction looks absent"
    );
    let absent = get(&account_a, 1, Some(&admin_key)).await.unwrap();
    assert_eq!(absent.status(), 404);
    assert_eq!(
        outside.text().await.unwrap(),
        absent.text().await.unwrap(),
        "indistinguishable from absent"
    );

    // Revoked with reconctl: refused by the running API from the next request on.
    let prefix = &partner_key[..12];
    assert!(
        stack
            .reconctl(&["api-keys", "revoke", prefix])
            .contains("revoked")
    );
    assert_eq!(
        get(&account_a, hidden.transaction_id, Some(&partner_key))
            .await
            .unwrap()
            .status(),
        401
    );
    let listing = stack.reconctl(&["api-keys", "list"]);
    assert!(
        listing.contains(prefix) && !listing.contains(&partner_key),
        "{listing}"
    );

    // Keys are stored hashed only.
    let stored: Vec<Vec<u8>> = sqlx::query_scalar("SELECT key_hash FROM api_keys")
        .fetch_all(&stack.db.pool)
        .await
        .unwrap();
    assert_eq!(stored.len(), 2);
    let prefixes: Vec<String> = sqlx::query_scalar("SELECT key_prefix FROM api_keys")
        .fetch_all(&stack.db.pool)
        .await
        .unwrap();
    for key in [&admin_key, &partner_key] {
        assert!(
            stored
                .iter()
                .all(|h| !h.windows(key.len()).any(|w| w == key.as_bytes()))
        );
        assert!(prefixes.iter().all(|p| p.len() < key.len()));
    }
    stack.finish().await;
}

fn last_line(output: &str) -> String {
    output.lines().last().unwrap_or_default().trim().to_string()
}
