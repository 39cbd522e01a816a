//! `reconctl accounts ...` and `reconctl keys ...`.

use std::io::BufRead;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use recon_store::accounts::NewAccount;
use recon_store::intake::IntakeSecretKey;
use recon_store::{AccountStore, MasterKey, Purpose, SecretCipher};
use secrecy::{ExposeSecret, SecretString};

#[derive(Debug, Subcommand)]
pub enum AccountsCommand {
    /// Add an account (its webhook URL is /webhooks/helcim/<ACCOUNT_ID>).
    Add {
        account_id: String,
        /// A name for people.
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        verifier: VerifierSecret,
        /// Environment variable holding the account's Helcim API token.
        #[arg(long, value_name = "VAR")]
        api_token_env: Option<String>,
        /// Environment variable holding the partner token.
        #[arg(long, value_name = "VAR")]
        partner_token_env: Option<String>,
    },
    /// List accounts with their webhook URLs and what each still needs; tokens never
    /// print (verifier tokens show as fingerprints).
    List {
        /// The receiver's public base URL, as Helcim reaches it (e.g.
        /// https://recon.example.com): webhook URLs print in full. Without it they print
        /// as paths.
        #[arg(long, env = "RECON_PUBLIC_URL", value_name = "URL")]
        public_url: Option<String>,
    },
    /// Set (or replace) an account's Helcim API token and partner token.
    SetTokens {
        account_id: String,
        /// Environment variable holding the Helcim API token.
        #[arg(long, value_name = "VAR")]
        api_token_env: String,
        /// Environment variable holding the partner token.
        #[arg(long, value_name = "VAR")]
        partner_token_env: Option<String>,
    },
    /// Add a new verifier token beside the current ones; retire the old one once
    /// Helcim signs with the new.
    RotateVerifier {
        account_id: String,
        #[command(flatten)]
        verifier: VerifierSecret,
    },
    /// Set the partner's revenue share rate on an account, in basis points (250 is
    /// 2.5 %): gaps and reports show the share at risk with it. `--clear` removes it.
    SetShare {
        #[arg(long)]
        account: String,
        /// 0 to 10000.
        #[arg(long, required_unless_present = "clear", value_parser = clap::value_parser!(i32).range(0..=i64::from(recon_store::accounts::MAX_SHARE_BPS)))]
        bps: Option<i32>,
        /// Remove the rate (no share at risk is shown).
        #[arg(long, conflicts_with = "bps")]
        clear: bool,
    },
    /// Stop accepting a verifier token.
    RetireVerifier {
        account_id: String,
        /// The fingerprint `accounts list` shows.
        fingerprint: String,
        /// Allow retiring the last active token (the account then accepts nothing).
        #[arg(long)]
        allow_none: bool,
    },
}

#[derive(Debug, Args)]
pub struct VerifierSecret {
    /// Environment variable holding the webhook verifier token.
    #[arg(long, value_name = "VAR")]
    verifier_token_env: Option<String>,
    /// Read the webhook verifier token from standard input.
    #[arg(long, conflicts_with = "verifier_token_env")]
    verifier_token_stdin: bool,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Print a new random master key (base64 of 32 bytes) for RECON_MASTER_KEY.
    Generate,
    /// Print each deployment's keys, derived from RECON_MASTER_KEY, as `NAME=value`
    /// lines for the secret store (standard output only; never pass them as flags).
    Derive,
    /// Re-encrypt every secret not under its purpose's current key: those made under
    /// RECON_MASTER_KEY_PREVIOUS, and version-1 secrets made under the master key
    /// itself (the upgrade to purpose keys). Needs RECON_MASTER_KEY.
    Reencrypt,
}

pub async fn run(database_url: &str, command: AccountsCommand) -> anyhow::Result<()> {
    // The share rate is no secret: no master key needed to set it.
    let command = match command {
        AccountsCommand::SetShare { account, bps, .. } => {
            return set_share(database_url, &account, bps).await;
        }
        other => other,
    };
    let store = store(database_url).await?;
    match command {
        AccountsCommand::Add {
            account_id,
            name,
            verifier,
            api_token_env,
            partner_token_env,
        } => {
            let verifier_token = verifier.read()?;
            store
                .add(NewAccount {
                    account_id: account_id.clone(),
                    display_name: name,
                    verifier_token,
                    api_token: api_token_env.as_deref().map(from_env).transpose()?,
                    partner_token: partner_token_env.as_deref().map(from_env).transpose()?,
                })
                .await?;
            println!(
                "added account {account_id}; its webhook URL ends in /webhooks/helcim/{account_id}"
            );
        }
        AccountsCommand::List { public_url } => {
            let public_url = public_url
                .as_deref()
                .filter(|url| !url.trim().is_empty())
                .map(crate::accounts_list::public_url)
                .transpose()?;
            let accounts = store.list().await?;
            print!(
                "{}",
                crate::accounts_list::render(&accounts, public_url.as_deref())
            );
        }
        AccountsCommand::SetTokens {
            account_id,
            api_token_env,
            partner_token_env,
        } => {
            let api_token = from_env(&api_token_env)?;
            let partner_token = partner_token_env.as_deref().map(from_env).transpose()?;
            store
                .upsert_tokens(&account_id, &api_token, partner_token.as_ref())
                .await?;
            println!("set the tokens of {account_id}");
        }
        AccountsCommand::RotateVerifier {
            account_id,
            verifier,
        } => {
            let Some(token) = verifier.read()? else {
                bail!("give the new token with --verifier-token-env VAR or --verifier-token-stdin");
            };
            let fingerprint = store.add_verifier(&account_id, &token).await?;
            println!(
                "added verifier {fingerprint} to {account_id}; both old and new verify now. Once Helcim \
                 signs with the new one, run: reconctl accounts retire-verifier {account_id} <old fingerprint>"
            );
        }
        AccountsCommand::RetireVerifier {
            account_id,
            fingerprint,
            allow_none,
        } => {
            let account = store
                .list()
                .await?
                .into_iter()
                .find(|a| a.account_id == account_id)
                .with_context(|| format!("no account {account_id:?}"))?;
            if account.active_verifiers == [fingerprint.clone()] && !allow_none {
                bail!(
                    "{fingerprint} is the last active verifier of {account_id}; retiring it refuses every webhook (pass --allow-none to do it anyway)"
                );
            }
            store.retire_verifier(&account_id, &fingerprint).await?;
            println!("retired verifier {fingerprint} of {account_id}");
        }
        AccountsCommand::SetShare { account, bps, .. } => {
            set_share(database_url, &account, bps).await?;
        }
    }
    Ok(())
}

