//! The output and error files of a job: written line by line to spool files, then stored and
//! recorded as `batch_output` files of the job's owner. Their ids follow from the job's, so a
//! resumed job that writes them again replaces them instead of leaving copies.

use std::path::PathBuf;

use common::batch::store::{self, NewFile};
use common::batch::{FOLDER, Job, Owner};
use common::storage::Storage;
use serde_json::{Value, json};
use tokio::io::{AsyncWriteExt, BufWriter};
use uuid::Uuid;

/// The MIME type of a JSONL file.
pub const JSONL: &str = "application/jsonl";

struct Spool {
    path: PathBuf,
    file: BufWriter<tokio::fs::File>,
    lines: i32,
}

impl Spool {
    async fn create(path: PathBuf) -> std::io::Result<Self> {
        let file = tokio::fs::File::create(&path).await?;
        Ok(Self {
            path,
            file: BufWriter::new(file),
            lines: 0,
        })
    }

    async fn push(&mut self, line: &str) -> std::io::Result<()> {
        self.file.write_all(line.as_bytes()).await?;
        self.file.write_all(b"\n").await?;
        self.lines += 1;
        Ok(())
    }
}

/// A job's two files being written.
pub struct Output {
    ok: Spool,
    err: Spool,
    input_tokens: u64,
    output_tokens: u64,
    /// The `custom_id`s written, when asked to remember them ([`Output::remembering`]).
    ids: Option<std::collections::HashSet<String>>,
}

/// The stored files and what they hold.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    /// The output file, when a line succeeded.
    pub output_file_id: Option<String>,
    /// The error file, when a line failed.
    pub error_file_id: Option<String>,
    /// Lines in the output file.
    pub completed: i32,
    /// Lines in the error file.
    pub failed: i32,
    /// Tokens of the answered lines.
    pub usage: Value,
}

/// Why the files could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The spool directory.
    #[error("spool file: {0}")]
    Io(#[from] std::io::Error),
    /// Storage.
    #[error(transparent)]
    Storage(#[from] common::storage::StorageError),
    /// The database.
    #[error("recording the files failed: {0}")]
    Db(#[from] sqlx::Error),
}

fn file_id(job: &Job, kind: &str) -> String {
    format!("file-{}-{kind}", job.id.trim_start_matches("batch_"))
}

impl Output {
    /// Starts the files of `job` in `spool`.
    pub async fn create(spool: PathBuf, job: &Job) -> std::io::Result<Self> {
        tokio::fs::create_dir_all(&spool).await?;
        let run = Uuid::now_v7().simple();
        Ok(Self {
            ok: Spool::create(spool.join(format!("{}-{run}-output.jsonl", job.id))).await?,
            err: Spool::create(spool.join(format!("{}-{run}-errors.jsonl", job.id))).await?,
            input_tokens: 0,
            output_tokens: 0,
            ids: None,
        })
    }

    /// Remembers the `custom_id` of every line written from now on (a provider's results, to
    /// find the requests it returned nothing for).
    pub fn remembering(mut self) -> Self {
        self.ids = Some(std::collections::HashSet::new());
        self
    }

    /// Whether a line for `custom_id` was written (always false when not remembering).
    pub fn has(&self, custom_id: &str) -> bool {
        self.ids.as_ref().is_some_and(|ids| ids.contains(custom_id))
    }

    /// Adds a line to the output file (`ok`) or the error file.
    pub async fn push(&mut self, ok: bool, line: &str) -> std::io::Result<()> {
        let parsed = serde_json::from_str::<Value>(line).ok();
        if let (Some(ids), Some(v)) = (&mut self.ids, &parsed)
            && let Some(id) = v["custom_id"].as_str()
        {
            ids.insert(id.to_owned());
        }
        if ok {
            if let Some(v) = parsed {
                let usage = &v["response"]["body"]["usage"];
                self.input_tokens += usage["prompt_tokens"].as_u64().unwrap_or(0);
                self.output_tokens += usage["completion_tokens"].as_u64().unwrap_or(0);
            }
            self.ok.push(line).await
        } else {
            self.err.push(line).await
        }
    }

    /// Flushes both files and returns their paths (output, errors), for tests that read them.
    #[doc(hidden)]
    pub async fn flushed_paths(&mut self) -> std::io::Result<(&std::path::Path, &std::path::Path)> {
        self.ok.file.flush().await?;
        self.err.file.flush().await?;
        Ok((&self.ok.path, &self.err.path))
    }

    /// Stores the non-empty files for the job's owner and records them (kept until the job is
    /// deleted); the spool files are removed either way.
    pub async fn store(
        mut self,
        db: &sqlx::PgPool,
        storage: &Storage,
        job: &Job,
    ) -> Result<Stored, OutputError> {
        self.ok.file.flush().await?;
        self.err.file.flush().await?;
        let result = self.store_files(db, storage, job).await;
        for path in [&self.ok.path, &self.err.path] {
            if let Err(e) = tokio::fs::remove_file(path).await {
                tracing::warn!(path = %path.display(), error = %e, "spool file not removed");
            }
        }
        result
    }

    async fn store_files(
        &self,
        db: &sqlx::PgPool,
        storage: &Storage,
        job: &Job,
    ) -> Result<Stored, OutputError> {
        let owner = Owner {
            tenant_id: job.tenant_id,
            user_id: job.user_id,
        };
        let mut ids = [None, None];
        for (slot, (spool, kind)) in [(&self.ok, "output"), (&self.err, "errors")]
            .into_iter()
            .enumerate()
        {
            if spool.lines == 0 {
                continue;
            }
            let filename = format!("{}_{kind}.jsonl", job.id);
            let stored = storage
                .put_file_named(job.tenant_id, FOLDER, &filename, JSONL, &spool.path)
                .await?;
            let id = file_id(job, kind);
            store::insert_file(
                db,
                &NewFile {
                    id: &id,
                    owner,
                    purpose: "batch_output",
                    filename: &filename,
                    bytes: i64::try_from(stored.size).unwrap_or(i64::MAX),
                    storage_key: &stored.key,
                    expires_at: job.delete_at,
                },
            )
            .await?;
            ids[slot] = Some(id);
        }
        let [output_file_id, error_file_id] = ids;
        Ok(Stored {
            output_file_id,
            error_file_id,
            completed: self.ok.lines,
            failed: self.err.lines,
            usage: json!({
                "input_tokens": self.input_tokens,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": self.output_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": self.input_tokens + self.output_tokens,
            }),
        })
    }
}
