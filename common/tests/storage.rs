//! Streamed puts and reads of `common::storage` (`Storage::put_file`, `put_file_named`,
//! `get_stream`) on both backends: a local directory in a temporary directory, and S3 on a real
//! S3 server (`s3s-fs`, see `common::testing::S3Server`). Files of several MB go in from disk and
//! come back through the stream byte for byte; keys of other tenants and missing keys are
//! `NotFound`; and a 48 MiB object goes in and is read back line by line while the process's
//! peak resident memory (`VmHWM`, reset through `/proc/self/clear_refs`) grows by far less than
//! the object, with no chunk of the reader larger than a few MiB.
//!
//! Its own harness (`harness = false`, no dependency): the cases run one after another, the
//! memory cases first, so the peak they measure is their own. The S3 cases need the `testing`
//! feature (`cargo test --workspace` enables it; alone: `cargo test -p common --features
//! testing`) and `s3s-fs`; without either they are reported as *ignored*, with the reason, never
//! as passed; under `CI` a missing `s3s-fs` fails them. Arguments: substrings that select cases,
//! `--skip SUBSTRING`, `--exact`, `--list`.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// The harness reports to stdout, as libtest does.
#![allow(clippy::print_stdout)]

use std::future::Future;
use std::io::Write as _;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;

use common::settings::{CoreSettings, Secret};
use common::storage::{Storage, StorageError, StorageSettings};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncReadExt};
use uuid::Uuid;

/// A case's future.
type CaseFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One storage on one backend, with a scratch directory for the files to put.
struct Env {
    storage: Storage,
    scratch: PathBuf,
    local_dir: Option<PathBuf>,
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.scratch);
        if let Some(dir) = &self.local_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The S3 server, or why there is none.
#[cfg(feature = "testing")]
type S3 = Result<Arc<common::testing::S3Server>, String>;
#[cfg(not(feature = "testing"))]
type S3 = Result<Arc<()>, String>;

#[cfg(feature = "testing")]
fn start_s3() -> S3 {
    use common::testing::{S3S_FS_INSTALL, S3Server, s3s_fs_available, s3s_fs_binary};
    if !s3s_fs_available() {
        return Err(format!(
            "no S3 server: {} does not run (install it: {S3S_FS_INSTALL})",
            s3s_fs_binary()
        ));
    }
    S3Server::start().map(Arc::new)
}

#[cfg(not(feature = "testing"))]
fn start_s3() -> S3 {
    Err("the S3 cases need the `testing` feature (cargo test -p common --features testing)".into())
}

#[cfg(feature = "testing")]
fn in_ci() -> bool {
    common::testing::in_ci()
}

#[cfg(not(feature = "testing"))]
fn in_ci() -> bool {
    false
}

fn temp_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("{what}-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl Env {
    async fn local() -> Self {
        let dir = temp_dir("storage-local");
        let settings = StorageSettings {
            dir: dir.display().to_string(),
            url_secret: Some(Secret::new("storage-test")),
            ..StorageSettings::default()
        };
        Self::start(settings, Some(dir)).await
    }

    #[cfg(feature = "testing")]
    async fn s3(server: &common::testing::S3Server) -> Self {
        let settings = server.settings(&format!("t{}", Uuid::new_v4().simple()));
        Self::start(settings, None).await
    }

    async fn start(settings: StorageSettings, local_dir: Option<PathBuf>) -> Self {
        let storage = Storage::new(&settings, &CoreSettings::default()).unwrap();
        storage.prepare().await.unwrap();
        Self {
            storage,
            scratch: temp_dir("storage-scratch"),
            local_dir,
        }
    }

    /// A JSONL file of `lines` lines of about `line_bytes` bytes each, written line by line;
    /// its path, size and SHA-256.
    fn jsonl(&self, name: &str, lines: usize, line_bytes: usize) -> (PathBuf, u64, [u8; 32]) {
        let path = self.scratch.join(name);
        let file = std::fs::File::create(&path).unwrap();
        let mut out = std::io::BufWriter::new(file);
        let mut hash = Sha256::new();
        let pad = "x".repeat(line_bytes.saturating_sub(40));
        for i in 0..lines {
            let line = format!("{{\"custom_id\":\"request-{i}\",\"pad\":\"{pad}\"}}\n");
            hash.update(line.as_bytes());
            out.write_all(line.as_bytes()).unwrap();
        }
        out.flush().unwrap();
        drop(out);
        let size = std::fs::metadata(&path).unwrap().len();
        (path, size, hash.finalize().into())
    }
}

