//! `connectedAccount` events: the receiver sealed the referred merchant's API token to
//! the intake key (the queued body holds `"[sealed]"` in its place); here it is
//! opened with the intake private key and stored encrypted under the API-token data
//! key. The token is never logged, and a failure leaves it sealed in the message
//! (retried, or dead-lettered still sealed).
//!
//! Unless `RECON_REGISTER_CONNECTED_ACCOUNTS=false`, the merchant is also registered as
//! an account of this deployment in the same transaction (recon-store
//! `connected::registration` has the rules: its id, collisions, ordering).

use recon_queue::WebhookEnvelope;
pub use recon_store::connected::Registration;
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
    /// Register the merchant as an account (RECON_REGISTER_CONNECTED_ACCOUNTS).
    pub register: bool,
}

impl ConnectedIntake {
    /// Stores the sealed token of a `connectedAccount` delivery (and registers the
    /// merchant). `Ok(None)` when there is nothing to store.
    pub async fn record(&self, envelope: &WebhookEnvelope) -> Result<Option<Registration>, Fate> {
        let Some(sealed) = envelope.sealed_secrets.as_deref() else {
            return Ok(None);
        };
        if envelope.event_type != "connectedAccount" {
            // Nothing to attach an API token to; the delivery row keeps the redacted body
            // and the sealed secret beside it (webhook_deliveries.sealed_secrets).
            tracing::warn!(account = %envelope.account_id, webhook_id = %envelope.webhook_id, event_type = %envelope.event_type, "a sealed secret in an event that is not connectedAccount: kept sealed with the delivery, not stored as a connected account");
            return Ok(None);
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
        let recorded = self
            .store
            .record(
                &ConnectedAccount {
                    account_id: &envelope.account_id,
                    connected_account_id: &connected_account_id,
                    api_token: &token,
                    webhook_id: &envelope.webhook_id,
                    helcim_timestamp: chrono::DateTime::from_timestamp(
                        envelope.helcim_timestamp,
                        0,
                    )
                    .unwrap_or_default(),
                },
                self.register,
            )
            .await
            .map_err(|e| Fate::Database(format!("database: {e}")))?;
        tracing::info!(account = %envelope.account_id, connected_account = %connected_account_id, token = %recorded.fingerprint, "stored a connected account's API token (fingerprint shown)");
        log_registration(
            &envelope.account_id,
            &connected_account_id,
            &recorded.registration,
        );
        Ok(Some(recorded.registration))
    }
}

/// What the operator sees of a registration: the account and, when there is one, the
/// next step. Never the token.
fn log_registration(referrer: &str, connected_account_id: &str, registration: &Registration) {
    const UNFINGERPRINTED: &str = "this worker holds no lookup key, so the gateway cannot find the account by its token yet: give the worker RECON_LOOKUP_KEY (or RECON_MASTER_KEY) and restart it, or run `reconctl keys reencrypt`";
    match registration {
        Registration::Off => tracing::info!(
            referrer,
            connected_account = connected_account_id,
            "not registered as an account: RECON_REGISTER_CONNECTED_ACCOUNTS is false"
        ),
        Registration::Registered {
            account_id,
            fingerprinted,
        }
        | Registration::Updated {
            account_id,
            fingerprinted,
        } => {
            let verb = if matches!(registration, Registration::Registered { .. }) {
                "registered the connected account"
            } else {
                "replaced the connected account's API token (a newer delivery)"
            };
            tracing::info!(referrer, connected_account = connected_account_id, account = %account_id, "{verb}; its webhooks go to /webhooks/helcim/{account_id}, once its verifier token is set with `reconctl accounts rotate-verifier {account_id} --verifier-token-env VAR`");
            if !fingerprinted {
                tracing::warn!(account = %account_id, "{UNFINGERPRINTED}");
            }
        }
        Registration::Unchanged { account_id } => tracing::info!(
            referrer,
            connected_account = connected_account_id,
            account = %account_id,
            "the account already has this delivery's token or a newer one: nothing changed"
        ),
        Registration::IdTaken { account_id } => tracing::warn!(
            referrer,
            connected_account = connected_account_id,
            account = %account_id,
            "not registered: account {account_id} exists and was not registered for this connected account (an operator made it), so it is left alone; the token is kept in connected_accounts. If it is this merchant, nothing to do; otherwise register the merchant under another id with `reconctl accounts add`"
        ),
        Registration::TokenRegistered {
            account_id,
            existing,
        } => tracing::warn!(
            referrer,
            connected_account = connected_account_id,
            account = %account_id,
            existing = %existing,
            "not registered: account {existing} already has this API token (the merchant is registered already); the token is kept in connected_accounts"
        ),
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
