//! tts-worker binary: settings, telemetry, run until SIGTERM.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = tts_worker::Settings::load()?;
    let _telemetry = common::telemetry::init("tts-worker", &settings.core)?;
    let shutdown = common::shutdown::on_signal();
    tts_worker::run(settings, shutdown).await
}
