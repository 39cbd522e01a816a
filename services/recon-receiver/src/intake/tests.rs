use super::*;
use crate::signature::sign;

const TOKEN: &str = "c2VjcmV0LWtleS1mb3ItdGVzdHMtMDEyMzQ1Njc4OQ==";
const NOW: i64 = 1_800_000_000;

fn keys() -> Vec<VerifierKey> {
    vec![VerifierKey::parse(TOKEN).unwrap()]
}

fn signed(body: &str) -> (String, String, String) {
    let id = "msg_test".to_string();
    let ts = NOW.to_string();
    let sig = sign(TOKEN, &id, NOW, body.as_bytes()).unwrap();
    (id, ts, sig)
}

fn run(
    id: Option<&str>,
    ts: Option<&str>,
    sig: Option<&str>,
    body: &str,
) -> Result<Intake, Rejection> {
    let headers = SignedHeaders {
        webhook_id: id,
        timestamp: ts,
        signature: sig,
    };
    classify(headers, body.as_bytes(), &keys(), NOW)
}

#[test]
fn a_signed_card_transaction_is_an_event_with_its_id() {
    let body = r#"{"id":"25764674","type":"cardTransaction"}"#;
    let (id, ts, sig) = signed(body);
    let intake = run(Some(&id), Some(&ts), Some(&sig), body).unwrap();
    assert_eq!(
        intake,
        Intake::Event(VerifiedEvent {
            webhook_id: id,
            timestamp: NOW,
            event_type: "cardTransaction".into(),
            object_id: Some("25764674".into()),
            known_type: true,
        })
    );
}

#[test]
fn a_terminal_cancel_has_no_object_id_and_unknown_types_are_kept() {
    let body = r#"{"type":"terminalCancel","data":{"invoiceNumber":"INV1"}}"#;
    let (id, ts, sig) = signed(body);
    let Intake::Event(event) = run(Some(&id), Some(&ts), Some(&sig), body).unwrap() else {
        panic!()
    };
    assert_eq!(event.object_id, None);
    assert!(event.known_type);

    let body = r#"{"type":"somethingNew","id":7}"#;
    let (id, ts, sig) = signed(body);
    let Intake::Event(event) = run(Some(&id), Some(&ts), Some(&sig), body).unwrap() else {
        panic!()
    };
    assert!(!event.known_type);
    assert_eq!(event.object_id.as_deref(), Some("7"));
}

#[test]
fn the_settings_probe_is_ignored_not_refused() {
    for body in ["", "  ", "{}", "[]", r#"{"test":true}"#] {
        assert_eq!(run(None, None, None, body), Ok(Intake::Probe), "{body:?}");
    }
}

#[test]
fn an_unsigned_event_is_refused() {
    let err = run(None, None, None, r#"{"id":"1","type":"cardTransaction"}"#).unwrap_err();
    assert!(
        matches!(err, Rejection::Unauthorized(ref r) if r.contains("unsigned")),
        "{err}"
    );
    assert!(matches!(
        run(None, None, None, "not json"),
        Err(Rejection::Unauthorized(_))
    ));
}

#[test]
fn each_missing_header_is_named() {
    let body = r#"{"type":"cardTransaction"}"#;
    let (id, ts, sig) = signed(body);
    for (expected, result) in [
        ("webhook-id", run(None, Some(&ts), Some(&sig), body)),
        ("webhook-timestamp", run(Some(&id), None, Some(&sig), body)),
        ("webhook-signature", run(Some(&id), Some(&ts), None, body)),
    ] {
        let Err(Rejection::Unauthorized(reason)) = result else {
            panic!("{result:?}")
        };
        assert!(reason.contains(expected), "{reason}");
    }
}

#[test]
fn malformed_headers_are_unauthorized() {
    let body = r#"{"type":"cardTransaction"}"#;
    let (id, ts, sig) = signed(body);
    for (id, ts, sig) in [
        ("", ts.as_str(), sig.as_str()),
        ("has space", ts.as_str(), sig.as_str()),
        (id.as_str(), "-5", sig.as_str()),
        (id.as_str(), "12.5", sig.as_str()),
        (id.as_str(), "soon", sig.as_str()),
        (id.as_str(), ts.as_str(), "garbage"),
    ] {
        assert!(matches!(
            run(Some(id), Some(ts), Some(sig), body),
            Err(Rejection::Unauthorized(_))
        ));
    }
    let long = "m".repeat(256);
    assert!(run(Some(&long), Some(&ts), Some(&sig), body).is_err());
}

#[test]
fn a_bad_signature_is_unauthorized_before_the_body_is_read() {
    let (id, ts, _) = signed("not json at all");
    let forged = sign("b3RoZXIta2V5", &id, NOW, b"not json at all").unwrap();
    let err = run(Some(&id), Some(&ts), Some(&forged), "not json at all").unwrap_err();
    assert_eq!(
        err,
        Rejection::Unauthorized("no signature matches the account's verifier tokens".into())
    );
}

#[test]
fn signed_bodies_that_are_not_events_are_bad_requests() {
    for body in [
        "not json",
        "[1,2]",
        r#"{"id":"1"}"#,
        r#"{"type":""}"#,
        r#"{"type":5}"#,
    ] {
        let (id, ts, sig) = signed(body);
        assert!(
            matches!(
                run(Some(&id), Some(&ts), Some(&sig), body),
                Err(Rejection::BadRequest(_))
            ),
            "{body}"
        );
    }
}

#[test]
fn a_signed_stale_delivery_is_told_apart_from_a_forged_one() {
    let body = r#"{"id":"1","type":"cardTransaction"}"#;
    let (id, ts, sig) = signed(body);
    let late = classify(
        SignedHeaders {
            webhook_id: Some(&id),
            timestamp: Some(&ts),
            signature: Some(&sig),
        },
        body.as_bytes(),
        &keys(),
        NOW + 301,
    );
    assert_eq!(
        late,
        Err(Rejection::Stale {
            reason: "webhook-timestamp is 301 s old; more than 300 s is refused".into(),
            direction: "old"
        })
    );
    let forged = sign("b3RoZXIta2V5", &id, NOW, body.as_bytes()).unwrap();
    let headers = SignedHeaders {
        webhook_id: Some(&id),
        timestamp: Some(&ts),
        signature: Some(&forged),
    };
    assert!(matches!(
        classify(headers, body.as_bytes(), &keys(), NOW - 400),
        Err(Rejection::Unauthorized(reason)) if reason.contains("in the future")
    ));
}
