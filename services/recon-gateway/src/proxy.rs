//! The forwarding itself: `/v2/<path>` to `HELCIM_API_BASE_URL/<path>`, the request
//! unchanged but for the `partner-token` added when it has none, Helcim's answer back
//! unchanged. For payment requests, the evidence is spooled before the answer goes
//! back (one `write`), so an answered payment always has its evidence on disk.
//!
//! Nothing here logs a path, a query, a header value or a body: paths and queries can
//! hold card tokens, headers the API and partner tokens, bodies card data.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use futures::StreamExt;
use rand::RngCore;
use recon_store::lookup::LookupKey;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use crate::accounts::{AccountDirectory, Known, PartnerSource};
use crate::extract::Validity;
use crate::record::{Answer, Observation};
use crate::spool::Spool;
use crate::{endpoint, headers, metrics, record};

/// What every request shares.
#[derive(Debug)]
pub struct Gateway {
    /// `HELCIM_API_BASE_URL` without a trailing `/`.
    pub base_url: String,
    pub accounts: Arc<AccountDirectory>,
    /// Current first.
    pub lookup_keys: Vec<LookupKey>,
    /// `HELCIM_PARTNER_TOKEN`.
    pub default_partner_token: Option<SecretString>,
    pub spool: Arc<Spool>,
    pub max_body_bytes: usize,
    pub upstream_timeout: Duration,
}

/// The client used to reach Helcim: no redirect followed (an answer comes back as
/// Helcim sent it), no decompression (reqwest is built without it: the bytes come back
/// as sent), no retry (a payment is never repeated by the gateway).
pub fn upstream_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(60))
        .build()
        .expect("a client with these settings builds")
}

/// The path of `url` (as sent) under `base_url`, or `None` when it is not under it.
pub fn sent_path<'a>(url: &'a str, base_url: &str) -> Option<&'a str> {
    let rest = url.strip_prefix(base_url)?;
    let path = rest.split(['?', '#']).next().unwrap_or_default();
    (path.is_empty() || path.starts_with('/')).then_some(path)
}

