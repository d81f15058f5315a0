//! `report`: turns the JSON lines of a run into one results table (Markdown, on stdout) and one
//! machine-readable file, checking each figure against the targets of the benchmark issue.

use std::path::Path;

use anyhow::Context as _;
use serde_json::{Value, json};

use crate::procs;
use crate::stats::round3;

/// One row of the results table.
#[derive(Debug)]
struct Figure {
    name: String,
    p50: Option<f64>,
    p95: Option<f64>,
    p99: Option<f64>,
    value: Option<String>,
    target: String,
    met: Option<bool>,
}

impl Figure {
    fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            p50: None,
            p95: None,
            p99: None,
            value: None,
            target: String::new(),
            met: None,
        }
    }

    fn percentiles(mut self, s: &Value) -> Self {
        self.p50 = s["p50_ms"].as_f64();
        self.p95 = s["p95_ms"].as_f64();
        self.p99 = s["p99_ms"].as_f64();
        self
    }

    fn json(&self) -> Value {
        json!({"figure": self.name, "p50_ms": self.p50, "p95_ms": self.p95, "p99_ms": self.p99,
            "value": self.value, "target": self.target, "met": self.met})
    }
}

/// Reads the JSON lines of `input`.
pub fn read_results(input: &Path) -> anyhow::Result<Vec<Value>> {
    let text =
        std::fs::read_to_string(input).with_context(|| format!("reading {}", input.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).context("a result line is not JSON"))
        .collect()
}

/// The benchmark table (Markdown) and the results document.
pub fn bench(results: &[Value], label: &str) -> (String, Value) {
    let figures = figures(results);
    let mut md = String::from(
        "| figure | p50 | p95 | p99 | value | target | met |\n| --- | ---: | ---: | ---: | --- | --- | --- |\n",
    );
    let ms = |x: Option<f64>| x.map_or(String::new(), |v| format!("{v:.2} ms"));
    for f in &figures {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            f.name,
            ms(f.p50),
            ms(f.p95),
            ms(f.p99),
            f.value.clone().unwrap_or_default(),
            f.target,
            match f.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "",
            }
        ));
    }
    let doc = json!({
        "label": label,
        "machine": procs::machine(),
        "figures": figures.iter().map(Figure::json).collect::<Vec<_>>(),
        "results": results,
    });
    (md, doc)
}

