//! File storage shared by the services: uploads, TTS audio, generated images, batch files. One
//! [`Storage`] with two backends, S3 (any S3-compatible endpoint) when a bucket is configured and
//! a local directory otherwise; keys are `{tenant}/{folder}/{timestamp}_{uuid}.{ext}` and every
//! read is scoped by tenant; URLs a browser can open directly: presigned for S3, signed gateway
//! URLs for the local directory (see `docs/storage.md`). Small objects go in and out as [`Bytes`];
//! large ones are streamed from a file on disk ([`Storage::put_file`]) and read incrementally
//! ([`Storage::get_stream`]), never held whole in memory.

pub mod key;
mod local;
mod s3;
mod settings;
pub mod signed_url;

pub use key::KeyParts;
pub use s3::{MAX_PRESIGN_SECS, MAX_PUT_FILE_BYTES};
pub use settings::{DEFAULT_ALLOWED_EXTENSIONS, StorageSettings};
pub use signed_url::{FILES_PATH, UrlRefusal, UrlSigner};

use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::io::{AsyncBufRead, AsyncRead, ReadBuf};
use uuid::Uuid;

use crate::error::AppError;
use crate::settings::{CoreSettings, DEV_JWT_SECRET, Secret, SettingsError};

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A folder, extension, file name or key that is not allowed; the message says which.
    #[error("{0}")]
    Invalid(String),
    /// No such object for this tenant (another tenant's key is not found either).
    #[error("file not found")]
    NotFound,
    /// A signed URL that does not open this object (now).
    #[error("{0}")]
    Refused(#[from] UrlRefusal),
    /// The backend cannot be reached now (a connection, a timeout, the disk).
    #[error("storage unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// The backend answered with an error.
    #[error("storage failed")]
    Backend(#[source] anyhow::Error),
}

impl From<StorageError> for AppError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Invalid(m) => AppError::BadRequest(m),
            StorageError::NotFound => AppError::NotFound("file not found".into()),
            StorageError::Refused(r) => AppError::Forbidden(r.to_string()),
            StorageError::Unavailable(cause) => AppError::Unavailable(cause),
            StorageError::Backend(cause) => AppError::Internal(cause),
        }
    }
}

/// What [`Storage::put`] (or `put_named`, `put_file`, `put_file_named`) stored.
#[derive(Debug, Clone, Serialize)]
pub struct StoredObject {
    /// `{tenant}/{folder}/{filename}`.
    pub key: String,
    /// The key's last segment.
    pub filename: String,
    /// A URL a browser can open directly, until `url_expires_at`.
    pub url: String,
    /// When `url` stops working.
    pub url_expires_at: DateTime<Utc>,
    /// Bytes.
    pub size: u64,
    /// The MIME type it is served with.
    pub content_type: String,
}

/// An object read back.
#[derive(Debug, Clone)]
pub struct Object {
    /// Its content.
    pub bytes: Bytes,
    /// Its MIME type.
    pub content_type: String,
}

impl Object {
    fn new(bytes: Bytes, content_type: String) -> Self {
        Self {
            bytes,
            content_type,
        }
    }

    /// Bytes.
    pub fn size(&self) -> u64 {
        self.bytes.len() as u64
    }
}

/// An object read incrementally, from [`Storage::get_stream`]: an [`AsyncBufRead`] over its
/// content (`lines()`, `read_until`, `tokio::io::copy`, …) that holds one chunk at a time, never
/// the whole object. A read that fails midway (the connection broke, the disk) is an
/// [`io::Error`].
pub struct ObjectReader {
    /// Bytes, as the backend reported them when the read began.
    pub size: u64,
    /// Its MIME type.
    pub content_type: String,
    body: Pin<Box<dyn AsyncBufRead + Send>>,
}

impl ObjectReader {
    fn new(size: u64, content_type: String, body: impl AsyncBufRead + Send + 'static) -> Self {
        Self {
            size,
            content_type,
            body: Box::pin(body),
        }
    }
}

