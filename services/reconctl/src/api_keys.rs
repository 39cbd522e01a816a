//! `reconctl api-keys create|list|revoke`: recon-api's keys. Managing keys is an admin
//! act: whoever can run this against the database is the admin, and the API's own
//! management endpoints accept admin keys only.

use anyhow::{Context, bail};
use chrono::{DateTime, SecondsFormat, Utc};
use clap::Subcommand;
use recon_store::api_keys::{self, KeyInfo, Role};
use secrecy::ExposeSecret;

#[derive(Debug, Subcommand)]
pub enum ApiKeysCommand {
    /// Create a key; it is printed once, alone on the last line, and stored only hashed.
    Create {
        #[arg(long)]
        role: Role,
        /// Accounts in scope, comma-separated (required for partner keys).
        #[arg(long, value_delimiter = ',')]
        accounts: Option<Vec<String>>,
        /// Expire the key after this long: e.g. `90d`, `12h`, `30m`, `2w`.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        expires_in: Option<chrono::Duration>,
        /// Expire the key at this time (RFC 3339, e.g. `2027-01-31T00:00:00Z`).
        #[arg(long, value_name = "TIME", conflicts_with = "expires_in")]
        expires_at: Option<DateTime<Utc>>,
    },
    /// Every key: id, prefix, role, accounts, created, expires, last used, revoked.
    /// Never the key or its hash.
    List,
    /// Revoke a key by its id or prefix (as `list` shows them); recon-api refuses it
    /// from the next request on.
    Revoke {
        #[arg(value_name = "ID_OR_PREFIX")]
        key: String,
    },
}

pub async fn run(database_url: &str, command: ApiKeysCommand) -> anyhow::Result<()> {
    let pool = recon_store::database::connect(database_url).await?;
    match command {
        ApiKeysCommand::Create {
            role,
            accounts,
            expires_in,
            expires_at,
        } => {
            let expires_at = match (expires_in, expires_at) {
                (Some(after), _) => Some(
                    Utc::now()
                        .checked_add_signed(after)
                        .context("--expires-in is too far in the future")?,
                ),
                (None, at) => at,
            };
            let scope = accounts
                .as_ref()
                .map_or("every account".to_string(), |a| a.join(", "));
            let created = api_keys::create(&pool, role, accounts, expires_at).await?;
            let expiry = expires_at.map_or("never expires".to_string(), |at| {
                format!("expires {}", time(at))
            });
            println!(
                "created {role} key {} (id {}) for {scope}; {expiry}; send it as \
                 `Authorization: Bearer <key>`:",
                created.prefix, created.id
            );
            println!("{}", created.key.expose_secret());
        }
        ApiKeysCommand::List => {
            let keys = api_keys::list(&pool).await?;
            println!("id\tprefix\trole\taccounts\tcreated\texpires\tlast used\trevoked");
            for key in keys {
                println!("{}", row(&key));
            }
        }
        ApiKeysCommand::Revoke { key } => {
            let revoked = api_keys::revoke(&pool, &key).await?;
            println!(
                "revoked {} key {} (id {}) at {}",
                revoked.role,
                revoked.prefix,
                revoked.id,
                revoked.revoked_at.map_or("-".into(), time)
            );
        }
    }
    Ok(())
}

fn row(key: &KeyInfo) -> String {
    let optional = |at: Option<DateTime<Utc>>| at.map_or("-".to_string(), time);
    format!(
        "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
        key.id,
        key.prefix,
        key.role,
        key.accounts
            .as_ref()
            .map_or("*".to_string(), |a| a.join(",")),
        time(key.created_at),
        optional(key.expires_at),
        optional(key.last_used_at),
        optional(key.revoked_at),
    )
}

fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `<number><unit>` with unit `s`, `m`, `h`, `d` or `w`; positive.
fn parse_duration(text: &str) -> anyhow::Result<chrono::Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let Ok(number) = number.parse::<i64>() else {
        bail!("{text:?} is not a duration; write e.g. 90d, 12h, 30m or 2w");
    };
    if number == 0 {
        bail!("the duration must be more than zero");
    }
    let seconds_per_unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 604_800,
        _ => bail!("{text:?}: the unit must be s, m, h, d or w (e.g. 90d)"),
    };
    number
        .checked_mul(seconds_per_unit)
        .and_then(chrono::Duration::try_seconds)
        .with_context(|| format!("{text:?} is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_with_a_unit_and_refuse_anything_else() {
        assert_eq!(parse_duration("90d").unwrap(), chrono::Duration::days(90));
        assert_eq!(parse_duration("2w").unwrap(), chrono::Duration::weeks(2));
        assert_eq!(
            parse_duration("30m").unwrap(),
            chrono::Duration::minutes(30)
        );
        for bad in ["", "10", "0d", "-1d", "1y", "d", "99999999999999999w"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
