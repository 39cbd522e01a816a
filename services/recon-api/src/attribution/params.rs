//! Query strings of the attribution endpoints, read strictly: an unknown or repeated
//! parameter is refused rather than ignored (a misspelt filter would otherwise list
//! every gap and look like an answer), and each bad value gets a 400 that says what
//! is expected. An empty value (`month=`) counts as not given.

use std::collections::BTreeMap;

use actix_web::HttpResponse;
use recon_attribution::{GapClass, GapStatus, Month};
use recon_store::attribution::gaps::{DEFAULT_LIMIT, GapFilter, MAX_LIMIT};
use serde_json::json;

/// A request refused before any database work: 400 with a code and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRequest {
    pub code: &'static str,
    pub message: String,
}

impl BadRequest {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        BadRequest {
            code,
            message: message.into(),
        }
    }

    pub fn response(&self) -> HttpResponse {
        HttpResponse::BadRequest().json(json!({"error": self.code, "message": self.message}))
    }
}

/// The parameters of a query string, each at most once, all among `allowed`.
pub fn read(query: &str, allowed: &[&str]) -> Result<BTreeMap<String, String>, BadRequest> {
    let mut out = BTreeMap::new();
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        if !allowed.contains(&name.as_ref()) {
            let shown: String = name.chars().take(32).collect();
            return Err(BadRequest::new(
                "unknown_parameter",
                format!(
                    "unknown query parameter {shown:?}; this endpoint takes {}",
                    allowed.join(", ")
                ),
            ));
        }
        if out.insert(name.to_string(), value.to_string()).is_some() {
            return Err(BadRequest::new(
                "repeated_parameter",
                format!("give `{name}` at most once"),
            ));
        }
    }
    out.retain(|_, value| !value.trim().is_empty());
    Ok(out)
}

pub fn month(value: &str) -> Result<Month, BadRequest> {
    value
        .trim()
        .parse()
        .map_err(|e: recon_attribution::month::MonthError| {
            BadRequest::new("invalid_month", e.to_string())
        })
}

/// `month`, required.
pub fn required_month(params: &BTreeMap<String, String>) -> Result<Month, BadRequest> {
    match params.get("month") {
        Some(value) => month(value),
        None => Err(BadRequest::new(
            "missing_month",
            "give the month as `month=YYYY-MM` (for example month=2026-11)",
        )),
    }
}

/// What `GET /v1/attribution/gaps` asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GapQuery {
    pub filter: GapFilter,
    pub limit: u32,
    pub cursor: Option<String>,
}

pub const GAP_PARAMETERS: &[&str] = &["month", "account", "class", "status", "limit", "cursor"];

pub fn gap_query(query: &str) -> Result<GapQuery, BadRequest> {
    let params = read(query, GAP_PARAMETERS)?;
    let filter = GapFilter {
        month: params.get("month").map(|m| month(m)).transpose()?,
        account: params.get("account").map(|a| a.trim().to_string()),
        class: params
            .get("class")
            .map(|c| c.trim().parse::<GapClass>())
            .transpose()
            .map_err(|e| BadRequest::new("invalid_class", e.to_string()))?,
        status: params
            .get("status")
            .map(|s| s.trim().parse::<GapStatus>())
            .transpose()
            .map_err(|e| BadRequest::new("invalid_status", e.to_string()))?,
    };
    let limit = match params.get("limit") {
        None => DEFAULT_LIMIT,
        Some(text) => text
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                BadRequest::new(
                    "invalid_limit",
                    format!(
                        "limit must be a whole number from 1 to {MAX_LIMIT} (default \
                         {DEFAULT_LIMIT}), not {:?}",
                        text.chars().take(32).collect::<String>()
                    ),
                )
            })?,
    };
    Ok(GapQuery {
        filter,
        limit,
        cursor: params.get("cursor").cloned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_gap_query_is_read() {
        let q = gap_query(
            "month=2026-11&account=acct-a&class=token_missing&status=open&limit=5&cursor=abc",
        )
        .unwrap();
        assert_eq!(q.filter.month, Month::new(2026, 11));
        assert_eq!(q.filter.account.as_deref(), Some("acct-a"));
        assert_eq!(q.filter.class, Some(GapClass::TokenMissing));
        assert_eq!(q.filter.status, Some(GapStatus::Open));
        assert_eq!((q.limit, q.cursor.as_deref()), (5, Some("abc")));
        let empty = gap_query("month=&class=").unwrap();
        assert_eq!((empty.filter, empty.limit), (GapFilter::default(), 100));
    }

    #[test]
    fn each_bad_value_is_refused_with_its_own_reason() {
        let code = |q: &str| gap_query(q).unwrap_err().code;
        assert_eq!(code("month=2026-13"), "invalid_month");
        assert_eq!(code("month=Nov"), "invalid_month");
        assert_eq!(code("class=lost"), "invalid_class");
        assert_eq!(code("status=closed"), "invalid_status");
        assert_eq!(code("limit=0"), "invalid_limit");
        assert_eq!(code("limit=1001"), "invalid_limit");
        assert_eq!(code("limit=ten"), "invalid_limit");
        assert_eq!(code("mnth=2026-11"), "unknown_parameter");
        assert_eq!(code("month=2026-11&month=2026-10"), "repeated_parameter");
        let class = gap_query("class=lost").unwrap_err().message;
        assert!(class.contains("token_rejected, token_missing"), "{class}");
    }
}
