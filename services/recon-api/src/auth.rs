//! `Authorization: Bearer <key>` → the key's role and scope, or 401 (429 after too
//! many failures from one address). What a role may do is [`Capability`]; handlers
//! ask [`Caller::require`].

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::pin::Pin;

use actix_web::http::header::{AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, web};
use recon_store::api_keys::{Capability, Scope};
use secrecy::SecretString;
use serde_json::json;

use crate::AppState;
use crate::client_address::client_address;
use crate::guard::Refusal;

/// The authenticated caller: its key's id and scope.
#[derive(Debug, Clone)]
pub struct Caller {
    pub key_id: i64,
    pub scope: Scope,
}

impl Caller {
    /// Whether the caller's role grants `capability`.
    pub fn can(&self, capability: Capability) -> bool {
        self.scope.role.can(capability)
    }

    /// `Ok` when the caller's role grants `capability`, otherwise a 403 that says why.
    pub fn require(&self, capability: Capability) -> Result<(), Forbidden> {
        if self.can(capability) {
            Ok(())
        } else {
            Err(Forbidden {
                role: self.scope.role.as_str(),
                capability,
            })
        }
    }
}

/// A role lacking a capability: 403.
#[derive(Debug)]
pub struct Forbidden {
    role: &'static str,
    capability: Capability,
}

impl std::fmt::Display for Forbidden {
    /// Names the key that would be allowed, so the caller knows what to ask for.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let role = self.role;
        match self.capability {
            Capability::ReportReceipts => write!(
                f,
                "a {role} key may not report receipts; use a partner key for the account \
                 or an admin key"
            ),
            Capability::ReadCardDetails => write!(
                f,
                "a {role} key may not read card details; it needs a finance or admin key"
            ),
            Capability::ReadLedger | Capability::Manage => {
                write!(f, "a {role} key may not do this; it needs an admin key")
            }
        }
    }
}

impl ResponseError for Forbidden {
    fn error_response(&self) -> HttpResponse {
        HttpResponse::Forbidden().json(json!({"error": self.to_string()}))
    }
}

/// Why a request is not authenticated (never says which part of a key was wrong).
#[derive(Debug)]
pub struct AuthError(pub Refusal);

impl std::fmt::Display for AuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Refusal::Missing => f.write_str(
                "send an API key as `Authorization: Bearer <key>` (reconctl api-keys create)",
            ),
            Refusal::Invalid => f.write_str("the API key is unknown or revoked"),
            Refusal::Expired { at } => write!(
                f,
                "the API key expired at {}; ask an admin for a new one (reconctl api-keys \
                 create --expires-in ...)",
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
            Refusal::TooMany { retry_after } => write!(
                f,
                "too many failed API key attempts from this address; retry after {} s",
                retry_secs(*retry_after)
            ),
            Refusal::Unavailable => f.write_str("keys cannot be checked right now; retry"),
        }
    }
}

fn retry_secs(delay: std::time::Duration) -> u64 {
    delay.as_secs() + u64::from(delay.subsec_nanos() > 0)
}

impl ResponseError for AuthError {
    fn error_response(&self) -> HttpResponse {
        let mut response = match &self.0 {
            Refusal::Unavailable => HttpResponse::ServiceUnavailable(),
            Refusal::TooMany { retry_after } => {
                let mut response = HttpResponse::TooManyRequests();
                response.insert_header((RETRY_AFTER, retry_secs(*retry_after).to_string()));
                response
            }
            _ => HttpResponse::Unauthorized(),
        };
        response.insert_header((WWW_AUTHENTICATE, "Bearer"));
        response.json(json!({"error": self.to_string()}))
    }
}

impl FromRequest for Caller {
    type Error = AuthError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let presented = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|key| SecretString::from(key.trim().to_string()));
        let peer = req
            .peer_addr()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip());
        let state = req.app_data::<web::Data<AppState>>().cloned();
        // The TCP peer, unless it is a proxy listed in API_TRUSTED_PROXIES: only then is
        // `X-Forwarded-For` believed (any client can write one).
        let client = match &state {
            Some(state) if !state.trusted_proxies.is_empty() => client_address(
                peer,
                req.headers()
                    .get_all("x-forwarded-for")
                    .filter_map(|v| v.to_str().ok()),
                &state.trusted_proxies,
            ),
            _ => peer,
        };
        Box::pin(async move {
            let state = state.ok_or(AuthError(Refusal::Unavailable))?;
            let (key_id, scope) = state
                .auth
                .check(client, presented)
                .await
                .map_err(AuthError)?;
            Ok(Caller { key_id, scope })
        })
    }
}
