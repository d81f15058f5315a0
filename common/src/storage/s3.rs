//! The S3 backend, for any S3-compatible endpoint (AWS, MinIO, R2), through `aws-sdk-s3`.
//!
//! The client is built by hand instead of with `aws-config`: credentials are static settings, so
//! the credential chain, profile files and IMDS of `aws-config` would only add code and
//! surprises. The HTTP client is `aws-smithy-http-client`'s hyper client on rustls with ring, the
//! TLS stack the rest of the workspace uses, so the SDK brings no second one.

use std::path::Path;
use std::time::{Duration, SystemTime};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use bytes::Bytes;

use super::{Object, ObjectReader, StorageError, StorageSettings};
use crate::settings::SettingsError;

/// The longest lifetime S3 accepts for a presigned URL: 7 days.
pub const MAX_PRESIGN_SECS: u64 = 7 * 24 * 3600;

/// The largest file [`super::Storage::put_file`] stores: 5 GiB, the most one S3 `PUT` takes.
pub const MAX_PUT_FILE_BYTES: u64 = 5 << 30;

/// The slowest upload `put_file` waits for: its operation timeout grows by one second per this
/// many bytes, so a 200 MB file is not cut off by a timeout meant for small objects.
const MIN_UPLOAD_BYTES_PER_SEC: u64 = 1 << 20;

/// The chunk `put_file` reads its file in.
const UPLOAD_CHUNK_BYTES: usize = 64 * 1024;

/// One bucket of an S3-compatible service.
#[derive(Debug, Clone)]
pub(super) struct S3Store {
    client: Client,
    bucket: String,
    create_bucket: bool,
    connect_timeout: Duration,
    operation_timeout: Duration,
}

/// An SDK failure as the storage sees it: a missing object is `NotFound` (a missing bucket is
/// not: that is a configuration fault, not the client's); a request that never got an answer
/// (connection, timeout) is `Unavailable`; any other answer is `Backend`. The SDK's errors
/// carry no credentials.
fn sdk_error<E>(e: SdkError<E>, what: &'static str) -> StorageError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = e.raw_response().map(|r| r.status().as_u16());
    let code = e.as_service_error().and_then(|s| s.code());
    // A HEAD's 404 has no body, so no code.
    let missing = match code {
        Some(code) => matches!(code, "NoSuchKey" | "NotFound"),
        None => status == Some(404),
    };
    if missing {
        return StorageError::NotFound;
    }
    let unanswered = matches!(
        e,
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_)
    );
    let cause = anyhow::Error::new(e).context(what);
    if unanswered {
        StorageError::Unavailable(cause)
    } else {
        StorageError::Backend(cause)
    }
}

