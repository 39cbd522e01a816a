//! `Authorization: Bearer <key>` → the key's scope, or 401.

use std::future::Future;
use std::pin::Pin;

use actix_web::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, web};
use recon_store::api_keys::{self, Scope};
use secrecy::SecretString;
use serde_json::json;

use crate::AppState;

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller(pub Scope);

/// Why a request is not authenticated (never says which part of a key was wrong).
#[derive(Debug)]
pub enum AuthError {
    Missing,
    Invalid,
    Unavailable,
}

impl std::fmt::Display for AuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AuthError::Missing => {
                "send an API key as `Authorization: Bearer <key>` (reconctl api-keys create)"
            }
            AuthError::Invalid => "the API key is unknown or revoked",
            AuthError::Unavailable => "keys cannot be checked right now; retry",
        })
    }
}

impl ResponseError for AuthError {
    fn error_response(&self) -> HttpResponse {
        let mut response = match self {
            AuthError::Unavailable => HttpResponse::ServiceUnavailable(),
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
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let key = presented.ok_or(AuthError::Missing)?;
            let state = state.ok_or(AuthError::Unavailable)?;
            match api_keys::authenticate(&state.pool, &key).await {
                Ok(Some(scope)) => Ok(Caller(scope)),
                Ok(None) => Err(AuthError::Invalid),
                Err(error) => {
                    tracing::error!(%error, "could not check an API key");
                    Err(AuthError::Unavailable)
                }
            }
        })
    }
}
