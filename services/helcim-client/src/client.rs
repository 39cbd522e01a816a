//! [`HelcimClient`]: the typed calls. How one call is sent, limited, retried and its
//! answer classified lives in [`http`].

mod http;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use url::Url;

use crate::model::{CardBatch, CardBatchId, CardTransaction, FieldError, TransactionId};
use crate::query::{BatchQuery, MAX_PAGE_SIZE, TransactionQuery};
use crate::{
    AccountLimiter, AccountLimits, ApiToken, Fetched, HelcimError, RawAnswer, RetryPolicy,
};

/// Helcim's production API.
pub const DEFAULT_BASE_URL: &str = "https://api.helcim.com/v2";

/// The longest a `Retry-After` may make a call wait: a larger value (a misbehaving
/// proxy, or `Retry-After: 100000`) is cut to this so one answer cannot stall a worker.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Everything a [`HelcimClient`] needs.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Up to and including `/v2`, e.g. `https://api.helcim.com/v2`.
    pub base_url: Url,
    pub token: ApiToken,
    pub retry: RetryPolicy,
    /// The account's limiter. Clients of the same merchant account must share one;
    /// `None` makes a fresh one with [`AccountLimits::HELCIM`].
    pub limiter: Option<Arc<AccountLimiter>>,
    /// The cap on a server's `Retry-After` ([`MAX_RETRY_AFTER`] unless changed).
    pub max_retry_after: Duration,
}

impl ClientConfig {
    pub fn new(base_url: &str, token: ApiToken) -> Result<Self, HelcimError> {
        Ok(ClientConfig {
            base_url: Self::check_base_url(base_url)?,
            token,
            retry: RetryPolicy::default(),
            limiter: None,
            max_retry_after: MAX_RETRY_AFTER,
        })
    }

    /// Parses and checks `HELCIM_API_BASE_URL` (a URL paths can be appended to; https,
    /// or http to this machine only), so a service can refuse a bad one at startup.
    pub fn check_base_url(base_url: &str) -> Result<Url, HelcimError> {
        let base_url = Url::parse(base_url).map_err(|e| {
            HelcimError::Configuration(format!(
                "HELCIM_API_BASE_URL {base_url:?} is not a URL ({e}); it should look like \
                 {DEFAULT_BASE_URL}"
            ))
        })?;
        if base_url.cannot_be_a_base() {
            return Err(HelcimError::Configuration(format!(
                "HELCIM_API_BASE_URL {base_url} cannot have paths appended"
            )));
        }
        check_transport(&base_url)?;
        Ok(base_url)
    }

