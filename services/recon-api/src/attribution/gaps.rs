//! `GET /v1/attribution/gaps`, `GET /v1/attribution/gaps/{id}`, and
//! `POST /v1/attribution/gaps/{id}/acknowledge|resolve` with `{"note": "..."}`.
//!
//! Every role reads the gaps of the accounts in its key's scope; a gap outside it
//! answers 404 exactly like one that does not exist, and gaps of unregistered
//! accounts (no account id) are seen only by keys scoped to every account. Whoever
//! may see a gap may acknowledge or resolve it: a partner fixing its integration, a
//! finance lead writing the share off. The actor recorded is `api-key:<prefix>`.
//! `recon_api_gap_actions_total{action, outcome}` counts what was asked and how it
//! ended (`changed`, `not_found`, `conflict`, `unavailable`).

use actix_web::{HttpRequest, HttpResponse, web};
use recon_store::api_keys::Capability;
use recon_store::attribution::gaps::{self, ActionError, Note, Scope};
use serde_json::{Value, json};

use super::params::{self, BadRequest};
use super::views;
use crate::AppState;
use crate::auth::{Caller, Forbidden};

/// The largest acknowledge or resolve body (a 2,000-character note, escaped, fits).
const MAX_ACTION_BODY: usize = 32 * 1024;

/// The key's account scope as the store sees it.
pub fn scope_of(caller: &Caller) -> Scope {
    match &caller.scope.accounts {
        None => Scope::All,
        Some(list) => Scope::Accounts(list.clone()),
    }
}

pub fn unavailable(error: &dyn std::fmt::Display) -> HttpResponse {
    tracing::error!(%error, "attribution query failed");
    HttpResponse::ServiceUnavailable().json(json!({
        "error": "unavailable",
        "message": "attribution data cannot be read right now; retry",
    }))
}

fn not_found() -> HttpResponse {
    HttpResponse::NotFound().json(json!({"error": "not_found", "message": "no such gap"}))
}

