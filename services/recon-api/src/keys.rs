//! `GET /v1/api-keys` and `DELETE /v1/api-keys/{id or prefix}`: admin only. Keys are
//! created with `reconctl api-keys create` (a new secret is never sent over the API).

use actix_web::{HttpResponse, web};
use recon_store::StoreError;
use recon_store::api_keys::{self, Capability, KeyInfo};
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::{Caller, Forbidden};

/// A key as the API shows it: never the key or its hash.
pub fn describe(key: &KeyInfo) -> Value {
    json!({
        "id": key.id,
        "prefix": key.prefix,
        "role": key.role.as_str(),
        "accounts": key.accounts,
        "createdAt": key.created_at,
        "expiresAt": key.expires_at,
        "lastUsedAt": key.last_used_at,
        "revokedAt": key.revoked_at,
    })
}

/// Every key (admin only).
pub async fn list(caller: Caller, state: web::Data<AppState>) -> Result<HttpResponse, Forbidden> {
    caller.require(Capability::Manage)?;
    Ok(match api_keys::list(&state.pool).await {
        Ok(keys) => HttpResponse::Ok().json(json!({
            "keys": keys.iter().map(describe).collect::<Vec<_>>()
        })),
        Err(error) => unavailable(&error),
    })
}

/// Revokes a key by id or prefix (admin only); it answers 401 from the next request.
pub async fn revoke(
    caller: Caller,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Forbidden> {
    caller.require(Capability::Manage)?;
    Ok(match api_keys::revoke(&state.pool, &path).await {
        Ok(key) => HttpResponse::Ok().json(describe(&key)),
        Err(StoreError::Invalid(reason)) => HttpResponse::NotFound().json(json!({"error": reason})),
        Err(error) => unavailable(&error),
    })
}

fn unavailable(error: &StoreError) -> HttpResponse {
    tracing::error!(%error, "API key query failed");
    HttpResponse::ServiceUnavailable()
        .json(json!({"error": "keys cannot be read right now; retry"}))
}
