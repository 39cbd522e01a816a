//! No header or body, however odd, panics the receiver's parsing; and anything that
//! is not correctly signed is refused.

use proptest::prelude::*;
use recon_receiver::intake::{Intake, SignedHeaders, classify};
use recon_receiver::signature::{VerifierKey, sign};

const TOKEN: &str = "cHJvcGVydHktdGVzdC1rZXktMDEyMzQ1Njc4OQ==";
const NOW: i64 = 1_800_000_000;

fn header() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        ".{0,80}".prop_map(Some),
        "v1,[A-Za-z0-9+/=]{0,60}( v1,[A-Za-z0-9+/=]{0,60}){0,3}".prop_map(Some),
        "[0-9]{0,14}".prop_map(Some),
    ]
}

proptest! {
    #[test]
    fn arbitrary_headers_and_bodies_never_panic(
        id in header(), ts in header(), sig in header(),
        body in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let keys = [VerifierKey::parse(TOKEN).unwrap()];
        let headers = SignedHeaders { webhook_id: id.as_deref(), timestamp: ts.as_deref(), signature: sig.as_deref() };
        let result = classify(headers, &body, &keys, NOW);
        // Without a valid signature, the only success is the event-less probe.
        if let Ok(Intake::Event(_)) = result {
            prop_assert!(false, "an unsigned or forged request became an event");
        }
    }

    #[test]
    fn any_signed_json_event_is_accepted_and_any_flipped_bit_is_refused(
        event_type in "[a-zA-Z]{1,20}", id in "[0-9]{1,12}", flip in 0_usize..40,
    ) {
        let keys = [VerifierKey::parse(TOKEN).unwrap()];
        let body = format!(r#"{{"id":"{id}","type":"{event_type}"}}"#);
        let signature = sign(TOKEN, "msg_prop", NOW, body.as_bytes()).unwrap();
        let ts = NOW.to_string();
        let headers = SignedHeaders { webhook_id: Some("msg_prop"), timestamp: Some(&ts), signature: Some(&signature) };
        let accepted = classify(headers, body.as_bytes(), &keys, NOW);
        prop_assert!(matches!(accepted, Ok(Intake::Event(ref e)) if e.event_type == event_type), "{:?}", accepted);

        let mut tampered = body.into_bytes();
        let index = flip % tampered.len();
        tampered[index] ^= 0x01;
        prop_assert!(classify(headers, &tampered, &keys, NOW).is_err());
    }

    #[test]
    fn any_verifier_token_text_is_an_answer_not_a_panic(token in ".{0,80}") {
        let _ = VerifierKey::parse(&token);
    }
}