    /// Changes the cap on `Retry-After` (tests use a short one).
    pub fn with_max_retry_after(mut self, cap: Duration) -> Self {
        self.max_retry_after = cap;
        self
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn with_limiter(mut self, limiter: Arc<AccountLimiter>) -> Self {
        self.limiter = Some(limiter);
        self
    }

    pub fn with_limits(self, limits: AccountLimits) -> Self {
        self.with_limiter(Arc::new(AccountLimiter::new(limits)))
    }
}

/// The API token travels in a header on every request, so it may only cross the
/// network encrypted: `https` always, plain `http` only to this machine (`localhost`,
/// `127.0.0.0/8`, `::1`), where the simulator runs in tests, `make run` and benchmarks.
fn check_transport(base_url: &Url) -> Result<(), HelcimError> {
    match base_url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(base_url) => Ok(()),
        "http" => Err(HelcimError::Configuration(format!(
            "HELCIM_API_BASE_URL {base_url} uses plain http to a host that is not this \
             machine; the API token would cross the network unencrypted. Use https \
             (production: {DEFAULT_BASE_URL}); http is accepted only for localhost, \
             127.0.0.0/8 and ::1"
        ))),
        other => Err(HelcimError::Configuration(format!(
            "HELCIM_API_BASE_URL {base_url} has scheme {other:?}; use https, e.g. \
             {DEFAULT_BASE_URL}"
        ))),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// The result of a list call: every object that could be read, and every one that
/// could not (with its raw JSON and the reason), so nothing is silently dropped.
#[derive(Debug, Clone, PartialEq)]
pub struct Listing<T> {
    pub items: Vec<T>,
    pub unreadable: Vec<Unreadable>,
}

/// A listed object that did not read as the type expected.
#[derive(Debug, Clone, PartialEq)]
pub struct Unreadable {
    pub raw: Value,
    pub reason: FieldError,
}

/// A client for one Helcim merchant account (one API token).
#[derive(Debug, Clone)]
pub struct HelcimClient {
    http: reqwest::Client,
    base_url: Url,
    token: ApiToken,
    limiter: Arc<AccountLimiter>,
    retry: RetryPolicy,
    max_retry_after: Duration,
}

impl HelcimClient {
    pub fn new(config: ClientConfig) -> Result<Self, HelcimError> {
        let http = reqwest::Client::builder()
            .timeout(config.retry.request_timeout)
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("helcim-recon/", env!("CARGO_PKG_VERSION")))
            // A redirect would resend the `api-token` header to wherever it points
            // (reqwest strips only `Authorization` and cookies across hosts). Helcim's
            // API does not redirect, so a 3xx is reported as an error instead.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| HelcimError::Configuration(format!("HTTP client: {e}")))?;
        Ok(HelcimClient {
            http,
            base_url: config.base_url,
            token: config.token,
            limiter: config
                .limiter
                .unwrap_or_else(|| Arc::new(AccountLimiter::new(AccountLimits::HELCIM))),
            retry: config.retry,
            max_retry_after: config.max_retry_after,
        })
    }

    /// The limiter this client spends from (shared with the account's other clients).
    pub fn limiter(&self) -> &Arc<AccountLimiter> {
        &self.limiter
    }

    /// `GET /connection-test`: succeeds when the token is accepted.
    pub async fn connection_test(&self) -> Result<(), HelcimError> {
        self.get(&["connection-test"], &[], "the connection test")
            .await
            .map(|_| ())
    }

    /// `GET /card-transactions/{id}`, with when the request was sent. An answer that
    /// does not read as a transaction is a [`HelcimError::Unreadable`] carrying the body.
    pub async fn card_transaction(
        &self,
        id: TransactionId,
    ) -> Result<Fetched<CardTransaction>, HelcimError> {
        let what = format!("card transaction {id}");
        let answer = self
            .get(&["card-transactions", &id.to_string()], &[], &what)
            .await?;
        read_one(answer, what, CardTransaction::from_json)
    }

    /// One page of `GET /card-transactions` (pages count from 1).
    pub async fn card_transactions_page(
        &self,
        query: &TransactionQuery,
        page: u32,
    ) -> Result<Listing<CardTransaction>, HelcimError> {
        if query.limit == 0 || query.limit > MAX_PAGE_SIZE {
            return Err(HelcimError::Configuration(format!(
                "page size {} is outside Helcim's 1..={MAX_PAGE_SIZE}",
                query.limit
            )));
        }
        let what = format!("card transactions page {page}");
        let answer = self
            .get(&["card-transactions"], &query.params(page), &what)
            .await?;
        read_list(answer.json, &what, CardTransaction::from_json)
    }

    /// Every page of `GET /card-transactions`, until a page is shorter than the limit
    /// (Helcim documents no total or ordering).
    pub async fn card_transactions(
        &self,
        query: &TransactionQuery,
    ) -> Result<Listing<CardTransaction>, HelcimError> {
        let mut all = Listing {
            items: Vec::new(),
            unreadable: Vec::new(),
        };
        let mut seen = HashSet::new();
        for page in 1.. {
            let listing = self.card_transactions_page(query, page).await?;
            let page_len = listing.items.len() + listing.unreadable.len();
            let new_ids = listing.items.iter().filter(|tx| seen.insert(tx.id)).count();
            if page_len > 0 && new_ids == 0 && listing.unreadable.is_empty() {
                // A server that ignores `page` would otherwise be read forever.
                return Err(HelcimError::Decode {
                    what: format!("card transactions page {page}"),
                    reason: "the page repeats transactions already listed; paging stopped".into(),
                });
            }
            all.items.extend(listing.items);
            all.unreadable.extend(listing.unreadable);
            if page_len < query.limit as usize {
                break;
            }
        }
        Ok(all)
    }

    /// `GET /card-batches/{id}?collect-stats=true`, with when the request was sent. An
    /// answer that does not read as a batch is a [`HelcimError::Unreadable`] carrying
    /// the body.
    pub async fn card_batch(&self, id: CardBatchId) -> Result<Fetched<CardBatch>, HelcimError> {
        let what = format!("card batch {id}");
        let params = [("collect-stats", "true".to_string())];
        let answer = self
            .get(&["card-batches", &id.to_string()], &params, &what)
            .await?;
        read_one(answer, what, CardBatch::from_json)
    }

    /// `GET /card-batches?collect-stats=true` with the query's filters.
    pub async fn card_batches(
        &self,
        query: &BatchQuery,
    ) -> Result<Listing<CardBatch>, HelcimError> {
        let what = "card batches".to_string();
        let answer = self.get(&["card-batches"], &query.params(), &what).await?;
        read_list(answer.json, &what, CardBatch::from_json)
    }
}

fn read_one<T>(
    answer: http::Answer,
    what: String,
    read: fn(Value) -> Result<T, FieldError>,
) -> Result<Fetched<T>, HelcimError> {
    let http::Answer {
        json,
        body,
        sent_at,
    } = answer;
    match read(json) {
        Ok(value) => Ok(Fetched { value, sent_at }),
        Err(reason) => Err(HelcimError::Unreadable {
            what,
            reason: reason.to_string(),
            answer: RawAnswer { body, sent_at },
        }),
    }
}

fn read_list<T>(
    body: Value,
    what: &str,
    read: fn(Value) -> Result<T, FieldError>,
) -> Result<Listing<T>, HelcimError> {
    let Value::Array(entries) = body else {
        return Err(HelcimError::Decode {
            what: what.to_string(),
            reason: "expected a JSON list".into(),
        });
    };
    let mut listing = Listing {
        items: Vec::with_capacity(entries.len()),
        unreadable: Vec::new(),
    };
    for raw in entries {
        match read(raw.clone()) {
            Ok(item) => listing.items.push(item),
            Err(reason) => listing.unreadable.push(Unreadable { raw, reason }),
        }
    }
    Ok(listing)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(base: &str) -> Result<ClientConfig, HelcimError> {
        ClientConfig::new(base, ApiToken::new("a-test-token").unwrap())
    }

    #[test]
    fn plain_http_is_accepted_only_for_this_machine() {
        for local in [
            "http://127.0.0.1:8081/v2",
            "http://127.9.9.9/v2",
            "http://localhost:1/v2",
            "http://[::1]:8081/v2",
            "https://api.helcim.com/v2",
        ] {
            assert!(config(local).is_ok(), "{local}");
        }
        for remote in [
            "http://api.helcim.com/v2",
            "http://10.0.0.5/v2",
            "http://localhost.evil.example/v2",
            "ftp://api.helcim.com/v2",
        ] {
            let error = config(remote).unwrap_err().to_string();
            assert!(
                error.contains("use https") || error.contains("Use https"),
                "{error}"
            );
        }
    }
}