/// The whole stream of `tenant`'s `key`: its size as announced, its bytes' SHA-256, its bytes
/// and its line count.
async fn read_stream(storage: &Storage, tenant: Uuid, key: &str) -> (u64, [u8; 32], u64, usize) {
    let reader = storage.get_stream(tenant, key).await.unwrap();
    let announced = reader.size;
    let mut lines = reader.lines();
    let mut hash = Sha256::new();
    let (mut bytes, mut count) = (0u64, 0usize);
    while let Some(line) = lines.next_line().await.unwrap() {
        hash.update(line.as_bytes());
        hash.update(b"\n");
        bytes += line.len() as u64 + 1;
        count += 1;
    }
    (announced, hash.finalize().into(), bytes, count)
}

fn assert_not_found<T: std::fmt::Debug>(result: Result<T, StorageError>, what: &str) {
    assert!(
        matches!(result, Err(StorageError::NotFound)),
        "{what}: {result:?}"
    );
}

/// A multi-MB JSONL file put from disk under a generated name in `batches` comes back through
/// `get_stream` (and `get`) byte for byte, with its size and type.
async fn put_file_then_stream_back(env: Env) {
    let tenant = Uuid::new_v4();
    let (path, size, sha) = env.jsonl("input.jsonl", 40_000, 150);
    assert!(size > 5 << 20, "{size}");
    let stored = env
        .storage
        .put_file(tenant, "batches", "jsonl", "application/jsonl", &path)
        .await
        .unwrap();
    assert_eq!(stored.size, size);
    assert_eq!(stored.content_type, "application/jsonl");
    assert!(
        stored.key.starts_with(&format!("{tenant}/batches/")) && stored.key.ends_with(".jsonl"),
        "{}",
        stored.key
    );
    assert!(path.exists(), "put_file leaves the caller's file alone");

    let (announced, got_sha, got_bytes, lines) =
        read_stream(&env.storage, tenant, &stored.key).await;
    assert_eq!((announced, got_bytes, lines), (size, size, 40_000));
    assert_eq!(got_sha, sha, "the streamed content differs");

    let reader = env.storage.get_stream(tenant, &stored.key).await.unwrap();
    assert_eq!(reader.content_type, "application/jsonl");
    let whole = env.storage.get(tenant, &stored.key).await.unwrap();
    assert_eq!(
        whole.bytes.as_ref(),
        std::fs::read(&path).unwrap().as_slice()
    );
    drop(reader);
}

/// A caller-chosen name is kept (sanitized), and a second put under it replaces the first.
async fn put_file_named_replaces(env: Env) {
    let tenant = Uuid::new_v4();
    let (first, _, _) = env.jsonl("first.jsonl", 10, 100);
    let (second, size, sha) = env.jsonl("second.jsonl", 30_000, 120);
    let stored = env
        .storage
        .put_file_named(
            tenant,
            "batches",
            "batch_42 output.jsonl",
            "application/jsonl",
            &first,
        )
        .await
        .unwrap();
    assert_eq!(
        stored.key,
        format!("{tenant}/batches/batch_42_output.jsonl")
    );
    assert_eq!(stored.filename, "batch_42_output.jsonl");
    let again = env
        .storage
        .put_file_named(
            tenant,
            "batches",
            "batch_42 output.jsonl",
            "application/jsonl",
            &second,
        )
        .await
        .unwrap();
    assert_eq!(again.key, stored.key);
    assert_eq!(again.size, size);
    let (announced, got_sha, got_bytes, lines) =
        read_stream(&env.storage, tenant, &stored.key).await;
    assert_eq!((announced, got_bytes, lines), (size, size, 30_000));
    assert_eq!(got_sha, sha);
}

