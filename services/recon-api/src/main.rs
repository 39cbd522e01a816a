//! `recon-api`: see `recon-api --help` and the README.

use recon_api::{Settings, build};
use recon_common::telemetry;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    telemetry::init(settings.log_format);
    let (server, port) = build(&settings).await?;
    tracing::info!(port, "recon-api is listening");
    let handle = server.handle();
    tokio::spawn(async move {
        recon_common::shutdown::signal().await;
        handle.stop(true).await;
    });
    server.await?;
    Ok(())
}
