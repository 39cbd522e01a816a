//! `reconctl queues`: what is waiting where.

use clap::Args;
use recon_queue::{Broker, BrokerConfig, Topology};

#[derive(Debug, Args)]
pub struct QueuesArgs {
    #[arg(
        long,
        env = "AMQP_URL",
        hide_env_values = true,
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f",
        hide_default_value = true
    )]
    amqp_url: String,
    #[arg(long, env = "AMQP_PREFIX", default_value = "helcim-recon")]
    amqp_prefix: String,
    #[arg(long, env = "AMQP_RETRY_DELAYS", default_value = "5s,30s,2m,10m")]
    amqp_retry_delays: recon_queue::topology::RetryDelays,
}

pub async fn run(args: QueuesArgs) -> anyhow::Result<()> {
    let broker = Broker::new(BrokerConfig::new(
        args.amqp_url,
        Topology::new(&args.amqp_prefix).with_retry_delays(args.amqp_retry_delays.0),
        "reconctl",
    ));
    let connection = broker.connection().await?;
    for (queue, depth) in broker.topology().depths(&connection).await? {
        println!("{queue:<40} {depth}");
    }
    broker.close().await;
    Ok(())
}
