//! Resident memory and CPU time of the processes under test, read from `/proc`.
//!
//! RSS is `VmRSS` of `/proc/<pid>/status`; CPU time is `utime + stime` of `/proc/<pid>/stat`
//! in clock ticks (`USER_HZ`, 100 on Linux). PostgreSQL is counted as the sum over the backends
//! connected to the benchmark database (their RSS includes the shared buffers they touched).

use std::time::Instant;

use serde_json::{Map, Value, json};

use crate::stats::round3;

/// Linux reports CPU times in `USER_HZ` ticks, fixed at 100 for user space.
const TICKS_PER_SEC: f64 = 100.0;

/// `VmRSS` of a process in KiB, `None` if it is gone.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// `utime + stime` of a process in ticks, `None` if it is gone.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state is field 3 of the man page, utime 14 and stime 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Memory and CPU of one watched process at one instant.
#[derive(Debug, Clone, Copy, Default)]
pub struct Reading {
    /// Resident memory, KiB (summed for a group).
    pub rss_kib: u64,
    /// CPU time so far, ticks (summed for a group).
    pub ticks: u64,
    /// How many processes answered.
    pub alive: usize,
}

/// The processes a measurement watches: named pids, the load generator itself, and optionally
/// the PostgreSQL backends of one database.
#[derive(Debug, Clone)]
pub struct Watch {
    procs: Vec<(String, u32)>,
    pg_url: Option<String>,
}

/// All readings at one instant.
#[derive(Debug, Clone)]
pub struct Snapshot {
    at: Instant,
    readings: Vec<(String, Reading)>,
}

impl Watch {
    /// Watches `procs` (name, pid), this process as `loadgen`, and the backends of `pg_url`.
    pub fn new(procs: &[(String, u32)], pg_url: Option<String>) -> Self {
        let mut procs = procs.to_vec();
        procs.push(("loadgen".into(), std::process::id()));
        Self { procs, pg_url }
    }

    /// The pid watched under `name`.
    pub fn pid(&self, name: &str) -> Option<u32> {
        self.procs.iter().find(|(n, _)| n == name).map(|(_, p)| *p)
    }

    /// Reads every watched process now.
    pub async fn snapshot(&self) -> Snapshot {
        let mut readings: Vec<(String, Reading)> = self
            .procs
            .iter()
            .map(|(name, pid)| {
                let r = match (rss_kib(*pid), cpu_ticks(*pid)) {
                    (Some(rss_kib), Some(ticks)) => Reading {
                        rss_kib,
                        ticks,
                        alive: 1,
                    },
                    _ => Reading::default(),
                };
                (name.clone(), r)
            })
            .collect();
        if let Some(url) = &self.pg_url {
            let mut group = Reading::default();
            for pid in pg_backends(url).await {
                if let (Some(rss), Some(ticks)) = (rss_kib(pid), cpu_ticks(pid)) {
                    group.rss_kib += rss;
                    group.ticks += ticks;
                    group.alive += 1;
                }
            }
            readings.push(("postgres".into(), group));
        }
        Snapshot {
            at: Instant::now(),
            readings,
        }
    }
}

/// Pids of the backends connected to the database of `url` (other than the asking one).
async fn pg_backends(url: &str) -> Vec<u32> {
    let Ok(mut conn) = <sqlx::PgConnection as sqlx::Connection>::connect(url).await else {
        return Vec::new();
    };
    let pids: Vec<i32> = sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap_or_default();
    let _ = sqlx::Connection::close(conn).await;
    pids.into_iter()
        .filter_map(|p| u32::try_from(p).ok())
        .collect()
}

impl Snapshot {
    /// The reading of `name`.
    pub fn get(&self, name: &str) -> Option<Reading> {
        self.readings
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, r)| *r)
    }

    /// `{name: rss MiB}` for every watched process.
    pub fn rss_mib(&self) -> Value {
        let map: Map<String, Value> = self
            .readings
            .iter()
            .map(|(n, r)| (n.clone(), json!(round3(r.rss_kib as f64 / 1024.0))))
            .collect();
        Value::Object(map)
    }

    /// `{name: {rss_before_mib, rss_after_mib, cpu_percent}}` between `self` and a later snapshot;
    /// `cpu_percent` is of one core (200 = both cores of a 2-core machine busy).
    pub fn usage_until(&self, later: &Snapshot) -> Value {
        let secs = later.at.duration_since(self.at).as_secs_f64().max(1e-9);
        let map: Map<String, Value> = self
            .readings
            .iter()
            .map(|(name, before)| {
                let after = later.get(name).unwrap_or_default();
                let cpu = after.ticks.saturating_sub(before.ticks) as f64 / TICKS_PER_SEC;
                (
                    name.clone(),
                    json!({
                        "rss_before_mib": round3(before.rss_kib as f64 / 1024.0),
                        "rss_after_mib": round3(after.rss_kib as f64 / 1024.0),
                        "cpu_seconds": round3(cpu),
                        "cpu_percent": (cpu / secs * 1000.0).round() / 10.0,
                    }),
                )
            })
            .collect();
        Value::Object(map)
    }

    /// A one-line human form of CPU use between two snapshots: `gateway 85% worker 60% …`.
    pub fn cpu_line(&self, later: &Snapshot) -> String {
        let secs = later.at.duration_since(self.at).as_secs_f64().max(1e-9);
        self.readings
            .iter()
            .map(|(name, before)| {
                let after = later.get(name).unwrap_or_default();
                let cpu = after.ticks.saturating_sub(before.ticks) as f64 / TICKS_PER_SEC;
                format!("{name} {:.0}%", cpu / secs * 100.0)
            })
            .collect::<Vec<_>>()
            .join("  ")
    }
}

/// The machine: CPU model, cores, memory, kernel; for the results file.
pub fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_owned())
        .unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    json!({
        "cpu_model": model,
        "cores": cores,
        "memory_gib": round3(mem_kib as f64 / 1024.0 / 1024.0),
        "kernel": kernel.trim(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process() {
        let pid = std::process::id();
        assert!(rss_kib(pid).unwrap() > 0);
        assert!(cpu_ticks(pid).is_some());
        assert!(rss_kib(u32::MAX).is_none());
    }
}
