//! The official `openai` Python SDK against the whole system: the provider simulator, a chat-worker
//! pointed at it, a tts-worker with no provider key (espeak-ng speaks), a semantic-worker, a
//! media-worker with no provider key (the `dummy` image model draws PNGs), a batch-worker with no
//! provider key (the `dummy` model answers batch lines) and the gateway on port 0, then
//! `tests/python/test_openai_sdk.py`.
//!
//! Without the SDK installed the test is reported as *ignored*, with the reason, never as passed;
//! under `CI` a missing SDK is a failure (`scripts/test` installs it). Rust's built-in harness can
//! only ignore a test at compile time, and a `build.rs` probe would be cached across a later
//! `pip install` (or miss an uninstall) and run Python on every build of the gateway. So this file
//! has its own harness (`harness = false` in Cargo.toml) built on `libtest-mimic`, which takes the
//! same flags and prints the same lines as the built-in one and lets a test decide at run time
//! that it is ignored. `--ignored` or `--include-ignored` do not force it to run without the SDK:
//! it stays ignored, since nothing could run. Without espeak-ng the speech checks of the script are
//! skipped (it says so); under `CI` a missing espeak-ng is a failure too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use libtest_mimic::{Arguments, Completion, Failed, Trial};
use provider_sim::{SimConfig, Simulator};
use support::{Opts, System};
use tokio::process::Command;
use uuid::Uuid;

/// Whether `python3` can import the SDK.
async fn sdk_available() -> bool {
    Command::new("python3")
        .args(["-c", "import openai"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success())
}

/// Whether espeak-ng runs.
async fn espeak_available() -> bool {
    Command::new("espeak-ng")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success())
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

fn main() {
    let args = Arguments::from_args();
    let trials = vec![Trial::ignorable_test(
        "the_openai_python_sdk_works_unmodified",
        || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| Failed::from(format!("no Tokio runtime: {e}")))?;
            runtime.block_on(the_openai_python_sdk_works_unmodified())
        },
    )];
    libtest_mimic::run(&args, trials).exit();
}

async fn the_openai_python_sdk_works_unmodified() -> Result<Completion, Failed> {
    if !sdk_available().await {
        if in_ci() {
            return Err(
                "the openai Python SDK is missing under CI; scripts/test installs it \
                 (python3 -m pip install 'openai>=1.40')"
                    .into(),
            );
        }
        let reason = "`python3 -c 'import openai'` failed; install the SDK with \
             python3 -m pip install 'openai>=1.40' to run this test";
        // The harness prints the reason on the test's `ignored` line.
        return Ok(Completion::ignored_with(reason));
    }
    let speech = espeak_available().await;
    if !speech && in_ci() {
        return Err(
            "espeak-ng is missing under CI; scripts/lib.sh ensure_tools installs it".into(),
        );
    }
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let mut opts = Opts::new()
        .openai_at(&sim.base_url())
        .tts()
        .semantic()
        .media()
        .batch();
    // Scripted provider failures reach the client at once instead of being retried.
    opts.worker.as_mut().unwrap().provider_retries = 0;
    // Batch lines take a while (60 ms each), so a batch of 60 is still running when the script
    // cancels it.
    let batch = opts.batch.as_mut().unwrap();
    batch.dummy.token_interval_ms = 20;
    batch.batch.concurrency = 2;
    let system = System::start(opts).await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/test_openai_sdk.py");
    let child = Command::new("python3")
        .arg(&script)
        .env("GATEWAY_URL", &system.http)
        .env("TOKEN", system.token(Uuid::now_v7()))
        .env("SIM_URL", format!("http://{}", sim.addr()))
        // The speech checks need espeak-ng, the offline provider of the tts-worker.
        .env("SPEECH", if speech { "1" } else { "" })
        // The SDK must not pick up a proxy or an organisation from the developer's environment.
        .env_remove("OPENAI_BASE_URL")
        .env_remove("OPENAI_ORG_ID")
        .env_remove("OPENAI_PROJECT_ID")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let output = tokio::time::timeout(Duration::from_secs(180), child.wait_with_output())
        .await
        .expect("the SDK tests did not finish in time")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // This harness does not capture output: the SDK's output is shown only in a failure's message.
    let summary = stdout.lines().last().unwrap_or_default();
    assert!(
        output.status.success() && summary.ends_with(" 0 failed"),
        "the SDK tests failed ({summary}):\n{stdout}\n{stderr}"
    );
    Ok(Completion::Completed)
}