async fn set_share(database_url: &str, account: &str, bps: Option<i32>) -> anyhow::Result<()> {
    let pool = recon_store::database::connect(database_url).await?;
    recon_store::accounts::set_revenue_share(&pool, account, bps).await?;
    match bps {
        Some(bps) => println!(
            "the share rate of {account} is {bps} basis points ({}.{:02} %)",
            bps / 100,
            bps % 100
        ),
        None => println!("cleared the share rate of {account}"),
    }
    Ok(())
}

pub async fn run_keys(database_url: &str, command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Generate => {
            println!("{}", MasterKey::generate().expose_secret());
        }
        KeysCommand::Derive => {
            // Like every secret: the variable, or the file RECON_MASTER_KEY_FILE names.
            let text = recon_common::secrets::from_env("RECON_MASTER_KEY")?.ok_or_else(|| {
                anyhow::anyhow!(
                    "RECON_MASTER_KEY is not set (nor RECON_MASTER_KEY_FILE): it is what the \
                     keys are derived from"
                )
            })?;
            let master = MasterKey::from_base64(&text, "RECON_MASTER_KEY")?;
            for purpose in Purpose::ALL {
                println!(
                    "{}={}",
                    purpose.env(),
                    master.derive_base64(purpose).expose_secret()
                );
            }
            let intake = IntakeSecretKey::derive(&master);
            println!("RECON_INTAKE_PUBLIC_KEY={}", intake.public().to_base64());
            println!(
                "RECON_INTAKE_PRIVATE_KEY={}",
                intake.to_base64().expose_secret()
            );
            println!(
                "RECON_LOOKUP_KEY={}",
                master.derive_lookup_base64().expose_secret()
            );
        }
        KeysCommand::Reencrypt => {
            let store = store(database_url).await?;
            let count = store.reencrypt_stale().await?;
            println!("re-encrypted {count} secrets under the current purpose keys");
            let webhooks = recon_store::attribution::alert_webhooks::AlertWebhooks::new(
                recon_store::database::connect(database_url).await?,
                std::sync::Arc::new(SecretCipher::from_env()?),
            );
            let count = webhooks.reencrypt_stale().await?;
            println!("re-encrypted {count} alert webhook secrets under the current key");
            let count = store.fingerprint_api_tokens().await?;
            println!("fingerprinted {count} API tokens under the current lookup key");
        }
    }
    Ok(())
}

async fn store(database_url: &str) -> anyhow::Result<AccountStore> {
    let cipher = Arc::new(SecretCipher::from_env()?);
    let pool = recon_store::database::connect(database_url).await?;
    Ok(AccountStore::new(pool, cipher))
}

impl VerifierSecret {
    fn read(&self) -> anyhow::Result<Option<SecretString>> {
        let token = match (&self.verifier_token_env, self.verifier_token_stdin) {
            (Some(var), _) => from_env(var)?,
            (None, true) => {
                let mut line = String::new();
                std::io::stdin()
                    .lock()
                    .read_line(&mut line)
                    .context("Failed to read standard input")?;
                SecretString::from(line.trim().to_string())
            }
            (None, false) => return Ok(None),
        };
        check_verifier(&token)?;
        Ok(Some(token))
    }
}

fn from_env(var: &str) -> anyhow::Result<SecretString> {
    let value =
        std::env::var(var).with_context(|| format!("environment variable {var} is not set"))?;
    if value.trim().is_empty() {
        bail!("environment variable {var} is empty");
    }
    Ok(SecretString::from(value.trim().to_string()))
}

/// The token must be what Helcim shows: base64 (a `whsec_` prefix is allowed).
fn check_verifier(token: &SecretString) -> anyhow::Result<()> {
    use base64::Engine;
    let text = token.expose_secret();
    let encoded = text.strip_prefix("whsec_").unwrap_or(text);
    match base64::engine::general_purpose::STANDARD.decode(encoded) {
        Ok(key) if !key.is_empty() => Ok(()),
        _ => {
            bail!("the verifier token is not base64; copy it again from Helcim's webhook settings")
        }
    }
}