/// The path under `/v2` (`/payment/purchase`), or `None` for any other path.
pub fn upstream_path(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/v2")?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

enum Failure {
    Unreachable(String),
    Timeout,
}

/// Every request that is not one of the gateway's own endpoints.
pub async fn forward(
    req: HttpRequest,
    payload: web::Payload,
    gateway: web::Data<Gateway>,
    client: web::Data<reqwest::Client>,
) -> HttpResponse {
    let started = Instant::now();
    let Some(rest) = upstream_path(req.path()) else {
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            "recon-gateway forwards only paths under /v2/ to Helcim's API (e.g. POST \
             /v2/payment/purchase); its own endpoints are /healthz, /readyz and /metrics",
        );
    };
    let mut url = format!("{}{rest}", gateway.base_url);
    if let Some(query) = req.uri().query() {
        url.push('?');
        url.push_str(query);
    }
    let Ok(url) = reqwest::Url::parse(&url) else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_path",
            "the path and query do not form a URL under HELCIM_API_BASE_URL",
        );
    };
    // Classified as sent: the URL parser resolves dot segments (`/payment/x/../purchase`
    // is sent as `/payment/purchase`), and a payment must not go out without evidence.
    let Some(sent) = sent_path(url.as_str(), &gateway.base_url) else {
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            "the path leaves /v2/ once its dot segments (`..`) are resolved; recon-gateway \
             forwards only paths under /v2/ to Helcim's API",
        );
    };
    let payment = endpoint::classify(req.method().as_str(), sent);
    let label = payment.unwrap_or(endpoint::OTHER);
    let body = match read_body(payload, gateway.max_body_bytes).await {
        Ok(body) => body,
        Err(response) => {
            ::metrics::counter!(metrics::REQUESTS, "endpoint" => label, "outcome" => "too_large")
                .increment(1);
            return response;
        }
    };
    let Ok(method) = reqwest::Method::from_bytes(req.method().as_str().as_bytes()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_method",
            "the method is not one HTTP allows",
        );
    };

    let api_token = req
        .headers()
        .get("api-token")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let fingerprints: Vec<String> = api_token
        .map(|t| {
            gateway
                .lookup_keys
                .iter()
                .map(|k| k.fingerprint(t))
                .collect()
        })
        .unwrap_or_default();
    let known = gateway.accounts.find(&fingerprints).await;
    let partner_token_sent = req
        .headers()
        .get_all("partner-token")
        .any(|v| !v.as_bytes().trim_ascii().is_empty());
    let added = if partner_token_sent {
        None
    } else {
        partner_token_to_add(known.as_deref(), gateway.default_partner_token.as_ref())
    };
    ::metrics::counter!(
        metrics::PARTNER_TOKENS_ADDED,
        "endpoint" => label,
        "source" => match (partner_token_sent, &added) {
            (true, _) => "sent",
            (false, Some((_, source))) => source,
            (false, None) => "none",
        }
    )
    .increment(1);

    let mut upstream_headers = reqwest::header::HeaderMap::new();
    let received: Vec<(&str, &[u8])> = req
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_bytes()))
        .collect();
    for (name, value) in headers::end_to_end(received.iter().copied()) {
        if added.is_some() && name.eq_ignore_ascii_case("partner-token") {
            continue; // an empty one, replaced below
        }
        if let (Ok(name), Ok(value)) = (
            reqwest::header::HeaderName::from_bytes(name.as_bytes()),
            reqwest::header::HeaderValue::from_bytes(value),
        ) {
            upstream_headers.append(name, value);
        }
    }
    if let Some((token, _)) = &added {
        match reqwest::header::HeaderValue::from_str(token.expose_secret()) {
            Ok(mut value) => {
                value.set_sensitive(true);
                upstream_headers.insert("partner-token", value);
            }
            Err(_) => tracing::error!(
                "the partner token to add is not a valid header value; forwarded without it"
            ),
        }
    }

    let upstream_started = Instant::now();
    let answer = async {
        let response = client
            .request(method, url)
            .headers(upstream_headers)
            .body(body.clone())
            .timeout(gateway.upstream_timeout)
            .send()
            .await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await?;
        Ok::<_, reqwest::Error>((status, headers, bytes))
    }
    .await
    .map_err(|e| {
        if e.is_timeout() {
            Failure::Timeout
        } else {
            Failure::Unreachable(describe(&e))
        }
    });
    let upstream_elapsed = upstream_started.elapsed();
    ::metrics::histogram!(metrics::UPSTREAM_SECONDS, "endpoint" => label)
        .record(upstream_elapsed.as_secs_f64());

    let validity = match &answer {
        Ok((_, headers, _)) => {
            let value = headers.get("is-valid-partner-token").map(|v| v.as_bytes());
            let validity = Validity::parse(value);
            if validity == Validity::Unexpected {
                tracing::warn!(
                    endpoint = label,
                    // Helcim's answer, not a secret; shortened in case it is junk.
                    value = %String::from_utf8_lossy(value.map_or(&[][..], |v| &v[..v.len().min(16)])),
                    "Helcim's is-valid-partner-token is neither 1 nor 0; recorded as absent"
                );
            }
            if validity != Validity::Absent || payment.is_some() {
                ::metrics::counter!(metrics::PARTNER_TOKEN_ANSWERS, "endpoint" => label, "answer" => validity.label())
                    .increment(1);
            }
            validity
        }
        Err(_) => Validity::Absent,
    };

    if let (Some(endpoint), Some(current_key), Some(fingerprint)) =
        (payment, gateway.lookup_keys.first(), fingerprints.first())
    {
        let request_id = request_id();
        let observation = Observation {
            endpoint,
            lookup_key: current_key,
            token_fingerprint: fingerprint,
            account_id: known.as_ref().map(|k| k.account_id.as_str()),
            idempotency_key: req
                .headers()
                .get("idempotency-key")
                .and_then(|v| v.to_str().ok()),
            body: &body,
            request_id: &request_id,
            partner_token_sent,
            partner_token_added: added.is_some(),
            answer: match &answer {
                Ok((status, _, bytes)) => Answer::Answered {
                    status: *status,
                    validity,
                    body: bytes,
                },
                Err(Failure::Unreachable(_)) => Answer::Unreachable,
                Err(Failure::Timeout) => Answer::Timeout,
            },
            observed_at: chrono::Utc::now(),
        };
        let spooling = Instant::now();
        gateway.spool.append(&record::evidence(&observation));
        ::metrics::histogram!(metrics::SPOOL_APPEND_SECONDS)
            .record(spooling.elapsed().as_secs_f64());
        if known.is_none() {
            ::metrics::counter!(metrics::UNREGISTERED, "endpoint" => endpoint).increment(1);
        }
    }

    let outcome = match &answer {
        Ok((status, _, _)) => metrics::status_class(*status),
        Err(Failure::Unreachable(_)) => "unreachable",
        Err(Failure::Timeout) => "timeout",
    };
    let response = match answer {
        Ok((status, upstream_headers, bytes)) => relay(status, &upstream_headers, bytes),
        Err(Failure::Unreachable(reason)) => error(
            StatusCode::BAD_GATEWAY,
            "helcim_unreachable",
            &format!(
                "Helcim's API could not be reached ({reason}); the request may not have \
                 reached Helcim: retry it with the same idempotency-key"
            ),
        ),
        Err(Failure::Timeout) => error(
            StatusCode::GATEWAY_TIMEOUT,
            "helcim_timeout",
            &format!(
                "Helcim did not answer within {:?} (GATEWAY_UPSTREAM_TIMEOUT); the payment \
                 may have been made: retry with the same idempotency-key to get its answer",
                gateway.upstream_timeout
            ),
        ),
    };
    let added_time = started.elapsed().saturating_sub(upstream_elapsed);
    ::metrics::histogram!(metrics::ADDED_SECONDS).record(added_time.as_secs_f64());
    ::metrics::counter!(metrics::REQUESTS, "endpoint" => label, "outcome" => outcome).increment(1);
    let account = known
        .as_ref()
        .map_or("unregistered", |k| k.account_id.as_str());
    let partner_token = match (partner_token_sent, &added) {
        (true, _) => "sent",
        (false, Some((_, source))) => source,
        (false, None) => "none",
    };
    if payment.is_some() {
        tracing::info!(
            endpoint = label,
            account,
            outcome,
            status = response.status().as_u16(),
            partner_token,
            is_valid_partner_token = validity.label(),
            upstream_ms = upstream_elapsed.as_millis() as u64,
            added_us = added_time.as_micros() as u64,
            "payment request forwarded"
        );
    } else {
        tracing::debug!(
            endpoint = label,
            outcome,
            upstream_ms = upstream_elapsed.as_millis() as u64,
            "request forwarded"
        );
    }
    response
}