/// An empty file is an empty object.
async fn empty_file(env: Env) {
    let tenant = Uuid::new_v4();
    let path = env.scratch.join("empty.jsonl");
    std::fs::write(&path, b"").unwrap();
    let stored = env
        .storage
        .put_file(tenant, "batches", "jsonl", "application/jsonl", &path)
        .await
        .unwrap();
    assert_eq!(stored.size, 0);
    let mut reader = env.storage.get_stream(tenant, &stored.key).await.unwrap();
    assert_eq!(reader.size, 0);
    let mut all = Vec::new();
    reader.read_to_end(&mut all).await.unwrap();
    assert!(all.is_empty());
}

/// Another tenant's key, a missing key and a key that is no key are all `NotFound`; the
/// object stays readable by its owner.
async fn other_tenants_and_missing_keys_are_not_found(env: Env) {
    let (owner, other) = (Uuid::new_v4(), Uuid::new_v4());
    let (path, size, _) = env.jsonl("mine.jsonl", 100, 80);
    let stored = env
        .storage
        .put_file(owner, "batches", "jsonl", "application/jsonl", &path)
        .await
        .unwrap();
    assert_not_found(
        env.storage.get_stream(other, &stored.key).await,
        "another tenant's key",
    );
    let theirs = stored
        .key
        .replacen(&owner.to_string(), &other.to_string(), 1);
    assert_not_found(
        env.storage.get_stream(other, &theirs).await,
        "the same name in another tenant",
    );
    assert_not_found(
        env.storage
            .get_stream(owner, &format!("{owner}/batches/missing.jsonl"))
            .await,
        "a missing key",
    );
    assert_not_found(
        env.storage
            .get_stream(owner, &format!("{owner}/batches/../x.jsonl"))
            .await,
        "not a key",
    );
    assert_eq!(
        env.storage
            .get_stream(owner, &stored.key)
            .await
            .unwrap()
            .size,
        size
    );
}

/// Bad folders and extensions are `Invalid` before anything is read; a path that is no file
/// is the caller's fault (`Backend`), not `NotFound`.
async fn put_file_refusals(env: Env) {
    let tenant = Uuid::new_v4();
    let (path, _, _) = env.jsonl("x.jsonl", 1, 50);
    for (folder, ext) in [("../x", "jsonl"), ("batches", "tar.gz"), ("batches", "")] {
        let result = env
            .storage
            .put_file(tenant, folder, ext, "application/jsonl", &path)
            .await;
        assert!(
            matches!(result, Err(StorageError::Invalid(_))),
            "{folder} {ext}: {result:?}"
        );
    }
    for bad in [env.scratch.join("missing.jsonl"), env.scratch.clone()] {
        let result = env
            .storage
            .put_file(tenant, "batches", "jsonl", "application/jsonl", &bad)
            .await;
        assert!(
            matches!(result, Err(StorageError::Backend(_))),
            "{}: {result:?}",
            bad.display()
        );
    }
}

/// The process's peak resident memory since the last reset, bytes (Linux).
fn peak_rss() -> Result<u64, String> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(|e| e.to_string())?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .ok_or("no VmHWM in /proc/self/status")?;
    Ok(kb * 1024)
}

/// Resets the peak to the current resident memory (Linux 4.0+).
fn reset_peak_rss() -> Result<(), String> {
    std::fs::write("/proc/self/clear_refs", "5").map_err(|e| e.to_string())
}

/// Whether the peak resident memory can be measured here; else why not.
fn rss_measurable() -> Result<(), String> {
    reset_peak_rss()
        .and_then(|()| peak_rss().map(drop))
        .map_err(|e| format!("cannot measure the peak resident memory here: {e}"))
}

