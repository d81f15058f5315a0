//! The input file, read line by line from storage (never whole): checked once before anything
//! runs, then read again by the run.

use common::batch::jsonl::{Checker, Line, LineError};
use common::batch::{MAX_FILE_BYTES, MAX_LINES, MAX_REPORTED_ERRORS};
use common::models::ModelRegistry;
use common::storage::{Storage, StorageError};
use tokio::io::{AsyncBufRead, AsyncBufReadExt};
use uuid::Uuid;

/// Reads an object's lines with their numbers (from 1), blank lines skipped.
pub struct Lines<'a> {
    reader: Box<dyn AsyncBufRead + Send + Unpin>,
    checker: Checker<'a>,
    buf: Vec<u8>,
    number: usize,
    bytes: u64,
}

/// What the checked file holds.
#[derive(Debug, Default)]
pub struct Checked {
    /// Requests (non-blank lines).
    pub total: usize,
    /// The one model every line names.
    pub model: Option<String>,
    /// Why the file is refused, the first [`MAX_REPORTED_ERRORS`] in line order; empty: valid.
    pub errors: Vec<LineError>,
}

/// Why the input could not be read (not a fault of the file).
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// Storage failed or the file is gone.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Reading broke off.
    #[error("reading the input failed: {0}")]
    Io(#[from] std::io::Error),
}

impl<'a> Lines<'a> {
    /// Opens `tenant`'s object `key`, its lines to call `endpoint` with models of `registry`,
    /// to be checked (every rule, `custom_id`s unique).
    pub async fn open(
        storage: &Storage,
        tenant: Uuid,
        key: &str,
        endpoint: &'a str,
        registry: &'a ModelRegistry,
    ) -> Result<Self, InputError> {
        let reader = storage.get_stream(tenant, key).await?;
        Ok(Self::checking(Box::new(reader), endpoint, registry))
    }

    /// Re-reads an input checked before from `reader` (a spooled copy, or storage): every rule
    /// but the uniqueness of `custom_id`s, so memory does not grow with the file.
    pub fn rereading(
        reader: Box<dyn AsyncBufRead + Send + Unpin>,
        endpoint: &'a str,
        registry: &'a ModelRegistry,
    ) -> Self {
        Self {
            checker: Checker::rereading(endpoint, registry),
            ..Self::checking(reader, endpoint, registry)
        }
    }

    fn checking(
        reader: Box<dyn AsyncBufRead + Send + Unpin>,
        endpoint: &'a str,
        registry: &'a ModelRegistry,
    ) -> Self {
        Self {
            reader,
            checker: Checker::new(endpoint, registry),
            buf: Vec::with_capacity(8 * 1024),
            number: 0,
            bytes: 0,
        }
    }

    /// The next line, checked: `Ok(None)` at the end of the file; `Err` of the outer result: a
    /// read failure; of the inner: the line breaks a rule.
    pub async fn next(&mut self) -> Result<Option<(usize, Result<Line, LineError>)>, InputError> {
        loop {
            self.buf.clear();
            let n = self.reader.read_until(b'\n', &mut self.buf).await?;
            if n == 0 {
                return Ok(None);
            }
            self.number += 1;
            self.bytes += n as u64;
            let number = self.number;
            let checked = match std::str::from_utf8(&self.buf) {
                Ok(text) => self.checker.check(number, text),
                Err(_) => Err(LineError {
                    code: "invalid_json_line",
                    line: number,
                    message: format!("line {number} is not UTF-8 text"),
                    param: None,
                }),
            };
            match checked {
                Ok(None) => continue,
                Ok(Some(line)) => return Ok(Some((number, Ok(line)))),
                Err(e) => return Ok(Some((number, Err(e)))),
            }
        }
    }

    /// Bytes read so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The model of the lines read so far.
    pub fn model(&self) -> Option<&str> {
        self.checker.model()
    }
}

/// Reads the whole input once and checks every line and the file's limits.
pub async fn check(mut lines: Lines<'_>) -> Result<Checked, InputError> {
    let mut checked = Checked::default();
    while let Some((number, line)) = lines.next().await? {
        checked.total += 1;
        if let Err(e) = line {
            checked.errors.push(e);
            if checked.errors.len() >= MAX_REPORTED_ERRORS {
                break;
            }
        }
        if checked.total > MAX_LINES {
            checked.errors.push(LineError {
                code: "too_many_requests",
                line: number,
                message: format!(
                    "a batch holds at most {MAX_LINES} requests; line {number} is one too many"
                ),
                param: None,
            });
            break;
        }
        if lines.bytes() > MAX_FILE_BYTES {
            checked.errors.push(LineError {
                code: "file_too_large",
                line: number,
                message: format!("a batch input holds at most {MAX_FILE_BYTES} bytes"),
                param: None,
            });
            break;
        }
    }
    checked.model = lines.model().map(str::to_owned);
    Ok(checked)
}
