//! chat-worker binary: settings, telemetry, run until SIGTERM.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = chat_worker::Settings::load()?;
    let _telemetry = common::telemetry::init("chat-worker", &settings.core)?;
    let shutdown = common::shutdown::on_signal();
    chat_worker::run(settings, shutdown).await
}
