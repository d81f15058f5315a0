//! Every stream, group and key name of the system, from one place (DESIGN §3).
//!
//! Names keep the `{prefix}:{env}:...` layout of the design and are ready for Redis Cluster:
//! every key a multi-key command or script touches together carries the same hash tag (the part
//! in braces decides the slot). A session's keys are tagged by the session's bucket, the last two
//! hex digits of its id (`…:responses:{3f}:<session>`, `…:session:{3f}:<session>:owner`), so that
//! the gateway can read many sessions' streams in one blocking `XREAD` per bucket on a cluster (256
//! buckets, 256 slots); a callback stream is tagged by its name, and an action's processed-marker
//! by the tag of the stream its `complete` goes to, because the completion script writes both.
//! `docs/streams.md` lists each multi-key command.

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

    /// Partition `p` of a service's action stream: partition 0 is [`Names::action_stream`], so
    /// one partition is today's single stream and a producer that knows nothing of partitions
    /// still reaches a worker; partition `p > 0` is `{ns}:{service}:streams:main:p<p>`, a key
    /// (and hash slot) of its own.
    pub fn action_partition_stream(&self, service: &str, partition: usize) -> String {
        if partition == 0 {
            self.action_stream(service)
        } else {
            format!("{}:p{partition}", self.action_stream(service))
        }
    }

    /// The action stream of a session's actions among `partitions`: the partition is the number
    /// the session id's last four hex digits make, modulo `partitions`, so any language picks it
    /// from the id's text and a session's actions keep their order in one stream.
    pub fn action_stream_for(&self, service: &str, session_id: Uuid, partitions: usize) -> String {
        self.action_partition_stream(service, action_partition(session_id, partitions))
    }

    /// A service's consumer group.
    pub fn consumer_group(&self, service: &str) -> String {
        format!("{service}-workers")
    }

    /// A service's dead-letter stream.
    pub fn dead_letter_stream(&self, service: &str) -> String {
        format!("{}:{service}:streams:dead", self.base)
    }

    /// A session's response stream: `{ns}:responses:{<bucket>}:<session>`.
    pub fn response_stream(&self, session_id: Uuid) -> String {
        format!(
            "{}:responses:{{{}}}:{session_id}",
            self.base,
            session_bucket(session_id)
        )
    }

    /// `{ns}:session:{<bucket>}:<session>`, the start of a session's other keys.
    fn session_key(&self, session_id: Uuid) -> String {
        format!(
            "{}:session:{{{}}}:{session_id}",
            self.base,
            session_bucket(session_id)
        )
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
        format!("{}:owner", self.session_key(session_id))
    }

    /// Set while some client is attached to a session after a disconnect (resume grace).
    pub fn session_attached(&self, session_id: Uuid) -> String {
        format!("{}:attached", self.session_key(session_id))
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
        format!("{}:task", self.session_key(session_id))
    }

    /// The text a chat task writes for its speech half to speak while the answer is written
    /// (entries `text` or `end`), read by the tts-worker: bounded, and expiring after the task.
    pub fn speech_input_stream(&self, session_id: Uuid, task_id: Uuid) -> String {
        format!("{}:speech:{task_id}", self.session_key(session_id))
    }

    /// The audio a client streams for a task (WebSocket binary frames, entries `a` or `end`),
    /// read by the worker that transcribes it: bounded, and expiring after the task
    /// (`common::live_audio`).
    pub fn audio_input_stream(&self, session_id: Uuid, task_id: Uuid) -> String {
        format!("{}:audio:{task_id}", self.session_key(session_id))
    }
}

