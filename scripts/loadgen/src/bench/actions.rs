//! `actions`: actions per second through the chat-workers, publishing straight onto the bus.
//!
//! Every action names one callback stream (`{prefix}:{env}:bench:actions:{run}`), so all their
//! events land in one stream that one `XREAD` loop follows, counting each task's `complete`
//! (the entry's `type` field) — no per-session streams to scan. Each action has its own session,
//! as a new conversation would.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use common::{Bus, DomainAction};
use futures::StreamExt;
use redis::streams::{StreamReadOptions, StreamReadReply};
use redis::{AsyncCommands, Value as RedisValue};
use serde_json::json;
use uuid::Uuid;

use crate::Report;
use crate::context::Ctx;
use crate::stats::{Latency, round3};

/// Options of `actions`.
#[derive(Args, Debug, Clone)]
pub struct ActionsArgs {
    /// Actions published.
    #[arg(long, default_value_t = 50_000)]
    pub count: usize,
    /// Publishes in flight at once (over one multiplexed connection).
    #[arg(long, default_value_t = 256)]
    pub publish_parallelism: usize,
    /// Give up waiting for completions after this many seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout_secs: u64,
    /// Stateless turns (`store: false`): no chat-history reads or writes in PostgreSQL.
    #[arg(long)]
    pub no_store: bool,
}

/// The task and entry fields of a response-stream entry.
pub(crate) fn entry_field(map: &HashMap<String, RedisValue>, name: &str) -> String {
    map.get(name)
        .and_then(|v| redis::from_redis_value_ref::<String>(v).ok())
        .unwrap_or_default()
}

/// A `chat.completion.generate` action of `model`, in a new session, whose events go to
/// `callback`; `store: false` keeps it out of the chat history.
pub(crate) fn chat_action(model: &str, prompt: &str, callback: &str, store: bool) -> DomainAction {
    let tenant = Uuid::from_u128(0x0190_0000_0000_7000_8000_6c6f_6164_6765);
    let mut action = DomainAction::new(
        "chat.completion.generate",
        "loadgen",
        tenant,
        Uuid::now_v7(),
        json!({"prompt": prompt, "model": model, "store": store}),
    );
    action.callback_stream = Some(callback.to_owned());
    action
}

/// Publishes `actions`, `parallelism` at a time; returns the publish time of each task.
pub(crate) async fn publish_all(
    bus: &Bus,
    actions: Vec<DomainAction>,
    parallelism: usize,
) -> anyhow::Result<HashMap<Uuid, Instant>> {
    let published: Vec<anyhow::Result<(Uuid, Instant)>> = futures::stream::iter(actions)
        .map(|a| async move {
            let at = Instant::now();
            bus.publish(&a).await.context("XADD")?;
            Ok((a.task_id, at))
        })
        .buffer_unordered(parallelism.max(1))
        .collect()
        .await;
    published.into_iter().collect()
}

/// Follows `stream` after entry `last` (`0-0`: from the start), calling `on_entry(type, task_id)`
/// for each entry, until `done()` or `deadline`; `last` is left at the last entry read.
pub(crate) async fn follow(
    conn: &mut redis::aio::MultiplexedConnection,
    stream: &str,
    last: &mut String,
    deadline: Instant,
    mut on_entry: impl FnMut(&str, &str),
    done: impl Fn() -> bool,
) -> anyhow::Result<()> {
    let opts = StreamReadOptions::default().count(10_000).block(500);
    while !done() && Instant::now() < deadline {
        let reply: Option<StreamReadReply> = conn
            .xread_options(&[stream], &[last.as_str()], &opts)
            .await
            .context("XREAD")?;
        for key in reply.into_iter().flat_map(|r| r.keys) {
            for entry in key.ids {
                on_entry(
                    &entry_field(&entry.map, "type"),
                    &entry_field(&entry.map, "task_id"),
                );
                *last = entry.id;
            }
        }
    }
    Ok(())
}

/// Runs `actions`.
pub async fn run(ctx: &Ctx, args: &ActionsArgs) -> anyhow::Result<Report> {
    let core = ctx.core_settings(args.count.saturating_mul(2));
    let bus = Bus::connect(&core).await.context("connecting to Redis")?;
    let mut reader = ctx.redis_conn().await?;
    let callback = format!(
        "{}:bench:actions:{}",
        ctx.namespace(),
        Uuid::now_v7().simple()
    );
    let actions: Vec<DomainAction> = (0..args.count)
        .map(|i| {
            chat_action(
                &ctx.common.model,
                &format!("bench action {i}"),
                &callback,
                !args.no_store,
            )
        })
        .collect();

    let before = ctx.watch.snapshot().await;
    let started = Instant::now();
    let publish = publish_all(&bus, actions, args.publish_parallelism);
    let deadline = started + Duration::from_secs(args.timeout_secs);
    let mut completes: HashMap<String, (u32, Instant)> = HashMap::with_capacity(args.count);
    let mut events = 0u64;
    let count = args.count;
    let (published, followed) = tokio::join!(publish, async {
        let done = std::cell::Cell::new(0usize);
        let mut last = "0-0".to_owned();
        let r = follow(
            &mut reader,
            &callback,
            &mut last,
            deadline,
            |kind, task| {
                events += 1;
                if kind == "complete" {
                    let e = completes
                        .entry(task.to_owned())
                        .or_insert((0, Instant::now()));
                    e.0 += 1;
                    if e.0 == 1 {
                        done.set(done.get() + 1);
                    }
                }
            },
            || done.get() >= count,
        )
        .await;
        (r, started.elapsed())
    });
    let published = published?;
    let (followed, elapsed) = followed;
    followed?;
    let publish_secs = published
        .values()
        .map(|at| at.duration_since(started))
        .max()
        .unwrap_or_default()
        .as_secs_f64();
    let after = ctx.watch.snapshot().await;
    let _: redis::RedisResult<()> = reader.del(&callback).await;

    let latency = Latency::of(published.iter().filter_map(|(task, at)| {
        completes
            .get(&task.to_string())
            .map(|(_, done)| done.duration_since(*at))
    }))?;
    let completed = completes.len();
    let twice = completes.values().filter(|(n, _)| *n > 1).count();
    let last = completes
        .values()
        .map(|(_, at)| at.duration_since(started))
        .max()
        .unwrap_or(elapsed);
    let rate = completed as f64 / last.as_secs_f64().max(1e-9);
    let summary = vec![
        format!(
            "actions: {completed}/{} completed in {:.2} s = {rate:.0} actions/s (published in {publish_secs:.2} s; completed twice {twice})",
            args.count,
            last.as_secs_f64()
        ),
        format!("  publish→complete {}", latency.line()),
        format!("  cpu   {}", before.cpu_line(&after)),
    ];
    let result = json!({
        "kind": "actions",
        "model": ctx.common.model,
        "store": !args.no_store,
        "count": args.count,
        "completed": completed,
        "completed_twice": twice,
        "missing": args.count - completed.min(args.count),
        "actions_per_sec": round3(rate),
        "duration_secs": round3(last.as_secs_f64()),
        "publish_secs": round3(publish_secs),
        "publish_per_sec": round3(args.count as f64 / publish_secs.max(1e-9)),
        "events_read": events,
        "latency": latency.summary(),
        "processes": before.usage_until(&after),
    });
    Ok(Report::new(result, summary))
}