impl std::fmt::Debug for ObjectReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectReader")
            .field("size", &self.size)
            .field("content_type", &self.content_type)
            .finish_non_exhaustive()
    }
}

impl AsyncRead for ObjectReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.get_mut().body.as_mut().poll_read(cx, buf)
    }
}

impl AsyncBufRead for ObjectReader {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        self.get_mut().body.as_mut().poll_fill_buf(cx)
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        self.get_mut().body.as_mut().consume(amt);
    }
}

/// A URL that opens one object until `expires_at`.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectUrl {
    /// The URL.
    pub url: String,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

/// The MIME type of an extension (`application/octet-stream` when unknown): `jsonl` is
/// `application/jsonl` and `ndjson` `application/x-ndjson` (JSON Lines, which `mime_guess`
/// does not know), the rest as `mime_guess` says.
pub fn content_type_of(ext: Option<&str>) -> String {
    let lines = match ext.map(str::to_ascii_lowercase).as_deref() {
        Some("jsonl") => Some("application/jsonl"),
        Some("ndjson") => Some("application/x-ndjson"),
        _ => None,
    };
    lines
        .or_else(|| ext.and_then(|e| mime_guess::from_ext(e).first_raw()))
        .unwrap_or("application/octet-stream")
        .to_owned()
}

/// What [`Storage::store`] writes: bytes in memory, or a file on local disk streamed from there.
enum Body<'a> {
    Bytes(Bytes),
    File(&'a Path),
}

#[derive(Debug)]
enum Backend {
    S3(s3::S3Store),
    Local(local::LocalStore),
}

