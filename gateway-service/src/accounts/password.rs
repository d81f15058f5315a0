//! Password hashing with Argon2id (default parameters, a random 16-byte salt from the OS RNG),
//! on a fixed number of threads of its own with a bounded queue: hashing is slow and memory-hard
//! on purpose (19 MiB and ~50 ms of a core each), so unbounded, it let a flood of logins take
//! gigabytes.
//!
//! Why dedicated threads, each with its Argon2 memory allocated once, and not `spawn_blocking`
//! behind a semaphore: the blocking pool hands work to whichever of its (up to 512) threads is
//! idle, and each fresh 19 MiB buffer lands in that thread's allocator arena, which keeps it.
//! Measured (gateway-service/tests/login_flood.rs), a thread allocating per hash held ~100 MiB
//! after a flood; with its memory reused it holds the 19 MiB it needs.

use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{ARGON2ID_IDENT, Algorithm, Argon2, Block, Params, Version};
use common::error::AppError;

/// A valid Argon2id hash (default parameters) of a random password nobody knows. Logins of
/// unknown emails verify against it, so they take as long as logins of known ones and response
/// times do not tell which emails have accounts. A unit test checks its parameters are the
/// defaults that real hashes use.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

type Job = Box<dyn FnOnce(&mut Kdf) + Send>;

/// Stored hashes asking for more memory than this many times the default are refused rather
/// than computed (a tampered row must not make a login allocate gigabytes).
const MAX_COST_FACTOR: u32 = 4;

/// Argon2id with memory its thread owns: allocated on first use, reused by every hash after.
#[derive(Default)]
struct Kdf {
    blocks: Vec<Block>,
}

impl Kdf {
    fn compute(
        &mut self,
        argon: &Argon2<'_>,
        password: &[u8],
        salt: &[u8],
        out: &mut [u8],
    ) -> argon2::Result<()> {
        let need = argon.params().block_count();
        if self.blocks.len() < need {
            self.blocks.resize(need, Block::new());
        }
        argon.hash_password_into_with_memory(password, salt, out, &mut self.blocks[..need])
    }

    /// A PHC string of `password` with the default parameters and a fresh salt.
    fn hash(&mut self, password: &[u8]) -> Result<String, String> {
        let params = Params::default();
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let salt = Salt::generate();
        let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
        self.compute(&argon, password, &salt, &mut out)
            .map_err(|e| e.to_string())?;
        let phc = PasswordHash {
            algorithm: ARGON2ID_IDENT,
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&params).map_err(|e| e.to_string())?,
            salt: Some(salt),
            hash: Some(Output::new(&out).map_err(|e| e.to_string())?),
        };
        Ok(phc.to_string())
    }

    /// Whether `password` hashes to the stored PHC string (compared in constant time).
    fn verify(&mut self, password: &[u8], phc: &str) -> Result<bool, String> {
        let parsed = PasswordHash::new(phc).map_err(|e| e.to_string())?;
        let algorithm =
            Algorithm::try_from(parsed.algorithm.as_str()).map_err(|e| e.to_string())?;
        let version = parsed
            .version
            .map_or(Ok(Version::V0x13), Version::try_from)
            .map_err(|e| e.to_string())?;
        let params = Params::try_from(&parsed).map_err(|e| e.to_string())?;
        if params.m_cost() > Params::DEFAULT_M_COST * MAX_COST_FACTOR
            || params.t_cost() > Params::DEFAULT_T_COST * MAX_COST_FACTOR
            || params.p_cost() > MAX_COST_FACTOR
        {
            return Err("stored hash asks for more than the allowed cost".into());
        }
        let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
            return Err("stored hash has no salt or output".into());
        };
        let mut out = vec![0u8; expected.len()];
        self.compute(
            &Argon2::new(algorithm, version, params),
            password,
            &salt,
            &mut out,
        )
        .map_err(|e| e.to_string())?;
        Ok(Output::new(&out).map_err(|e| e.to_string())? == expected)
    }
}

/// The password hashing threads; cheap to clone.
#[derive(Clone)]
pub struct Passwords {
    jobs: SyncSender<Job>,
}

impl std::fmt::Debug for Passwords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Passwords").finish_non_exhaustive()
    }
}

