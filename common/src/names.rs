//! Every stream, group and key name of the system, from one place (DESIGN §3).
//!
//! Names keep the `{prefix}:{env}:...` layout of the design and are ready for Redis Cluster:
//! every key a multi-key command or script touches together carries the same hash tag (the part
//! in braces decides the slot). A session's keys are tagged by the session id
//! (`…:responses:{<session>}`, `…:session:{<session>}:owner`), a callback stream by its name,
//! and an action's processed-marker by the tag of the stream its `complete` goes to, because the
//! completion script writes both. `docs/streams.md` lists each multi-key command.

use uuid::Uuid;

/// The namespace of every key: `{prefix}:{env}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    base: String,
}

impl Names {
    /// Names under `{prefix}:{env}`.
    pub fn new(prefix: &str, env: &str) -> Self {
        Self {
            base: format!("{prefix}:{env}"),
        }
    }

    /// A service's action stream.
    pub fn action_stream(&self, service: &str) -> String {
        format!("{}:{service}:streams:main", self.base)
    }

    /// A service's consumer group.
    pub fn consumer_group(&self, service: &str) -> String {
        format!("{service}-workers")
    }

    /// A service's dead-letter stream.
    pub fn dead_letter_stream(&self, service: &str) -> String {
        format!("{}:{service}:streams:dead", self.base)
    }

    /// A session's response stream: `{ns}:responses:{<session>}`.
    pub fn response_stream(&self, session_id: Uuid) -> String {
        format!("{}:responses:{{{session_id}}}", self.base)
    }

    /// A caller's callback stream: `{ns}:callbacks:{<name>}` (the name is its hash tag).
    pub fn callback_stream(&self, name: &str) -> String {
        format!("{}:callbacks:{{{name}}}", self.base)
    }

    /// Whether a key is a callback stream (`{ns}:callbacks:` and a non-empty name): the only
    /// streams besides a session's own response stream that an action's `callback_stream` may
    /// name. Action, dead-letter and other keys of the namespace are never callback targets.
    pub fn is_callback_stream(&self, key: &str) -> bool {
        key.strip_prefix(&self.base)
            .and_then(|rest| rest.strip_prefix(":callbacks:"))
            .is_some_and(|name| !name.is_empty())
    }

    /// A task's cancel flag (a key with a TTL).
    pub fn cancel_flag(&self, task_id: Uuid) -> String {
        format!("{}:cancel:{task_id}", self.base)
    }

    /// The Pub/Sub channel that announces cancel flags, so workers react at once.
    pub fn cancel_channel(&self) -> String {
        format!("{}:cancel", self.base)
    }

    /// The marker that an action already completed (idempotency by `action_id`), in the slot
    /// of `target`, the stream its `complete` is written to (one script writes both).
    pub fn processed_marker(&self, service: &str, action_id: Uuid, target: &str) -> String {
        format!(
            "{}:{service}:processed:{{{}}}:{action_id}",
            self.base,
            hash_tag(target)
        )
    }

    /// The owner (`{tenant_id}:{user_id}`) of a session, so no other tenant or user reads,
    /// resumes or writes to it (see `sessions`).
    pub fn session_owner(&self, session_id: Uuid) -> String {
        format!("{}:session:{{{session_id}}}:owner", self.base)
    }

    /// Set while some client is attached to a session after a disconnect (resume grace).
    pub fn session_attached(&self, session_id: Uuid) -> String {
        format!("{}:session:{{{session_id}}}:attached", self.base)
    }

    /// A tenant's rate-limit state (GCRA theoretical arrival time).
    pub fn rate_limit(&self, tenant_id: Uuid) -> String {
        format!("{}:ratelimit:{tenant_id}", self.base)
    }

    /// The rate-limit state of an unauthenticated caller: `scope` is `addr` (a client address)
    /// or `account` (a hash of an email), `id` the value.
    pub fn rate_limit_auth(&self, scope: &str, id: &str) -> String {
        format!("{}:ratelimit:auth:{scope}:{id}", self.base)
    }

