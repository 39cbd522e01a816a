//! The simulator's clock closes batches during a run; traffic makes clean run-time
//! transactions with webhooks; each injection breaks exactly what it says, visibly
//! through the endpoints the worker reads.

use std::time::Duration;

use recon_sim::clock::BatchClosing;
use serde_json::{Value, json};

use crate::harness::{Harness, config};

async fn harness() -> Harness {
    let mut config = config();
    config.batch_closing = Some(BatchClosing::Every(chrono::Duration::seconds(600)));
    Harness::start(config).await
}

async fn put(h: &Harness, path: &str, body: Value) -> Value {
    let response = h
        .http
        .put(h.sim_url(path))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "PUT {path}");
    response.json().await.unwrap()
}

async fn traffic(h: &Harness, count: u32) -> Vec<u64> {
    let (status, made) = h
        .control(
            &format!("/sim/accounts/{}/traffic", h.account.account_id),
            Some(json!({ "count": count })),
        )
        .await;
    assert_eq!(status, 200, "{made}");
    made["transactionIds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect()
}

async fn inject(h: &Harness, kind: &str) -> Value {
    let (status, done) = h
        .control(
            "/sim/inject",
            Some(json!({"kind": kind, "accountId": h.account.account_id})),
        )
        .await;
    assert_eq!(status, 200, "{kind}: {done}");
    done
}

fn batch_of(tx: &Value) -> u64 {
    tx["cardBatchId"]
        .as_u64()
        .or_else(|| tx["cardBatchId"].as_str().and_then(|s| s.parse().ok()))
        .unwrap()
}

#[tokio::test]
async fn a_batch_closes_when_the_clock_passes_its_close_and_the_next_sale_opens_another() {
    let h = harness().await;
    let made = traffic(&h, 25).await;
    assert!(made.len() >= 25);
    let first = h.get(&format!("/card-transactions/{}", made[0])).await;
    let batch = batch_of(&first);
    let open = h
        .get(&format!("/card-batches/{batch}?collect-stats=true"))
        .await;
    assert_eq!(open["dateClosed"], "0000-00-00 00:00:00", "{open}");
    // Every traffic transaction got its webhook.
    for id in &made {
        let id = id.to_string();
        h.webhook(|r| r.body.contains(&format!("\"{id}\""))).await;
    }
    let before = put(&h, "/sim/clock", json!({"advanceSeconds": 601})).await;
    assert!(before["now"].is_string());
    let closed = h
        .get(&format!("/card-batches/{batch}?collect-stats=true"))
        .await;
    assert_ne!(closed["dateClosed"], "0000-00-00 00:00:00", "{closed}");
    let later = traffic(&h, 1).await;
    let next = h.get(&format!("/card-transactions/{}", later[0])).await;
    assert_ne!(batch_of(&next), batch, "a new batch opened after the close");
    h.stop().await;
}

#[tokio::test]
async fn traffic_is_clean_no_two_sales_share_a_card_and_follow_ups_copy_their_sale() {
    let h = harness().await;
    let made = traffic(&h, 200).await;
    let truth = h.sim_json("/sim/truth").await;
    let ours: Vec<&Value> = truth["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| made.contains(&t["transactionId"].as_u64().unwrap()))
        .collect();
    let sales: Vec<&&Value> = ours
        .iter()
        .filter(|t| {
            t["status"] == "APPROVED" && (t["type"] == "purchase" || t["type"] == "capture")
        })
        .collect();
    let cards: std::collections::HashSet<&str> = sales
        .iter()
        .map(|t| t["cardToken"].as_str().unwrap())
        .collect();
    assert_eq!(cards.len(), sales.len(), "every sale has a card of its own");
    let kinds: std::collections::HashSet<&str> =
        ours.iter().map(|t| t["type"].as_str().unwrap()).collect();
    for kind in ["purchase", "preauth", "capture", "refund", "reverse"] {
        assert!(kinds.contains(kind), "{kind} in {kinds:?}");
    }
    for follow_up in ours
        .iter()
        .filter(|t| t["type"] == "refund" || t["type"] == "reverse")
    {
        let sale = sales
            .iter()
            .find(|s| {
                s["cardToken"] == follow_up["cardToken"]
                    && s["invoiceNumber"] == follow_up["invoiceNumber"]
            })
            .unwrap_or_else(|| panic!("{follow_up} has its sale"));
        if follow_up["type"] == "reverse" {
            assert_eq!(sale["amountMinor"], follow_up["amountMinor"]);
        }
    }
    h.stop().await;
}

#[tokio::test]
async fn each_injection_breaks_what_it_says_and_names_its_exception() {
    let h = harness().await;
    traffic(&h, 20).await;
    let expected = [
        ("hidden_transaction", "missed_webhook"),
        ("amount_change", "amount_changed"),
        ("batch_stats_mismatch", "batch_mismatch"),
        ("unknown_refund", "orphan_refund"),
        ("duplicate", "duplicate_suspect"),
        ("currency_mismatch", "currency_mismatch"),
        ("unknown_status", "unknown_status"),
        ("vanish", "missing_in_api"),
    ];
    for (kind, exception) in expected {
        let before = h.sim_json("/sim/truth").await;
        let done = inject(&h, kind).await;
        assert_eq!(done["expectedException"], exception, "{done}");
        let id = done["transactionId"].as_u64();
        match kind {
            "hidden_transaction" => {
                let id = id.unwrap();
                let tx = h.get(&format!("/card-transactions/{id}")).await;
                assert!(tx["status"].as_str().unwrap().starts_with("APPROV"));
                tokio::time::sleep(Duration::from_millis(300)).await;
                assert!(
                    !h.received()
                        .iter()
                        .any(|r| r.body.contains(&format!("\"{id}\""))),
                    "no webhook announces a hidden transaction"
                );
            }
            "amount_change" => {
                let id = id.unwrap();
                let old = before["transactions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|t| t["transactionId"] == id)
                    .unwrap()["amountMinor"]
                    .as_i64()
                    .unwrap();
                let now = h.truth_of(id).await;
                assert_eq!(now["amountMinor"].as_i64().unwrap(), old + 100);
                let batch = batch_of(&now);
                let stats = h
                    .get(&format!("/card-batches/{batch}?collect-stats=true"))
                    .await;
                let truth = h.sim_json("/sim/truth").await;
                let batch_truth = truth["batches"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|b| b["cardBatchId"] == batch)
                    .unwrap()
                    .clone();
                let net: f64 = stats["netSales"]
                    .to_string()
                    .trim_matches('"')
                    .parse()
                    .unwrap();
                assert_eq!(
                    (net * 100.0).round() as i64,
                    batch_truth["stats"]["netSales"].as_i64().unwrap(),
                    "the batch's stats follow the new amount"
                );
            }
            "batch_stats_mismatch" => {
                let batch = done["cardBatchId"].as_u64().unwrap();
                let truth = h.sim_json("/sim/truth").await;
                let batch_truth = truth["batches"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|b| b["cardBatchId"] == batch)
                    .unwrap()
                    .clone();
                assert_eq!(batch_truth["statsOffsetMinor"], 1234);
                let stats = h
                    .get(&format!("/card-batches/{batch}?collect-stats=true"))
                    .await;
                let net: f64 = stats["netSales"]
                    .to_string()
                    .trim_matches('"')
                    .parse()
                    .unwrap();
                assert_eq!(
                    (net * 100.0).round() as i64,
                    batch_truth["stats"]["netSales"].as_i64().unwrap() + 1234
                );
            }
            "unknown_refund" => {
                let tx = h.truth_of(id.unwrap()).await;
                assert_eq!(tx["type"], "refund");
                assert!(tx["invoiceNumber"].as_str().unwrap().starts_with("ORPHAN"));
            }
            "duplicate" => {
                let copy = h.truth_of(id.unwrap()).await;
                let original = h
                    .truth_of(done["originalTransactionId"].as_u64().unwrap())
                    .await;
                for field in [
                    "cardToken",
                    "amountMinor",
                    "currency",
                    "invoiceNumber",
                    "type",
                ] {
                    assert_eq!(copy[field], original[field], "{field}");
                }
            }
            "currency_mismatch" => {
                let tx = h.truth_of(id.unwrap()).await;
                let truth = h.sim_json("/sim/truth").await;
                let batch = truth["batches"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|b| b["cardBatchId"] == tx["cardBatchId"])
                    .unwrap()
                    .clone();
                assert_ne!(tx["currency"], batch["currency"]);
            }
            "unknown_status" => {
                let tx = h.get(&format!("/card-transactions/{}", id.unwrap())).await;
                assert_eq!(tx["status"], "HELD");
            }
            "vanish" => {
                let status = h
                    .http
                    .get(h.v2(&format!("/card-transactions/{}", id.unwrap())))
                    .header("api-token", &h.account.api_token)
                    .send()
                    .await
                    .unwrap()
                    .status();
                assert_eq!(status, 404);
            }
            _ => unreachable!(),
        }
    }
    let (status, refused) = h
        .control(
            "/sim/inject",
            Some(json!({"kind": "meteor", "accountId": h.account.account_id})),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("hidden_transaction")
    );
    h.stop().await;
}
