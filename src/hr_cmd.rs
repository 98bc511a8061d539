//! `gatehouse hr import`: reads an HR file, prints the joiner / mover / leaver plan with the
//! access each change adds or removes, and (unless --dry-run) applies it in batches, with
//! progress on large files.

use crate::cli::HrCommand;
use crate::config::Settings;
use crate::context;
use gatehouse_broker::provisioning::lifecycle::{self, Change, Kind};
use gatehouse_broker::{Actor, Clock, SystemClock};
use std::io::IsTerminal;
use std::process::ExitCode;

/// Changes per transaction.
const BATCH: usize = 500;

/// How an import ran.
#[derive(Debug, Default)]
pub struct Outcome {
    pub bad_rows: usize,
    pub applied: usize,
    pub failed: usize,
}

impl Outcome {
    /// 0 when every row was good and applied, else 1.
    pub fn exit_code(&self) -> ExitCode {
        if self.bad_rows > 0 || self.failed > 0 {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        }
    }
}

/// What an import is asked to do.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub dry_run: bool,
    pub strict: bool,
    pub grace_ms: i64,
    /// Show a progress bar (a terminal is watching).
    pub progress: bool,
    /// Also name bad rows and failures on standard error (the command line).
    pub stderr: bool,
}

pub async fn run(settings: &Settings, cmd: HrCommand) -> anyhow::Result<ExitCode> {
    let (file, dry_run, strict, grace) = match cmd {
        HrCommand::Import {
            file,
            dry_run,
            strict,
            grace,
        } => (file, dry_run, strict, grace),
        HrCommand::Dates { dry_run } => return dates(settings, dry_run).await,
    };
    let opts = Options {
        dry_run,
        strict,
        grace_ms: grace
            .map(|g| i64::try_from(g.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(lifecycle::DEFAULT_GRACE_MS),
        progress: std::io::stderr().is_terminal(),
        stderr: true,
    };
    // Read first: a missing file is an error before touching the database.
    std::fs::metadata(&file).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
    let store = context::open_store(settings, context::Schema::RequireCurrent).await?;
    let mut out = std::io::BufWriter::new(std::io::stdout());
    let outcome = import(&store, &file, opts, &mut out).await;
    drop(out);
    store.close().await;
    Ok(outcome?.exit_code())
}

/// `hr dates`: what start and end dates make due today, applied unless a dry run.
async fn dates(settings: &Settings, dry_run: bool) -> anyhow::Result<ExitCode> {
    let store = context::open_store(settings, context::Schema::RequireCurrent).await?;
    let now_ms = SystemClock.now_ms();
    let today = gatehouse_broker::clock::from_ms(now_ms).date_naive();
    let due = if dry_run {
        lifecycle::dates::pending(&store, today).await?
    } else {
        lifecycle::dates::run(&store, &Actor::Cli, now_ms, lifecycle::DEFAULT_GRACE_MS).await?
    };
    store.close().await;
    for d in &due {
        let what = if d.kind == "start" {
            "start (start date"
        } else {
            "leaver (end date"
        };
        println!("{:<20} {what} {})", d.username, d.date);
    }
    let verb = if dry_run { "due" } else { "applied" };
    println!("{} change(s) {verb}", due.len());
    Ok(ExitCode::SUCCESS)
}

/// Imports one HR file: writes the plan, bad rows and results to `out` (bad rows and failures
/// also to standard error with `opts.stderr`), and applies it unless a dry run.
pub async fn import(
    store: &gatehouse_broker::Store,
    file: &std::path::Path,
    opts: Options,
    out: &mut (dyn std::io::Write + Send),
) -> anyhow::Result<Outcome> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
    let json = file
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let parsed = lifecycle::parse(&text, json);
    let name = file.display().to_string();
    let mut outcome = Outcome {
        bad_rows: parsed.errors.len(),
        ..Outcome::default()
    };
    for e in &parsed.errors {
        if opts.stderr {
            eprintln!("{name}:{}: {}: {}", e.line, e.field, e.message);
        }
        writeln!(out, "bad row {name}:{}: {}: {}", e.line, e.field, e.message)?;
    }
    if opts.strict && !parsed.errors.is_empty() {
        writeln!(
            out,
            "{} bad row(s); --strict: nothing applied",
            parsed.errors.len()
        )?;
        return Ok(outcome);
    }
    let now_ms = SystemClock.now_ms();
    let today = gatehouse_broker::clock::from_ms(now_ms).date_naive();
    let (current, roles, role_ids) = {
        let mut conn = store.pool().acquire().await?;
        let role_ids: std::collections::HashMap<String, String> =
            gatehouse_broker::access::roles::list(&mut conn)
                .await?
                .into_iter()
                .map(|r| (r.name, r.id))
                .collect();
        (
            lifecycle::current(&mut conn).await?,
            lifecycle::birthright_roles(&mut conn).await?,
            role_ids,
        )
    };
    let changes = lifecycle::plan(&parsed.records, &current, &roles, today);
    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
    for c in &changes {
        *counts.entry(c.kind.as_str()).or_default() += 1;
        if c.kind != Kind::Unchanged {
            writeln!(out, "{}", describe(c, opts.grace_ms))?;
        }
    }
    let summary: Vec<String> = [
        "joiner",
        "staged",
        "start",
        "mover",
        "leave",
        "leaver",
        "unchanged",
    ]
    .iter()
    .map(|k| format!("{} {k}", counts.get(k).copied().unwrap_or(0)))
    .collect();
    writeln!(
        out,
        "{}; {} bad row(s)",
        summary.join(", "),
        parsed.errors.len()
    )?;
    if opts.dry_run {
        writeln!(out, "dry run: nothing changed")?;
        return Ok(outcome);
    }
    out.flush()?;
    let todo: Vec<&Change> = changes
        .iter()
        .filter(|c| c.kind != Kind::Unchanged)
        .collect();
    let bar = progress(if opts.progress { todo.len() } else { 0 });
    let actor = Actor::System;
    let source = file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("hr-feed")
        .to_string();
    for batch in todo.chunks(BATCH) {
        // The batch in one transaction (joiners in bulk); if one change fails, each change of
        // the batch alone, so the good ones still land and the bad one is named.
        let mut tx = store.begin().await?;
        let mut ok = lifecycle::bulk::joiners(&mut tx, &actor, now_ms, batch, &source, &role_ids)
            .await
            .is_ok();
        for c in batch
            .iter()
            .filter(|c| !matches!(c.kind, Kind::Joiner | Kind::Staged))
        {
            if !ok {
                break;
            }
            if lifecycle::apply(&mut tx, &actor, now_ms, c, &source, opts.grace_ms)
                .await
                .is_err()
            {
                ok = false;
            }
        }
        if ok {
            tx.commit().await?;
        } else {
            tx.rollback().await?;
            for c in batch {
                let mut tx = store.begin().await?;
                match lifecycle::apply(&mut tx, &actor, now_ms, c, &source, opts.grace_ms).await {
                    Ok(()) => tx.commit().await?,
                    Err(e) => {
                        tx.rollback().await?;
                        outcome.failed += 1;
                        if opts.stderr {
                            bar.suspend(|| {
                                eprintln!("{name}:{}: {}: {e}", c.line, c.employee_number)
                            });
                        }
                        writeln!(out, "failed {name}:{}: {}: {e}", c.line, c.employee_number)?;
                    }
                }
            }
        }
        bar.inc(batch.len() as u64);
    }
    bar.finish_and_clear();
    outcome.applied = todo.len() - outcome.failed;
    writeln!(
        out,
        "applied {} change(s){}",
        outcome.applied,
        if outcome.failed > 0 {
            format!("; {} failed (named above)", outcome.failed)
        } else {
            String::new()
        }
    )?;
    Ok(outcome)
}

/// One line of the plan.
fn describe(c: &Change, grace_ms: i64) -> String {
    let who = format!("{} ({}, line {})", c.username, c.employee_number, c.line);
    let mut parts: Vec<String> = Vec::new();
    match c.kind {
        Kind::Joiner => parts.push(format!("{} / {}", text(c, "department"), text(c, "title"))),
        Kind::Staged => parts.push(format!(
            "starts {} (prehire: no access until then)",
            text(c, "start_date")
        )),
        Kind::Start => parts.push("active again".into()),
        Kind::Leave => parts.push("on leave: suspended".into()),
        Kind::Leaver => parts.push(
            "terminated: grants revoked, live sessions ended, tokens and SSH keys disabled".into(),
        ),
        Kind::Mover | Kind::Unchanged => {}
    }
    for (k, before, after) in &c.moved {
        parts.push(format!("{k} {before:?} → {after:?}"));
    }
    for r in &c.roles_add {
        parts.push(format!("+ role {r}"));
    }
    for r in &c.roles_remove {
        if c.kind == Kind::Leaver {
            parts.push(format!("- role {r}"));
        } else {
            parts.push(format!(
                "- role {r} after {} grace",
                humantime::format_duration(std::time::Duration::from_millis(
                    u64::try_from(grace_ms).unwrap_or(0)
                ))
            ));
        }
    }
    let sign = match c.kind {
        Kind::Joiner | Kind::Start => '+',
        Kind::Leaver | Kind::Leave => '-',
        _ => '~',
    };
    format!("{sign} {:<8} {who}: {}", c.kind.as_str(), parts.join("; "))
}

fn text(c: &Change, key: &str) -> String {
    c.attributes
        .get(key)
        .and_then(|v| v.as_str())
        .unwrap_or("-")
        .to_string()
}

fn progress(total: usize) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() || total < 1000 {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total as u64);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "importing {bar:40} {pos}/{len} changes ({per_sec}, {eta} left)",
    ) {
        bar.set_style(style);
    }
    bar
}
