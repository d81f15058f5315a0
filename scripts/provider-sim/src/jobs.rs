//! In-memory registry of asynchronous jobs (Sora, Veo and Kling video generations).
//!
//! A job takes its [`Behaviour`] once, when it is submitted, and keeps it: polls, downloads and
//! deletes read the job, never the script queue, so a scripted failure is not eaten by a poll.
//! A job's life is counted in polls: the first [`SimConfig::job_polls`] polls find it running
//! with its progress rising (`polls·100 / (job_polls + 1)`), the next one finds it ended, as its
//! behaviour says ([`Phase`]). A crashed client that polls the same job again carries on where
//! the count was.
//!
//! The registry is bounded: past [`MAX_JOBS`] jobs the oldest is forgotten (its id then answers
//! as unknown).
//!
//! [`SimConfig::job_polls`]: crate::SimConfig::job_polls

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::config::Behaviour;
use crate::record::WireFormat;

/// Jobs kept at most; submitting more forgets the oldest.
pub(crate) const MAX_JOBS: usize = 10_000;

/// Where a job is in its life, as a poll finds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Still generating; `progress` is a percentage below 100.
    Running { progress: u8 },
    /// Done: the video can be downloaded.
    Succeeded,
    /// Ended refused by the provider's safety system (`Behaviour::ContentFiltered`).
    Filtered,
    /// Ended failed with the provider's error (`Behaviour::JobFailed`).
    Failed,
}

impl Phase {
    /// The job has ended (succeeded, filtered or failed).
    pub(crate) fn is_terminal(self) -> bool {
        !matches!(self, Phase::Running { .. })
    }
}

/// One submitted job and what the simulator remembers of it.
#[derive(Clone, Debug)]
pub(crate) struct Job {
    /// The id the provider handed out (Sora's `video_…`, Veo's operation id, Kling's `task_id`).
    pub(crate) id: String,
    /// The submission's format, which names the API the job belongs to.
    pub(crate) api: WireFormat,
    pub(crate) model: String,
    pub(crate) prompt: String,
    /// Taken from the script at submission.
    pub(crate) behaviour: Behaviour,
    /// When the submission arrived, on the simulator's clock.
    pub(crate) submitted_at: Instant,
    /// The same moment on the wall clock, for the providers' timestamps.
    pub(crate) created: SystemTime,
    /// Polls answered so far.
    pub(crate) polls: usize,
    /// When a poll first found the job ended.
    pub(crate) finished: Option<SystemTime>,
    /// When the client deleted (or cancelled) the job; a deleted job answers as unknown.
    pub(crate) deleted_at: Option<Instant>,
    /// Id of the generated video (Veo's file, Kling's video), by which it is downloaded.
    pub(crate) media_id: Option<String>,
    /// API-specific request fields the provider echoes back (size, seconds, task kind, …).
    pub(crate) params: Value,
}

impl Job {
    pub(crate) fn new(
        id: String,
        api: WireFormat,
        model: &str,
        prompt: &str,
        behaviour: Behaviour,
        params: Value,
    ) -> Self {
        Self {
            id,
            api,
            model: model.to_owned(),
            prompt: prompt.to_owned(),
            behaviour,
            submitted_at: Instant::now(),
            created: SystemTime::now(),
            polls: 0,
            finished: None,
            deleted_at: None,
            media_id: None,
            params,
        }
    }

    /// The id the generated video is downloaded by.
    pub(crate) fn with_media_id(mut self, media_id: String) -> Self {
        self.media_id = Some(media_id);
        self
    }

    /// Where the job is after the polls it has seen, `job_polls` of which find it running.
    pub(crate) fn phase(&self, job_polls: usize) -> Phase {
        let progress = |polls: usize| {
            let percent = polls.saturating_mul(100) / job_polls.saturating_add(1);
            u8::try_from(percent.min(99)).unwrap_or(99)
        };
        if matches!(self.behaviour, Behaviour::JobStuck) || self.polls <= job_polls {
            return Phase::Running {
                progress: progress(self.polls),
            };
        }
        match self.behaviour {
            Behaviour::ContentFiltered => Phase::Filtered,
            Behaviour::JobFailed => Phase::Failed,
            Behaviour::Normal
            | Behaviour::JobStuck
            | Behaviour::DownloadDrop { .. }
            | Behaviour::ServerError
            | Behaviour::RateLimited { .. }
            | Behaviour::Refused { .. }
            | Behaviour::DropMidStream { .. }
            | Behaviour::MalformedLine { .. }
            | Behaviour::BadAudio { .. }
            | Behaviour::ErrorEvent { .. } => Phase::Succeeded,
        }
    }

    /// Seconds since the Unix epoch of `at`.
    pub(crate) fn unix_secs(at: SystemTime) -> u64 {
        at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
    }

