//! File storage against both backends: the local directory, and S3 on a real S3 server
//! (`s3s-fs`, which checks signatures and the expiry of presigned URLs), each behind a gateway on
//! port 0. One suite of storage cases runs on both (put/get/delete, tenant isolation, URLs a
//! plain HTTP GET opens, URLs that open one key only, expired URLs); the upload route's cases run
//! on both where the backend matters and on the local one otherwise.
//!
//! Without `s3s-fs` the S3 cases are reported as *ignored*, with the reason, never as passed;
//! under `CI` they fail (`scripts/test` installs the server). Like `python_sdk.rs`, this file has
//! its own harness (`harness = false`) on `libtest-mimic`, so that a case can decide at run time
//! that it is ignored.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::storage::{Storage, StorageError, StorageSettings, StoredObject};
use common::testing::{S3S_FS_INSTALL, S3Server, in_ci, isolated_settings, s3s_fs_available};
use libtest_mimic::{Arguments, Completion, Failed, Trial};
use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Which backend a case runs on.
#[derive(Clone)]
enum Backend {
    Local,
    S3(Arc<S3Server>),
}

/// A gateway on one backend, and a `Storage` on the same settings (as a worker would have).
struct Env {
    storage: Storage,
    http: String,
    token_of: Box<dyn Fn(Uuid) -> String + Send + Sync>,
    shutdown: CancellationToken,
    local_dir: Option<std::path::PathBuf>,
}

impl Drop for Env {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(dir) = &self.local_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Env {
    async fn start(backend: &Backend, tune: impl FnOnce(&mut StorageSettings)) -> Self {
        let core = isolated_settings();
        let (mut storage, local_dir) = match backend {
            Backend::Local => {
                let dir = std::env::temp_dir().join(format!("storage-{}", Uuid::new_v4()));
                let settings = StorageSettings {
                    dir: dir.display().to_string(),
                    ..StorageSettings::default()
                };
                (settings, Some(dir))
            }
            Backend::S3(server) => (
                server.settings(&format!("t{}", Uuid::new_v4().simple())),
                None,
            ),
        };
        tune(&mut storage);
        let gateway = gateway_service::Settings {
            core: core.clone(),
            storage: storage.clone(),
            ..Default::default()
        };
        let shutdown = CancellationToken::new();
        let http = support::start_gateway(gateway, shutdown.clone()).await;
        let storage = Storage::new(&storage, &core).unwrap();
        storage.prepare().await.unwrap();
        let auth = common::auth::JwtAuth::hs256(common::testing::TEST_SECRET.as_bytes());
        Self {
            storage,
            http,
            token_of: Box::new(move |tenant| {
                auth.issue(
                    Uuid::now_v7(),
                    tenant,
                    common::auth::Role::User,
                    Duration::from_secs(600),
                )
                .unwrap()
            }),
            shutdown,
            local_dir,
        }
    }

    /// A URL as a browser resolves it against the gateway (local URLs are relative).
    fn absolute(&self, url: &str) -> String {
        if url.starts_with('/') {
            format!("{}{url}", self.http)
        } else {
            url.to_owned()
        }
    }

    async fn fetch(&self, url: &str) -> reqwest::Response {
        reqwest::get(self.absolute(url)).await.unwrap()
    }

