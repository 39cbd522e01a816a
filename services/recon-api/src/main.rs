//! `recon-api`: see `recon-api --help` and docs/api.md.

use recon_api::{Settings, build};
use recon_common::telemetry;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    telemetry::init(settings.log_format);
    let api = build(&settings).await?;
    let metrics_port = api.ops.as_ref().map(|(_, port)| *port);
    tracing::info!(port = api.port, metrics_port, "recon-api is listening");
    let handles = api.handles();
    tokio::spawn(async move {
        recon_common::shutdown::signal().await;
        for handle in handles {
            handle.stop(true).await;
        }
    });
    api.run().await?;
    Ok(())
}