    /// Milliseconds since the Unix epoch of `at`.
    pub(crate) fn unix_millis(at: SystemTime) -> u64 {
        at.duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

#[derive(Default)]
struct Jobs {
    by_id: HashMap<String, Job>,
    /// Ids in submission order, oldest first, for eviction.
    order: VecDeque<String>,
    /// Media id → job id.
    media: HashMap<String, String>,
}

/// Every job submitted to the simulator, by id.
#[derive(Default)]
pub(crate) struct JobRegistry {
    jobs: Mutex<Jobs>,
}

impl JobRegistry {
    fn lock(&self) -> MutexGuard<'_, Jobs> {
        // Every critical section is a few map operations that leave the maps consistent.
        self.jobs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps `job`, forgetting the oldest job when the registry is full.
    pub(crate) fn insert(&self, job: Job) {
        let mut jobs = self.lock();
        if let Some(media_id) = &job.media_id {
            jobs.media.insert(media_id.clone(), job.id.clone());
        }
        jobs.order.push_back(job.id.clone());
        jobs.by_id.insert(job.id.clone(), job);
        while jobs.by_id.len() > MAX_JOBS {
            let Some(oldest) = jobs.order.pop_front() else {
                break;
            };
            if let Some(evicted) = jobs.by_id.remove(&oldest)
                && let Some(media_id) = evicted.media_id
            {
                jobs.media.remove(&media_id);
            }
        }
    }

    /// The job `id` (deleted or not).
    pub(crate) fn get(&self, id: &str) -> Option<Job> {
        self.lock().by_id.get(id).cloned()
    }

    /// The job whose video is `media_id`.
    pub(crate) fn by_media(&self, media_id: &str) -> Option<Job> {
        let jobs = self.lock();
        let id = jobs.media.get(media_id)?;
        jobs.by_id.get(id).cloned()
    }

    /// The newest live job `matches` accepts (a scan, for lookups by a client's own id).
    pub(crate) fn find(&self, matches: impl Fn(&Job) -> bool) -> Option<Job> {
        let jobs = self.lock();
        jobs.order
            .iter()
            .rev()
            .filter_map(|id| jobs.by_id.get(id))
            .find(|job| job.deleted_at.is_none() && matches(job))
            .cloned()
    }

    /// Counts one poll of the live job `id` and returns it with the phase the poll finds.
    /// `None` for an unknown or deleted job, which is not counted.
    pub(crate) fn poll(&self, id: &str, job_polls: usize) -> Option<(Job, Phase)> {
        let mut jobs = self.lock();
        let job = jobs.by_id.get_mut(id).filter(|j| j.deleted_at.is_none())?;
        job.polls = job.polls.saturating_add(1);
        let phase = job.phase(job_polls);
        if phase.is_terminal() && job.finished.is_none() {
            job.finished = Some(SystemTime::now());
            tracing::debug!(
                id,
                ?phase,
                polls = job.polls,
                after = ?job.submitted_at.elapsed(),
                "job ended"
            );
        }
        Some((job.clone(), phase))
    }

    /// Marks the live job `id` deleted and returns it; `None` for an unknown or deleted job.
    pub(crate) fn delete(&self, id: &str) -> Option<Job> {
        let mut jobs = self.lock();
        let job = jobs.by_id.get_mut(id).filter(|j| j.deleted_at.is_none())?;
        job.deleted_at = Some(Instant::now());
        Some(job.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: &str, behaviour: Behaviour) -> Job {
        Job::new(
            id.to_owned(),
            WireFormat::Sora,
            "sora-2",
            "a cat",
            behaviour,
            Value::Null,
        )
    }

    #[test]
    fn progress_rises_then_the_behaviour_decides_the_end() {
        let registry = JobRegistry::default();
        registry.insert(job("a", Behaviour::Normal));
        registry.insert(job("b", Behaviour::ContentFiltered));
        registry.insert(job("c", Behaviour::JobFailed));
        let phases: Vec<_> = (0..4)
            .filter_map(|_| registry.poll("a", 2).map(|(_, p)| p))
            .collect();
        assert_eq!(
            phases,
            [
                Phase::Running { progress: 33 },
                Phase::Running { progress: 66 },
                Phase::Succeeded,
                Phase::Succeeded
            ]
        );
        assert_eq!(registry.poll("b", 0).map(|(_, p)| p), Some(Phase::Filtered));
        assert_eq!(registry.poll("c", 0).map(|(_, p)| p), Some(Phase::Failed));
        assert!(registry.get("a").and_then(|j| j.finished).is_some());
    }

    #[test]
    fn a_stuck_job_never_ends_and_stays_below_100() {
        let registry = JobRegistry::default();
        registry.insert(job("s", Behaviour::JobStuck));
        let mut last = None;
        for _ in 0..50 {
            last = registry.poll("s", 2).map(|(_, p)| p);
        }
        assert_eq!(last, Some(Phase::Running { progress: 99 }));
    }

    #[test]
    fn deleted_and_unknown_jobs_are_not_polled() {
        let registry = JobRegistry::default();
        registry.insert(job("d", Behaviour::Normal).with_media_id("m".to_owned()));
        assert_eq!(registry.by_media("m").map(|j| j.id), Some("d".to_owned()));
        assert!(registry.delete("d").is_some());
        assert!(registry.delete("d").is_none());
        assert!(registry.poll("d", 2).is_none());
        assert!(registry.poll("nope", 2).is_none());
    }

    #[test]
    fn the_oldest_job_is_forgotten_past_the_bound() {
        let registry = JobRegistry::default();
        for i in 0..=MAX_JOBS {
            registry.insert(job(&i.to_string(), Behaviour::Normal).with_media_id(format!("m{i}")));
        }
        assert!(registry.get("0").is_none());
        assert!(registry.by_media("m0").is_none());
        assert!(registry.get("1").is_some());
        assert!(registry.get(&MAX_JOBS.to_string()).is_some());
    }
}