    async fn upload(&self, token: Option<&str>, form: Form) -> (StatusCode, Value) {
        let mut request = reqwest::Client::new()
            .post(format!("{}/api/v1/storage/upload", self.http))
            .multipart(form);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

fn file(name: &str, bytes: &'static [u8]) -> Form {
    Form::new().part("file", Part::bytes(bytes).file_name(name.to_owned()))
}

const AUDIO: &[u8] = b"ID3\x04\x00fake mp3 frames 0123456789";

type Case = fn(Backend) -> Pin<Box<dyn Future<Output = ()>>>;

/// The storage cases, run on both backends.
const BOTH: &[(&str, Case)] = &[
    ("put_get_delete", |b| Box::pin(put_get_delete(b))),
    ("put_named_keeps_a_sanitized_name", |b| {
        Box::pin(put_named_keeps_a_sanitized_name(b))
    }),
    ("another_tenant_cannot_reach_a_key", |b| {
        Box::pin(another_tenant_cannot_reach_a_key(b))
    }),
    ("a_url_serves_the_bytes_to_a_plain_get", |b| {
        Box::pin(a_url_serves_the_bytes_to_a_plain_get(b))
    }),
    ("a_url_opens_its_own_key_only", |b| {
        Box::pin(a_url_opens_its_own_key_only(b))
    }),
    ("an_expired_url_is_refused", |b| {
        Box::pin(an_expired_url_is_refused(b))
    }),
    ("an_upload_is_stored_and_opens", |b| {
        Box::pin(an_upload_is_stored_and_opens(b))
    }),
    ("force_filename_keeps_the_clients_name", |b| {
        Box::pin(force_filename_keeps_the_clients_name(b))
    }),
];

/// The upload route's refusals and the file route's answers, on the local backend.
const LOCAL_ONLY: &[(&str, Case)] = &[
    ("uploads_need_a_token", |b| {
        Box::pin(uploads_need_a_token(b))
    }),
    ("uploads_outside_the_allow_list_are_refused", |b| {
        Box::pin(uploads_outside_the_allow_list_are_refused(b))
    }),
    ("an_oversized_upload_is_413", |b| {
        Box::pin(an_oversized_upload_is_413(b))
    }),
    ("invalid_json_fields_are_named", |b| {
        Box::pin(invalid_json_fields_are_named(b))
    }),
    ("the_file_route_refuses_unsigned_and_unknown", |b| {
        Box::pin(the_file_route_refuses_unsigned_and_unknown(b))
    }),
];

fn run_case(case: Case, backend: Backend) -> Result<Completion, Failed> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failed::from(format!("no Tokio runtime: {e}")))?;
    runtime.block_on(case(backend));
    Ok(Completion::Completed)
}

fn main() {
    let args = Arguments::from_args();
    let s3: Result<Arc<S3Server>, String> = if s3s_fs_available() {
        S3Server::start().map(Arc::new)
    } else {
        Err(format!(
            "s3s-fs is not installed; install it with {S3S_FS_INSTALL} to run the S3 cases"
        ))
    };
    let mut trials = Vec::new();
    for &(name, case) in BOTH.iter().chain(LOCAL_ONLY) {
        trials.push(Trial::ignorable_test(format!("local::{name}"), move || {
            run_case(case, Backend::Local)
        }));
    }
    for &(name, case) in BOTH {
        let s3 = s3.clone();
        trials.push(Trial::ignorable_test(
            format!("s3::{name}"),
            move || match s3 {
                Ok(server) => run_case(case, Backend::S3(server)),
                Err(reason) if in_ci() => Err(format!("under CI: {reason}").into()),
                Err(reason) => Ok(Completion::ignored_with(reason)),
            },
        ));
    }
    let conclusion = libtest_mimic::run(&args, trials);
    drop(s3);
    conclusion.exit();
}

async fn put_get_delete(backend: Backend) {
    let env = Env::start(&backend, |_| {}).await;
    let tenant = Uuid::new_v4();
    let stored = env
        .storage
        .put(
            tenant,
            "tts",
            "MP3",
            "audio/mpeg",
            Bytes::from_static(AUDIO),
        )
        .await
        .unwrap();
    let prefix = format!("{tenant}/tts/");
    assert!(stored.key.starts_with(&prefix), "{}", stored.key);
    assert!(stored.key.ends_with(".mp3"), "{}", stored.key);
    assert_eq!(stored.key, format!("{prefix}{}", stored.filename));
    assert_eq!(stored.size, AUDIO.len() as u64);
    assert_eq!(stored.content_type, "audio/mpeg");
    let object = env.storage.get(tenant, &stored.key).await.unwrap();
    assert_eq!(&object.bytes[..], AUDIO);
    assert_eq!(object.content_type, "audio/mpeg");
    env.storage.delete(tenant, &stored.key).await.unwrap();
    assert!(matches!(
        env.storage.get(tenant, &stored.key).await,
        Err(StorageError::NotFound)
    ));
    // Deleting again is no error.
    env.storage.delete(tenant, &stored.key).await.unwrap();
    // Folders and extensions that could leave the tenant's prefix are refused.
    for (folder, ext) in [("../x", "mp3"), ("tts", "m/p3"), ("tts", ".."), ("", "mp3")] {
        let put = env
            .storage
            .put(tenant, folder, ext, "audio/mpeg", Bytes::new())
            .await;
        assert!(
            matches!(put, Err(StorageError::Invalid(_))),
            "{folder} {ext}"
        );
    }
}

async fn put_named_keeps_a_sanitized_name(backend: Backend) {
    let env = Env::start(&backend, |_| {}).await;
    let tenant = Uuid::new_v4();
    let first = env
        .storage
        .put_named(
            tenant,
            "uploads",
            "../../my voice.mp3",
            "audio/mpeg",
            Bytes::from_static(b"one"),
        )
        .await
        .unwrap();
    assert_eq!(first.key, format!("{tenant}/uploads/my_voice.mp3"));
    let second = env
        .storage
        .put_named(
            tenant,
            "uploads",
            "my voice.mp3",
            "audio/mpeg",
            Bytes::from_static(b"two"),
        )
        .await
        .unwrap();
    assert_eq!(second.key, first.key, "the same name is the same object");
    let object = env.storage.get(tenant, &first.key).await.unwrap();
    assert_eq!(&object.bytes[..], b"two");
    // A name beyond ASCII survives the URL's encoding on both backends.
    let accented = env
        .storage
        .put_named(
            tenant,
            "uploads",
            "Chanson d'été.mp3",
            "audio/mpeg",
            Bytes::from_static(b"ete"),
        )
        .await
        .unwrap();
    assert_eq!(accented.key, format!("{tenant}/uploads/Chanson_d_été.mp3"));
    let response = env.fetch(&accented.url).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(&response.bytes().await.unwrap()[..], b"ete");
}

async fn another_tenant_cannot_reach_a_key(backend: Backend) {
    let env = Env::start(&backend, |_| {}).await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let stored = env
        .storage
        .put(a, "uploads", "png", "image/png", Bytes::from_static(b"PNG"))
        .await
        .unwrap();
    assert!(matches!(
        env.storage.get(b, &stored.key).await,
        Err(StorageError::NotFound)
    ));
    assert!(matches!(
        env.storage.url(b, &stored.key).await,
        Err(StorageError::NotFound)
    ));
    assert!(matches!(
        env.storage.delete(b, &stored.key).await,
        Err(StorageError::NotFound)
    ));
    // B's own prefix with A's file name is B's (missing) object, not A's.
    let in_b = stored.key.replace(&a.to_string(), &b.to_string());
    assert!(matches!(
        env.storage.get(b, &in_b).await,
        Err(StorageError::NotFound)
    ));
    let object = env.storage.get(a, &stored.key).await.unwrap();
    assert_eq!(&object.bytes[..], b"PNG", "A's object is untouched");
}

async fn a_url_serves_the_bytes_to_a_plain_get(backend: Backend) {
    let env = Env::start(&backend, |_| {}).await;
    let tenant = Uuid::new_v4();
    let stored = env
        .storage
        .put(
            tenant,
            "tts",
            "mp3",
            "audio/mpeg",
            Bytes::from_static(AUDIO),
        )
        .await
        .unwrap();
    assert_eq!(
        stored.url.starts_with('/'),
        matches!(backend, Backend::Local),
        "local URLs are gateway paths, S3 URLs are presigned: {}",
        stored.url
    );
    let response = env.fetch(&stored.url).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "audio/mpeg");
    assert_eq!(&response.bytes().await.unwrap()[..], AUDIO);
    // A fresh URL from `url` works the same, and seeking (Range) works for audio players.
    let url = env.storage.url(tenant, &stored.key).await.unwrap();
    let response = reqwest::Client::new()
        .get(env.absolute(&url.url))
        .header("range", "bytes=3-5")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(&response.bytes().await.unwrap()[..], &AUDIO[3..=5]);
}