fn figures(results: &[Value]) -> Vec<Figure> {
    let mut out = Vec::new();
    let of_kind = |k: &'static str| results.iter().filter(move |r| r["kind"] == k);
    // The baseline of a run: the simulator called directly, same concurrency, same arrivals.
    let direct = |r: &Value| {
        of_kind("ttft").find(|d| {
            d["target"] == "direct"
                && d["concurrency"] == r["concurrency"]
                && d["arrivals"] == r["arrivals"]
        })
    };
    for r in of_kind("ttft") {
        let target = match r["tag"].as_str() {
            Some(tag) => format!("{}[{tag}]", r["target"].as_str().unwrap_or("?")),
            None => r["target"].as_str().unwrap_or("?").to_owned(),
        };
        let target = target.as_str();
        let c = format!(
            "{}{}",
            r["concurrency"],
            if r["arrivals"] == "burst" {
                " burst"
            } else {
                ""
            }
        );
        let errors = r["errors"].as_object().map_or(0, |e| e.len());
        let note = format!(
            "{} chats, {:.0}/s{}",
            r["ok"],
            r["chats_per_sec"].as_f64().unwrap_or(0.0),
            if errors > 0 {
                format!(", errors {}", r["errors"])
            } else {
                String::new()
            }
        );
        let mut raw = Figure::new(format!("TTFT {target} ×{c}")).percentiles(&r["ttft"]);
        raw.value = Some(note);
        out.push(raw);
        out.push(Figure::new(format!("total {target} ×{c}")).percentiles(&r["total"]));
        if target == "direct" {
            continue;
        }
        if let Some(d) = direct(r) {
            for (what, key) in [("TTFT", "ttft"), ("total", "total")] {
                let sub = |q: &str| Some(round3(r[key][q].as_f64()? - d[key][q].as_f64()?));
                let mut f = Figure::new(format!("added {what} {target} ×{c}"));
                f.p50 = sub("p50_ms");
                f.p95 = sub("p95_ms");
                f.p99 = sub("p99_ms");
                if what == "TTFT" && c == "100" {
                    f.target = "p50 ≤ 1 ms, p99 ≤ 3 ms".into();
                    f.met = f.p50.zip(f.p99).map(|(a, b)| a <= 1.0 && b <= 3.0);
                }
                out.push(f);
            }
        }
    }
    for r in of_kind("relay") {
        let rate = r["chunks_per_sec"].as_f64().unwrap_or(0.0);
        let mut f = Figure::new(format!(
            "chunks relayed/s ({} ×{})",
            r["target"].as_str().unwrap_or("?"),
            r["concurrency"]
        ));
        f.value = Some(format!("{rate:.0} chunks/s"));
        f.target = "≥ 50,000/s".into();
        f.met = Some(rate >= 50_000.0);
        out.push(f);
    }
    for r in of_kind("actions") {
        let rate = r["actions_per_sec"].as_f64().unwrap_or(0.0);
        let mut f = Figure::new(format!(
            "actions/s, one chat-worker ({}{})",
            r["model"].as_str().unwrap_or("?"),
            if r["store"] == false {
                ", store: false"
            } else {
                ""
            }
        ))
        .percentiles(&r["latency"]);
        f.value = Some(format!(
            "{rate:.0} actions/s ({}/{} completed)",
            r["completed"], r["count"]
        ));
        f.target = "≥ 20,000/s".into();
        f.met = Some(rate >= 20_000.0 && r["completed"] == r["count"]);
        out.push(f);
    }
    for r in of_kind("idle_ws") {
        let held = r["sessions_held"].as_u64().unwrap_or(0);
        for p in r["points"].as_array().into_iter().flatten() {
            let n = p["sessions"].as_u64().unwrap_or(0);
            let rss = p["gateway_rss_mib"].as_f64().unwrap_or(0.0);
            let mut f = Figure::new(format!("gateway RSS, {n} idle sessions"));
            f.value = Some(format!(
                "{rss:.1} MiB ({:.1} KiB/session)",
                p["per_session_kib"].as_f64().unwrap_or(0.0)
            ));
            if n >= 10_000 {
                f.target = "< 300 MB at 10,000".into();
                f.met = Some(rss * 1.048_576 < 300.0);
            }
            out.push(f);
        }
        let mut f = Figure::new("idle sessions held by one gateway");
        f.value = Some(format!(
            "{held} of {} ({}/{} pinged answered)",
            r["sessions_requested"], r["ping_answered"], r["ping_sampled"]
        ));
        f.target = "10,000".into();
        f.met = Some(held >= 10_000);
        out.push(f);
    }
    for r in of_kind("cancel") {
        let mut f =
            Figure::new("cancel → upstream closed").percentiles(&r["cancel_to_upstream_closed"]);
        f.value = Some(format!(
            "{} cancels, problems {}",
            r["requests"], r["problems"]
        ));
        f.target = "p99 ≤ 100 ms".into();
        f.met = f.p99.map(|p| p <= 100.0);
        out.push(f);
        out.push(
            Figure::new("cancel → `cancelled` event").percentiles(&r["cancel_to_cancelled_event"]),
        );
    }
    for r in of_kind("soak") {
        let drift = r["rss_drift_headline_percent"].as_f64().unwrap_or(0.0);
        let mut f = Figure::new(format!(
            "RSS drift, {} min soak at {} chats/s",
            r["minutes"], r["rate"]
        ))
        .percentiles(&r["ttft"]);
        f.value = Some(format!(
            "{drift:.1} % (max of {}); before {} after {} MiB; drift per process {}",
            r["drift_of"], r["rss_before_mib"], r["rss_after_mib"], r["rss_drift_percent"]
        ));
        f.target = "≤ 5 %".into();
        f.met = Some(drift <= 5.0);
        out.push(f);
    }
    speech_figures(results, &mut out);
    semantic_figures(results, &mut out);
    out
}

/// The semantic phase: what a chat's semantic search adds to its time to first token, what
/// indexing every stored turn adds (the same chats with indexing off), and document ingestion.
fn semantic_figures(results: &[Value], out: &mut Vec<Figure>) {
    let tagged = |tag: &str, c: &Value| {
        results
            .iter()
            .find(|r| r["kind"] == "ttft" && r["tag"] == tag && &r["concurrency"] == c)
    };
    for base in results
        .iter()
        .filter(|r| r["kind"] == "ttft" && r["tag"] == "indexing")
    {
        let c = &base["concurrency"];
        let delta = |other: &Value, minus: &Value, q: &str| {
            Some(round3(
                other["ttft"][q].as_f64()? - minus["ttft"][q].as_f64()?,
            ))
        };
        for (name, (a, b)) in [
            (
                "semantic context adds to TTFT",
                (tagged("semantic", c), Some(base)),
            ),
            (
                "indexing adds to TTFT",
                (Some(base), tagged("no-indexing", c)),
            ),
            (
                "semantic context adds to TTFT, indexing off",
                (tagged("semantic-no-indexing", c), tagged("no-indexing", c)),
            ),
        ] {
            let (Some(a), Some(b)) = (a, b) else {
                continue;
            };
            let mut f = Figure::new(format!("{name} ×{c}"));
            f.p50 = delta(a, b, "p50_ms");
            f.p95 = delta(a, b, "p95_ms");
            f.p99 = delta(a, b, "p99_ms");
            out.push(f);
        }
    }
    for r in results.iter().filter(|r| r["kind"] == "ingest") {
        let mut f = Figure::new(format!("ingestion, {} chunks a document", r["chunks"]));
        f.value = Some(format!(
            "{:.0} chunks/s end to end ({:.0}/s in the worker), {} documents",
            r["chunks_per_sec"].as_f64().unwrap_or(0.0),
            r["worker_chunks_per_sec"].as_f64().unwrap_or(0.0),
            r["documents"]
        ));
        out.push(f);
        out.push(Figure::new("ingestion, upload → complete".to_owned()).percentiles(&r["total"]));
    }
}

