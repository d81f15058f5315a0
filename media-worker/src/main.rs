//! media-worker binary: settings, telemetry, run until SIGTERM.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = media_worker::Settings::load()?;
    let _telemetry = common::telemetry::init("media-worker", &settings.core)?;
    let shutdown = common::shutdown::on_signal();
    media_worker::run(settings, shutdown).await
}