impl S3Store {
    /// The client for `settings`; fails (naming them) when the credentials are missing.
    pub(super) fn new(settings: &StorageSettings, bucket: &str) -> Result<Self, SettingsError> {
        let (Some(id), Some(secret)) = (
            settings.access_key_id.as_ref(),
            settings.secret_access_key.as_ref(),
        ) else {
            return Err(SettingsError::Missing(
                "STORAGE__ACCESS_KEY_ID, STORAGE__SECRET_ACCESS_KEY (STORAGE__BUCKET is set)"
                    .into(),
            ));
        };
        let connect_timeout = Duration::from_secs(settings.connect_timeout_secs.max(1));
        let operation_timeout = Duration::from_secs(settings.operation_timeout_secs.max(1));
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let credentials = Credentials::new(id.expose(), secret.expose(), None, None, "settings");
        let mut config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .http_client(http)
            .credentials_provider(credentials)
            .region(Region::new(settings.region.clone()))
            .force_path_style(settings.force_path_style)
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(connect_timeout)
                    .operation_timeout(operation_timeout)
                    .build(),
            )
            // Checksums only where S3 requires them: several S3-compatible services refuse
            // the trailing checksums the SDK sends by default.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        if let Some(endpoint) = &settings.endpoint {
            config = config.endpoint_url(endpoint);
        }
        Ok(Self {
            client: Client::from_conf(config.build()),
            bucket: bucket.to_owned(),
            create_bucket: settings.create_bucket,
            connect_timeout,
            operation_timeout,
        })
    }

    pub(super) fn bucket(&self) -> &str {
        &self.bucket
    }

    /// With `create_bucket`, creates the bucket when it does not exist (MinIO and tests).
    pub(super) async fn prepare(&self) -> Result<(), StorageError> {
        if !self.create_bucket {
            return Ok(());
        }
        match self.client.head_bucket().bucket(&self.bucket).send().await {
            Ok(_) => Ok(()),
            Err(e) => match sdk_error(e, "cannot look up the bucket") {
                StorageError::NotFound => {
                    let created = self
                        .client
                        .create_bucket()
                        .bucket(&self.bucket)
                        .send()
                        .await;
                    match created {
                        Ok(_) => Ok(()),
                        // Another process created it in between.
                        Err(e)
                            if matches!(
                                e.as_service_error().and_then(|s| s.code()),
                                Some("BucketAlreadyOwnedByYou" | "BucketAlreadyExists")
                            ) =>
                        {
                            Ok(())
                        }
                        Err(e) => Err(sdk_error(e, "cannot create the bucket")),
                    }
                }
                other => Err(other),
            },
        }
    }

    pub(super) async fn put(
        &self,
        key: &str,
        content_type: &str,
        bytes: Bytes,
    ) -> Result<(), StorageError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .content_length(i64::try_from(bytes.len()).unwrap_or(i64::MAX))
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| sdk_error(e, "cannot store an object"))?;
        Ok(())
    }

    /// One `PUT` of the `size` bytes of the file at `path`, read in chunks as they are sent (and
    /// read again from the start on a retry). The operation timeout is the configured one plus
    /// one second per MiB.
    pub(super) async fn put_file(
        &self,
        key: &str,
        content_type: &str,
        path: &Path,
        size: u64,
    ) -> Result<(), StorageError> {
        let body = ByteStream::read_from()
            .path(path)
            .length(Length::Exact(size))
            .buffer_size(UPLOAD_CHUNK_BYTES)
            .build()
            .await
            .map_err(|e| {
                StorageError::Backend(
                    anyhow::Error::new(e).context(format!("cannot read {}", path.display())),
                )
            })?;
        // An override replaces the whole timeout configuration: the connect timeout too.
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(self.connect_timeout)
            .operation_timeout(
                self.operation_timeout + Duration::from_secs(size / MIN_UPLOAD_BYTES_PER_SEC),
            )
            .build();
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .content_length(i64::try_from(size).unwrap_or(i64::MAX))
            .body(body)
            .customize()
            .config_override(aws_sdk_s3::Config::builder().timeout_config(timeouts))
            .send()
            .await
            .map_err(|e| sdk_error(e, "cannot store an object"))?;
        Ok(())
    }

    pub(super) async fn get(&self, key: &str) -> Result<Object, StorageError> {
        let output = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| sdk_error(e, "cannot read an object"))?;
        let content_type = output.content_type().map(str::to_owned);
        let body = output.body.collect().await.map_err(|e| {
            StorageError::Unavailable(anyhow::Error::new(e).context("an object's body broke off"))
        })?;
        let content_type = content_type.unwrap_or_else(|| super::content_type_of(None));
        Ok(Object::new(body.into_bytes(), content_type))
    }

    /// The object's body as the response delivers it: the operation timeout ends once the
    /// headers are in, the body is read at the reader's pace.
    pub(super) async fn get_stream(&self, key: &str) -> Result<ObjectReader, StorageError> {
        let output = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| sdk_error(e, "cannot read an object"))?;
        let size = output
            .content_length()
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| {
                StorageError::Backend(anyhow::anyhow!("an object came without its length"))
            })?;
        let content_type = output
            .content_type()
            .map_or_else(|| super::content_type_of(None), str::to_owned);
        Ok(ObjectReader::new(
            size,
            content_type,
            output.body.into_async_read(),
        ))
    }

    /// Deleting a missing object succeeds, as in S3 itself.
    pub(super) async fn delete(&self, key: &str) -> Result<(), StorageError> {
        match self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => match sdk_error(e, "cannot delete an object") {
                StorageError::NotFound => Ok(()),
                other => Err(other),
            },
        }
    }

    /// A presigned GET URL valid from `start` for `ttl` (at most [`MAX_PRESIGN_SECS`]).
    pub(super) async fn presign(
        &self,
        key: &str,
        start: SystemTime,
        ttl: Duration,
    ) -> Result<String, StorageError> {
        let config = PresigningConfig::builder()
            .start_time(start)
            .expires_in(ttl.clamp(
                Duration::from_secs(1),
                Duration::from_secs(MAX_PRESIGN_SECS),
            ))
            .build()
            .map_err(|e| StorageError::Backend(anyhow::Error::new(e).context("presigning")))?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(config)
            .await
            .map_err(|e| sdk_error(e, "cannot presign a URL"))?;
        Ok(request.uri().to_owned())
    }
}
