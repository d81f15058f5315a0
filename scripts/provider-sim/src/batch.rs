//! In-memory registry of provider batches: OpenAI Batches, Anthropic Message Batches and Gemini
//! Batch Mode, each a list of requests answered together, polled until the batch ends.
//!
//! A batch works like a video job (`jobs`): it takes its [`Behaviour`] once, at submission, and
//! its life is counted in polls (`GET`s of the batch), never in time. What each request of the
//! batch gets (an answer, or its own error) is decided at submission and kept in its [`Line`];
//! a poll only moves the [`Stage`] on, so the results a client reads are the same however often
//! it polls. The lines finish in submission order: after poll `k` of the first
//! [`SimConfig::job_polls`] (`p`), the first `⌊n·k/(p + 1)⌋` of the `n` lines are finished; the
//! next poll finds every line finished and the batch ended, or, for OpenAI, `finalizing` first
//! and ended at the poll after. `JobFailed` ends the batch failed where it would have ended,
//! `JobStuck` keeps it running (its lines stop short of `n`) until it is cancelled.
//!
//! A cancel freezes the lines finished so far; the batch is cancelling until its next poll,
//! which finds it cancelled with those lines' results and the others unfinished (Gemini's cancel
//! ends it at once). A batch that has ended cannot be cancelled.
//!
//! Listing or reading a batch does not count as a poll. The registry is bounded: past
//! [`MAX_JOBS`] batches or [`MAX_LINES`] requests in all, the oldest batch is forgotten (its id
//! then answers as unknown).
//!
//! [`SimConfig::job_polls`]: crate::SimConfig::job_polls

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use serde_json::Value;

use crate::config::Behaviour;
use crate::jobs::MAX_JOBS;
use crate::record::{Incoming, ResponseGuard, WireFormat};
use crate::server::Shared;

/// Requests kept at most, over every batch; submitting more forgets the oldest batches.
pub(crate) const MAX_LINES: usize = 1_000_000;

/// One request of a batch and the result it gets, decided at submission.
#[derive(Clone, Debug)]
pub(crate) struct Line {
    /// The client's id of the request (OpenAI's and Anthropic's `custom_id`; Gemini's is in
    /// its `metadata`).
    pub(crate) custom_id: String,
    /// The request's result as the provider writes it: `Ok` for an answer, `Err` for the
    /// request's own error.
    pub(crate) result: Result<Value, Value>,
    /// Prompt tokens of an answered request (0 for an error).
    pub(crate) input_tokens: u64,
    /// Reply tokens of an answered request (0 for an error).
    pub(crate) output_tokens: u64,
}

/// Where a batch is, as its last poll (or cancel) left it. `finished` counts the lines done so
/// far, which are always the first ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Submitted, not polled yet: OpenAI `validating`, Gemini `BATCH_STATE_PENDING`.
    Queued,
    /// Being processed.
    Running { finished: usize },
    /// Every line done, results being written (OpenAI only).
    Finalizing,
    /// Ended normally: every line has its result.
    Succeeded,
    /// Ended failed: its input was invalid (OpenAI) or it had `Behaviour::JobFailed`.
    Failed { finished: usize },
    /// A cancel arrived; the next poll ends the batch.
    Cancelling { finished: usize },
    /// Ended by a cancel, with `finished` lines done.
    Cancelled { finished: usize },
}

impl Stage {
    /// The batch has ended (succeeded, failed or cancelled).
    pub(crate) fn is_terminal(self) -> bool {
        matches!(
            self,
            Stage::Succeeded | Stage::Failed { .. } | Stage::Cancelled { .. }
        )
    }

    /// Lines done, of `total`.
    pub(crate) fn finished(self, total: usize) -> usize {
        match self {
            Stage::Queued => 0,
            Stage::Finalizing | Stage::Succeeded => total,
            Stage::Running { finished }
            | Stage::Failed { finished }
            | Stage::Cancelling { finished }
            | Stage::Cancelled { finished } => finished.min(total),
        }
    }
}

/// How a provider's batches move: whether they pass through `finalizing` (OpenAI) and whether a
/// cancel ends them at once (Gemini).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Lifecycle {
    pub(crate) finalizing: bool,
    pub(crate) immediate_cancel: bool,
}

/// Lines done so far and how they went.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) finished: usize,
    pub(crate) succeeded: usize,
    pub(crate) failed: usize,
}

