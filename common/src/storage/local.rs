//! The local-directory backend: each object is a file at `{dir}/{tenant}/{folder}/{name}`.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use uuid::Uuid;

use super::key::KeyParts;
use super::{Object, StorageError};

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
        let path = self.path(key);
        let dir = path.parent().unwrap_or(&self.root);
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| io_error(e, "cannot create a storage folder"))?;
        let tmp = dir.join(format!(".{}.tmp-{}", key.name, Uuid::new_v4().simple()));
        if let Err(e) = tokio::fs::write(&tmp, bytes).await {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(StorageError::Unavailable(
                anyhow::Error::new(e).context("cannot write a stored file"),
            ));
        }
        if let Err(e) = tokio::fs::rename(&tmp, &path).await {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(StorageError::Unavailable(
                anyhow::Error::new(e).context("cannot move a stored file in place"),
            ));
        }
        Ok(())
    }

    pub(super) async fn get(&self, key: &KeyParts) -> Result<Object, StorageError> {
        let bytes = tokio::fs::read(self.path(key))
            .await
            .map_err(|e| io_error(e, "cannot read a stored file"))?;
        let content_type = super::content_type_of(key.extension().as_deref());
        Ok(Object::new(Bytes::from(bytes), content_type))
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
