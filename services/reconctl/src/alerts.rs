//! `reconctl alerts webhooks add|list|remove|replay`: where attribution alerts are
//! POSTed (docs/alerts.md). The subscriber's `whsec_` secret comes from the variable
//! `--secret-env` names, never from the command line, is stored encrypted, and is
//! never printed.

use std::sync::Arc;

use anyhow::{Context, bail};
use chrono::{DateTime, SecondsFormat, Utc};
use clap::Subcommand;
use recon_store::SecretCipher;
use recon_store::attribution::alert_webhooks::{AlertWebhooks, WebhookError};

#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// Alert webhooks: signed POSTs of every alert.
    #[command(subcommand)]
    Webhooks(WebhooksCommand),
    /// Publish alerts again on the alerts exchange (same alert ids: subscribers dedupe),
    /// e.g. those published before a subscriber's queue was bound. Webhooks already
    /// delivered are not sent again.
    Republish {
        /// Alerts created at or after this instant (RFC 3339, e.g. 2026-11-23T00:00:00Z).
        #[arg(long, value_parser = instant)]
        since: DateTime<Utc>,
        /// Only this kind: gap_opened, gap_resolved, escalation or month_closed.
        #[arg(long, value_parser = kind)]
        kind: Option<String>,
    },
}

fn instant(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text.trim())
        .map(|at| at.with_timezone(&Utc))
        .map_err(|e| format!("{text:?} is not an RFC 3339 instant like 2026-11-23T00:00:00Z: {e}"))
}

const KINDS: [&str; 4] = ["gap_opened", "gap_resolved", "escalation", "month_closed"];

fn kind(text: &str) -> Result<String, String> {
    let text = text.trim();
    if KINDS.contains(&text) {
        Ok(text.to_string())
    } else {
        Err(format!(
            "unknown alert kind {text:?}; valid: {}",
            KINDS.join(", ")
        ))
    }
}

#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// Register a webhook (https, or http to a loopback address).
    Add {
        /// A unique name: 1 to 64 of A-Z a-z 0-9 . _ -
        #[arg(long)]
        name: String,
        #[arg(long)]
        url: String,
        /// The environment variable holding the subscriber's `whsec_` secret.
        #[arg(long, value_name = "VAR")]
        secret_env: String,
        /// Only this account's alerts (repeat for several); none: every account's,
        /// and `month_closed`.
        #[arg(long = "account", value_name = "ACCOUNT")]
        accounts: Vec<String>,
    },
    /// Every webhook with its pending, delivered and dead deliveries; never a secret.
    List,
    /// Remove a webhook and its deliveries.
    Remove {
        #[arg(long)]
        name: String,
    },
    /// Put dead deliveries (of one webhook, or of all) back to pending, due now.
    Replay {
        #[arg(long)]
        name: Option<String>,
    },
}

pub async fn run(database_url: &str, command: AlertsCommand) -> anyhow::Result<()> {
    let pool = recon_store::database::connect(database_url).await?;
    let command = match command {
        AlertsCommand::Webhooks(command) => command,
        AlertsCommand::Republish { since, kind } => {
            // The publisher (any worker) takes rows without `published_at` again.
            let count = sqlx::query(
                "UPDATE attribution_alerts SET published_at = NULL
                  WHERE created_at >= $1 AND published_at IS NOT NULL
                    AND ($2::text IS NULL OR kind = $2)",
            )
            .bind(since)
            .bind(kind)
            .execute(&pool)
            .await?
            .rows_affected();
            println!(
                "{count} alerts created since {} will be published again by the workers",
                since.to_rfc3339_opts(SecondsFormat::Secs, true)
            );
            return Ok(());
        }
    };
    match command {
        WebhooksCommand::Add {
            name,
            url,
            secret_env,
            accounts,
        } => {
            let secret = recon_common::secrets::from_env(&secret_env)?.with_context(|| {
                format!("{secret_env} is not set (nor {secret_env}_FILE): it should hold the subscriber's whsec_ secret")
            })?;
            let cipher = Arc::new(SecretCipher::from_env()?);
            let store = AlertWebhooks::new(pool, cipher);
            match store.add(&name, &url, &secret, &accounts).await {
                Ok(id) => println!("added alert webhook {name} (id {id})"),
                Err(WebhookError::Exists(name)) => {
                    bail!("an alert webhook named {name:?} already exists; remove it first")
                }
                Err(error) => return Err(error.into()),
            }
        }
        WebhooksCommand::List => {
            let store = no_keys(pool);
            let hooks = store.list().await?;
            if hooks.is_empty() {
                println!("no alert webhooks");
            }
            for hook in hooks {
                let accounts = hook
                    .account_ids
                    .map_or("every account".to_string(), |a| a.join(","));
                println!(
                    "{}\t{}\taccounts: {}\tpending {}\tdelivered {}\tdead {}\tadded {}",
                    hook.name,
                    hook.url,
                    accounts,
                    hook.pending,
                    hook.delivered,
                    hook.dead,
                    hook.created_at.to_rfc3339_opts(SecondsFormat::Secs, true)
                );
            }
        }
        WebhooksCommand::Remove { name } => {
            let store = no_keys(pool);
            if !store.remove(&name).await? {
                bail!("no alert webhook named {name:?} (see `reconctl alerts webhooks list`)");
            }
            println!("removed alert webhook {name}");
        }
        WebhooksCommand::Replay { name } => {
            let store = no_keys(pool);
            let count = store.replay(name.as_deref(), Utc::now()).await?;
            println!("{count} dead deliveries back to pending");
        }
    }
    Ok(())
}

/// Listing, removing and replaying never touch a secret: no key is loaded.
fn no_keys(pool: sqlx::PgPool) -> AlertWebhooks {
    AlertWebhooks::new(pool, Arc::new(SecretCipher::from_data_keys(vec![], vec![])))
}