/// The file storage: cheap to clone, shared by every request.
#[derive(Debug, Clone)]
pub struct Storage {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    backend: Backend,
    signer: Option<UrlSigner>,
    url_ttl: Duration,
    public_base_url: String,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The size of the file `put_file` is asked to store: a regular file of at most
/// [`MAX_PUT_FILE_BYTES`].
async fn file_size(path: &Path) -> Result<u64, StorageError> {
    let meta = tokio::fs::metadata(path).await.map_err(|e| {
        StorageError::Backend(
            anyhow::Error::new(e)
                .context(format!("cannot read the file to store, {}", path.display())),
        )
    })?;
    if !meta.is_file() {
        return Err(StorageError::Backend(anyhow::anyhow!(
            "the file to store, {}, is not a regular file",
            path.display()
        )));
    }
    if meta.len() > MAX_PUT_FILE_BYTES {
        return Err(StorageError::Invalid(format!(
            "the file is larger than {MAX_PUT_FILE_BYTES} bytes"
        )));
    }
    Ok(meta.len())
}

fn to_datetime(unix: u64) -> DateTime<Utc> {
    i64::try_from(unix)
        .ok()
        .and_then(|s| DateTime::from_timestamp(s, 0))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

impl Storage {
    /// The storage `settings` select: S3 when a bucket is set (its credentials are then
    /// required), the local directory otherwise. The signing key of local URLs is
    /// `STORAGE__URL_SECRET`, else `JWT_SECRET`, else the development secret under
    /// `APP_ENV=dev`; the local backend cannot start without one.
    pub fn new(settings: &StorageSettings, core: &CoreSettings) -> Result<Self, SettingsError> {
        let secret = settings
            .url_secret
            .clone()
            .or_else(|| core.jwt_secret.clone())
            .or_else(|| core.is_dev().then(|| Secret::new(DEV_JWT_SECRET)));
        let signer = secret.as_ref().map(UrlSigner::new);
        let backend = match &settings.bucket {
            Some(bucket) => Backend::S3(s3::S3Store::new(settings, bucket)?),
            None => {
                if signer.is_none() {
                    return Err(SettingsError::Missing(
                        "STORAGE__URL_SECRET (the local storage signs its URLs; no JWT_SECRET \
                         to derive it from)"
                            .into(),
                    ));
                }
                if settings.dir.trim().is_empty() {
                    return Err(SettingsError::Missing("STORAGE__DIR".into()));
                }
                Backend::Local(local::LocalStore::new(&settings.dir))
            }
        };
        Ok(Self {
            inner: Arc::new(Inner {
                backend,
                signer,
                url_ttl: Duration::from_secs(settings.url_expiry_secs.max(1)),
                public_base_url: settings
                    .public_base_url
                    .as_deref()
                    .unwrap_or_default()
                    .trim_end_matches('/')
                    .to_owned(),
            }),
        })
    }

    /// Gets the backend ready: creates the local directory, or with `STORAGE__CREATE_BUCKET`
    /// the bucket. Call once at start-up.
    pub async fn prepare(&self) -> Result<(), StorageError> {
        match &self.inner.backend {
            Backend::S3(s3) => s3.prepare().await,
            Backend::Local(local) => local.prepare().await,
        }
    }

    /// `s3` or `local`, with the bucket or directory, for start-up logs.
    pub fn describe(&self) -> String {
        match &self.inner.backend {
            Backend::S3(s3) => format!("s3 bucket {}", s3.bucket()),
            Backend::Local(local) => format!("local directory {}", local.root().display()),
        }
    }

    /// Stores `bytes` for `tenant` under `{tenant}/{folder}/{timestamp}_{uuid}.{ext}`.
    pub async fn put(
        &self,
        tenant: Uuid,
        folder: &str,
        ext: &str,
        content_type: &str,
        bytes: Bytes,
    ) -> Result<StoredObject, StorageError> {
        let name = key::generated_name(ext, Utc::now())?;
        self.store(tenant, folder, name, content_type, Body::Bytes(bytes))
            .await
    }

    /// Stores `bytes` for `tenant` under `{tenant}/{folder}/{filename}`, the client's file name
    /// sanitized (see [`key::sanitize_filename`]): the upload route's `force_filename`. An object
    /// stored earlier under the same name is replaced.
    pub async fn put_named(
        &self,
        tenant: Uuid,
        folder: &str,
        filename: &str,
        content_type: &str,
        bytes: Bytes,
    ) -> Result<StoredObject, StorageError> {
        let name = key::sanitize_filename(filename)?;
        self.store(tenant, folder, name, content_type, Body::Bytes(bytes))
            .await
    }

    /// Like [`Storage::put`], with the content of the file at `path` on local disk, streamed
    /// from there (never read into memory whole): a spooled upload, a JSONL file written line by
    /// line. S3 gets one `PUT` of the file; the local backend copies it beside the target and
    /// renames it in place. The file is left where it is (removing it is the caller's) and must
    /// not change while it is stored. At most [`MAX_PUT_FILE_BYTES`] (5 GiB), else `Invalid`; a
    /// `path` that is not a readable file is `Backend` (a fault of the caller, not of the
    /// client's request).
    pub async fn put_file(
        &self,
        tenant: Uuid,
        folder: &str,
        ext: &str,
        content_type: &str,
        path: &Path,
    ) -> Result<StoredObject, StorageError> {
        let name = key::generated_name(ext, Utc::now())?;
        self.store(tenant, folder, name, content_type, Body::File(path))
            .await
    }

    /// Like [`Storage::put_named`] (the name sanitized, an object of the same name replaced),
    /// with the content of the file at `path`, streamed as by [`Storage::put_file`].
    pub async fn put_file_named(
        &self,
        tenant: Uuid,
        folder: &str,
        filename: &str,
        content_type: &str,
        path: &Path,
    ) -> Result<StoredObject, StorageError> {
        let name = key::sanitize_filename(filename)?;
        self.store(tenant, folder, name, content_type, Body::File(path))
            .await
    }

    async fn store(
        &self,
        tenant: Uuid,
        folder: &str,
        name: String,
        content_type: &str,
        body: Body<'_>,
    ) -> Result<StoredObject, StorageError> {
        let parts = KeyParts {
            tenant,
            folder: key::folder(folder)?.to_owned(),
            name,
        };
        // Only what `parse` accepts is ever stored, so every stored key can be read back.
        let parts = key::parse(&parts.key())?;
        let key = parts.key();
        let size = match (&self.inner.backend, body) {
            (Backend::S3(s3), Body::Bytes(bytes)) => {
                let size = bytes.len() as u64;
                s3.put(&key, content_type, bytes).await?;
                size
            }
            (Backend::Local(local), Body::Bytes(bytes)) => {
                local.put(&parts, &bytes).await?;
                bytes.len() as u64
            }
            (Backend::S3(s3), Body::File(path)) => {
                let size = file_size(path).await?;
                s3.put_file(&key, content_type, path, size).await?;
                size
            }
            (Backend::Local(local), Body::File(path)) => {
                file_size(path).await?;
                local.put_file(&parts, path).await?
            }
        };
        let url = self.url(tenant, &key).await?;
        let content_type = match &self.inner.backend {
            Backend::S3(_) => content_type.to_owned(),
            Backend::Local(_) => content_type_of(parts.extension().as_deref()),
        };
        Ok(StoredObject {
            filename: parts.name,
            key,
            url: url.url,
            url_expires_at: url.expires_at,
            size,
            content_type,
        })
    }

    /// `tenant`'s object at `key`; a key of another tenant is `NotFound`.
    pub async fn get(&self, tenant: Uuid, key: &str) -> Result<Object, StorageError> {
        let parts = key::owned_by(tenant, key)?;
        match &self.inner.backend {
            Backend::S3(s3) => s3.get(&parts.key()).await,
            Backend::Local(local) => local.get(&parts).await,
        }
    }

    /// `tenant`'s object at `key`, read incrementally: S3's response body as it arrives, the
    /// local file through a buffer; for objects too large to hold in memory (a JSONL file of a
    /// batch, read line by line). Same tenant scoping as [`Storage::get`]: a key of another
    /// tenant, like a missing object, is `NotFound`. Read it promptly: S3 keeps the response's
    /// connection open until the reader is read to the end or dropped.
    pub async fn get_stream(&self, tenant: Uuid, key: &str) -> Result<ObjectReader, StorageError> {
        let parts = key::owned_by(tenant, key)?;
        match &self.inner.backend {
            Backend::S3(s3) => s3.get_stream(&parts.key()).await,
            Backend::Local(local) => local.get_stream(&parts).await,
        }
    }

    /// Deletes `tenant`'s object at `key`; deleting a missing object succeeds, a key of another
    /// tenant is `NotFound` and left alone.
    pub async fn delete(&self, tenant: Uuid, key: &str) -> Result<(), StorageError> {
        let parts = key::owned_by(tenant, key)?;
        match &self.inner.backend {
            Backend::S3(s3) => s3.delete(&parts.key()).await,
            Backend::Local(local) => local.delete(&parts).await,
        }
    }

    /// A URL that opens `tenant`'s object at `key` for `STORAGE__URL_EXPIRY_SECS`: presigned
    /// for S3, a signed gateway URL for the local directory. A key of another tenant is
    /// `NotFound`; whether the object exists is not checked.
    pub async fn url(&self, tenant: Uuid, key: &str) -> Result<ObjectUrl, StorageError> {
        self.url_valid_for(tenant, key, self.inner.url_ttl).await
    }

    /// Like [`Storage::url`], valid for `ttl` (S3 caps it at [`MAX_PRESIGN_SECS`]).
    pub async fn url_valid_for(
        &self,
        tenant: Uuid,
        key: &str,
        ttl: Duration,
    ) -> Result<ObjectUrl, StorageError> {
        let parts = key::owned_by(tenant, key)?;
        let key = parts.key();
        match &self.inner.backend {
            Backend::S3(s3) => {
                let start = SystemTime::now();
                let ttl = ttl.min(Duration::from_secs(MAX_PRESIGN_SECS));
                let url = s3.presign(&key, start, ttl).await?;
                let expires =
                    start.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) + ttl.as_secs();
                Ok(ObjectUrl {
                    url,
                    expires_at: to_datetime(expires),
                })
            }
            Backend::Local(_) => {
                let signer = self.signer()?;
                let expires = unix_now().saturating_add(ttl.as_secs().max(1));
                Ok(ObjectUrl {
                    url: signer.url(&self.inner.public_base_url, tenant, &key, expires),
                    expires_at: to_datetime(expires),
                })
            }
        }
    }

    fn signer(&self) -> Result<&UrlSigner, StorageError> {
        self.inner.signer.as_ref().ok_or_else(|| {
            StorageError::Backend(anyhow::anyhow!("no key to sign storage URLs with"))
        })
    }

    /// The tenant whose object a signed URL (`{FILES_PATH}/{key}?expires=&sig=`) opens, once
    /// the signature is this server's for that key and expiry and has not expired. A key that
    /// is not a storage key is `NotFound`.
    pub fn check_signed_url(
        &self,
        key: &str,
        expires: u64,
        sig: &str,
    ) -> Result<Uuid, StorageError> {
        let parts = key::parse(key).map_err(|_| StorageError::NotFound)?;
        let signer = self
            .inner
            .signer
            .as_ref()
            .ok_or(StorageError::Refused(UrlRefusal::BadSignature))?;
        signer.verify(parts.tenant, key, expires, sig, unix_now())?;
        Ok(parts.tenant)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn jsonl_files_of_a_batches_folder_are_valid_keys_with_their_type() {
        assert_eq!(content_type_of(Some("jsonl")), "application/jsonl");
        assert_eq!(content_type_of(Some("JSONL")), "application/jsonl");
        assert_eq!(content_type_of(Some("ndjson")), "application/x-ndjson");
        assert_eq!(content_type_of(Some("json")), "application/json");
        assert_eq!(content_type_of(None), "application/octet-stream");
        let tenant = Uuid::new_v4();
        let name = key::generated_name("jsonl", Utc::now()).unwrap();
        let parts = key::parse(&format!(
            "{tenant}/{}/{name}",
            key::folder("batches").unwrap()
        ));
        assert_eq!(parts.unwrap().extension().as_deref(), Some("jsonl"));
        let named = key::sanitize_filename("batch_abc_output.jsonl").unwrap();
        assert!(key::parse(&format!("{tenant}/batches/{named}")).is_ok());
    }

    #[test]
    fn a_bucket_needs_credentials_and_the_local_backend_a_url_key() {
        let core = CoreSettings {
            app_env: "prod".into(),
            ..CoreSettings::default()
        };
        let s3 = StorageSettings {
            bucket: Some("b".into()),
            ..StorageSettings::default()
        };
        let err = Storage::new(&s3, &core).unwrap_err().to_string();
        assert!(err.contains("STORAGE__SECRET_ACCESS_KEY"), "{err}");
        let err = Storage::new(&StorageSettings::default(), &core)
            .unwrap_err()
            .to_string();
        assert!(err.contains("STORAGE__URL_SECRET"), "{err}");
        let local = StorageSettings {
            url_secret: Some(Secret::new("k")),
            ..StorageSettings::default()
        };
        assert!(Storage::new(&local, &core).is_ok());
        let with_keys = StorageSettings {
            access_key_id: Some(Secret::new("AKID")),
            secret_access_key: Some(Secret::new("very-secret")),
            ..s3
        };
        let storage = Storage::new(&with_keys, &core).unwrap();
        assert!(!format!("{storage:?} {with_keys:?}").contains("very-secret"));
    }
}
