//! `GET /v1/attribution/report?month=YYYY-MM[&account=]` (JSON, or CSV with
//! `Accept: text/csv`) and `GET /v1/attribution/report/notes?month=YYYY-MM[&account=]`.
//!
//! Once the month is frozen the stored document is served byte for byte with
//! `ETag: "<sha256>"` (a key that sees several accounts but not all gets the stored
//! whole-month document restricted to them, rendered deterministically, with the hash
//! of those bytes); before, the live report. `Recon-Post-Close-Notes` counts what
//! happened to the month's gaps after its close (listed by `/report/notes`), which a
//! frozen report never shows. `account` outside the key's scope, or not registered,
//! answers 404 alike.

use actix_web::http::header::{
    ACCEPT, CACHE_CONTROL, CONTENT_TYPE, ETAG, EntityTag, IF_NONE_MATCH, VARY,
};
use actix_web::{HttpRequest, HttpResponse, web};
use recon_attribution::Month;
use recon_store::api_keys::Capability;
use recon_store::attribution::documents::{self, Format};
use recon_store::attribution::gaps::{self as store_gaps, Scope};
use serde_json::{Value, json};

use super::gaps::{scope_of, unavailable};
use super::params;
use super::views;
use crate::AppState;
use crate::auth::{Caller, Forbidden};

/// The header counting post-close notes.
pub const POST_CLOSE_NOTES: &str = "Recon-Post-Close-Notes";

const PARAMETERS: &[&str] = &["month", "account"];

/// CSV when the client lists `text/csv` (with a non-zero q) in `Accept`; JSON
/// otherwise.
pub fn wants_csv(accept: Option<&str>) -> bool {
    accept.is_some_and(|accept| {
        accept.split(',').any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let media = parts.next().unwrap_or_default();
            let zero = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            media.eq_ignore_ascii_case("text/csv") && !zero
        })
    })
}

/// The month and the scope asked for, or the answer that refuses them.
async fn month_and_scope(
    caller: &Caller,
    request: &HttpRequest,
    state: &AppState,
) -> Result<(Month, Scope), HttpResponse> {
    let params = params::read(request.query_string(), PARAMETERS).map_err(|b| b.response())?;
    let month = params::required_month(&params).map_err(|b| b.response())?;
    let Some(account) = params.get("account").map(|a| a.trim().to_string()) else {
        return Ok((month, scope_of(caller)));
    };
    let no_account = || {
        HttpResponse::NotFound().json(json!({"error": "not_found", "message": "no such account"}))
    };
    if !caller.scope.allows(&account) {
        return Err(no_account());
    }
    let known: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM accounts WHERE account_id = $1)")
            .bind(&account)
            .fetch_one(&state.pool)
            .await
            .map_err(|e| unavailable(&e))?;
    if !known {
        return Err(no_account());
    }
    Ok((month, Scope::Accounts(vec![account])))
}

pub async fn get(
    caller: Caller,
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Forbidden> {
    caller.require(Capability::ReadLedger)?;
    let (month, scope) = match month_and_scope(&caller, &request, &state).await {
        Ok(found) => found,
        Err(response) => return Ok(response),
    };
    let csv = wants_csv(request.headers().get(ACCEPT).and_then(|v| v.to_str().ok()));
    let format = if csv { Format::Csv } else { Format::Json };
    let now = state.clock.now();
    let document =
        match documents::report(&state.pool, state.calendar, month, &scope, format, now).await {
            Ok(document) => document,
            Err(error) => return Ok(unavailable(&error)),
        };
    let notes = match documents::post_close_note_count(&state.pool, month, &scope).await {
        Ok(n) => n,
        Err(error) => return Ok(unavailable(&error)),
    };
    let content_type = if csv {
        "text/csv; charset=utf-8"
    } else {
        "application/json"
    };
    let mut unchanged = false;
    let mut response = if document.frozen {
        let tag = EntityTag::new_strong(document.sha256.clone());
        unchanged = request
            .headers()
            .get(IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(',')
                    .any(|t| t.trim() == tag.to_string() || t.trim() == "*")
            });
        let mut response = if unchanged {
            HttpResponse::NotModified()
        } else {
            HttpResponse::Ok()
        };
        response.insert_header((ETAG, tag));
        response.insert_header((CACHE_CONTROL, "private, no-cache"));
        response
    } else {
        let mut response = HttpResponse::Ok();
        response.insert_header((CACHE_CONTROL, "no-store"));
        response
    };
    response.insert_header((VARY, "Accept"));
    response.insert_header((POST_CLOSE_NOTES, notes.to_string()));
    response.insert_header((CONTENT_TYPE, content_type));
    Ok(if unchanged {
        response.finish()
    } else {
        response.body(document.body)
    })
}

pub async fn notes(
    caller: Caller,
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Forbidden> {
    caller.require(Capability::ReadLedger)?;
    let (month, scope) = match month_and_scope(&caller, &request, &state).await {
        Ok(found) => found,
        Err(response) => return Ok(response),
    };
    Ok(
        match store_gaps::post_close_notes(&state.pool, month, &scope).await {
            Ok(notes) => HttpResponse::Ok().json(json!({
                "month": month,
                "notes": notes.iter().map(views::note).collect::<Vec<Value>>(),
            })),
            Err(error) => unavailable(&error),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_only_when_asked_for() {
        assert!(wants_csv(Some("text/csv")));
        assert!(wants_csv(Some("application/json;q=0.5, TEXT/CSV")));
        assert!(!wants_csv(Some("text/csv;q=0")));
        assert!(!wants_csv(Some("application/json")));
        assert!(!wants_csv(Some("*/*")));
        assert!(!wants_csv(None));
    }

    #[test]
    fn the_month_is_required() {
        let bad = params::required_month(&Default::default()).unwrap_err();
        assert_eq!(bad.code, "missing_month");
        assert!(bad.message.contains("month=YYYY-MM"), "{}", bad.message);
    }
}