    /// The session a long job (its task id: a document ingestion, a video) runs in, so that
    /// its progress can be followed by the job's id alone (`WS /ws/ingest/{job_id}`,
    /// `GET /video/{task_id}`); expires with the job's events.
    pub fn job_session(&self, job_id: Uuid) -> String {
        format!("{}:job:{{{job_id}}}:session", self.base)
    }

    /// The media-worker's record of the provider job an action started (provider, job id,
    /// when), so that the action, delivered again after a crash, polls the same job instead of
    /// paying for a second one.
    pub fn media_job(&self, action_id: Uuid) -> String {
        format!("{}:media:job:{{{action_id}}}", self.base)
    }

    /// The task of a session that is running now, if any.
    pub fn session_running_task(&self, session_id: Uuid) -> String {
        format!("{}:session:{{{session_id}}}:task", self.base)
    }

    /// The text a chat task writes for its speech half to speak while the answer is written
    /// (entries `text` or `end`), read by the tts-worker: bounded, and expiring after the task.
    pub fn speech_input_stream(&self, session_id: Uuid, task_id: Uuid) -> String {
        format!("{}:session:{{{session_id}}}:speech:{task_id}", self.base)
    }

    /// The audio a client streams for a task (WebSocket binary frames, entries `a` or `end`),
    /// read by the worker that transcribes it: bounded, and expiring after the task
    /// (`common::live_audio`).
    pub fn audio_input_stream(&self, session_id: Uuid, task_id: Uuid) -> String {
        format!("{}:session:{{{session_id}}}:audio:{task_id}", self.base)
    }
}

/// What Redis Cluster hashes a key by: the text inside its first `{…}` when that is not empty,
/// else the whole key. Keys with equal hash tags share a slot.
pub fn hash_tag(key: &str) -> &str {
    key.find('{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            rest.find('}')
                .filter(|&close| close > 0)
                .map(|close| &rest[..close])
        })
        .unwrap_or(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_design() {
        let n = Names::new("aiback", "dev");
        let id = Uuid::nil();
        assert_eq!(n.action_stream("chat"), "aiback:dev:chat:streams:main");
        assert_eq!(n.consumer_group("chat"), "chat-workers");
        assert_eq!(n.dead_letter_stream("chat"), "aiback:dev:chat:streams:dead");
        assert_eq!(
            n.response_stream(id),
            format!("aiback:dev:responses:{{{id}}}")
        );
        assert_eq!(n.cancel_flag(id), format!("aiback:dev:cancel:{id}"));
        assert_eq!(
            n.callback_stream("billing"),
            "aiback:dev:callbacks:{billing}"
        );
        assert!(n.is_callback_stream("aiback:dev:callbacks:{billing}"));
        assert!(n.is_callback_stream("aiback:dev:callbacks:billing"));
        for not in [
            "aiback:dev:callbacks:",
            "aiback:dev:chat:streams:main",
            "aiback:dev:chat:streams:dead",
            "aiback:prod:callbacks:x",
            "aiback:dev:session:x:owner",
        ] {
            assert!(!n.is_callback_stream(not), "{not}");
        }
    }

    #[test]
    fn keys_written_together_share_a_hash_tag() {
        let n = Names::new("aiback", "dev");
        let (session, action) = (Uuid::now_v7(), Uuid::now_v7());
        let stream = n.response_stream(session);
        let tag = session.to_string();
        // The completion script: the marker and the stream it completes.
        assert_eq!(hash_tag(&n.processed_marker("chat", action, &stream)), tag);
        let callback = n.callback_stream("billing");
        assert_eq!(
            hash_tag(&n.processed_marker("chat", action, &callback)),
            "billing"
        );
        // A callback key given without braces hashes whole; its marker's tag is that whole key.
        let plain = "aiback:dev:callbacks:plain";
        assert_eq!(hash_tag(&n.processed_marker("chat", action, plain)), plain);
        // A session deleted with one DEL: stream, owner, running task, attached flag.
        for key in [
            n.session_owner(session),
            n.session_running_task(session),
            n.session_attached(session),
        ] {
            assert_eq!(hash_tag(&key), tag, "{key}");
        }
        assert_eq!(hash_tag("no-tag"), "no-tag");
        assert_eq!(hash_tag("a{}b"), "a{}b");
    }
}
