//! `fault-kill`: publishes chats on the bus while the fault suite kills chat-workers with
//! SIGKILL and restarts them, then accounts for every task: completed once, dead-lettered, lost
//! (neither), or completed twice.
//!
//! Completions are read from the one callback stream every action names (see
//! `bench::actions`); dead letters from `{prefix}:{env}:chat:streams:dead`, matched by `task_id`.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use common::{Bus, DomainAction};
use redis::AsyncCommands;
use redis::streams::StreamRangeReply;
use serde_json::json;
use uuid::Uuid;

use crate::Report;
use crate::bench::actions::{chat_action, entry_field, follow, publish_all};
use crate::context::Ctx;
use crate::stats::{Latency, round3};

/// Options of `fault-kill`.
#[derive(Args, Debug, Clone)]
pub struct KillArgs {
    /// Chats published.
    #[arg(long, default_value_t = 5000)]
    pub chats: usize,
    /// Seconds to wait for every task to end (after publishing).
    #[arg(long, default_value_t = 300)]
    pub timeout_secs: u64,
    /// Keep following until this file exists (the killer loop writes it when it stops), so the
    /// drain is measured after the last kill; ignored if not given.
    #[arg(long)]
    pub wait_for_file: Option<std::path::PathBuf>,
}

/// What happened to one task.
#[derive(Default)]
struct TaskLog {
    completes: u32,
    workings: u32,
    errors: Vec<String>,
    completed_at: Option<Instant>,
}