async fn a_url_opens_its_own_key_only(backend: Backend) {
    let env = Env::start(&backend, |_| {}).await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let first = put_mp3(&env, a, b"first").await;
    let second = put_mp3(&env, a, b"second").await;
    let of_b = put_mp3(&env, b, b"of b").await;
    let url = env.absolute(&first.url);
    for other in [&second.key, &of_b.key] {
        let tampered = url.replace(&first.key, other);
        assert_ne!(tampered, url);
        let response = env.fetch(&tampered).await;
        assert_eq!(
            response.status(),
            StatusCode::FORBIDDEN,
            "{tampered} must not open {other}"
        );
    }
    if matches!(backend, Backend::Local) {
        // A later expiry with the old signature is refused too, with the envelope.
        let (start, rest) = url.split_once("expires=").unwrap();
        let (expires, sig) = rest.split_once('&').unwrap();
        let later = format!(
            "{start}expires={}&{sig}",
            expires.parse::<u64>().unwrap() + 3600
        );
        let response = env.fetch(&later).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["success"], false);
        assert_eq!(body["message"], "invalid signature");
    }
    assert_eq!(env.fetch(&url).await.status(), StatusCode::OK);
}

async fn put_mp3(env: &Env, tenant: Uuid, body: &'static [u8]) -> StoredObject {
    env.storage
        .put(tenant, "tts", "mp3", "audio/mpeg", Bytes::from_static(body))
        .await
        .unwrap()
}

