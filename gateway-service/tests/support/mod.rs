//! A whole system for end-to-end tests: the gateway on port 0 and a chat-worker (and, when asked,
//! a tts-worker, a semantic-worker, a media-worker, a batch-worker), in-process, on a stream prefix of their own;
//! plus a WebSocket client that speaks the client protocol.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use chat_worker::config::DummySettings;
use common::auth::{JwtAuth, Role};
use common::settings::{CoreSettings, Secret};
use common::testing::{TEST_SECRET, isolated_settings};
use common::worker::WorkerSettings;
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Longest wait for any one expected event.
pub const WAIT: Duration = Duration::from_secs(20);

/// How to start the system.
#[derive(Clone)]
pub struct Opts {
    pub core: CoreSettings,
    pub gateway: gateway_service::Settings,
    pub worker: Option<chat_worker::Settings>,
    /// A tts-worker, sharing the gateway's storage (see `Opts::tts`).
    pub tts: Option<tts_worker::Settings>,
    /// A semantic-worker on a fresh Qdrant Edge directory (see `Opts::semantic`).
    pub semantic: Option<semantic_worker::Settings>,
    /// A media-worker, sharing the gateway's storage (see `Opts::media`).
    pub media: Option<media_worker::Settings>,
    /// A batch-worker, sharing the gateway's storage (see `Opts::batch`).
    pub batch: Option<batch_worker::Settings>,
}

impl Opts {
    /// A fast dummy provider, short timers, a fresh prefix.
    pub fn new() -> Self {
        Self::with_core(isolated_settings())
    }

    /// Like `new`, on given shared settings (to start a system again on the same data).
    pub fn with_core(core: CoreSettings) -> Self {
        let mut gateway = gateway_service::Settings {
            core: core.clone(),
            ..Default::default()
        };
        gateway.hub.shards = 2;
        gateway.hub.block_ms = 2000;
        gateway.ws.auth_timeout_secs = 2;
        let worker = chat_worker::Settings {
            core: core.clone(),
            worker: WorkerSettings {
                min_idle_ms: 1000,
                heartbeat_ms: 200,
                reclaim_interval_ms: 200,
                ..WorkerSettings::default()
            },
            dummy: DummySettings {
                tokens: 8,
                first_token_delay_ms: 0,
                token_interval_ms: 0,
            },
            provider_idle_timeout_secs: 10,
            ..Default::default()
        };
        Self {
            core,
            gateway,
            worker: Some(worker),
            tts: None,
            semantic: None,
            media: None,
            batch: None,
        }
    }

    /// Adds a batch-worker with no provider key (the offline `dummy` answers every line), fast
    /// polls and short leases. It and the gateway share one fresh local storage directory, where
    /// the gateway stores input files and the worker writes the output files.
    pub fn batch(mut self) -> Self {
        self.own_storage();
        let mut batch = batch_worker::Settings {
            core: self.core.clone(),
            worker: common::testing::fast_worker_settings(),
            storage: self.gateway.storage.clone(),
            ..Default::default()
        };
        batch.batch.poll_interval_ms = 20;
        batch.batch.lease_secs = 2;
        batch.batch.progress_interval_ms = 50;
        batch.batch.retry_base_ms = 20;
        batch.batch.sweep_interval_secs = 3600;
        batch.dummy.tokens = 3;
        batch.dummy.token_interval_ms = 0;
        self.batch = Some(batch);
        self
    }

    /// Adds a semantic-worker: the offline embedding model and Qdrant Edge in a fresh directory
    /// (removed when the system is dropped).
    pub fn semantic(mut self) -> Self {
        let dir =
            std::env::temp_dir().join(format!("gateway-semantic-{}", Uuid::now_v7().simple()));
        let mut semantic = semantic_worker::Settings {
            core: self.core.clone(),
            worker: common::testing::fast_worker_settings(),
            ..Default::default()
        };
        semantic.semantic.store_dir = dir.display().to_string();
        self.semantic = Some(semantic);
        self.own_storage();
        self
    }

    /// Gives the gateway a fresh local storage directory of its own (removed when the system is
    /// dropped), for tests that store files without a worker.
    pub fn files(mut self) -> Self {
        self.own_storage();
        self
    }

