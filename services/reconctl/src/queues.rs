//! `reconctl queues`: what is waiting where.

use clap::Args;

use crate::dlq::Amqp;

#[derive(Debug, Args)]
pub struct QueuesArgs {
    #[command(flatten)]
    amqp: Amqp,
}

pub async fn run(args: QueuesArgs) -> anyhow::Result<()> {
    let broker = args.amqp.broker()?;
    let connection = broker.connection().await?;
    for (queue, depth) in broker.topology().depths(&connection).await? {
        println!("{queue:<40} {depth}");
    }
    // Alerts go to subscribers' own queues bound to this exchange, not ours.
    println!(
        "{:<40} (topic exchange, attribution.<kind>)",
        broker.topology().alerts_exchange
    );
    broker.close().await;
    Ok(())
}