/// The speech phase: first audio byte through the system vs the simulator, a spoken chat's
/// first audio, and Redis memory per minute of audio.
fn speech_figures(results: &[Value], out: &mut Vec<Figure>) {
    let of_kind = |k: &'static str| results.iter().filter(move |r| r["kind"] == k);
    for r in of_kind("speech_ttfb") {
        let target = r["target"].as_str().unwrap_or("?");
        let c = &r["concurrency"];
        let mut f =
            Figure::new(format!("speech first byte {target} ×{c}")).percentiles(&r["first_byte"]);
        f.value = Some(format!(
            "{} requests, {:.0}/s, errors {}",
            r["ok"],
            r["requests_per_sec"].as_f64().unwrap_or(0.0),
            r["errors"]
        ));
        out.push(f);
        out.push(Figure::new(format!("speech total {target} ×{c}")).percentiles(&r["total"]));
        if target != "system" {
            continue;
        }
        let direct = of_kind("speech_ttfb")
            .find(|d| d["target"] == "direct" && d["concurrency"] == r["concurrency"]);
        if let Some(d) = direct {
            let sub = |q: &str| {
                Some(round3(
                    r["first_byte"][q].as_f64()? - d["first_byte"][q].as_f64()?,
                ))
            };
            let mut f = Figure::new(format!("added speech first byte ×{c}"));
            f.p50 = sub("p50_ms");
            f.p95 = sub("p95_ms");
            f.p99 = sub("p99_ms");
            f.target = "p50 ≤ 5 ms".into();
            f.met = f.p50.map(|p| p <= 5.0);
            out.push(f);
        }
    }
    for r in of_kind("speech_chat") {
        let c = &r["concurrency"];
        let mut f = Figure::new(format!("spoken chat: first text → first audio ×{c}"))
            .percentiles(&r["first_text_to_first_audio"]);
        f.value = Some(format!("{} chats, errors {}", r["ok"], r["errors"]));
        out.push(f);
        let mut f = Figure::new(format!(
            "spoken chat: first audio before text_completed ×{c}"
        ))
        .percentiles(&r["first_audio_before_text_completed"]);
        f.value = Some(format!(
            "{} of {} before",
            r["first_audio_before_text_completed_count"], r["ok"]
        ));
        f.target = "before text_completed".into();
        f.met = r["first_audio_before_text_completed"]["p50_ms"]
            .as_f64()
            .map(|p| p > 0.0);
        out.push(f);
    }
    for r in of_kind("stt_live") {
        let c = &r["concurrency"];
        let mut f = Figure::new(format!("live audio frame: client → provider ×{c}"))
            .percentiles(&r["frame_to_provider"]);
        f.value = Some(format!(
            "{} frames of {} ms, {} streams ok, errors {}",
            r["frames"], r["frame_ms"], r["ok"], r["errors"]
        ));
        out.push(f);
        let mut f = Figure::new(format!("live transcription: provider → client ×{c}"))
            .percentiles(&r["result_to_client"]);
        f.value = Some(format!("{} results", r["results"]));
        out.push(f);
    }
    for r in of_kind("speech_memory") {
        for row in r["formats"].as_array().into_iter().flatten() {
            let mut f = Figure::new(format!(
                "Redis per audio minute, {} {}",
                row["provider"].as_str().unwrap_or("?"),
                row["format"].as_str().unwrap_or("?")
            ));
            f.value = Some(format!(
                "{} MB/min in the stream ({} MB/min of audio, {} min, {} entries)",
                row["stream_mb_per_audio_minute"],
                row["audio_mb_per_audio_minute"],
                row["audio_minutes"],
                row["stream_entries"]
            ));
            out.push(f);
        }
    }
}

/// The fault-suite table (Markdown) and whether every scenario passed.
pub fn faults(results: &[Value]) -> (String, bool) {
    let mut md = String::from("| scenario | result | passed |\n| --- | --- | --- |\n");
    let mut all = true;
    for r in results {
        let passed = r["passed"].as_bool().unwrap_or(false);
        all &= passed;
        // A failed scenario names the checks that failed.
        let failed: Vec<&str> = r["checks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["ok"] == false)
            .filter_map(|c| c["check"].as_str())
            .collect();
        let verdict = match (passed, failed.is_empty()) {
            (true, _) => "yes".to_owned(),
            (false, true) => "**no**".to_owned(),
            (false, false) => format!("**no**: {}", failed.join("; ")),
        };
        md.push_str(&format!(
            "| {} | {} | {} |\n",
            r["kind"].as_str().unwrap_or("?"),
            r["summary"].as_str().unwrap_or_default().replace('|', "/"),
            verdict.replace('|', "/")
        ));
    }
    (md, all)
}
