//! The message on the work queue: one verified Helcim webhook
//! (`proto/helcim_recon/v1/webhook_envelope.proto`).

use prost::Message;

#[allow(missing_debug_implementations, clippy::all)]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/helcim_recon.v1.rs"));
}

pub use generated::WebhookEnvelope;
/// The attribution alert messages (`proto/helcim_recon/v1/attribution_alert.proto`).
pub mod alert {
    pub use super::generated::{
        AttributionAlert, EscalationDetail, GapDetail, MoneyAtRisk, MonthClosedDetail,
        attribution_alert::Detail,
    };
}

/// The `schema_version` this build writes.
pub const SCHEMA_VERSION: u32 = 1;

/// The AMQP `content-type` of an encoded attribution alert.
pub const ALERT_CONTENT_TYPE: &str =
    "application/x-protobuf; proto=helcim_recon.v1.AttributionAlert";

/// The AMQP `content-type` of an encoded envelope.
pub const CONTENT_TYPE: &str = "application/x-protobuf; proto=helcim_recon.v1.WebhookEnvelope";

impl WebhookEnvelope {
    pub fn encode_to_bytes(&self) -> Vec<u8> {
        self.encode_to_vec()
    }

    pub fn decode_from(bytes: &[u8]) -> Result<Self, prost::DecodeError> {
        WebhookEnvelope::decode(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_envelope_round_trips_through_its_bytes() {
        let envelope = WebhookEnvelope {
            schema_version: SCHEMA_VERSION,
            webhook_id: "msg_1".into(),
            account_id: "acct".into(),
            event_type: "cardTransaction".into(),
            object_id: Some("25764674".into()),
            helcim_timestamp: 1_700_000_000,
            received_at_micros: 1_700_000_000_123_456,
            raw_body: br#"{"id":"25764674","type":"cardTransaction"}"#.to_vec(),
            request_id: "req-1".into(),
            sealed_secrets: Some(vec![1, 2, 3]),
        };
        let decoded = WebhookEnvelope::decode_from(&envelope.encode_to_bytes()).unwrap();
        assert_eq!(decoded, envelope);
    }

    #[test]
    fn garbage_is_a_decode_error_not_a_panic() {
        assert!(WebhookEnvelope::decode_from(&[0xff, 0xff, 0xff]).is_err());
    }
}
