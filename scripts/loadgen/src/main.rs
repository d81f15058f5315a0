//! `loadgen`: benchmarks and fault injection against running services; see `--help`.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use loadgen::bench::{actions, cancel, idle, ingest, relay, soak, speech, ttft};
use loadgen::context::{Common, Ctx};
use loadgen::fault::{abuse, kill, redis};
use loadgen::{Report, procs, report};

#[derive(Parser)]
#[command(
    name = "loadgen",
    about = "Benchmarks and fault injection for the AI backend (see docs/benchmarks.md, docs/faults.md)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Time to first token and total time of streamed chats through one path.
    Ttft {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: ttft::TtftArgs,
    },
    /// Documents ingested through `POST /api/v1/ingest`, followed to `complete`.
    Ingest {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: ingest::IngestArgs,
    },
    /// Streamed chunks relayed end to end per second at saturation.
    Relay {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: relay::RelayArgs,
    },
    /// Actions per second through the chat-workers, published straight onto the bus.
    Actions {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: actions::ActionsArgs,
    },
    /// Idle WebSocket sessions one gateway holds, and its RSS.
    IdleWs {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: idle::IdleArgs,
    },
    /// Cancel sent → upstream request closed.
    Cancel {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: cancel::CancelArgs,
    },
    /// Steady load for minutes; RSS of every process before, during and after.
    Soak {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: soak::SoakArgs,
    },
    /// Time to the first audio byte of a streamed speech request (`/tts/stream` or the simulator).
    SpeechTtfb {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: speech::TtfbArgs,
    },
    /// Chats that speak over `/chat/ws`: first text → first audio, and audio before text end.
    SpeechChat {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: speech::chat::ChatArgs,
    },
    /// Live transcription over `/chat/ws`: frame → provider and result → client latency.
    SttLive {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: speech::live::LiveArgs,
    },
    /// Redis memory per minute of audio held in the sessions' response streams.
    SpeechMemory {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: speech::memory::MemoryArgs,
    },
    /// Chats on the bus while workers are killed: completed, dead-lettered, lost, twice.
    FaultKill {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: kill::KillArgs,
    },
    /// Redis stops and starts mid-run: recovery time and what in-flight clients saw.
    FaultRedis {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: redis::RedisArgs,
    },
    /// Slow and abusive clients: gateway memory and a good client's latency.
    FaultAbuse {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: abuse::AbuseArgs,
    },
    /// Tables from the JSON lines of a run; writes the results document.
    Report {
        /// The JSON lines written with `--out`.
        #[arg(long)]
        input: PathBuf,
        /// Write the results document (JSON) here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// The fault-suite table instead (exit 1 when a scenario failed).
        #[arg(long)]
        faults: bool,
        /// A label for the results document.
        #[arg(long, default_value = "")]
        label: String,
    },
    /// Waits until a URL answers 2xx (exit 1 on timeout).
    WaitHttp {
        /// The URL.
        url: String,
        /// Seconds to wait at most.
        #[arg(long, default_value_t = 60)]
        timeout_secs: u64,
    },
    /// Prints a free TCP port of 127.0.0.1.
    FreePort,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let (common, report) = match cli.command {
        Command::Ttft { common, args } => {
            (common.clone(), ttft::run(&Ctx::new(common)?, &args).await?)
        }
        Command::Ingest { common, args } => (
            common.clone(),
            ingest::run(&Ctx::new(common)?, &args).await?,
        ),
        Command::Relay { common, args } => {
            (common.clone(), relay::run(&Ctx::new(common)?, &args).await?)
        }
        Command::Actions { common, args } => (
            common.clone(),
            actions::run(&Ctx::new(common)?, &args).await?,
        ),
        Command::IdleWs { common, args } => {
            (common.clone(), idle::run(&Ctx::new(common)?, &args).await?)
        }
        Command::Cancel { common, args } => (
            common.clone(),
            cancel::run(&Ctx::new(common)?, &args).await?,
        ),
        Command::Soak { common, args } => {
            (common.clone(), soak::run(&Ctx::new(common)?, &args).await?)
        }
        Command::SpeechTtfb { common, args } => (
            common.clone(),
            speech::run(&Ctx::new(common)?, &args).await?,
        ),
        Command::SpeechChat { common, args } => (
            common.clone(),
            speech::chat::run(&Ctx::new(common)?, &args).await?,
        ),
        Command::SttLive { common, args } => (
            common.clone(),
            speech::live::run(&Ctx::new(common)?, &args).await?,
        ),
        Command::SpeechMemory { common, args } => (
            common.clone(),
            speech::memory::run(&Ctx::new(common)?, &args).await?,
        ),
        Command::FaultKill { common, args } => {
            (common.clone(), kill::run(&Ctx::new(common)?, &args).await?)
        }
        Command::FaultRedis { common, args } => {
            (common.clone(), redis::run(&Ctx::new(common)?, &args).await?)
        }
        Command::FaultAbuse { common, args } => {
            (common.clone(), abuse::run(&Ctx::new(common)?, &args).await?)
        }
        Command::Report {
            input,
            json,
            faults,
            label,
        } => return report_cmd(&input, json.as_deref(), faults, &label),
        Command::WaitHttp { url, timeout_secs } => return wait_http(&url, timeout_secs).await,
        Command::FreePort => {
            let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
            let port = listener.local_addr()?.port();
            writeln!(std::io::stdout().lock(), "{port}")?;
            return Ok(());
        }
    };
    emit(&common, report)
}

fn report_cmd(
    input: &std::path::Path,
    json: Option<&std::path::Path>,
    faults: bool,
    label: &str,
) -> anyhow::Result<()> {
    let results = report::read_results(input)?;
    let mut out = std::io::stdout().lock();
    if faults {
        let (table, passed) = report::faults(&results);
        writeln!(out, "{table}")?;
        if !passed {
            std::process::exit(1);
        }
        return Ok(());
    }
    let (table, doc) = report::bench(&results, label);
    writeln!(out, "{table}")?;
    if let Some(path) = json {
        std::fs::write(path, serde_json::to_string_pretty(&doc)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

async fn wait_http(url: &str, timeout_secs: u64) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let end = Instant::now() + Duration::from_secs(timeout_secs);
    while Instant::now() < end {
        let answered = http
            .get(url)
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if answered {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("{url} did not answer 2xx within {timeout_secs} s")
}

/// Prints the summary (stderr) and the result (stdout, and appended to `--out`); exits 1 when a
/// check failed.
fn emit(common: &Common, report: Report) -> anyhow::Result<()> {
    let mut result = report.result;
    if let Some(map) = result.as_object_mut() {
        map.insert("label".into(), common.label.clone().into());
        map.insert("at".into(), chrono::Utc::now().to_rfc3339().into());
        map.insert("machine".into(), procs::machine());
        map.insert("passed".into(), report.passed.into());
    }
    let line = serde_json::to_string(&result)?;
    let mut err = std::io::stderr().lock();
    for l in &report.summary {
        writeln!(err, "{l}")?;
    }
    writeln!(std::io::stdout().lock(), "{line}")?;
    if let Some(path) = &common.out {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        writeln!(file, "{line}")?;
    }
    if !report.passed {
        std::process::exit(1);
    }
    Ok(())
}