impl Passwords {
    /// `threads` hashing threads (`0`: one per core) and at most `queue` hashes waiting.
    pub fn new(threads: usize, queue: usize) -> Self {
        let threads = match threads {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        };
        let (jobs, waiting) = std::sync::mpsc::sync_channel::<Job>(queue);
        let waiting = Arc::new(Mutex::new(waiting));
        for i in 0..threads {
            let waiting = waiting.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("password-{i}"))
                .spawn(move || work(&waiting));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "password hashing thread not started");
            }
        }
        Self { jobs }
    }

    /// Runs `f` on a hashing thread; 429 with `Retry-After` when the queue is full.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Kdf) -> T + Send + 'static,
    ) -> Result<T, AppError> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |kdf| {
            let _ = done.send(f(kdf));
        });
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                tracing::warn!("password hashing queue full; request refused");
                return Err(AppError::RateLimited {
                    retry_after_secs: 1,
                });
            }
            Err(TrySendError::Disconnected(_)) => {
                return Err(AppError::Internal(anyhow::anyhow!(
                    "password hashing threads are gone"
                )));
            }
        }
        result
            .await
            .map_err(|_| AppError::Internal(anyhow::anyhow!("password hashing job was dropped")))
    }

    /// Hashes a password to a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`).
    pub async fn hash(&self, password: String) -> Result<String, AppError> {
        let hashed = self.run(move |kdf| kdf.hash(password.as_bytes())).await?;
        hashed.map_err(|e| AppError::Internal(anyhow::anyhow!("password hashing failed: {e}")))
    }

    /// Whether `password` matches `stored`; with no stored hash (unknown account) it does the
    /// same work against [`DUMMY_HASH`] and answers false.
    pub async fn verify(&self, password: String, stored: Option<String>) -> Result<bool, AppError> {
        self.run(move |kdf| {
            let known = stored.is_some();
            let phc = stored.as_deref().unwrap_or(DUMMY_HASH);
            let matches = match kdf.verify(password.as_bytes(), phc) {
                Ok(matches) => matches,
                Err(e) => {
                    // Never log the hash itself.
                    tracing::error!(error = %e, "stored password hash cannot be checked");
                    false
                }
            };
            known && matches
        })
        .await
    }
}

/// A hashing thread: takes jobs until every sender is gone.
fn work(waiting: &Mutex<Receiver<Job>>) {
    let mut kdf = Kdf::default();
    loop {
        let job = match waiting.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        match job {
            Ok(job) => job(&mut kdf),
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_differ_by_salt() {
        let p = Passwords::new(1, 4);
        let a = p.hash("correct horse".into()).await.unwrap();
        let b = p.hash("correct horse".into()).await.unwrap();
        assert!(a.starts_with("$argon2id$v=19$"), "{a}");
        assert_ne!(a, b, "each hash has its own salt");
        assert!(
            p.verify("correct horse".into(), Some(a.clone()))
                .await
                .unwrap()
        );
        assert!(!p.verify("wrong horse".into(), Some(a)).await.unwrap());
        assert!(
            !p.verify("x".into(), Some("not a hash".into()))
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn unknown_accounts_never_verify() {
        let p = Passwords::new(1, 4);
        assert!(!p.verify("anything".into(), None).await.unwrap());
    }

    /// The login flood of the probe: 100 verifications at once. At most `threads` run at a
    /// time (each holds 19 MiB), the queue holds `queue` more, and the rest are refused with
    /// 429 at once instead of piling up.
    #[tokio::test]
    async fn a_flood_runs_on_the_threads_and_overflow_is_refused() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let p = Passwords::new(2, 8);
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let calls = (0..100).map(|_| {
            let (p, running, most) = (p.clone(), running.clone(), most.clone());
            async move {
                p.run(move |kdf| {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    let ok = kdf.verify(b"guess", DUMMY_HASH).unwrap();
                    running.fetch_sub(1, Ordering::SeqCst);
                    ok
                })
                .await
            }
        });
        let answers = futures::future::join_all(calls).await;
        let refused = answers
            .iter()
            .filter(|a| matches!(a, Err(AppError::RateLimited { .. })))
            .count();
        let ran = answers.iter().filter(|a| matches!(a, Ok(false))).count();
        assert_eq!(ran + refused, 100);
        assert!(most.load(Ordering::SeqCst) <= 2, "{most:?} at once");
        assert!(ran >= 8 && refused >= 80, "ran {ran}, refused {refused}");
    }

    #[test]
    fn dummy_hash_costs_what_real_hashes_cost() {
        let parsed = PasswordHash::new(DUMMY_HASH).unwrap();
        let params = argon2::Params::try_from(&parsed).unwrap();
        let default = argon2::Params::default();
        assert_eq!(parsed.algorithm.as_str(), "argon2id");
        assert_eq!(
            (params.m_cost(), params.t_cost(), params.p_cost()),
            (default.m_cost(), default.t_cost(), default.p_cost())
        );
        assert_eq!(params.output_len(), Some(32));
    }
}
