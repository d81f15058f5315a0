//! What every measurement shares: where the services are, how to authenticate, which key
//! namespace and which processes to watch.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use common::auth::{JwtAuth, Role};
use common::settings::{CoreSettings, DEV_JWT_SECRET, Secret};
use uuid::Uuid;

use crate::procs::Watch;

/// Connection and output options common to every subcommand.
#[derive(Args, Debug, Clone)]
pub struct Common {
    /// Gateway base URL.
    #[arg(long, env = "LOADGEN_GATEWAY", default_value = "http://127.0.0.1:8000")]
    pub gateway: String,
    /// Provider simulator root URL (its OpenAI API is under `/v1`).
    #[arg(long, env = "LOADGEN_SIM", default_value = "http://127.0.0.1:9100")]
    pub sim: String,
    /// The Redis of the bus (its value is never printed: it may carry a password).
    #[arg(
        long,
        env = "REDIS_URL",
        default_value = "redis://127.0.0.1:6379",
        hide_env_values = true
    )]
    pub redis_url: String,
    /// Key namespace, first part (must match the services').
    #[arg(long, env = "STREAM_PREFIX", default_value = "aibackend")]
    pub stream_prefix: String,
    /// Key namespace, second part.
    #[arg(long, env = "APP_ENV", default_value = "dev")]
    pub app_env: String,
    /// HS256 secret the gateway verifies tokens with; the development secret when unset.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// A process to watch (RSS, CPU), as `name=pid`; repeatable.
    #[arg(long = "proc", value_parser = parse_proc)]
    pub procs: Vec<(String, u32)>,
    /// PostgreSQL URL of the services' database: its backends are watched as `postgres`.
    #[arg(long, env = "LOADGEN_PG_URL")]
    pub pg_url: Option<String>,
    /// Append the result, one JSON line, to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// A label stored with the result (e.g. `quick`).
    #[arg(long, default_value = "")]
    pub label: String,
    /// The model chats ask for.
    #[arg(long, default_value = "gpt-4o-mini")]
    pub model: String,
}

/// The tenant every benchmark client belongs to.
const BENCH_TENANT: u128 = 0x0190_0000_0000_7000_8000_6c6f_6164_6765;

fn parse_proc(s: &str) -> Result<(String, u32), String> {
    let (name, pid) = s
        .split_once('=')
        .ok_or_else(|| format!("expected name=pid, got {s:?}"))?;
    let pid = pid
        .trim()
        .parse()
        .map_err(|_| format!("not a pid: {pid:?}"))?;
    Ok((name.trim().to_owned(), pid))
}

/// The resolved environment of a run.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The options as given.
    pub common: Common,
    /// `ws://…/chat/ws`.
    pub ws_url: String,
    /// A user token for the benchmark tenant.
    pub token: String,
    /// The processes watched.
    pub watch: Watch,
    /// A shared HTTP client (no pool limit, `TCP_NODELAY`).
    pub http: reqwest::Client,
}

impl Ctx {
    /// Resolves the options: mints a token, builds the HTTP client.
    pub fn new(common: Common) -> anyhow::Result<Self> {
        let gateway = common.gateway.trim_end_matches('/');
        let ws_url = format!(
            "{}/chat/ws",
            gateway
                .replacen("https://", "wss://", 1)
                .replacen("http://", "ws://", 1)
        );
        let token = Self::mint(&common, Uuid::now_v7())?;
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .context("building the HTTP client")?;
        let watch = Watch::new(&common.procs, common.pg_url.clone());
        Ok(Self {
            common,
            ws_url,
            token,
            watch,
            http,
        })
    }

    fn auth(common: &Common) -> JwtAuth {
        let secret = common.jwt_secret.as_deref().unwrap_or(DEV_JWT_SECRET);
        JwtAuth::hs256(secret.as_bytes())
    }

    fn mint(common: &Common, user: Uuid) -> anyhow::Result<String> {
        // One tenant for the whole run: the gateway's per-tenant limiter is off in benchmarks.
        let tenant = Uuid::from_u128(BENCH_TENANT);
        Self::auth(common)
            .issue(user, tenant, Role::User, Duration::from_secs(24 * 3600))
            .map_err(|e| anyhow::anyhow!("minting a token: {e}"))
    }

    /// The gateway base URL without a trailing slash.
    pub fn gateway(&self) -> &str {
        self.common.gateway.trim_end_matches('/')
    }

    /// The simulator root URL without a trailing slash.
    pub fn sim(&self) -> &str {
        self.common.sim.trim_end_matches('/')
    }

    /// Settings for a bus client in the services' namespace.
    pub fn core_settings(&self, action_maxlen: usize) -> CoreSettings {
        let mut core = CoreSettings {
            redis_url: common::settings::Secret::new(self.common.redis_url.clone()),
            stream_prefix: self.common.stream_prefix.clone(),
            app_env: self.common.app_env.clone(),
            jwt_secret: self.common.jwt_secret.clone().map(Secret::new),
            ..CoreSettings::default()
        };
        core.bus.action_maxlen = action_maxlen.max(core.bus.action_maxlen);
        core
    }

    /// `{prefix}:{env}`: the namespace every key of the services starts with.
    pub fn namespace(&self) -> String {
        format!("{}:{}", self.common.stream_prefix, self.common.app_env)
    }

    /// A Redis connection of its own whose replies may take long (blocking reads).
    pub async fn redis_conn(&self) -> anyhow::Result<redis::aio::MultiplexedConnection> {
        let client = redis::Client::open(self.common.redis_url.as_str())?;
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(Duration::from_secs(30)));
        client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .context("connecting to Redis")
    }

    /// The `/chat/ws` URL with a token in the query.
    pub fn ws_url_with(&self, token: &str) -> String {
        format!("{}?token={token}", self.ws_url)
    }
}
