//! The service for tests: `serve` on port 0 with a stream prefix of its own and the test run's
//! database, tokens for any tenant and user, HTTP helpers, and the fixtures.
#![allow(dead_code)]

pub mod fit;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::auth::{JwtAuth, Role};
use common::settings::CoreSettings;
use common::testing::{TEST_SECRET, isolated_settings};
use common::worker::WorkerSettings;
use health_data_service::Settings;
use reqwest::StatusCode;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Longest wait for anything a test expects.
pub const WAIT: Duration = Duration::from_secs(20);

/// A running service.
pub struct Service {
    pub core: CoreSettings,
    pub base: String,
    pub http: reqwest::Client,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// A caller: tenant, user and their token.
#[derive(Clone)]
pub struct Caller {
    pub tenant: Uuid,
    pub user: Uuid,
    pub token: String,
}

impl Caller {
    /// A user of a new tenant.
    pub fn new() -> Self {
        Self::of(Uuid::now_v7(), Role::User)
    }

    /// A user of `tenant` with `role`.
    pub fn of(tenant: Uuid, role: Role) -> Self {
        let user = Uuid::now_v7();
        let token = JwtAuth::hs256(TEST_SECRET.as_bytes())
            .issue(user, tenant, role, Duration::from_secs(600))
            .unwrap();
        Self {
            tenant,
            user,
            token,
        }
    }

    /// Another user of the same tenant.
    pub fn colleague(&self) -> Self {
        Self::of(self.tenant, Role::User)
    }