pub async fn list(
    caller: Caller,
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Forbidden> {
    caller.require(Capability::ReadLedger)?;
    let query = match params::gap_query(request.query_string()) {
        Ok(query) => query,
        Err(bad) => return Ok(bad.response()),
    };
    // An account outside the key's scope is answered as the report answers it: 404,
    // the same as an account that does not exist, not an empty page.
    if let Some(account) = &query.filter.account
        && !caller.scope.allows(account)
    {
        return Ok(HttpResponse::NotFound()
            .json(json!({"error": "not_found", "message": "no such account"})));
    }
    let page = gaps::list(
        &state.pool,
        &scope_of(&caller),
        &query.filter,
        query.limit,
        query.cursor.as_deref(),
    )
    .await;
    Ok(match page {
        Ok(Ok(page)) => HttpResponse::Ok().json(json!({
            "gaps": page.gaps.iter().map(views::gap).collect::<Vec<Value>>(),
            "nextCursor": page.next_cursor,
        })),
        Ok(Err(cursor)) => BadRequest::new("invalid_cursor", cursor.to_string()).response(),
        Err(error) => unavailable(&error),
    })
}

pub async fn get_one(
    caller: Caller,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Forbidden> {
    caller.require(Capability::ReadLedger)?;
    let Ok(id) = path.parse::<i64>() else {
        return Ok(not_found());
    };
    Ok(match gaps::get(&state.pool, &scope_of(&caller), id).await {
        Ok(Some((gap, events))) => HttpResponse::Ok().json(views::gap_with_events(&gap, &events)),
        Ok(None) => not_found(),
        Err(error) => unavailable(&error),
    })
}

pub async fn acknowledge(
    caller: Caller,
    path: web::Path<String>,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Forbidden> {
    act(
        caller,
        path,
        body,
        state,
        gaps::actions::Action::Acknowledge,
    )
    .await
}

pub async fn resolve(
    caller: Caller,
    path: web::Path<String>,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Forbidden> {
    act(caller, path, body, state, gaps::actions::Action::Resolve).await
}

async fn act(
    caller: Caller,
    path: web::Path<String>,
    body: web::Payload,
    state: web::Data<AppState>,
    action: gaps::actions::Action,
) -> Result<HttpResponse, Forbidden> {
    caller.require(Capability::ReadLedger)?;
    let Ok(id) = path.parse::<i64>() else {
        return Ok(not_found());
    };
    let note = match read_note(body).await {
        Ok(note) => note,
        Err(bad) => return Ok(bad.response()),
    };
    let actor = match actor(&state, caller.key_id).await {
        Ok(actor) => actor,
        Err(error) => return Ok(unavailable(&error)),
    };
    let scope = scope_of(&caller);
    let now = state.clock.now();
    let done = match action {
        gaps::actions::Action::Acknowledge => {
            gaps::acknowledge(&state.pool, id, &scope, &actor, &note, now).await
        }
        gaps::actions::Action::Resolve => {
            gaps::resolve(&state.pool, id, &scope, &actor, &note, now).await
        }
    };
    let action_name = match action {
        gaps::actions::Action::Acknowledge => "acknowledge",
        gaps::actions::Action::Resolve => "resolve",
    };
    let outcome = match &done {
        Ok(_) => "changed",
        Err(ActionError::NotFound) => "not_found",
        Err(ActionError::Conflict { .. }) => "conflict",
        Err(ActionError::Database(_)) => "unavailable",
    };
    metrics::counter!("recon_api_gap_actions_total", "action" => action_name, "outcome" => outcome)
        .increment(1);
    Ok(match done {
        Ok(gap) => {
            tracing::info!(gap = gap.id, status = %gap.status, %actor, "gap changed by a person");
            match gaps::get(&state.pool, &scope, id).await {
                Ok(Some((gap, events))) => {
                    HttpResponse::Ok().json(views::gap_with_events(&gap, &events))
                }
                Ok(None) => HttpResponse::Ok().json(views::gap(&gap)),
                Err(error) => unavailable(&error),
            }
        }
        Err(ActionError::NotFound) => not_found(),
        Err(ActionError::Conflict { status, message }) => HttpResponse::Conflict().json(json!({
            "error": "conflict",
            "status": status,
            "message": message,
        })),
        Err(ActionError::Database(error)) => unavailable(&error),
    })
}

/// `{"note": "..."}`, the note checked.
async fn read_note(body: web::Payload) -> Result<Note, BadRequest> {
    let bytes = body
        .to_bytes_limited(MAX_ACTION_BODY)
        .await
        .map_err(|_| {
            BadRequest::new(
                "body_too_large",
                format!(
                    "the body is larger than {MAX_ACTION_BODY} bytes; send {{\"note\": \"...\"}}"
                ),
            )
        })?
        .map_err(|_| {
            BadRequest::new(
                "unreadable_body",
                "the body could not be read; send it again",
            )
        })?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| {
        BadRequest::new(
            "invalid_json",
            "the body is not JSON; send {\"note\": \"why\"} with Content-Type: application/json",
        )
    })?;
    let Some(text) = value.get("note").and_then(Value::as_str) else {
        return Err(BadRequest::new(
            "missing_note",
            "send {\"note\": \"why\"}: a note is required (a string)",
        ));
    };
    Note::parse(text).map_err(|e| BadRequest::new("invalid_note", e.to_string()))
}

/// `api-key:<prefix>`: the key's public prefix, as `reconctl api-keys list` shows it.
async fn actor(state: &AppState, key_id: i64) -> Result<String, sqlx::Error> {
    let prefix: Option<String> =
        sqlx::query_scalar("SELECT key_prefix FROM api_keys WHERE id = $1")
            .bind(key_id)
            .fetch_optional(&state.pool)
            .await?;
    Ok(format!(
        "api-key:{}",
        prefix.unwrap_or_else(|| key_id.to_string())
    ))
}