const BIG_LINES: usize = 200_000;
const BIG_LINE_BYTES: usize = 256;
/// The most the peak resident memory may grow while 48 MiB go in or out.
const MAX_GROWTH: u64 = 12 << 20;
/// The largest chunk the reader may hand out at once.
const MAX_CHUNK: usize = 4 << 20;

/// A 48 MiB object goes in from disk and is read back line by line without the process ever
/// holding it: the peak resident memory grows by less than [`MAX_GROWTH`], and no chunk of the
/// reader exceeds [`MAX_CHUNK`].
async fn big_object_is_never_held_whole(env: Env) {
    let tenant = Uuid::new_v4();
    let (path, size, sha) = env.jsonl("big.jsonl", BIG_LINES, BIG_LINE_BYTES);
    assert!(size >= 48 << 20, "{size}");

    reset_peak_rss().unwrap();
    let before = peak_rss().unwrap();
    let stored = env
        .storage
        .put_file(tenant, "batches", "jsonl", "application/jsonl", &path)
        .await
        .unwrap();
    let put_growth = peak_rss().unwrap().saturating_sub(before);
    assert_eq!(stored.size, size);
    assert!(
        put_growth < MAX_GROWTH,
        "put_file of {size} bytes grew the peak resident memory by {put_growth} bytes"
    );

    reset_peak_rss().unwrap();
    let before = peak_rss().unwrap();
    let mut reader = env.storage.get_stream(tenant, &stored.key).await.unwrap();
    assert_eq!(reader.size, size);
    let mut hash = Sha256::new();
    let (mut total, mut lines, mut largest) = (0u64, 0usize, 0usize);
    loop {
        let chunk = reader.fill_buf().await.unwrap();
        if chunk.is_empty() {
            break;
        }
        let n = chunk.len();
        largest = largest.max(n);
        lines += chunk.iter().filter(|b| **b == b'\n').count();
        hash.update(chunk);
        total += n as u64;
        reader.consume(n);
    }
    let read_growth = peak_rss().unwrap().saturating_sub(before);
    drop(reader);
    assert_eq!((total, lines), (size, BIG_LINES));
    assert_eq!(<[u8; 32]>::from(hash.finalize()), sha);
    assert!(
        largest <= MAX_CHUNK,
        "the reader handed out {largest} bytes at once"
    );
    assert!(
        read_growth < MAX_GROWTH,
        "get_stream of {size} bytes grew the peak resident memory by {read_growth} bytes"
    );
}

/// A case: its name and how to run it on an environment.
struct Case {
    name: &'static str,
    run: fn(Env) -> CaseFuture,
    /// Why it cannot run here, if it cannot.
    needs: fn() -> Result<(), String>,
}

fn no_needs() -> Result<(), String> {
    Ok(())
}

/// The cases, the memory one first: nothing large has been allocated before it.
fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "big_object_is_never_held_whole",
            run: |env| Box::pin(big_object_is_never_held_whole(env)),
            needs: rss_measurable,
        },
        Case {
            name: "put_file_then_stream_back",
            run: |env| Box::pin(put_file_then_stream_back(env)),
            needs: no_needs,
        },
        Case {
            name: "put_file_named_replaces",
            run: |env| Box::pin(put_file_named_replaces(env)),
            needs: no_needs,
        },
        Case {
            name: "empty_file",
            run: |env| Box::pin(empty_file(env)),
            needs: no_needs,
        },
        Case {
            name: "other_tenants_and_missing_keys_are_not_found",
            run: |env| Box::pin(other_tenants_and_missing_keys_are_not_found(env)),
            needs: no_needs,
        },
        Case {
            name: "put_file_refusals",
            run: |env| Box::pin(put_file_refusals(env)),
            needs: no_needs,
        },
    ]
}