impl Names {
    /// Checks, before a service runs on a Redis Cluster, that every group of keys one command
    /// or script touches together lands in one hash slot with these names, so that a `CROSSSLOT`
    /// cannot surface at run time. A brace in the prefix or environment would give every key the
    /// same tag (one slot for the whole system), and is refused too.
    pub fn check_cluster_layout(&self) -> Result<(), String> {
        if self.base.contains(['{', '}']) {
            return Err(format!(
                "STREAM_PREFIX/APP_ENV ({:?}) must not contain braces on a Redis Cluster: they \
                 would put every key in one hash slot",
                self.base
            ));
        }
        let slot = |key: &str| redis::cluster_routing::Slot::for_key(key);
        for i in 0..SESSION_BUCKETS as u128 {
            let session = Uuid::from_u128(0x0193_f2a4_7b1c_7d2e_9f00_5a6b_7c8d_9e00 | i);
            let task = Uuid::from_u128(i << 64 | 7);
            let stream = self.response_stream(session);
            let groups: [(&str, Vec<String>); 3] = [
                (
                    "the completion script (marker and response stream)",
                    vec![stream.clone(), self.processed_marker("chat", task, &stream)],
                ),
                (
                    "a session's deletion (stream, owner, running task, attached flag)",
                    vec![
                        stream.clone(),
                        self.session_owner(session),
                        self.session_running_task(session),
                        self.session_attached(session),
                        self.speech_input_stream(session, task),
                        self.audio_input_stream(session, task),
                    ],
                ),
                (
                    "the completion script on a callback stream",
                    vec![
                        self.callback_stream("billing"),
                        self.processed_marker("chat", task, &self.callback_stream("billing")),
                    ],
                ),
            ];
            for (what, keys) in &groups {
                if keys.iter().any(|k| slot(k) != slot(&keys[0])) {
                    return Err(format!("{what} would cross hash slots: {keys:?}"));
                }
            }
            if bucket_of_key(&stream) != Some(i as usize) {
                return Err(format!("{stream} does not carry its session bucket"));
            }
        }
        Ok(())
    }
}

/// The partition (0..`partitions`) of a session's actions: its id's last four hex digits (its
/// lowest 16 bits) modulo `partitions`.
pub fn action_partition(session_id: Uuid, partitions: usize) -> usize {
    (session_id.as_u128() & 0xffff) as usize % partitions.max(1)
}

/// Buckets of sessions: a session's keys share the hash tag of its bucket.
pub const SESSION_BUCKETS: usize = 256;

/// A session's bucket, the hash tag of its keys: the last two hex digits of its id (its lowest
/// byte), which any language computes from the id's text.
pub fn session_bucket(session_id: Uuid) -> String {
    format!("{:02x}", session_id.as_u128() & 0xff)
}

/// The bucket (0..[`SESSION_BUCKETS`]) a key is tagged with, if its hash tag is a session bucket.
pub fn bucket_of_key(key: &str) -> Option<usize> {
    let tag = hash_tag(key);
    (tag.len() == 2)
        .then(|| usize::from_str_radix(tag, 16).ok())
        .flatten()
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
            format!("aiback:dev:responses:{{00}}:{id}")
        );
        let session: Uuid = "0193f2a4-7b1c-7d2e-9f00-5a6b7c8d9e3f".parse().unwrap();
        assert_eq!(
            n.session_owner(session),
            format!("aiback:dev:session:{{3f}}:{session}:owner")
        );
        assert_eq!(bucket_of_key(&n.response_stream(session)), Some(0x3f));
        assert_eq!(bucket_of_key(&n.callback_stream("billing")), None);
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
    fn partitions_follow_the_session_and_keep_partition_zero_as_the_stream() {
        let n = Names::new("aiback", "dev");
        let session: Uuid = "0193f2a4-7b1c-7d2e-9f00-5a6b7c8d0103".parse().unwrap();
        // 0x0103 = 259; 259 mod 4 = 3.
        assert_eq!(action_partition(session, 4), 3);
        assert_eq!(
            n.action_stream_for("chat", session, 4),
            "aiback:dev:chat:streams:main:p3"
        );
        assert_eq!(
            n.action_stream_for("chat", session, 1),
            "aiback:dev:chat:streams:main"
        );
        assert_eq!(action_partition(session, 0), 0);
        assert_eq!(
            n.action_partition_stream("chat", 0),
            n.action_stream("chat")
        );
    }

    #[test]
    fn the_layout_fits_a_cluster_unless_the_prefix_has_braces() {
        assert_eq!(Names::new("aiback", "dev").check_cluster_layout(), Ok(()));
        let err = Names::new("ai{x}", "dev")
            .check_cluster_layout()
            .unwrap_err();
        assert!(err.contains("braces"), "{err}");
    }

    #[test]
    fn keys_written_together_share_a_hash_tag() {
        let n = Names::new("aiback", "dev");
        let (session, action) = (Uuid::now_v7(), Uuid::now_v7());
        let stream = n.response_stream(session);
        let tag = session_bucket(session);
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