async fn an_expired_url_is_refused(backend: Backend) {
    let env = Env::start(&backend, |_| {}).await;
    let tenant = Uuid::new_v4();
    let stored = env
        .storage
        .put(
            tenant,
            "tts",
            "mp3",
            "audio/mpeg",
            Bytes::from_static(AUDIO),
        )
        .await
        .unwrap();
    let url = env
        .storage
        .url_valid_for(tenant, &stored.key, Duration::from_secs(3))
        .await
        .unwrap();
    assert_eq!(env.fetch(&url.url).await.status(), StatusCode::OK);
    // Waits for the expiry the URL itself names, then for the refusal, with a deadline.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let status = env.fetch(&url.url).await.status();
        if status == StatusCode::FORBIDDEN {
            break;
        }
        assert_eq!(status, StatusCode::OK, "only OK until it expires");
        assert!(
            tokio::time::Instant::now() < deadline,
            "still served long after {}",
            url.expires_at
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(chrono::Utc::now() >= url.expires_at - chrono::Duration::seconds(1));
}

async fn an_upload_is_stored_and_opens(backend: Backend) {
    let env = Env::start(&backend, |_| {}).await;
    let tenant = Uuid::new_v4();
    let token = (env.token_of)(tenant);
    let form = file("voice note.MP3", AUDIO)
        .text("userInput", r#"{"session_id": "s1"}"#)
        .text("userSettings", r#"{"tts": {"voice": "x"}}"#);
    let (status, body) = env.upload(Some(&token), form).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["code"], 200);
    assert_eq!(body["success"], true);
    let data = &body["data"];
    let key = data["key"].as_str().unwrap();
    assert!(key.starts_with(&format!("{tenant}/uploads/")), "{key}");
    assert!(key.ends_with(".mp3"), "{key}");
    let filename = data["filename"].as_str().unwrap();
    assert!(
        key.ends_with(filename) && filename != "voice_note.mp3",
        "{data}"
    );
    assert_eq!(data["original_filename"], "voice note.MP3");
    assert_eq!(data["size"], AUDIO.len());
    assert_eq!(data["content_type"], "audio/mpeg");
    let response = env.fetch(data["url"].as_str().unwrap()).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(&response.bytes().await.unwrap()[..], AUDIO);
    // Another tenant's storage does not have it.
    assert!(matches!(
        env.storage.get(Uuid::new_v4(), key).await,
        Err(StorageError::NotFound)
    ));
}

async fn force_filename_keeps_the_clients_name(backend: Backend) {
    let env = Env::start(&backend, |_| {}).await;
    let tenant = Uuid::new_v4();
    let token = (env.token_of)(tenant);
    let form = file("My Song (1).mp3", AUDIO).text("userInput", r#"{"force_filename": true}"#);
    let (status, body) = env.upload(Some(&token), form).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["filename"], "My_Song__1_.mp3");
    assert_eq!(
        body["data"]["key"],
        format!("{tenant}/uploads/My_Song__1_.mp3")
    );
    let object = env
        .storage
        .get(tenant, body["data"]["key"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(&object.bytes[..], AUDIO);
}

async fn uploads_need_a_token(backend: Backend) {
    let env = Env::start(&backend, |_| {}).await;
    let (status, body) = env.upload(None, file("a.mp3", AUDIO)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["code"], 401);
    let (status, _) = env.upload(Some("not-a-jwt"), file("a.mp3", AUDIO)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

async fn uploads_outside_the_allow_list_are_refused(backend: Backend) {
    let env = Env::start(&backend, |s| {
        s.allowed_extensions = vec!["mp3".into(), "png".into()];
    })
    .await;
    let token = (env.token_of)(Uuid::new_v4());
    for name in ["run.exe", "page.html", "noext", "a.mp3.sh"] {
        let (status, body) = env.upload(Some(&token), file(name, AUDIO)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {body}");
        let message = body["message"].as_str().unwrap();
        assert!(message.contains("mp3, png"), "{name}: {message}");
    }
    let (status, body) = env
        .upload(Some(&token), Form::new().text("userInput", "{}"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["message"], "the form has no file part");
    let (status, _) = env.upload(Some(&token), file("ok.PNG", b"png")).await;
    assert_eq!(status, StatusCode::OK);
}

async fn an_oversized_upload_is_413(backend: Backend) {
    let env = Env::start(&backend, |s| s.max_upload_bytes = 1024).await;
    let token = (env.token_of)(Uuid::new_v4());
    let (status, body) = env
        .upload(Some(&token), file("big.mp3", &[7u8; 2048]))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["code"], 413);
    assert_eq!(body["message"], "the file is larger than 1024 bytes");
    let (status, _) = env
        .upload(Some(&token), file("small.mp3", &[7u8; 1024]))
        .await;
    assert_eq!(status, StatusCode::OK, "exactly the limit is fine");
}

async fn invalid_json_fields_are_named(backend: Backend) {
    let env = Env::start(&backend, |_| {}).await;
    let token = (env.token_of)(Uuid::new_v4());
    for (field, value, start) in [
        ("userInput", "{not json", "userInput is not valid JSON"),
        ("userSettings", "[1, 2", "userSettings is not valid JSON"),
        ("userInput", "[1]", "userInput must be a JSON object"),
    ] {
        // Before or after the file part, the field is named.
        for form in [
            file("a.mp3", AUDIO).text(field, value),
            Form::new()
                .text(field, value)
                .part("file", Part::bytes(AUDIO).file_name("a.mp3")),
        ] {
            let (status, body) = env.upload(Some(&token), form).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
            let message = body["message"].as_str().unwrap();
            assert!(message.starts_with(start), "{message}");
        }
    }
}

async fn the_file_route_refuses_unsigned_and_unknown(backend: Backend) {
    let env = Env::start(&backend, |_| {}).await;
    let tenant = Uuid::new_v4();
    let stored = env
        .storage
        .put(
            tenant,
            "docs",
            "html",
            "text/html",
            Bytes::from_static(b"<script>1</script>"),
        )
        .await
        .unwrap();
    let path = stored.url.split_once('?').unwrap().0;
    let response = env.fetch(path).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["message"], "this link is not signed");
    // A stored document is a download that cannot run as a page of the gateway.
    let response = env.fetch(&stored.url).await;
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers();
    assert!(
        headers["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("sandbox")
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");
    // A signed URL of a deleted object is 404; a path that is no key is 404.
    env.storage.delete(tenant, &stored.key).await.unwrap();
    assert_eq!(env.fetch(&stored.url).await.status(), StatusCode::NOT_FOUND);
    let odd = format!("/api/v1/storage/files/{tenant}/docs/..%2F..%2Fetc?expires=1&sig=x");
    assert_eq!(env.fetch(&odd).await.status(), StatusCode::NOT_FOUND);
}
