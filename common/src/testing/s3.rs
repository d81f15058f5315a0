//! A real S3 server of a test's own: `s3s-fs` (the `s3s` crate's S3 API over a directory), on a
//! free port of 127.0.0.1 with a temporary directory. It checks SigV4 signatures and the expiry
//! of presigned URLs, so tests of tenant isolation and expired links mean something (moto's
//! server, quicker to install, checks neither). `scripts/test` installs it; `S3S_FS_BIN` names
//! another binary.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use uuid::Uuid;

use crate::settings::Secret;
use crate::storage::StorageSettings;

/// The access key id the server accepts.
pub const S3_ACCESS_KEY: &str = "test-access-key";
/// The secret access key the server accepts.
pub const S3_SECRET_KEY: &str = "test-secret-key";

/// How to install the server, for messages.
pub const S3S_FS_INSTALL: &str = "cargo install s3s-fs@0.14.1 --features binary --locked";

/// A running `s3s-fs`; killed, and its directory removed, when dropped.
#[derive(Debug)]
pub struct S3Server {
    child: Child,
    endpoint: String,
    dir: PathBuf,
}

/// Whether this runs under CI (`CI` set to anything but empty, `0` or `false`), where a
/// missing test server is a failure instead of a reason to skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// The server binary: `S3S_FS_BIN`, or `s3s-fs` on the `PATH`.
pub fn s3s_fs_binary() -> String {
    std::env::var("S3S_FS_BIN").unwrap_or_else(|_| "s3s-fs".into())
}

/// Whether the server binary runs.
pub fn s3s_fs_available() -> bool {
    Command::new(s3s_fs_binary())
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl S3Server {
    /// Starts one on port 0 and waits until it says where it listens.
    pub fn start() -> Result<Self, String> {
        let dir = std::env::temp_dir().join(format!("s3s-fs-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let mut child = Command::new(s3s_fs_binary())
            .args(["--host", "127.0.0.1", "--port", "0"])
            .args(["--access-key", S3_ACCESS_KEY, "--secret-key", S3_SECRET_KEY])
            .arg(&dir)
            .env("RUST_LOG", "s3s_fs=info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", s3s_fs_binary()))?;
        let Some(stdout) = child.stdout.take() else {
            return Err("no stdout".into());
        };
        let (tx, rx) = mpsc::channel();
        // Reads the address, then keeps draining the log so the server never blocks on it.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(at) = line.find("server is running at ")
                    && let Some(tx) = tx.take()
                {
                    let rest = &line[at + "server is running at ".len()..];
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_owned());
                }
            }
        });
        let mut server = Self {
            child,
            endpoint: String::new(),
            dir,
        };
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(endpoint) if endpoint.starts_with("http://") => {
                server.endpoint = endpoint;
                Ok(server)
            }
            other => Err(format!("s3s-fs did not report its address: {other:?}")),
        }
    }

    /// `http://127.0.0.1:{port}`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Storage settings for `bucket` on this server (created at start-up, path-style).
    pub fn settings(&self, bucket: &str) -> StorageSettings {
        StorageSettings {
            bucket: Some(bucket.to_owned()),
            endpoint: Some(self.endpoint.clone()),
            force_path_style: true,
            access_key_id: Some(Secret::new(S3_ACCESS_KEY)),
            secret_access_key: Some(Secret::new(S3_SECRET_KEY)),
            create_bucket: true,
            ..StorageSettings::default()
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
