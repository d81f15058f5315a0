//! gateway-service binary: `serve` (default) or `token` to mint a development JWT.

use std::time::Duration;

use clap::{Parser, Subcommand};
use common::auth::{JwtAuth, Role};
use uuid::Uuid;

#[derive(Parser)]
#[command(name = "gateway-service", about = "The AI backend's gateway")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve HTTP and WebSocket (the default).
    Serve,
    /// Print a JWT for local use, signed with the configured secret.
    Token {
        /// Tenant: a UUID, or any name (mapped to a stable UUID).
        #[arg(long, default_value = "demo")]
        tenant: String,
        /// User: a UUID, or any name (mapped to a stable UUID).
        #[arg(long, default_value = "demo-user")]
        user: String,
        /// `user` or `admin`.
        #[arg(long, default_value = "user")]
        role: String,
        /// Validity in hours.
        #[arg(long, default_value_t = 24)]
        ttl_hours: u64,
    },
}

/// A UUID as given, or a stable name-based UUID for a plain name.
fn id_of(s: &str) -> Uuid {
    s.parse()
        .unwrap_or_else(|_| Uuid::new_v5(&Uuid::NAMESPACE_OID, s.as_bytes()))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = gateway_service::Settings::load()?;
    if let Some(Command::Token {
        tenant,
        user,
        role,
        ttl_hours,
    }) = cli.command
    {
        let role = match role.as_str() {
            "admin" => Role::Admin,
            "user" => Role::User,
            other => anyhow::bail!("role must be user or admin, not {other:?}"),
        };
        let auth = JwtAuth::from_settings(&settings.core)?;
        let token = auth.issue(
            id_of(&user),
            id_of(&tenant),
            role,
            Duration::from_secs(ttl_hours * 3600),
        )?;
        // The token is the command's output, meant for the terminal or a shell variable.
        #[allow(clippy::print_stdout)]
        {
            println!("{token}");
        }
        return Ok(());
    }
    let _telemetry = common::telemetry::init("gateway-service", &settings.core)?;
    let shutdown = common::shutdown::on_signal();
    gateway_service::run(settings, shutdown).await
}
