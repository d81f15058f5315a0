//! The local-directory backend: each object is a file at `{dir}/{tenant}/{folder}/{name}`.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use tokio::io::BufReader;
use uuid::Uuid;

use super::key::KeyParts;
use super::{Object, ObjectReader, StorageError};

/// The read buffer of [`LocalStore::get_stream`].
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// Objects as files under one directory.
#[derive(Debug, Clone)]
pub(super) struct LocalStore {
    root: PathBuf,
}

fn io_error(e: std::io::Error, what: &str) -> StorageError {
    if e.kind() == ErrorKind::NotFound {
        StorageError::NotFound
    } else {
        StorageError::Unavailable(anyhow::Error::new(e).context(what.to_owned()))
    }
}

impl LocalStore {
    pub(super) fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Creates the directory when missing.
    pub(super) async fn prepare(&self) -> Result<(), StorageError> {
        tokio::fs::create_dir_all(&self.root).await.map_err(|e| {
            StorageError::Unavailable(anyhow::Error::new(e).context(format!(
                "cannot create the storage directory {}",
                self.root.display()
            )))
        })
    }

    pub(super) fn root(&self) -> &Path {
        &self.root
    }

    /// Every segment passed `key::parse`, so the path stays under the root.
    fn path(&self, key: &KeyParts) -> PathBuf {
        self.root
            .join(key.tenant.to_string())
            .join(&key.folder)
            .join(&key.name)
    }

    /// Writes to a hidden temporary file beside the target, then renames it: a reader sees the
    /// old object or the whole new one, never a part.
    pub(super) async fn put(&self, key: &KeyParts, bytes: &Bytes) -> Result<(), StorageError> {
        self.write_then_rename(key, |tmp| async move { tokio::fs::write(tmp, bytes).await })
            .await
    }

    /// Like [`LocalStore::put`], copying the file at `source`; the bytes copied. `std::io::copy`
    /// between two files lets the kernel copy (`copy_file_range`), nothing is read into memory;
    /// the copy is a new file, with the permissions of one (not the source's, which may be a
    /// private temporary file).
    pub(super) async fn put_file(
        &self,
        key: &KeyParts,
        source: &Path,
    ) -> Result<u64, StorageError> {
        let source = source.to_owned();
        self.write_then_rename(key, |tmp| async move {
            tokio::task::spawn_blocking(move || {
                let mut from = std::fs::File::open(source)?;
                let mut to = std::fs::File::create(tmp)?;
                let copied = std::io::copy(&mut from, &mut to)?;
                Ok(copied)
            })
            .await
            .map_err(std::io::Error::other)?
        })
        .await
    }

    /// Creates the object's folder, lets `write` fill a hidden temporary file in it, then moves
    /// that in place; the temporary file is removed when anything fails.
    async fn write_then_rename<T, F, Fut>(
        &self,
        key: &KeyParts,
        write: F,
    ) -> Result<T, StorageError>
    where
        F: FnOnce(PathBuf) -> Fut,
        Fut: std::future::Future<Output = std::io::Result<T>>,
    {
        let path = self.path(key);
        let dir = path.parent().unwrap_or(&self.root);
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| io_error(e, "cannot create a storage folder"))?;
        let tmp = dir.join(format!(".{}.tmp-{}", key.name, Uuid::new_v4().simple()));
        let written = match write(tmp.clone()).await {
            Ok(written) => written,
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                return Err(StorageError::Unavailable(
                    anyhow::Error::new(e).context("cannot write a stored file"),
                ));
            }
        };
        if let Err(e) = tokio::fs::rename(&tmp, &path).await {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(StorageError::Unavailable(
                anyhow::Error::new(e).context("cannot move a stored file in place"),
            ));
        }
        Ok(written)
    }

    pub(super) async fn get(&self, key: &KeyParts) -> Result<Object, StorageError> {
        let bytes = tokio::fs::read(self.path(key))
            .await
            .map_err(|e| io_error(e, "cannot read a stored file"))?;
        let content_type = super::content_type_of(key.extension().as_deref());
        Ok(Object::new(Bytes::from(bytes), content_type))
    }

    /// The file through a buffer of [`READ_BUFFER_BYTES`].
    pub(super) async fn get_stream(&self, key: &KeyParts) -> Result<ObjectReader, StorageError> {
        let file = tokio::fs::File::open(self.path(key))
            .await
            .map_err(|e| io_error(e, "cannot open a stored file"))?;
        let meta = file
            .metadata()
            .await
            .map_err(|e| io_error(e, "cannot read a stored file"))?;
        if !meta.is_file() {
            return Err(StorageError::NotFound);
        }
        let content_type = super::content_type_of(key.extension().as_deref());
        let body = BufReader::with_capacity(READ_BUFFER_BYTES, file);
        Ok(ObjectReader::new(meta.len(), content_type, body))
    }

    pub(super) async fn delete(&self, key: &KeyParts) -> Result<(), StorageError> {
        match tokio::fs::remove_file(self.path(key)).await {
            Err(e) if e.kind() != ErrorKind::NotFound => {
                Err(io_error(e, "cannot delete a stored file"))
            }
            _ => Ok(()),
        }
    }
}