    /// An admin of the same tenant.
    pub fn admin(&self) -> Self {
        Self::of(self.tenant, Role::Admin)
    }
}

impl Service {
    /// Starts the service and waits until `/ready` answers 200.
    pub async fn start() -> Self {
        let core = isolated_settings();
        let settings = Settings {
            core: core.clone(),
            worker: WorkerSettings {
                min_idle_ms: 2000,
                heartbeat_ms: 200,
                reclaim_interval_ms: 200,
                shutdown_grace_secs: 10,
                ..WorkerSettings::default()
            },
            ..Settings::default()
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(health_data_service::serve(
            listener,
            settings,
            shutdown.clone(),
        ));
        let service = Self {
            core,
            base: format!("http://{addr}"),
            http: reqwest::Client::new(),
            shutdown,
            task,
        };
        for _ in 0..400 {
            if let Ok(r) = service
                .http
                .get(format!("{}/ready", service.base))
                .send()
                .await
                && r.status().is_success()
            {
                return service;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("health-data-service did not become ready");
    }

    /// Stops it and waits until it has exited cleanly.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let stopped = tokio::time::timeout(WAIT, self.task).await;
        assert!(
            matches!(stopped, Ok(Ok(Ok(())))),
            "did not stop cleanly: {stopped:?}"
        );
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v1/health{path}", self.base)
    }

    async fn send(req: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let r = req.send().await.unwrap();
        let status = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        if status.is_success() || status.is_client_error() {
            assert_eq!(body["code"], status.as_u16(), "{body}");
        }
        (status, body)
    }

    /// `GET /api/v1/health{path}` as `who`.
    pub async fn get(&self, who: &Caller, path: &str) -> (StatusCode, Value) {
        Self::send(self.http.get(self.url(path)).bearer_auth(&who.token)).await
    }

    /// `GET` that must succeed; its `data`.
    pub async fn data(&self, who: &Caller, path: &str) -> Value {
        let (status, body) = self.get(who, path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        body["data"].clone()
    }

    /// Every item of a paginated list, following `next_cursor` with pages of `limit`; also
    /// returns the page sizes.
    pub async fn all_pages(
        &self,
        who: &Caller,
        path: &str,
        limit: usize,
    ) -> (Vec<Value>, Vec<usize>) {
        let sep = if path.contains('?') { '&' } else { '?' };
        let (mut items, mut sizes) = (Vec::new(), Vec::new());
        let mut cursor: Option<String> = None;
        loop {
            let mut url = format!("{path}{sep}limit={limit}");
            if let Some(c) = &cursor {
                url.push_str(&format!("&cursor={c}"));
            }
            let page = self.data(who, &url).await;
            let batch = page["items"].as_array().unwrap().clone();
            sizes.push(batch.len());
            items.extend(batch);
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return (items, sizes),
            }
            assert!(sizes.len() < 100, "runaway pagination");
        }
    }

    /// `POST` a body (a CSV file).
    pub async fn post_body(&self, who: &Caller, path: &str, body: Vec<u8>) -> (StatusCode, Value) {
        Self::send(
            self.http
                .post(self.url(path))
                .bearer_auth(&who.token)
                .header("content-type", "text/csv")
                .body(body),
        )
        .await
    }

    /// `PUT` / `DELETE` without a body.
    pub async fn put(&self, who: &Caller, path: &str) -> (StatusCode, Value) {
        Self::send(self.http.put(self.url(path)).bearer_auth(&who.token)).await
    }

    /// `DELETE`.
    pub async fn delete(&self, who: &Caller, path: &str) -> (StatusCode, Value) {
        Self::send(self.http.delete(self.url(path)).bearer_auth(&who.token)).await
    }

    /// Uploads files to the Garmin importer.
    pub async fn upload(&self, who: &Caller, files: Vec<(String, Vec<u8>)>) -> (StatusCode, Value) {
        let mut form = reqwest::multipart::Form::new();
        for (name, bytes) in files {
            form = form.part(
                "file",
                reqwest::multipart::Part::bytes(bytes).file_name(name),
            );
        }
        Self::send(
            self.http
                .post(self.url("/garmin/imports"))
                .bearer_auth(&who.token)
                .multipart(form),
        )
        .await
    }

    /// Uploads files and waits until their import job has finished; the job.
    pub async fn import(&self, who: &Caller, files: Vec<(String, Vec<u8>)>) -> Value {
        let (status, body) = self.upload(who, files).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        // The job is answered as created; its progress is read below.
        assert_eq!(body["data"]["status"], "queued", "{body}");
        assert_eq!(body["data"]["files_done"], 0, "{body}");
        let id = body["data"]["id"].as_str().unwrap().to_owned();
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let job = self.data(who, &format!("/garmin/imports/{id}")).await;
            if matches!(job["status"].as_str(), Some("completed" | "failed")) {
                return job;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "import did not finish: {job}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A Redis client on the service's Redis.
    pub fn redis(&self) -> redis::Client {
        redis::Client::open(self.core.redis_url.expose()).unwrap()
    }
}

/// A fixture's path.
pub fn fixture_path(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path)
}

/// A fixture's contents.
pub fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(fixture_path(path)).unwrap()
}

/// The FIT fixture (checked against the encoder by a test).
pub fn fit_file() -> (String, Vec<u8>) {
    (
        "activity_2024-03-12.fit".into(),
        fixture("garmin/activity_2024-03-12.fit"),
    )
}

/// The Garmin export fixture as a `.zip`, as Garmin ships it (`DI_CONNECT/...`).
pub fn export_zip() -> (String, Vec<u8>) {
    let root = fixture_path("garmin");
    let mut files = Vec::new();
    collect(&root, &root, &mut files);
    files.sort();
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default();
    for (name, bytes) in files {
        if name.ends_with(".fit") {
            continue;
        }
        w.start_file(name, options).unwrap();
        w.write_all(&bytes).unwrap();
    }
    ("garmin-export.zip".into(), w.finish().unwrap().into_inner())
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect(root, &path, out);
        } else {
            let name = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            out.push((name, std::fs::read(&path).unwrap()));
        }
    }
}

/// A float field.
pub fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// Asserts two floats are equal to 1e-9.
#[track_caller]
pub fn close(actual: f64, expected: f64) {
    assert!((actual - expected).abs() < 1e-9, "{actual} != {expected}");
}