/// The partner token to add to a request that has none: the account's own, else its
/// referrer's, else `HELCIM_PARTNER_TOKEN`.
pub fn partner_token_to_add<'a>(
    known: Option<&'a Known>,
    default: Option<&'a SecretString>,
) -> Option<(&'a SecretString, &'static str)> {
    match known.and_then(|k| k.partner_token.as_ref()) {
        Some((token, PartnerSource::Account)) => Some((token, "account")),
        Some((token, PartnerSource::Referrer)) => Some((token, "referrer")),
        None => default.map(|t| (t, "default")),
    }
}

/// Helcim's answer, as sent but for hop-by-hop headers and framing.
fn relay(status: u16, headers: &reqwest::header::HeaderMap, body: web::Bytes) -> HttpResponse {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut response = HttpResponse::build(status);
    let received: Vec<(&str, &[u8])> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_bytes()))
        .collect();
    for (name, value) in headers::end_to_end(received.iter().copied()) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value),
        ) {
            response.append_header((name, value));
        }
    }
    response.body(body)
}

async fn read_body(mut payload: web::Payload, limit: usize) -> Result<web::Bytes, HttpResponse> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            error(
                StatusCode::BAD_REQUEST,
                "bad_body",
                &format!("the request body could not be read ({e})"),
            )
        })?;
        if body.len() + chunk.len() > limit {
            return Err(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                &format!(
                    "the request body is larger than {limit} bytes (GATEWAY_MAX_BODY_BYTES); \
                     Helcim's requests are far smaller, so it was not forwarded"
                ),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Why Helcim could not be reached, without the URL (which is ours, but needless).
fn describe(error: &reqwest::Error) -> String {
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(error);
    let mut deepest = None;
    while let Some(cause) = source {
        deepest = Some(cause.to_string());
        source = cause.source();
    }
    let kind = if error.is_connect() {
        "connection failed"
    } else if error.is_body() || error.is_decode() {
        "the answer was cut off"
    } else if error.is_request() {
        "the request failed"
    } else {
        "error"
    };
    match deepest {
        Some(cause) => format!("{kind}: {cause}"),
        None => kind.to_string(),
    }
}

fn request_id() -> String {
    let mut bytes = [0_u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn error(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({"error": code, "message": message}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_v2_and_below_is_forwarded() {
        assert_eq!(
            upstream_path("/v2/payment/purchase"),
            Some("/payment/purchase")
        );
        assert_eq!(upstream_path("/v2"), Some(""));
        assert_eq!(upstream_path("/v2/"), Some("/"));
        assert_eq!(upstream_path("/v2x/payment"), None);
        assert_eq!(upstream_path("/v1/payment"), None);
        assert_eq!(upstream_path("/healthz"), None);
    }

    #[test]
    fn a_payment_is_classified_by_the_path_sent_once_dot_segments_are_resolved() {
        let base = "https://api.helcim.com/v2";
        let sent = |rest: &str| {
            let url = reqwest::Url::parse(&format!("{base}{rest}")).unwrap();
            sent_path(url.as_str(), base).map(str::to_string)
        };
        assert_eq!(
            sent("/payment/purchase?x=1").as_deref(),
            Some("/payment/purchase")
        );
        assert_eq!(
            sent("/payment/x/../purchase").as_deref(),
            Some("/payment/purchase")
        );
        assert_eq!(
            sent("/payment/x/%2e%2E/purchase").as_deref(),
            Some("/payment/purchase")
        );
        assert_eq!(
            sent("/./payment/./refund").as_deref(),
            Some("/payment/refund")
        );
        assert_eq!(sent("").as_deref(), Some(""));
        assert_eq!(sent("?a=b").as_deref(), Some(""));
        assert_eq!(sent("/../admin"), None, "out of /v2");
        assert_eq!(sent("/%2e%2e/v2x/payment/purchase"), None);
    }

    #[test]
    fn the_partner_token_added_is_the_accounts_else_the_referrers_else_the_default() {
        let default = SecretString::from("default-token".to_string());
        let own = Known {
            account_id: "m1".into(),
            partner_token: Some((
                SecretString::from("own".to_string()),
                PartnerSource::Account,
            )),
        };
        let referred = Known {
            account_id: "m2".into(),
            partner_token: Some((
                SecretString::from("ref".to_string()),
                PartnerSource::Referrer,
            )),
        };
        let bare = Known {
            account_id: "m3".into(),
            partner_token: None,
        };
        let pick = |k: Option<&Known>, d: Option<&SecretString>| {
            partner_token_to_add(k, d).map(|(t, s)| (t.expose_secret().to_string(), s))
        };
        assert_eq!(
            pick(Some(&own), Some(&default)),
            Some(("own".into(), "account"))
        );
        assert_eq!(
            pick(Some(&referred), Some(&default)),
            Some(("ref".into(), "referrer"))
        );
        assert_eq!(
            pick(Some(&bare), Some(&default)),
            Some(("default-token".into(), "default"))
        );
        assert_eq!(
            pick(None, Some(&default)),
            Some(("default-token".into(), "default"))
        );
        assert_eq!(pick(Some(&bare), None), None);
    }
}