/// Runs `fault-kill`.
pub async fn run(ctx: &Ctx, args: &KillArgs) -> anyhow::Result<Report> {
    let core = ctx.core_settings(args.chats.saturating_mul(4));
    let bus = Bus::connect(&core).await.context("connecting to Redis")?;
    let mut reader = ctx.redis_conn().await?;
    let callback = format!("{}:fault:kill:{}", ctx.namespace(), Uuid::now_v7().simple());
    let actions: Vec<DomainAction> = (0..args.chats)
        .map(|i| {
            chat_action(
                &ctx.common.model,
                &format!("bench kill-{i} chaos"),
                &callback,
                true,
            )
        })
        .collect();
    let tasks: HashSet<String> = actions.iter().map(|a| a.task_id.to_string()).collect();

    let started = Instant::now();
    let published = publish_all(&bus, actions, 256).await?;
    let publish_secs = started.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    let mut log: HashMap<String, TaskLog> = HashMap::with_capacity(args.chats);
    let dead_stream = format!("{}:chat:streams:dead", ctx.namespace());
    let mut dead_conn = ctx.redis_conn().await?;
    let ended = std::cell::Cell::new(0usize);
    let dead_seen = std::cell::RefCell::new(HashSet::<String>::new());
    let chaos_over = || args.wait_for_file.as_ref().is_none_or(|f| f.exists());
    // Follow in slices so the dead-letter stream is looked at between them: a task ends when it
    // completed or was dead-lettered.
    let mut last = "0-0".to_owned();
    loop {
        let slice_end = (Instant::now() + Duration::from_secs(2)).min(deadline);
        follow(
            &mut reader,
            &callback,
            &mut last,
            slice_end,
            |kind, task| {
                let entry = log.entry(task.to_owned()).or_default();
                match kind {
                    "complete" => {
                        entry.completes += 1;
                        if entry.completes == 1 {
                            entry.completed_at = Some(Instant::now());
                            if !dead_seen.borrow().contains(task) {
                                ended.set(ended.get() + 1);
                            }
                        }
                    }
                    "working" => entry.workings += 1,
                    _ => {}
                }
            },
            || false,
        )
        .await?;
        let dead = dead_tasks(&mut dead_conn, &dead_stream, &tasks).await?;
        let newly: Vec<String> = dead.difference(&dead_seen.borrow()).cloned().collect();
        for t in newly {
            if log.get(&t).is_none_or(|l| l.completes == 0) {
                ended.set(ended.get() + 1);
            }
            dead_seen.borrow_mut().insert(t);
        }
        if (ended.get() >= args.chats && chaos_over()) || Instant::now() >= deadline {
            break;
        }
    }
    // Error events, for the report (why tasks were dead-lettered or failed).
    let errors = error_codes(&mut reader, &callback).await?;
    for (task, codes) in errors {
        log.entry(task).or_default().errors = codes;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let _: redis::RedisResult<()> = reader.del(&callback).await;

    let dead = dead_seen.into_inner();
    let mut completed = 0;
    let mut twice = 0;
    let mut lost = Vec::new();
    let mut dead_and_completed = 0;
    let mut restarted = 0;
    let mut completed_with_error = 0;
    for task in &tasks {
        let l = log.get(task);
        let completes = l.map_or(0, |l| l.completes);
        let is_dead = dead.contains(task);
        match completes {
            0 if !is_dead => lost.push(task.clone()),
            0 => {}
            1 => completed += 1,
            _ => twice += 1,
        }
        if is_dead && completes > 0 {
            dead_and_completed += 1;
        }
        if l.is_some_and(|l| l.workings > 1) {
            restarted += 1;
        }
        if l.is_some_and(|l| !l.errors.is_empty()) && completes > 0 {
            completed_with_error += 1;
        }
    }
    let mut error_kinds: HashMap<String, u64> = HashMap::new();
    for l in log.values() {
        for e in &l.errors {
            *error_kinds.entry(e.clone()).or_default() += 1;
        }
    }
    let latency = Latency::of(published.iter().filter_map(|(task, at)| {
        log.get(&task.to_string())
            .and_then(|l| l.completed_at)
            .map(|done| done.duration_since(*at))
    }))?;
    let passed = lost.is_empty() && twice == 0;
    let line = format!(
        "complete {completed}, dead-lettered {}, lost {}, completed twice {twice}",
        dead.len(),
        lost.len()
    );
    let summary = vec![
        format!("fault-kill: {line}"),
        format!(
            "  {} chats published in {publish_secs:.2} s, all accounted for after {elapsed:.1} s; restarted on another worker {restarted}; dead-lettered and completed {dead_and_completed}; completed with an error event {completed_with_error} {error_kinds:?}",
            args.chats
        ),
        format!("  publish→complete {}", latency.line()),
    ];
    let result = json!({
        "kind": "fault_kill",
        "chats": args.chats,
        "summary": line,
        "completed": completed,
        "dead_lettered": dead.len(),
        "lost": lost.len(),
        "lost_sample": lost.iter().take(10).collect::<Vec<_>>(),
        "completed_twice": twice,
        "dead_lettered_and_completed": dead_and_completed,
        "restarted": restarted,
        "completed_with_error": completed_with_error,
        "error_codes": error_kinds,
        "publish_secs": round3(publish_secs),
        "elapsed_secs": round3(elapsed),
        "latency": latency.summary(),
    });
    Ok(Report {
        result,
        summary,
        passed,
    })
}

/// Task ids of ours found in the dead-letter stream.
async fn dead_tasks(
    conn: &mut redis::aio::MultiplexedConnection,
    stream: &str,
    ours: &HashSet<String>,
) -> anyhow::Result<HashSet<String>> {
    let reply: StreamRangeReply = conn.xrange_all(stream).await.context("XRANGE dead")?;
    Ok(reply
        .ids
        .iter()
        .map(|e| entry_field(&e.map, "task_id"))
        .filter(|t| ours.contains(t))
        .collect())
}

/// The `code` of every `error` event in the callback stream, by task.
async fn error_codes(
    conn: &mut redis::aio::MultiplexedConnection,
    stream: &str,
) -> anyhow::Result<HashMap<String, Vec<String>>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    let mut start = "-".to_owned();
    loop {
        let reply: StreamRangeReply = conn
            .xrange_count(stream, &start, "+", 10_000)
            .await
            .context("XRANGE callback")?;
        let Some(last) = reply.ids.last().map(|e| e.id.clone()) else {
            break;
        };
        for e in &reply.ids {
            if entry_field(&e.map, "type") != "error" {
                continue;
            }
            let payload: serde_json::Value =
                serde_json::from_str(&entry_field(&e.map, "payload")).unwrap_or_default();
            let code = payload["data"]["code"]
                .as_str()
                .unwrap_or("error")
                .to_owned();
            out.entry(entry_field(&e.map, "task_id"))
                .or_default()
                .push(code);
        }
        if reply.ids.len() < 10_000 {
            break;
        }
        start = format!("({last}");
    }
    Ok(out)
}
