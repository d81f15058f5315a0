//! A batch input file on local disk while it is received or written, before it goes to storage:
//! an upload never held whole in memory, bounded in size, removed whatever happens.

use std::path::{Path, PathBuf};

use common::error::AppError;
use tokio::io::{AsyncWriteExt, BufWriter};
use uuid::Uuid;

/// A spool file: written in pieces up to a size limit, removed when dropped.
#[derive(Debug)]
pub struct Spool {
    path: PathBuf,
    file: Option<BufWriter<tokio::fs::File>>,
    bytes: u64,
    max_bytes: u64,
}

fn disk_error(e: std::io::Error, what: &str) -> AppError {
    AppError::Internal(anyhow::Error::new(e).context(what.to_owned()))
}

impl Spool {
    /// A new, empty spool file in `dir` (created when missing) that may grow to `max_bytes`.
    pub async fn create(dir: &Path, max_bytes: u64) -> Result<Self, AppError> {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| disk_error(e, "cannot create the batch spool directory"))?;
        let path = dir.join(format!("gateway-batch-{}.jsonl", Uuid::now_v7().simple()));
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .await
            .map_err(|e| disk_error(e, "cannot create a batch spool file"))?;
        Ok(Self {
            path,
            file: Some(BufWriter::new(file)),
            bytes: 0,
            max_bytes,
        })
    }

    /// Appends `chunk`; 413 once the file would pass its limit (nothing more is written).
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), AppError> {
        let len = chunk.len() as u64;
        if self.bytes.saturating_add(len) > self.max_bytes {
            return Err(AppError::PayloadTooLarge(format!(
                "the file is larger than {} bytes, the largest batch input file",
                self.max_bytes
            )));
        }
        let file = self.file.as_mut().ok_or_else(|| {
            AppError::Internal(anyhow::anyhow!("batch spool written after it was finished"))
        })?;
        file.write_all(chunk)
            .await
            .map_err(|e| disk_error(e, "cannot write a batch spool file"))?;
        self.bytes += len;
        Ok(())
    }

    /// Flushes and closes the file: it is complete on disk, ready to be stored.
    pub async fn finish(&mut self) -> Result<(), AppError> {
        if let Some(mut file) = self.file.take() {
            file.flush()
                .await
                .map_err(|e| disk_error(e, "cannot write a batch spool file"))?;
        }
        Ok(())
    }

    /// Bytes written.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        // One unlink; the descriptor (if still open) closes right after.
        if let Err(e) = std::fs::remove_file(&self.path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.path.display(), error = %e, "batch spool file not removed");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn a_spool_is_bounded_and_removed() {
        let dir = std::env::temp_dir();
        let mut spool = Spool::create(&dir, 10).await.unwrap();
        spool.write(b"12345").await.unwrap();
        spool.write(b"67890").await.unwrap();
        let e = spool.write(b"x").await.unwrap_err();
        assert!(matches!(e, AppError::PayloadTooLarge(_)), "{e}");
        spool.finish().await.unwrap();
        let path = spool.path().to_owned();
        assert_eq!(std::fs::read(&path).unwrap(), b"1234567890");
        assert_eq!(spool.bytes(), 10);
        drop(spool);
        assert!(!path.exists());
    }
}