/// One submitted batch and what the simulator remembers of it.
#[derive(Clone, Debug)]
pub(crate) struct Batch {
    /// The id the provider handed out (`batch_…`, `msgbatch_…`, Gemini's `batches/{id}` id).
    pub(crate) id: String,
    /// The submission's format, which names the API the batch belongs to.
    pub(crate) api: WireFormat,
    pub(crate) model: String,
    /// Taken from the script at submission.
    pub(crate) behaviour: Behaviour,
    /// When the submission arrived.
    pub(crate) created: SystemTime,
    /// The requests, in submission order.
    pub(crate) lines: Arc<[Line]>,
    /// Requests submitted, as the request log counts them: the lines, or for an OpenAI batch
    /// the non-empty lines of its input file, bad ones included.
    pub(crate) requests: usize,
    /// Problems with the input found at submission; the first poll fails the batch with them
    /// (OpenAI validates its input file after accepting the batch).
    pub(crate) invalid: Vec<Value>,
    /// API-specific fields the provider echoes back (endpoint, metadata, display name, …).
    pub(crate) params: Value,
    /// Polls answered so far.
    pub(crate) polls: usize,
    pub(crate) stage: Stage,
    /// When the stage last changed.
    pub(crate) updated: SystemTime,
    /// When a poll first found the batch processing.
    pub(crate) started: Option<SystemTime>,
    /// When a poll found the batch finalizing (OpenAI).
    pub(crate) finalizing: Option<SystemTime>,
    /// When the client asked to cancel.
    pub(crate) cancel_requested: Option<SystemTime>,
    /// When the batch ended.
    pub(crate) ended: Option<SystemTime>,
    /// Files holding the results (OpenAI's output and error files), made when the batch ends.
    pub(crate) output_file_id: Option<String>,
    pub(crate) error_file_id: Option<String>,
}

impl Batch {
    pub(crate) fn new(
        id: String,
        api: WireFormat,
        model: &str,
        behaviour: Behaviour,
        lines: Vec<Line>,
        params: Value,
    ) -> Self {
        let now = SystemTime::now();
        Self {
            id,
            api,
            model: model.to_owned(),
            behaviour,
            created: now,
            requests: lines.len(),
            lines: lines.into(),
            invalid: Vec::new(),
            params,
            polls: 0,
            stage: Stage::Queued,
            updated: now,
            started: None,
            finalizing: None,
            cancel_requested: None,
            ended: None,
            output_file_id: None,
            error_file_id: None,
        }
    }

    /// Input problems that fail the batch at its first poll, found among `requests` submitted
    /// requests.
    pub(crate) fn with_invalid(mut self, invalid: Vec<Value>, requests: usize) -> Self {
        self.invalid = invalid;
        self.requests = requests;
        self
    }

    /// The lines done so far.
    pub(crate) fn finished_lines(&self) -> &[Line] {
        let finished = self.stage.finished(self.lines.len());
        self.lines.get(..finished).unwrap_or(&self.lines)
    }

    /// How many lines are done and how they went.
    pub(crate) fn counts(&self) -> Counts {
        let finished = self.finished_lines();
        let succeeded = finished.iter().filter(|l| l.result.is_ok()).count();
        Counts {
            finished: finished.len(),
            succeeded,
            failed: finished.len() - succeeded,
        }
    }

    /// Moves the batch to `stage` at `now`, keeping the stage timestamps.
    fn enter(&mut self, stage: Stage, now: SystemTime) {
        if stage == self.stage {
            return;
        }
        self.stage = stage;
        self.updated = now;
        if matches!(stage, Stage::Running { .. } | Stage::Finalizing) {
            self.started.get_or_insert(now);
        }
        if stage == Stage::Finalizing {
            self.finalizing = Some(now);
        }
        if stage.is_terminal() {
            self.ended = Some(now);
        }
    }

