//! A batch-worker running in-process (or as its own process, to be killed) against real Redis,
//! PostgreSQL and a local storage directory; jobs recorded the way the gateway records them.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use batch_worker::Settings;
use bytes::Bytes;
use chrono::Utc;
use common::Bus;
use common::batch::store::{self, NewFile, NewJob};
use common::batch::{self as batch, Job, Owner};
use common::envelope::DomainAction;
use common::llm::ProviderAccess;
use common::payloads::batch::RUN;
use common::settings::Secret;
use common::storage::Storage;
use common::testing::{Received, WAIT, fast_worker_settings, isolated_settings, read_until};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// What a test talks to; dropped, the in-process worker (if any) stops.
pub struct Env {
    pub settings: Settings,
    pub bus: Bus,
    pub client: redis::Client,
    pub db: PgPool,
    pub storage: Storage,
    shutdown: CancellationToken,
}

impl Drop for Env {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Settings of a test: its own key prefix and storage directory, fast polls and leases.
pub fn settings() -> Settings {
    let mut s = Settings {
        core: isolated_settings(),
        worker: fast_worker_settings(),
        ..Settings::default()
    };
    s.storage.dir = std::env::temp_dir()
        .join(format!("batch-test-{}", Uuid::now_v7().simple()))
        .to_string_lossy()
        .into_owned();
    s.batch.poll_interval_ms = 20;
    s.batch.lease_secs = 2;
    s.batch.progress_interval_ms = 50;
    s.batch.retry_base_ms = 20;
    s.batch.sweep_interval_secs = 3600;
    s.dummy.tokens = 3;
    s.dummy.token_interval_ms = 0;
    s
}

/// `settings` with `provider` (a registry provider name) reached at `base_url` with a key.
pub fn with(mut s: Settings, provider: &str, base_url: String) -> Settings {
    s.providers.insert(
        provider.into(),
        ProviderAccess {
            api_key: Some(Secret::new("sk-test-key")),
            base_url: Some(base_url),
        },
    );
    s
}

/// Connects to what `settings` name (creating and migrating the test database).
pub async fn observe(settings: Settings) -> Env {
    let db = common::db::connect(&settings.core).await.unwrap();
    let storage = Storage::new(&settings.storage, &settings.core).unwrap();
    storage.prepare().await.unwrap();
    Env {
        bus: Bus::connect(&settings.core).await.unwrap(),
        client: redis::Client::open(settings.core.redis_url.expose()).unwrap(),
        db,
        storage,
        settings,
        shutdown: CancellationToken::new(),
    }
}

/// Starts a batch-worker in this process.
pub async fn start(settings: Settings) -> Env {
    let env = observe(settings).await;
    tokio::spawn(batch_worker::run(
        env.settings.clone(),
        env.shutdown.clone(),
    ));
    env
}

/// A batch-worker as its own process (to be killed), with `extra` environment; `binary` is
/// `env!("CARGO_BIN_EXE_batch-worker")`, which only integration tests have.
pub fn spawn_process(binary: &str, env: &Env, extra: &[(&str, String)]) -> std::process::Child {
    use std::process::{Command, Stdio};
    let core = &env.settings.core;
    let mut cmd = Command::new(binary);
    cmd.env("REDIS_URL", core.redis_url.expose())
        .env("STREAM_PREFIX", &core.stream_prefix)
        .env("APP_ENV", &core.app_env)
        .env("DATABASE_URL", core.database_url.expose())
        .env("JWT_SECRET", "test-secret")
        .env("STORAGE__DIR", &env.settings.storage.dir)
        .env(
            "WORKER__MIN_IDLE_MS",
            env.settings.worker.min_idle_ms.to_string(),
        )
        .env(
            "WORKER__HEARTBEAT_MS",
            env.settings.worker.heartbeat_ms.to_string(),
        )
        .env(
            "WORKER__RECLAIM_INTERVAL_MS",
            env.settings.worker.reclaim_interval_ms.to_string(),
        )
        .env("WORKER__BLOCK_MS", env.settings.worker.block_ms.to_string())
        .env(
            "BATCH__POLL_INTERVAL_MS",
            env.settings.batch.poll_interval_ms.to_string(),
        )
        .env(
            "BATCH__LEASE_SECS",
            env.settings.batch.lease_secs.to_string(),
        )
        .env(
            "BATCH__CONCURRENCY",
            env.settings.batch.concurrency.to_string(),
        )
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null());
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd.spawn().expect("the batch-worker binary")
}

/// A chat completion line of the batch input.
pub fn line(custom_id: &str, model: &str, prompt: &str) -> String {
    json!({"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions",
           "body": {"model": model, "messages": [{"role": "user", "content": prompt}]}})
    .to_string()
}

/// `n` lines `line-1` … `line-n` of `model`, each prompt naming its line.
pub fn lines(n: usize, model: &str) -> Vec<String> {
    (1..=n)
        .map(|i| {
            line(
                &format!("line-{i}"),
                model,
                &format!("request line-{i} end"),
            )
        })
        .collect()
}