    /// Gives the gateway a fresh local storage directory (once), which the workers that read
    /// or write files share (see [`System::start`]).
    fn own_storage(&mut self) {
        if self.gateway.storage.dir == common::storage::StorageSettings::default().dir {
            let dir =
                std::env::temp_dir().join(format!("gateway-files-{}", Uuid::now_v7().simple()));
            self.gateway.storage.dir = dir.display().to_string();
        }
    }

    /// Adds a tts-worker with no provider key (the offline espeak-ng speaks). It and the gateway
    /// store files in one fresh local directory, so the clips' signed URLs open through the
    /// gateway.
    pub fn tts(mut self) -> Self {
        self.own_storage();
        let mut tts = tts_worker::Settings {
            core: self.core.clone(),
            worker: common::testing::fast_worker_settings(),
            storage: self.gateway.storage.clone(),
            ..Default::default()
        };
        tts.tts.provider_idle_timeout_secs = 10;
        self.tts = Some(tts);
        self
    }

    /// Adds a media-worker with no provider key: the offline `dummy` model draws placeholder
    /// PNGs, and videos are refused (`provider_unavailable`). It and the gateway store files in
    /// one fresh local directory, so the images' signed URLs open through the gateway.
    pub fn media(mut self) -> Self {
        self.own_storage();
        let mut media = media_worker::Settings {
            core: self.core.clone(),
            worker: common::testing::fast_worker_settings(),
            storage: self.gateway.storage.clone(),
            ..Default::default()
        };
        media.media.poll_interval_ms = 20;
        media.media.image_poll_interval_ms = 20;
        self.media = Some(media);
        self
    }

    /// Points the tts-worker's `openai` provider at a provider simulator (`Simulator::base_url`),
    /// which makes it the worker's default provider.
    pub fn tts_openai_at(self, base_url: &str) -> Self {
        self.tts_provider_at("openai", base_url)
    }

    /// Gives the tts-worker a key for `provider` (`openai`, `deepgram`, `gemini`, …) and points
    /// it at `base_url` (a provider simulator: `Simulator::base_url` for OpenAI,
    /// `Simulator::root_url` for Deepgram and Gemini).
    pub fn tts_provider_at(mut self, provider: &str, base_url: &str) -> Self {
        if let Some(t) = &mut self.tts {
            t.providers.insert(
                provider.into(),
                tts_worker::config::ProviderAccess {
                    api_key: Secret::new("sk-test"),
                    base_url: Some(base_url.to_owned()),
                },
            );
        }
        self
    }

    /// Without the chat-worker.
    pub fn no_chat(mut self) -> Self {
        self.worker = None;
        self
    }

    /// Uses another (single) Redis for every process.
    pub fn redis_url(mut self, url: &str) -> Self {
        let point = |core: &mut common::settings::CoreSettings| {
            core.redis_url = Secret::new(url);
            core.redis_cluster_urls = None;
        };
        point(&mut self.core);
        point(&mut self.gateway.core);
        if let Some(w) = &mut self.worker {
            point(&mut w.core);
        }
        if let Some(t) = &mut self.tts {
            point(&mut t.core);
        }
        if let Some(s) = &mut self.semantic {
            point(&mut s.core);
        }
        if let Some(m) = &mut self.media {
            point(&mut m.core);
        }
        if let Some(b) = &mut self.batch {
            point(&mut b.core);
        }
        self
    }

    /// Points the worker's `openai` provider at a provider simulator (`Simulator::base_url`).
    pub fn openai_at(mut self, base_url: &str) -> Self {
        if let Some(w) = &mut self.worker {
            w.providers.insert(
                "openai".into(),
                chat_worker::config::ProviderAccess {
                    api_key: Some(common::settings::Secret::new("sk-test")),
                    base_url: Some(base_url.to_owned()),
                },
            );
        }
        self
    }

    /// Paces the dummy provider.
    pub fn dummy(mut self, tokens: usize, interval_ms: u64) -> Self {
        if let Some(w) = &mut self.worker {
            w.dummy.tokens = tokens;
            w.dummy.token_interval_ms = interval_ms;
        }
        self
    }
}