    /// Counts one poll and moves the batch on; `job_polls` polls find it running.
    fn advance(&mut self, job_polls: usize, lifecycle: Lifecycle) {
        self.polls = self.polls.saturating_add(1);
        let now = SystemTime::now();
        let total = self.lines.len();
        let running = |polls: usize| {
            let done = total.saturating_mul(polls) / job_polls.saturating_add(1);
            Stage::Running { finished: done }
        };
        let next = match self.stage {
            Stage::Succeeded | Stage::Failed { .. } | Stage::Cancelled { .. } => return,
            Stage::Cancelling { finished } => Stage::Cancelled { finished },
            _ if !self.invalid.is_empty() => Stage::Failed { finished: 0 },
            _ if matches!(self.behaviour, Behaviour::JobStuck) => {
                running(self.polls.min(job_polls))
            }
            _ if self.polls <= job_polls => running(self.polls),
            _ if matches!(self.behaviour, Behaviour::JobFailed) => Stage::Failed {
                finished: running(job_polls).finished(total),
            },
            _ if lifecycle.finalizing && self.polls == job_polls + 1 => Stage::Finalizing,
            _ => Stage::Succeeded,
        };
        self.enter(next, now);
    }
}

/// Opens the record of a request about the batch `id` of `api` (a poll, a cancel, a results
/// download) under the batch's behaviour, without taking one from the script, and returns the
/// batch as it stands. An unknown batch is recorded as `Normal`, with no requests.
pub(crate) fn follow_up(
    shared: &Shared,
    api: WireFormat,
    id: &str,
    incoming: Incoming,
) -> (Option<Batch>, ResponseGuard) {
    let batch = shared.batches().get(api, id);
    let requests = batch.as_ref().map_or(0, |b| b.requests);
    let behaviour = batch
        .as_ref()
        .map_or(Behaviour::Normal, |b| b.behaviour.clone());
    let guard = shared.follow_up(incoming.with_batch_requests(requests), behaviour);
    (batch, guard)
}

#[derive(Default)]
struct Batches {
    by_id: HashMap<String, Batch>,
    /// Ids in submission order, oldest first, for eviction and listing.
    order: VecDeque<String>,
    /// Lines over every batch kept.
    lines: usize,
}

/// Why a cancel was not done.
#[derive(Debug)]
pub(crate) enum CancelRefused {
    /// No live batch of that API has the id.
    Unknown,
    /// The batch has already ended, as it is here.
    Ended(Box<Batch>),
}

/// A page of batches, newest first.
pub(crate) struct Page {
    pub(crate) batches: Vec<Batch>,
    /// More batches follow the page.
    pub(crate) has_more: bool,
}

/// Every batch submitted to the simulator, by id.
#[derive(Default)]
pub(crate) struct BatchRegistry {
    batches: Mutex<Batches>,
}

impl BatchRegistry {
    fn lock(&self) -> MutexGuard<'_, Batches> {
        // Every critical section is a few map operations that leave the maps consistent.
        self.batches.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps `batch`, forgetting the oldest batches when the registry is full.
    pub(crate) fn insert(&self, batch: Batch) {
        self.insert_bounded(batch, MAX_JOBS, MAX_LINES);
    }

    fn insert_bounded(&self, batch: Batch, max_batches: usize, max_lines: usize) {
        let mut batches = self.lock();
        batches.lines += batch.lines.len();
        batches.order.push_back(batch.id.clone());
        batches.by_id.insert(batch.id.clone(), batch);
        while batches.by_id.len() > max_batches
            || (batches.lines > max_lines && batches.by_id.len() > 1)
        {
            let Some(oldest) = batches.order.pop_front() else {
                break;
            };
            if let Some(evicted) = batches.by_id.remove(&oldest) {
                batches.lines -= evicted.lines.len();
            }
        }
    }

    /// The batch `id` of `api`.
    pub(crate) fn get(&self, api: WireFormat, id: &str) -> Option<Batch> {
        self.lock().by_id.get(id).filter(|b| b.api == api).cloned()
    }

    /// Counts one poll of the batch `id` of `api` and returns it as the poll finds it. When the
    /// poll ends the batch, `on_end` runs on it first (under the registry's lock, so it runs
    /// once), e.g. to write its result files.
    pub(crate) fn poll(
        &self,
        api: WireFormat,
        id: &str,
        job_polls: usize,
        lifecycle: Lifecycle,
        on_end: impl FnOnce(&mut Batch),
    ) -> Option<Batch> {
        let mut batches = self.lock();
        let batch = batches.by_id.get_mut(id).filter(|b| b.api == api)?;
        let was_terminal = batch.stage.is_terminal();
        batch.advance(job_polls, lifecycle);
        if batch.stage.is_terminal() && !was_terminal {
            on_end(batch);
            tracing::debug!(id, stage = ?batch.stage, polls = batch.polls, "batch ended");
        }
        Some(batch.clone())
    }

