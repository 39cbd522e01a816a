//! What a connection pool is told: the URL, read without ever echoing its password, and
//! the pool's size and statement timeout, from the environment.

use std::fmt;
use std::time::Duration;

use recon_common::redact::{check_url, scrub_url};
use sqlx::postgres::PgConnectOptions;

/// What a production URL looks like, for error messages.
const EXAMPLE: &str = "postgres://USER:PASSWORD@HOST:5432/DATABASE?sslmode=verify-full";

/// Why `DATABASE_URL` could not be used. Its text and `Debug` never hold the URL's
/// password (sqlx's and url's own errors may echo the URL, so they are not kept).
#[derive(Clone, PartialEq, Eq)]
pub struct InvalidDatabaseUrl(String);

impl fmt::Display for InvalidDatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for InvalidDatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InvalidDatabaseUrl({:?})", self.0)
    }
}

impl std::error::Error for InvalidDatabaseUrl {}

/// Reads a Postgres URL. A malformed one gets an error that says why and how it should
/// look, with no part of the URL that could hold the password.
pub fn parse_url(text: &str) -> Result<PgConnectOptions, InvalidDatabaseUrl> {
    let invalid = |why: String| InvalidDatabaseUrl(format!("{why}; it should look like {EXAMPLE}"));
    check_url("DATABASE_URL", text, &["postgres", "postgresql"]).map_err(invalid)?;
    text.parse::<PgConnectOptions>().map_err(|e| {
        let reason = scrub_url(&e.to_string(), text);
        invalid(format!(
            "DATABASE_URL is not a usable Postgres URL ({reason})"
        ))
    })
}

/// The pool's size and limits. [`PoolOptions::from_env`] reads them; the defaults suit
/// one service instance against a Postgres allowing 100 connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolOptions {
    /// `DATABASE_POOL_SIZE`: connections at most (default 10).
    pub max_connections: u32,
    /// `DATABASE_STATEMENT_TIMEOUT`: Postgres cancels a statement running longer (default
    /// 30s; `0` for none). A stuck query then fails instead of holding a connection.
    pub statement_timeout: Option<Duration>,
    /// `DATABASE_ACQUIRE_TIMEOUT`: how long to wait for a free connection (default 5s).
    pub acquire_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            max_connections: 10,
            statement_timeout: Some(Duration::from_secs(30)),
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

impl PoolOptions {
    /// From `DATABASE_POOL_SIZE`, `DATABASE_STATEMENT_TIMEOUT` and
    /// `DATABASE_ACQUIRE_TIMEOUT`, each optional (durations like `30s`, `500ms`, `2m`).
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// As [`PoolOptions::from_env`], from any lookup (tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let mut options = PoolOptions::default();
        let value = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        if let Some(size) = value("DATABASE_POOL_SIZE") {
            options.max_connections = match size.trim().parse::<u32>() {
                Ok(n) if n > 0 => n,
                _ => anyhow::bail!(
                    "DATABASE_POOL_SIZE is {size:?}; it must be a whole number of connections, 1 or more"
                ),
            };
        }
        if let Some(timeout) = value("DATABASE_STATEMENT_TIMEOUT") {
            let timeout = duration("DATABASE_STATEMENT_TIMEOUT", &timeout)?;
            options.statement_timeout = (!timeout.is_zero()).then_some(timeout);
        }
        if let Some(timeout) = value("DATABASE_ACQUIRE_TIMEOUT") {
            options.acquire_timeout = duration("DATABASE_ACQUIRE_TIMEOUT", &timeout)?;
            if options.acquire_timeout.is_zero() {
                anyhow::bail!("DATABASE_ACQUIRE_TIMEOUT must be more than zero");
            }
        }
        Ok(options)
    }

    /// `options` with the statement timeout set for every connection (Postgres applies
    /// it from the connection's start-up parameters, so it holds for every statement).
    pub fn apply(&self, options: PgConnectOptions) -> PgConnectOptions {
        let millis = self.statement_timeout.map_or(0, |t| t.as_millis().max(1));
        options.options([("statement_timeout", format!("{millis}ms"))])
    }
}

fn duration(name: &str, text: &str) -> anyhow::Result<Duration> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(text).map_err(|e| {
        anyhow::anyhow!("{name} is {text:?} ({e}); write a duration such as 30s, 500ms or 2m")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn unset_variables_give_the_defaults() {
        assert_eq!(
            PoolOptions::from_lookup(lookup(&[])).unwrap(),
            PoolOptions::default()
        );
    }

    #[test]
    fn pool_size_and_timeouts_are_read_from_the_environment() {
        let options = PoolOptions::from_lookup(lookup(&[
            ("DATABASE_POOL_SIZE", "32"),
            ("DATABASE_STATEMENT_TIMEOUT", "1500ms"),
            ("DATABASE_ACQUIRE_TIMEOUT", "2s"),
        ]))
        .unwrap();
        assert_eq!(options.max_connections, 32);
        assert_eq!(options.statement_timeout, Some(Duration::from_millis(1500)));
        assert_eq!(options.acquire_timeout, Duration::from_secs(2));
        let none = PoolOptions::from_lookup(lookup(&[("DATABASE_STATEMENT_TIMEOUT", "0")]));
        assert_eq!(none.unwrap().statement_timeout, None);
    }

    #[test]
    fn bad_values_are_refused_naming_the_variable() {
        for (name, value) in [
            ("DATABASE_POOL_SIZE", "0"),
            ("DATABASE_POOL_SIZE", "ten"),
            ("DATABASE_STATEMENT_TIMEOUT", "30 parsecs"),
            ("DATABASE_ACQUIRE_TIMEOUT", "0"),
        ] {
            let error = PoolOptions::from_lookup(lookup(&[(name, value)])).unwrap_err();
            assert!(error.to_string().contains(name), "{error}");
        }
    }

    #[test]
    fn the_statement_timeout_travels_as_a_start_up_parameter() {
        let options = PoolOptions {
            statement_timeout: Some(Duration::from_secs(3)),
            ..PoolOptions::default()
        };
        let applied = options.apply(parse_url("postgres://u@h/db").unwrap());
        assert_eq!(applied.get_options(), Some("-c statement_timeout=3000ms"));
    }

    #[test]
    fn a_good_url_parses() {
        let options =
            parse_url("postgres://recon:pw@db.internal:6432/ledger?sslmode=verify-full").unwrap();
        assert_eq!(options.get_host(), "db.internal");
        assert_eq!(options.get_port(), 6432);
        assert_eq!(options.get_database(), Some("ledger"));
    }
}
