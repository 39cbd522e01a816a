use crate::helpers::*;

/// Every refusal, with its status and a reason, and proof that nothing was queued.
#[tokio::test]
async fn every_refusal_has_its_status_and_reason_and_queues_nothing() {
    let receiver = spawn_receiver(Options::default()).await;
    let good = card_transaction("msg_reject", 5);
    let cases: Vec<(&str, Delivery, &str, u16, &str)> = vec![
        ("unknown account", good.clone(), "nobody", 404, "no account"),
        (
            "bad signature",
            Delivery {
                signature: delivery("msg_reject", &good.body, TOKEN_UNKNOWN, now()).signature,
                ..good.clone()
            },
            ACCOUNT,
            401,
            "no signature matches",
        ),
        (
            "signature for another body",
            Delivery {
                body: r#"{"id":"6","type":"cardTransaction"}"#.into(),
                ..good.clone()
            },
            ACCOUNT,
            401,
            "no signature matches",
        ),
        (
            "stale",
            delivery("msg_reject", &good.body, TOKEN_NEW, now() - 3600),
            ACCOUNT,
            401,
            "old",
        ),
        (
            "future",
            delivery("msg_reject", &good.body, TOKEN_NEW, now() + 3600),
            ACCOUNT,
            401,
            "future",
        ),
        (
            "garbage timestamp",
            Delivery {
                timestamp: "yesterday".into(),
                ..good.clone()
            },
            ACCOUNT,
            401,
            "Unix time",
        ),
        (
            "no v1 entry",
            Delivery {
                signature: "v2,abc".into(),
                ..good.clone()
            },
            ACCOUNT,
            401,
            "no v1",
        ),
        (
            "not JSON",
            delivery("msg_reject", "<xml/>", TOKEN_NEW, now()),
            ACCOUNT,
            400,
            "not JSON",
        ),
        (
            "no type",
            delivery("msg_reject", r#"{"id":"5"}"#, TOKEN_NEW, now()),
            ACCOUNT,
            400,
            "no `type`",
        ),
    ];
    for (name, sent, account, status, reason) in cases {
        let response = receiver.send_to(account, &sent).await;
        assert_eq!(response.status(), status, "{name}");
        let body: serde_json::Value = response.json().await.unwrap();
        let text = body["error"].as_str().unwrap_or_default();
        assert!(text.contains(reason), "{name}: {text}");
        for token in [TOKEN_NEW, TOKEN_OLD] {
            assert!(!text.contains(token), "{name} leaks a token");
        }
    }

    // Missing headers, one at a time.
    for missing in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        let mut request = receiver
            .http
            .post(format!("{}/webhooks/helcim/{ACCOUNT}", receiver.url))
            .body(good.body.clone());
        for (name, value) in [
            ("webhook-id", &good.webhook_id),
            ("webhook-timestamp", &good.timestamp),
            ("webhook-signature", &good.signature),
        ] {
            if name != missing {
                request = request.header(name, value);
            }
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "{missing}");
        assert!(response.text().await.unwrap().contains(missing));
    }
    // An event with no signature at all is not mistaken for the probe.
    let unsigned = receiver
        .http
        .post(format!("{}/webhooks/helcim/{ACCOUNT}", receiver.url))
        .body(good.body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 401);

    // Over the 256 KiB limit, with and without a Content-Length.
    let big = format!(
        r#"{{"type":"cardTransaction","pad":"{}"}}"#,
        "x".repeat(300 * 1024)
    );
    let oversized = delivery("msg_big", &big, TOKEN_NEW, now());
    let response = receiver.send(&oversized).await;
    assert_eq!(response.status(), 413);
    assert!(response.text().await.unwrap().contains("limit"));
    let chunks =
        futures::stream::iter((0..40).map(|_| Ok::<_, std::io::Error>(vec![b' '; 8 * 1024])));
    let streamed = receiver
        .http
        .post(format!("{}/webhooks/helcim/{ACCOUNT}", receiver.url))
        .header("webhook-id", "msg_stream")
        .header("webhook-timestamp", now().to_string())
        .header("webhook-signature", "v1,AAAA")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(streamed.status(), 413);

    assert_eq!(
        receiver.work_queue_depth().await,
        0,
        "nothing refused reached the queue"
    );
    let metrics = receiver.metrics().await;
    for outcome in [
        "unauthorized",
        "bad_request",
        "too_large",
        "unknown_account",
    ] {
        assert!(
            metrics.contains(&format!("outcome=\"{outcome}\"")),
            "{outcome} counted"
        );
    }
    receiver.finish().await;
}

/// A client that sends its headers and then trickles (or withholds) its body gets 408
/// once the body timeout passes, instead of holding a handler for as long as it likes.
#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_gets_408_and_nothing_is_queued() {
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let receiver = spawn_receiver(Options {
        body_timeout_ms: 300,
        ..Options::default()
    })
    .await;
    let address = receiver.url.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /webhooks/helcim/{ACCOUNT} HTTP/1.1\r\nHost: {address}\r\n\
         content-type: application/json\r\ncontent-length: 100\r\n\
         webhook-id: msg_slow\r\nwebhook-timestamp: {}\r\nwebhook-signature: v1,AAAA\r\n\r\n{{\"id\":",
        now()
    );
    let started = Instant::now();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0; 1024];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer))
        .await
        .expect("answered before the client gave up");
    let answer = String::from_utf8_lossy(&answer[..read.unwrap()]).to_string();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("did not arrive"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(receiver.work_queue_depth().await, 0);
    receiver.finish().await;
}