    /// Cancels the batch `id` of `api`: the lines done so far are kept, the rest will not be
    /// done. A cancelling batch stays as it is. When the cancel ends the batch at once,
    /// `on_end` runs on it first, as in [`BatchRegistry::poll`].
    pub(crate) fn cancel(
        &self,
        api: WireFormat,
        id: &str,
        lifecycle: Lifecycle,
        on_end: impl FnOnce(&mut Batch),
    ) -> Result<Batch, CancelRefused> {
        let mut batches = self.lock();
        let Some(batch) = batches.by_id.get_mut(id).filter(|b| b.api == api) else {
            return Err(CancelRefused::Unknown);
        };
        if batch.stage.is_terminal() {
            return Err(CancelRefused::Ended(Box::new(batch.clone())));
        }
        if !matches!(batch.stage, Stage::Cancelling { .. }) {
            let now = SystemTime::now();
            let finished = batch.stage.finished(batch.lines.len());
            batch.cancel_requested = Some(now);
            if lifecycle.immediate_cancel {
                batch.enter(Stage::Cancelled { finished }, now);
                on_end(batch);
            } else {
                batch.enter(Stage::Cancelling { finished }, now);
            }
        }
        Ok(batch.clone())
    }

    /// Up to `limit` batches of `api`, newest first, starting after the batch `after` (the last
    /// of the previous page) or, for Anthropic's backward pages, ending before the batch
    /// `before`. `None` when the cursor is no batch of `api`.
    pub(crate) fn page(
        &self,
        api: WireFormat,
        after: Option<&str>,
        before: Option<&str>,
        limit: usize,
    ) -> Option<Page> {
        let batches = self.lock();
        let newest_first: Vec<&Batch> = batches
            .order
            .iter()
            .rev()
            .filter_map(|id| batches.by_id.get(id))
            .filter(|b| b.api == api)
            .collect();
        let position = |cursor: &str| newest_first.iter().position(|b| b.id == cursor);
        let (start, end) = match (after, before) {
            (Some(after), _) => {
                let start = position(after)? + 1;
                (start, newest_first.len().min(start.saturating_add(limit)))
            }
            (None, Some(before)) => {
                let end = position(before)?;
                (end.saturating_sub(limit), end)
            }
            (None, None) => (0, newest_first.len().min(limit)),
        };
        let has_more = match (after, before) {
            (None, Some(_)) => start > 0,
            _ => end < newest_first.len(),
        };
        let batches = newest_first
            .get(start..end)
            .unwrap_or_default()
            .iter()
            .map(|b| (*b).clone())
            .collect();
        Some(Page { batches, has_more })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPENAI: Lifecycle = Lifecycle {
        finalizing: true,
        immediate_cancel: false,
    };
    const PLAIN: Lifecycle = Lifecycle {
        finalizing: false,
        immediate_cancel: false,
    };

    fn line(ok: bool) -> Line {
        Line {
            custom_id: "c".to_owned(),
            result: if ok {
                Ok(Value::Null)
            } else {
                Err(Value::Null)
            },
            input_tokens: 0,
            output_tokens: 0,
        }
    }

    fn batch(id: &str, lines: usize, behaviour: Behaviour) -> Batch {
        let lines = (0..lines).map(|i| line(i % 3 != 2)).collect();
        Batch::new(
            id.to_owned(),
            WireFormat::OpenAiBatchCreate,
            "gpt-4o-mini",
            behaviour,
            lines,
            Value::Null,
        )
    }

    fn stages(
        registry: &BatchRegistry,
        id: &str,
        polls: usize,
        lifecycle: Lifecycle,
    ) -> Vec<Stage> {
        (0..polls)
            .filter_map(|_| registry.poll(WireFormat::OpenAiBatchCreate, id, 2, lifecycle, |_| {}))
            .map(|b| b.stage)
            .collect()
    }

    #[test]
    fn lines_finish_in_order_then_the_batch_finalizes_and_completes() {
        let registry = BatchRegistry::default();
        registry.insert(batch("a", 6, Behaviour::Normal));
        assert_eq!(
            stages(&registry, "a", 5, OPENAI),
            [
                Stage::Running { finished: 2 },
                Stage::Running { finished: 4 },
                Stage::Finalizing,
                Stage::Succeeded,
                Stage::Succeeded,
            ]
        );
        let done = registry.get(WireFormat::OpenAiBatchCreate, "a").unwrap();
        assert_eq!(
            done.counts(),
            Counts {
                finished: 6,
                succeeded: 4,
                failed: 2
            }
        );
        assert!(done.started.is_some() && done.finalizing.is_some() && done.ended.is_some());
    }

    #[test]
    fn failed_stuck_and_invalid_batches() {
        let registry = BatchRegistry::default();
        registry.insert(batch("f", 3, Behaviour::JobFailed));
        registry.insert(batch("s", 3, Behaviour::JobStuck));
        registry.insert(batch("i", 3, Behaviour::Normal).with_invalid(vec![Value::Null], 4));
        assert_eq!(
            stages(&registry, "f", 3, PLAIN).last(),
            Some(&Stage::Failed { finished: 2 })
        );
        assert_eq!(
            stages(&registry, "s", 9, PLAIN).last(),
            Some(&Stage::Running { finished: 2 })
        );
        assert_eq!(
            stages(&registry, "i", 1, PLAIN),
            [Stage::Failed { finished: 0 }]
        );
    }

    #[test]
    fn a_cancel_keeps_the_finished_lines_and_ends_at_the_next_poll() {
        let registry = BatchRegistry::default();
        registry.insert(batch("c", 3, Behaviour::JobStuck));
        stages(&registry, "c", 1, PLAIN);
        let api = WireFormat::OpenAiBatchCreate;
        let cancelling = registry.cancel(api, "c", PLAIN, |_| {}).unwrap();
        assert_eq!(cancelling.stage, Stage::Cancelling { finished: 1 });
        assert!(cancelling.cancel_requested.is_some());
        // A second cancel changes nothing.
        let again = registry.cancel(api, "c", PLAIN, |_| {}).unwrap();
        assert_eq!(again.stage, Stage::Cancelling { finished: 1 });
        let mut ended = 0;
        let polled = registry.poll(api, "c", 2, PLAIN, |_| ended += 1);
        assert_eq!(
            polled.map(|b| b.stage),
            Some(Stage::Cancelled { finished: 1 })
        );
        assert_eq!(ended, 1);
        assert!(matches!(
            registry.cancel(api, "c", PLAIN, |_| {}),
            Err(CancelRefused::Ended(_))
        ));
        assert!(matches!(
            registry.cancel(WireFormat::GeminiBatchCreate, "c", PLAIN, |_| {}),
            Err(CancelRefused::Unknown)
        ));
    }

    #[test]
    fn pages_run_newest_first_and_stay_within_their_api() {
        let registry = BatchRegistry::default();
        for id in ["1", "2", "3", "4"] {
            registry.insert(batch(id, 1, Behaviour::Normal));
        }
        let api = WireFormat::OpenAiBatchCreate;
        let ids = |page: Option<Page>| {
            page.map(|p| {
                (
                    p.batches.into_iter().map(|b| b.id).collect::<Vec<_>>(),
                    p.has_more,
                )
            })
        };
        assert_eq!(
            ids(registry.page(api, None, None, 2)),
            Some((vec!["4".to_owned(), "3".to_owned()], true))
        );
        assert_eq!(
            ids(registry.page(api, Some("3"), None, 2)),
            Some((vec!["2".to_owned(), "1".to_owned()], false))
        );
        assert_eq!(
            ids(registry.page(api, None, Some("2"), 1)),
            Some((vec!["3".to_owned()], true))
        );
        assert!(registry.page(api, Some("nope"), None, 2).is_none());
        assert_eq!(
            ids(registry.page(WireFormat::GeminiBatchCreate, None, None, 2)),
            Some((Vec::new(), false))
        );
    }

    #[test]
    fn the_oldest_batches_are_forgotten_past_the_bounds() {
        let registry = BatchRegistry::default();
        registry.insert_bounded(batch("a", 6, Behaviour::Normal), 3, 10);
        registry.insert_bounded(batch("b", 5, Behaviour::Normal), 3, 10);
        let api = WireFormat::OpenAiBatchCreate;
        assert!(registry.get(api, "a").is_none(), "over 10 lines");
        registry.insert_bounded(batch("c", 1, Behaviour::Normal), 3, 10);
        registry.insert_bounded(batch("d", 1, Behaviour::Normal), 3, 10);
        registry.insert_bounded(batch("e", 1, Behaviour::Normal), 3, 10);
        assert!(registry.get(api, "b").is_none(), "over 3 batches");
        assert!(registry.get(api, "e").is_some());
    }
}
