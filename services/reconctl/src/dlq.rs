//! `reconctl dlq list|replay` and `reconctl api-keys create`.

use clap::{Args, Subcommand};
use recon_queue::dead_letters;
use recon_queue::{AmqpSettings, Broker};
use recon_store::api_keys::{self, Role};
use secrecy::ExposeSecret;

#[derive(Debug, Args)]
pub struct Amqp {
    #[command(flatten)]
    settings: AmqpSettings,
}

impl Amqp {
    /// A broker for AMQP_URL (environment only: it holds a password).
    pub fn broker(mut self) -> anyhow::Result<Broker> {
        self.settings
            .read_secrets(&recon_common::secrets::ProcessEnv)?;
        Ok(Broker::new(self.settings.broker_config("reconctl")))
    }
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// What is in the dead-letter queue, and why.
    List {
        #[command(flatten)]
        amqp: Amqp,
    },
    /// Put dead letters back on the work queue (all, or one webhook id).
    Replay {
        #[arg(long)]
        webhook_id: Option<String>,
        #[command(flatten)]
        amqp: Amqp,
    },
}

pub async fn run_dlq(command: DlqCommand) -> anyhow::Result<()> {
    match command {
        DlqCommand::List { amqp } => {
            let broker = amqp.broker()?;
            let letters = dead_letters::list(&broker).await?;
            println!("{} dead letters", letters.len());
            for letter in letters {
                println!(
                    "{}\t{}\t{}\t{}\treplays {}\t{}",
                    letter.webhook_id,
                    letter.account_id,
                    letter.event_type,
                    letter.object_id.unwrap_or_default(),
                    letter.replays,
                    letter.reason
                );
            }
            broker.close().await;
        }
        DlqCommand::Replay { webhook_id, amqp } => {
            let broker = amqp.broker()?;
            let count = dead_letters::replay(&broker, webhook_id.as_deref()).await?;
            println!("replayed {count} dead letters onto the work queue");
            broker.close().await;
        }
    }
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum ApiKeysCommand {
    /// Create a key; it is printed once, alone on the last line, and stored only hashed.
    Create {
        #[arg(long)]
        role: Role,
        /// Accounts in scope, comma-separated (required for partner keys).
        #[arg(long, value_delimiter = ',')]
        accounts: Option<Vec<String>>,
    },
}

pub async fn run_api_keys(database_url: &str, command: ApiKeysCommand) -> anyhow::Result<()> {
    let ApiKeysCommand::Create { role, accounts } = command;
    let pool = recon_store::database::connect(database_url).await?;
    let scope = accounts
        .as_ref()
        .map_or("every account".to_string(), |a| a.join(", "));
    let key = api_keys::create(&pool, role, accounts).await?;
    println!("created a {role} key for {scope}; send it as `Authorization: Bearer <key>`:");
    println!("{}", key.expose_secret());
    Ok(())
}