/// A running gateway and worker.
pub struct System {
    pub core: CoreSettings,
    pub http: String,
    pub ws: String,
    /// The local storage directory of its own (a system with a tts-, semantic-, media- or
    /// batch-worker, or `Opts::files`), removed when it is dropped.
    storage_dir: Option<std::path::PathBuf>,
    /// The index directory of a system with a semantic-worker, removed when it is dropped.
    semantic_dir: Option<std::path::PathBuf>,
    shutdown: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl System {
    pub async fn start(mut opts: Opts) -> Self {
        let shutdown = CancellationToken::new();
        // A directory of its own (`Opts::own_storage`), never the default one.
        let storage_dir = (opts.gateway.storage.dir
            != common::storage::StorageSettings::default().dir)
            .then(|| std::path::PathBuf::from(&opts.gateway.storage.dir));
        if let Some(tts) = &mut opts.tts {
            tts.storage = opts.gateway.storage.clone();
        }
        if let Some(semantic) = &mut opts.semantic {
            semantic.storage = opts.gateway.storage.clone();
        }
        if let Some(media) = &mut opts.media {
            media.storage = opts.gateway.storage.clone();
        }
        if let Some(batch) = &mut opts.batch {
            batch.storage = opts.gateway.storage.clone();
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut tasks = vec![tokio::spawn(gateway_service::serve(
            listener,
            opts.gateway,
            shutdown.clone(),
        ))];
        if let Some(worker) = opts.worker {
            tasks.push(tokio::spawn(chat_worker::run(worker, shutdown.clone())));
        }
        if let Some(tts) = opts.tts {
            tasks.push(tokio::spawn(tts_worker::run(tts, shutdown.clone())));
        }
        let semantic_dir = opts
            .semantic
            .as_ref()
            .map(|s| std::path::PathBuf::from(&s.semantic.store_dir));
        if let Some(semantic) = opts.semantic {
            tasks.push(tokio::spawn(semantic_worker::run(
                semantic,
                shutdown.clone(),
            )));
        }
        if let Some(media) = opts.media {
            tasks.push(tokio::spawn(media_worker::run(media, shutdown.clone())));
        }
        if let Some(batch) = opts.batch {
            tasks.push(tokio::spawn(batch_worker::run(batch, shutdown.clone())));
        }
        let system = Self {
            core: opts.core,
            http: format!("http://{addr}"),
            ws: format!("ws://{addr}/chat/ws"),
            storage_dir,
            semantic_dir,
            shutdown,
            tasks,
        };
        let client = reqwest::Client::new();
        for _ in 0..200 {
            if let Ok(r) = client.get(format!("{}/ready", system.http)).send().await
                && r.status().is_success()
            {
                return system;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("gateway did not become ready");
    }

    /// A token of a user of `tenant`.
    pub fn token(&self, tenant: Uuid) -> String {
        JwtAuth::hs256(TEST_SECRET.as_bytes())
            .issue(Uuid::now_v7(), tenant, Role::User, Duration::from_secs(600))
            .unwrap()
    }

    /// A token of an admin of `tenant`.
    pub fn admin_token(&self, tenant: Uuid) -> String {
        JwtAuth::hs256(TEST_SECRET.as_bytes())
            .issue(
                Uuid::now_v7(),
                tenant,
                Role::Admin,
                Duration::from_secs(600),
            )
            .unwrap()
    }

    /// A WebSocket authenticated with `?token=`, past `websocket_ready`.
    pub async fn connect(&self, token: &str) -> (Ws, String) {
        let mut ws = Ws::connect(&format!("{}?token={token}", self.ws)).await;
        let ready = ws.next().await;
        assert_eq!(ready["type"], "websocket_ready", "{ready}");
        assert_eq!(ready["version"], "2.0");
        let session = ready["session_id"].as_str().unwrap().to_owned();
        (ws, session)
    }

    /// `POST {path}` with a JSON body as `token`; the status and the JSON answer (null if none).
    pub async fn post(&self, token: &str, path: &str, body: Value) -> (u16, Value) {
        let r = reqwest::Client::new()
            .post(format!("{}{path}", self.http))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub fn redis(&self) -> redis::Client {
        redis::Client::open(self.core.redis_url.expose()).unwrap()
    }
}

impl System {
    /// Stops every process of the system and waits until they have exited.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        for task in self.tasks.drain(..) {
            let stopped = tokio::time::timeout(WAIT, task).await;
            assert!(
                matches!(stopped, Ok(Ok(Ok(())))),
                "did not stop cleanly: {stopped:?}"
            );
        }
    }
}

impl Drop for System {
    fn drop(&mut self) {
        self.shutdown.cancel();
        for dir in [&self.storage_dir, &self.semantic_dir]
            .into_iter()
            .flatten()
        {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A client of the WebSocket protocol.
pub struct Ws {
    inner: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// How a connection ended.
#[derive(Debug, PartialEq)]
pub enum Ended {
    Closed(u16),
    Dropped,
}

impl Ws {
    pub async fn connect(url: &str) -> Self {
        let (inner, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        Self { inner }
    }

    pub async fn send(&mut self, value: Value) {
        self.inner
            .send(Message::text(value.to_string()))
            .await
            .unwrap();
    }

    /// A binary frame (live audio).
    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.inner.send(Message::binary(bytes)).await.unwrap();
    }

    pub async fn send_raw(&mut self, text: String) {
        self.inner.send(Message::text(text)).await.unwrap();
    }

    /// The next event (panics after `WAIT` or if the connection ends).
    pub async fn next(&mut self) -> Value {
        loop {
            let msg = tokio::time::timeout(WAIT, self.inner.next())
                .await
                .expect("no event in time")
                .expect("connection ended")
                .expect("websocket error");
            match msg {
                Message::Text(t) => return serde_json::from_str(&t).unwrap(),
                Message::Close(c) => panic!("closed: {c:?}"),
                _ => {}
            }
        }
    }

    /// Events until `complete` (inclusive).
    pub async fn until_complete(&mut self) -> Vec<Value> {
        self.until("complete").await
    }

    /// Events until one of `kind` (inclusive).
    pub async fn until(&mut self, kind: &str) -> Vec<Value> {
        let mut events = Vec::new();
        loop {
            let e = self.next().await;
            let done = e["type"] == kind;
            events.push(e);
            if done {
                return events;
            }
        }
    }

    /// Reads until the server ends the connection; events seen on the way are returned too.
    pub async fn until_closed(&mut self) -> (Vec<Value>, Ended) {
        let mut events = Vec::new();
        loop {
            let msg = tokio::time::timeout(WAIT, self.inner.next())
                .await
                .expect("not closed in time");
            match msg {
                Some(Ok(Message::Text(t))) => events.push(serde_json::from_str(&t).unwrap()),
                Some(Ok(Message::Close(Some(frame)))) => {
                    return (events, Ended::Closed(frame.code.into()));
                }
                Some(Ok(Message::Close(None))) => return (events, Ended::Closed(1005)),
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return (events, Ended::Dropped),
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.inner.close(None).await;
    }
}

/// The event types of a list of events.
pub fn kinds(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["type"].as_str().unwrap_or("?").to_owned())
        .collect()
}

/// The concatenated `text_chunk` contents.
pub fn text(events: &[Value]) -> String {
    events
        .iter()
        .filter(|e| e["type"] == "text_chunk")
        .map(|e| e["data"]["content"].as_str().unwrap())
        .collect()
}

/// Starts one more gateway (`serve` on port 0) with `settings`, stopping with `shutdown`; returns
/// its base URL once `/ready` answers.
pub async fn start_gateway(
    settings: gateway_service::Settings,
    shutdown: CancellationToken,
) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(gateway_service::serve(listener, settings, shutdown));
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if let Ok(r) = client.get(format!("{http}/ready")).send().await
            && r.status().is_success()
        {
            return http;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("gateway did not become ready");
}

impl System {
    /// A second gateway replica beside this system's (pass the same stream prefix and database
    /// in `settings`, e.g. a clone of `Opts::gateway`); it stops with the system.
    pub async fn another_gateway(&self, settings: gateway_service::Settings) -> String {
        start_gateway(settings, self.shutdown.clone()).await
    }
}