/// The command line: libtest's filters, `--skip`, `--exact` and `--list`; its other flags are
/// accepted and ignored.
struct Args {
    filters: Vec<String>,
    skips: Vec<String>,
    exact: bool,
    list: bool,
}

impl Args {
    fn parse() -> Self {
        let mut args = Self {
            filters: Vec::new(),
            skips: Vec::new(),
            exact: false,
            list: false,
        };
        let mut it = std::env::args().skip(1);
        while let Some(arg) = it.next() {
            match arg.as_str() {
                "--exact" => args.exact = true,
                "--list" => args.list = true,
                "--skip" => args.skips.extend(it.next()),
                "--test-threads" | "--color" | "--format" | "--logfile" | "-Z" => {
                    it.next();
                }
                a if a.starts_with('-') => {}
                filter => args.filters.push(filter.to_owned()),
            }
        }
        args
    }

    fn selects(&self, name: &str) -> bool {
        let hit = |f: &String| {
            if self.exact {
                name == f
            } else {
                name.contains(f.as_str())
            }
        };
        (self.filters.is_empty() || self.filters.iter().any(hit))
            && !self.skips.iter().any(|s| name.contains(s.as_str()))
    }
}

enum Outcome {
    Passed,
    Failed,
    Ignored(String),
}

fn main() -> ExitCode {
    let args = Args::parse();
    let backends = ["local", "s3"];
    let selected: Vec<(String, &'static str, Case)> = backends
        .iter()
        .flat_map(|backend| {
            cases()
                .into_iter()
                .map(move |case| (format!("{backend}::{}", case.name), *backend, case))
        })
        .filter(|(name, _, _)| args.selects(name))
        .collect();
    if args.list {
        for (name, _, _) in &selected {
            println!("{name}: test");
        }
        return ExitCode::SUCCESS;
    }
    // Memory cases first, on every backend, before anything large was allocated.
    let mut selected = selected;
    selected.sort_by_key(|(_, _, case)| case.name != "big_object_is_never_held_whole");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let s3 = if selected.iter().any(|(_, b, _)| *b == "s3") {
        start_s3()
    } else {
        Err("not selected".into())
    };

    println!("\nrunning {} tests", selected.len());
    let (mut passed, mut failed, mut ignored) = (0, 0, 0);
    let mut failures = Vec::new();
    for (name, backend, case) in selected {
        print!("test {name} ... ");
        let _ = std::io::stdout().flush();
        let outcome = match (backend, &s3, (case.needs)()) {
            (_, _, Err(reason)) => Outcome::Ignored(reason),
            ("s3", Err(reason), _) if in_ci() => {
                failures.push(format!("{name}: under CI: {reason}"));
                Outcome::Failed
            }
            ("s3", Err(reason), _) => Outcome::Ignored(reason.clone()),
            _ => {
                let s3 = s3.clone();
                let result = runtime.block_on(async move {
                    let env = match (backend, s3) {
                        #[cfg(feature = "testing")]
                        ("s3", Ok(server)) => Env::s3(&server).await,
                        _ => Env::local().await,
                    };
                    tokio::spawn((case.run)(env)).await
                });
                match result {
                    Ok(()) => Outcome::Passed,
                    Err(e) => {
                        failures.push(format!("{name}: {e}"));
                        Outcome::Failed
                    }
                }
            }
        };
        match outcome {
            Outcome::Passed => {
                passed += 1;
                println!("ok");
            }
            Outcome::Failed => {
                failed += 1;
                println!("FAILED");
            }
            Outcome::Ignored(reason) => {
                ignored += 1;
                println!("ignored, {reason}");
            }
        }
    }
    if !failures.is_empty() {
        println!("\nfailures:");
        for f in &failures {
            println!("    {f}");
        }
    }
    let verdict = if failed == 0 { "ok" } else { "FAILED" };
    println!(
        "\ntest result: {verdict}. {passed} passed; {failed} failed; {ignored} ignored; 0 \
         measured; 0 filtered out\n"
    );
    drop(s3);
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