/// A user of a tenant of their own.
pub fn owner() -> Owner {
    Owner {
        tenant_id: Uuid::now_v7(),
        user_id: Some(Uuid::now_v7()),
    }
}

impl Env {
    /// Stores `content` as `owner`'s batch input file, records a job over it (as the gateway
    /// does) and answers the job and the action that runs it (not yet published).
    pub async fn record(&self, owner: Owner, content: &str) -> (Job, DomainAction) {
        let file_id = batch::new_file_id();
        let stored = self
            .storage
            .put_named(
                owner.tenant_id,
                batch::FOLDER,
                &format!("{file_id}.jsonl"),
                "application/jsonl",
                Bytes::from(content.to_owned()),
            )
            .await
            .unwrap();
        self.record_stored(owner, &file_id, &stored.key, stored.size)
            .await
    }

    /// Like [`Env::record`], the input being the file at `path` (stored without reading it
    /// into memory).
    pub async fn record_file(&self, owner: Owner, path: &std::path::Path) -> (Job, DomainAction) {
        let file_id = batch::new_file_id();
        let stored = self
            .storage
            .put_file_named(
                owner.tenant_id,
                batch::FOLDER,
                &format!("{file_id}.jsonl"),
                "application/jsonl",
                path,
            )
            .await
            .unwrap();
        self.record_stored(owner, &file_id, &stored.key, stored.size)
            .await
    }

    async fn record_stored(
        &self,
        owner: Owner,
        file_id: &str,
        key: &str,
        size: u64,
    ) -> (Job, DomainAction) {
        let later = Utc::now() + chrono::Duration::days(29);
        store::insert_file(
            &self.db,
            &NewFile {
                id: file_id,
                owner,
                purpose: "batch",
                filename: "input.jsonl",
                bytes: size as i64,
                storage_key: key,
                expires_at: later,
            },
        )
        .await
        .unwrap();
        let id = batch::new_batch_id();
        let (session_id, task_id) = (Uuid::now_v7(), Uuid::now_v7());
        let job = store::insert_job(
            &self.db,
            &NewJob {
                id: &id,
                owner,
                session_id,
                task_id,
                endpoint: batch::CHAT_ENDPOINT,
                input_file_id: file_id,
                completion_window: batch::COMPLETION_WINDOW,
                metadata: None,
                expires_at: Utc::now() + chrono::Duration::hours(24),
                delete_at: later,
            },
        )
        .await
        .unwrap();
        let mut a = DomainAction::new(
            RUN,
            "test",
            owner.tenant_id,
            session_id,
            json!({"batch_id": id}),
        );
        a.task_id = task_id;
        a.user_id = owner.user_id;
        (job, a)
    }

    /// Records a job over `lines` and publishes its action.
    pub async fn submit(&self, owner: Owner, lines: &[String]) -> (Job, DomainAction) {
        let (job, a) = self.record(owner, &(lines.join("\n") + "\n")).await;
        self.bus.publish(&a).await.unwrap();
        (job, a)
    }

    /// The action's events up to the first of `kind`.
    pub async fn events(&self, action: &DomainAction, until: &str) -> Vec<Received> {
        let key = self.bus.names().response_stream(action.session_id);
        read_until(&self.client, &key, until, Some(action.task_id), WAIT).await
    }

    /// The job now.
    pub async fn job(&self, job: &Job) -> Job {
        store::job_of_tenant(&self.db, job.tenant_id, &job.id)
            .await
            .unwrap()
            .unwrap()
    }

    /// The lines of the job's file `file_id` (output or errors), parsed; none without it.
    pub async fn file_lines(&self, job: &Job, file_id: Option<&str>) -> Vec<Value> {
        let Some(file_id) = file_id else {
            return Vec::new();
        };
        let owner = Owner {
            tenant_id: job.tenant_id,
            user_id: job.user_id,
        };
        let f = store::file(&self.db, owner, file_id)
            .await
            .unwrap()
            .unwrap();
        let bytes = self
            .storage
            .get(job.tenant_id, &f.storage_key)
            .await
            .unwrap()
            .bytes;
        String::from_utf8(bytes.to_vec())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Lines journaled for the job so far.
    pub async fn journaled(&self, job: &Job) -> Vec<i32> {
        store::journaled(&self.db, &job.id).await.unwrap().0
    }
}

/// The event types, in order.
pub fn kinds(events: &[Received]) -> Vec<&str> {
    events.iter().map(|e| e.kind.as_str()).collect()
}

/// The data of the first event of `kind`.
pub fn of<'a>(events: &'a [Received], kind: &str) -> Option<&'a Value> {
    events
        .iter()
        .find(|e| e.kind == kind)
        .map(|e| &e.event["data"])
}

/// Asserts one `complete`, last.
pub fn assert_ends_once(events: &[Received]) {
    let k = kinds(events);
    assert_eq!(k.iter().filter(|k| **k == "complete").count(), 1, "{k:?}");
    assert_eq!(k.last(), Some(&"complete"), "{k:?}");
}
