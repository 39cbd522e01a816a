//! `connectedAccount` events: the receiver sealed the referred merchant's API token to
//! the intake key (the queued body holds `"[sealed]"` in its place); here it is
//! opened with the intake private key and stored encrypted under the API-token data
//! key. The token is never logged, and a failure leaves it sealed in the message
//! (retried, or dead-lettered still sealed).

use recon_queue::WebhookEnvelope;
use recon_store::connected::{ConnectedAccount, ConnectedAccounts};
use recon_store::crypto::CryptoError;
use recon_store::intake::IntakeSecretKeys;
use secrecy::SecretString;
use serde_json::Value;

use crate::process::Fate;

/// What opening and storing connected-account tokens needs.
#[derive(Debug, Clone)]
pub struct ConnectedIntake {
    pub store: ConnectedAccounts,
    /// `None` when neither RECON_INTAKE_PRIVATE_KEY nor RECON_MASTER_KEY is set.
    pub keys: Option<IntakeSecretKeys>,
}

impl ConnectedIntake {
    /// Stores the sealed token of a `connectedAccount` delivery. `Ok(())` when there
    /// is nothing (more) to do.
    pub async fn record(&self, envelope: &WebhookEnvelope) -> Result<(), Fate> {
        let Some(sealed) = envelope.sealed_secrets.as_deref() else {
            return Ok(());
        };
        if envelope.event_type != "connectedAccount" {
            // Nothing to attach an API token to; the delivery row keeps the redacted body
            // and the sealed secret beside it (webhook_deliveries.sealed_secrets).
            tracing::warn!(account = %envelope.account_id, webhook_id = %envelope.webhook_id, event_type = %envelope.event_type, "a sealed secret in an event that is not connectedAccount: kept sealed with the delivery, not stored as a connected account");
            return Ok(());
        }
        let keys = self.keys.as_ref().ok_or_else(|| {
            Fate::Retry(
                "a connectedAccount token arrived sealed but this worker has no intake private key: set RECON_INTAKE_PRIVATE_KEY (or RECON_MASTER_KEY)"
                    .into(),
            )
        })?;
        let opened = keys.open(sealed).map_err(|error| match error {
            // A rotation where the old private key is not configured: fixable.
            CryptoError::UnknownKey(_) => Fate::Retry(error.to_string()),
            _ => Fate::Dead(format!("the sealed connectedAccount token: {error}")),
        })?;
        let token = single_token(&opened)?;
        let body: Value = serde_json::from_slice(&envelope.raw_body)
            .map_err(|_| Fate::Dead("the connectedAccount body is not JSON".into()))?;
        let connected_account_id = find_id(&body).ok_or_else(|| {
            Fate::Dead("a connectedAccount event without a connectedAccountId".into())
        })?;
        let fingerprint = self
            .store
            .upsert(&ConnectedAccount {
                account_id: &envelope.account_id,
                connected_account_id: &connected_account_id,
                api_token: &token,
                webhook_id: &envelope.webhook_id,
                helcim_timestamp: chrono::DateTime::from_timestamp(envelope.helcim_timestamp, 0)
                    .unwrap_or_default(),
            })
            .await
            .map_err(|e| Fate::Database(format!("database: {e}")))?;
        tracing::info!(account = %envelope.account_id, connected_account = %connected_account_id, token = %fingerprint, "stored a connected account's API token (fingerprint shown)");
        Ok(())
    }
}

/// The one API token the receiver sealed (a JSON array of the values it took out).
fn single_token(opened: &[u8]) -> Result<SecretString, Fate> {
    let refuse = || {
        Fate::Dead("the sealed connectedAccount secrets are not exactly one apiToken string".into())
    };
    match serde_json::from_slice::<Value>(opened) {
        Ok(Value::Array(mut values)) if values.len() == 1 => match values.pop() {
            Some(Value::String(token)) if !token.trim().is_empty() => Ok(SecretString::from(token)),
            _ => Err(refuse()),
        },
        _ => Err(refuse()),
    }
}

/// `connectedAccountId` wherever it sits (top level or under `data`), as text.
fn find_id(value: &Value) -> Option<String> {
    match value {
        Value::Object(fields) => fields.iter().find_map(|(key, field)| {
            if key.eq_ignore_ascii_case("connectedAccountId") {
                match field {
                    Value::String(id) if !id.trim().is_empty() => Some(id.trim().to_string()),
                    Value::Number(id) => Some(id.to_string()),
                    _ => None,
                }
            } else {
                find_id(field)
            }
        }),
        Value::Array(items) => items.iter().find_map(find_id),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn the_connected_account_id_is_found_at_the_top_or_nested() {
        let nested: Value = serde_json::from_str(
            r#"{"type":"connectedAccount","data":{"connectedAccountId":981}}"#,
        )
        .unwrap();
        assert_eq!(find_id(&nested).as_deref(), Some("981"));
        let top: Value = serde_json::from_str(r#"{"connectedAccountId":"ca-1"}"#).unwrap();
        assert_eq!(find_id(&top).as_deref(), Some("ca-1"));
        assert_eq!(find_id(&serde_json::json!({"data": {}})), None);
    }

    #[test]
    fn exactly_one_token_string_is_accepted() {
        assert_eq!(single_token(br#"["t"]"#).unwrap().expose_secret(), "t");
        for bad in [
            &br#"[]"#[..],
            br#"["a","b"]"#,
            br#"[5]"#,
            br#"[""]"#,
            b"nope",
        ] {
            assert!(matches!(single_token(bad), Err(Fate::Dead(_))));
        }
    }
}
