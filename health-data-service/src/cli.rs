//! The command line of the health-data-service binary: `serve` (the default) runs the REST API
//! and the `health.*` worker; `demo` writes the demo data set for one user; `import` loads files
//! from the command line.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Parser, Subcommand};
use uuid::Uuid;

use crate::scope::Owner;
use crate::{Settings, blood, demo, garmin, ufc};

#[derive(Parser)]
#[command(
    name = "health-data-service",
    about = "Garmin, blood-test and UFC data"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

/// Whose data a command writes.
#[derive(clap::Args)]
struct Who {
    /// Tenant: a UUID, or any name (mapped to a stable UUID, as `gateway-service token` does).
    #[arg(long, default_value = "demo")]
    tenant: String,
    /// User: a UUID, or any name (mapped to a stable UUID).
    #[arg(long, default_value = "demo-user")]
    user: String,
}

impl Who {
    fn owner(&self) -> Owner {
        Owner::new(id_of(&self.tenant), id_of(&self.user))
    }
}

#[derive(Subcommand)]
enum Command {
    /// Serve the REST API and consume `health.*` actions (the default).
    Serve,
    /// Write the demo data set (90 days ending today) for one user; running it again changes
    /// nothing.
    Demo(Who),
    /// Import files from disk.
    #[command(subcommand)]
    Import(Import),
}

#[derive(Subcommand)]
enum Import {
    /// A Garmin Connect export: its `.zip`, its unpacked folder, or single JSON/FIT files.
    Garmin {
        /// Files or folders.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        #[command(flatten)]
        who: Who,
    },
    /// A blood-test CSV (docs/health.md).
    Blood {
        /// The CSV file.
        file: PathBuf,
        #[command(flatten)]
        who: Who,
    },
    /// The tenant's UFC fighters CSV.
    UfcFighters {
        /// The CSV file.
        file: PathBuf,
        #[command(flatten)]
        who: Who,
    },
    /// The tenant's UFC fights CSV (its fighters must be imported first).
    UfcFights {
        /// The CSV file.
        file: PathBuf,
        #[command(flatten)]
        who: Who,
    },
}

/// A UUID as given, or a stable name-based UUID for a plain name.
fn id_of(s: &str) -> Uuid {
    s.parse()
        .unwrap_or_else(|_| Uuid::new_v5(&Uuid::NAMESPACE_OID, s.as_bytes()))
}

// The commands' results are their output, meant for the terminal.
#[allow(clippy::print_stdout)]
fn say(line: &str) {
    println!("{line}");
}

/// Parses the command line and runs its command.
pub async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = Settings::load()?;
    let _telemetry = common::telemetry::init("health-data-service", &settings.core)?;
    let shutdown = common::shutdown::on_signal();
    let command = match cli.command {
        None | Some(Command::Serve) => {
            return crate::run(settings, shutdown).await;
        }
        Some(c) => c,
    };
    let Some(pool) = common::db::connect_with_retry(&settings.core, &shutdown).await? else {
        return Ok(());
    };
    match command {
        Command::Serve => {}
        Command::Demo(who) => {
            let owner = who.owner();
            let today = chrono::Utc::now().date_naive();
            let report = demo::generate(&pool, owner, today).await?;
            say(&format!(
                "demo data for tenant {} user {} ({} days ending {today}):",
                owner.tenant_id,
                owner.user_id,
                demo::DAYS
            ));
            for (dataset, c) in &report.datasets {
                say(&format!(
                    "  {dataset:<18} inserted {:>4}  updated {:>4}  unchanged {:>4}",
                    c.inserted, c.updated, c.unchanged
                ));
            }
        }
        Command::Import(Import::Garmin { paths, who }) => {
            import_garmin(&pool, who.owner(), &paths, &settings, &shutdown).await?;
        }
        Command::Import(Import::Blood { file, who }) => {
            let bytes = read(&file)?;
            let rows = blood::csv::parse(&bytes).map_err(rejected)?;
            let r = blood::store::import(&pool, who.owner(), &rows).await?;
            say(&format!(
                "{} panel(s) ({} new); markers inserted {}, updated {}, unchanged {}",
                r.panels,
                r.panels_created,
                r.markers.inserted,
                r.markers.updated,
                r.markers.unchanged
            ));
        }
        Command::Import(Import::UfcFighters { file, who }) => {
            let rows = ufc::csv::fighters(&read(&file)?).map_err(rejected)?;
            let r = ufc::import::fighters(&pool, who.owner(), &rows).await?;
            say(&format!(
                "fighters inserted {}, updated {}, unchanged {}",
                r.rows.inserted, r.rows.updated, r.rows.unchanged
            ));
        }
        Command::Import(Import::UfcFights { file, who }) => {
            let owner = who.owner();
            let catalogue = ufc::import::catalogue(&pool, owner.tenant_id).await?;
            let rows = ufc::csv::fights(&read(&file)?, &catalogue).map_err(rejected)?;
            let r = ufc::import::fights(&pool, owner, &rows).await?;
            say(&format!(
                "fights inserted {}, updated {}, unchanged {}; {} new event(s)",
                r.rows.inserted, r.rows.updated, r.rows.unchanged, r.events_created
            ));
        }
    }
    Ok(())
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Every bad row of a rejected CSV, one per line.
fn rejected(errors: Vec<crate::error::RowError>) -> anyhow::Error {
    let lines: Vec<String> = errors
        .iter()
        .map(|e| match &e.column {
            Some(c) => format!("  line {} ({c}): {}", e.line, e.message),
            None => format!("  line {}: {}", e.line, e.message),
        })
        .collect();
    anyhow::anyhow!(
        "the file has {} bad row(s); nothing was imported:\n{}",
        errors.len(),
        lines.join("\n")
    )
}

/// Every file under `path` (a folder is walked), as `(path, contents)`.
fn collect(path: &Path, out: &mut Vec<(String, Vec<u8>)>) -> anyhow::Result<()> {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("cannot read {}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for entry in entries {
            collect(&entry, out)?;
        }
    } else if garmin::parse::kind_of(&path.to_string_lossy()).is_some() {
        out.push((path.to_string_lossy().into_owned(), read(path)?));
    }
    Ok(())
}

async fn import_garmin(
    pool: &sqlx::PgPool,
    owner: Owner,
    paths: &[PathBuf],
    settings: &Settings,
    stop: &tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    let mut uploads = Vec::new();
    for path in paths {
        collect(path, &mut uploads)?;
    }
    let unpacked = garmin::import::unpack(uploads, settings.max_import_bytes)?;
    anyhow::ensure!(
        !unpacked.files.is_empty(),
        "no Garmin export files found (UDSFile_*.json, *_sleepData.json, \
         *_summarizedActivities.json, *_healthStatusData.json, *_userBioMetrics.json, .fit)"
    );
    let total = unpacked.files.len();
    let job = garmin::import::create(pool, owner, total, unpacked.skipped).await?;
    say(&format!("import {}: {total} file(s)", job.id));
    let done = std::sync::atomic::AtomicUsize::new(0);
    let progress = |file: &str, outcome: Result<&garmin::store::Counts, &str>| {
        let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        match outcome {
            Ok(c) => say(&format!(
                "[{n}/{total}] {file}: inserted {}, updated {}, unchanged {}, skipped {}",
                c.inserted, c.updated, c.unchanged, c.skipped
            )),
            Err(e) => say(&format!("[{n}/{total}] {file}: FAILED: {e}")),
        }
    };
    let job = garmin::import::run(pool, owner, job.id, unpacked.files, stop, &progress).await?;
    say(&format!("{}: {}", job.status, job.records));
    Ok(())
}
