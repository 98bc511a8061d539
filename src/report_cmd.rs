//! `gatehouse report`: evidence packs (written and verified offline), entitlements now or as of
//! a past date, retention status and deletion; and the steps `serve` runs for `[retention]` and
//! `[[reports]]`.

use crate::cli::ReportCommand;
use crate::config::{ReportSchedule, Settings};
use crate::context::{self, Schema};
use gatehouse_broker::governance::compliance::{
    self, Framework, Options, Period, entitlements, gather, pack, retention, schedule,
};
use gatehouse_broker::keys::SigningKeyPair;
use gatehouse_broker::ledger::outbox::{self, Channel};
use gatehouse_broker::{Clock, Store, SystemClock};
use std::path::PathBuf;
use std::process::ExitCode;

/// What packs are measured with, from the settings.
pub fn options(settings: &Settings, period: Period, now_ms: i64) -> Options {
    let web = gatehouse_broker::identity::web_sessions::Timeouts::default();
    let ms = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    Options {
        period,
        termination_sla_ms: ms(settings.termination_sla),
        recordings_retention_ms: settings.retention_recordings.map(ms),
        audit_retention_ms: settings.retention_audit.map(ms),
        web_idle_ms: web.idle_ms,
        web_absolute_ms: web.absolute_ms,
        now_ms,
    }
}

pub async fn run(settings: &Settings, cmd: ReportCommand) -> anyhow::Result<ExitCode> {
    if let ReportCommand::Verify { dir, public_key } = &cmd {
        let Some(key) = context::trusted_public_key(settings, public_key.as_deref())? else {
            anyhow::bail!(
                "no public key: pass --public-key ed25519:... (in DATA_DIR/keys/signing-key.pub)"
            );
        };
        return Ok(match pack::verify(dir, &key) {
            Ok(v) => {
                println!(
                    "OK: {} is an intact {} evidence pack for {} to {}: {} files, audit checkpoint at event {}, signed by {key}",
                    dir.display(),
                    v.framework,
                    v.period.0,
                    v.period.1,
                    v.files,
                    v.checkpoint_size
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                println!("FAILED: {}: {e}", dir.display());
                ExitCode::from(1)
            }
        });
    }
    let store = context::open_store(settings, Schema::RequireCurrent).await?;
    let out = run_with(settings, &store, cmd).await;
    store.close().await;
    out
}

async fn run_with(
    settings: &Settings,
    store: &Store,
    cmd: ReportCommand,
) -> anyhow::Result<ExitCode> {
    let now = SystemClock.now_ms();
    match cmd {
        ReportCommand::Evidence {
            framework,
            from,
            to,
            out,
        } => {
            let f = Framework::parse(&framework)?;
            let from_ms = compliance::parse_time(&from, false)?;
            let to_ms = match to {
                Some(t) => compliance::parse_time(&t, true)?,
                None => now,
            };
            // A period cannot claim what has not happened yet: it ends now at the latest.
            let to_ms = to_ms.min(now);
            if to_ms <= from_ms {
                anyhow::bail!("--to must come after --from, and --from must be in the past");
            }
            let key = context::existing_signing_key(settings)?;
            let o = options(settings, Period { from_ms, to_ms }, now);
            eprintln!("Reading the evidence and verifying the audit chain…");
            let p = pack::generate(store, &key, f, &o).await?;
            pack::write(&p, &out)?;
            print_pack(&p, &out);
            Ok(ExitCode::SUCCESS)
        }
        ReportCommand::Entitlements {
            as_of,
            identity,
            target,
            format,
            out,
        } => {
            if format != "csv" && format != "json" {
                anyhow::bail!("--format {format:?}: use csv or json");
            }
            let mut conn = store.pool().acquire().await?;
            let (at, state, source) = match as_of {
                Some(a) => {
                    let at = compliance::as_of(&a, now)?;
                    (
                        at - 1,
                        entitlements::State::replay(&mut conn, at).await?,
                        "audit log replayed up to the time",
                    )
                }
                None => (
                    now,
                    entitlements::State::load(&mut conn).await?,
                    "table state now",
                ),
            };
            let used = entitlements::last_used(&mut conn, at + 1).await?;
            let mut d = gather::entitlement_dataset(&state, &used, at, source);
            d.rows.retain(|r| {
                identity
                    .as_ref()
                    .is_none_or(|i| r.first().and_then(|v| v.as_str()) == Some(i))
                    && target
                        .as_ref()
                        .is_none_or(|t| r.get(1).and_then(|v| v.as_str()) == Some(t))
            });
            let text = if format == "json" {
                d.to_json()
            } else {
                d.to_csv()?
            };
            match out {
                Some(p) => {
                    std::fs::write(&p, text)?;
                    eprintln!("Wrote {} ({} rows).", p.display(), d.rows.len());
                }
                None => print!("{text}"),
            }
            Ok(ExitCode::SUCCESS)
        }
        ReportCommand::Retention { apply } => {
            let ms = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
            if apply {
                let Some(r) = settings.retention_recordings else {
                    anyhow::bail!("[retention] recordings is not set: nothing is past retention");
                };
                let mut total = 0;
                loop {
                    let n = retention::purge_recordings(
                        store,
                        &settings.recordings_dir,
                        now,
                        ms(r),
                        500,
                    )
                    .await?;
                    total += n;
                    if n < 500 {
                        break;
                    }
                    eprintln!("… {total} deleted");
                }
                println!(
                    "Deleted {total} recordings past retention (their signed manifests are kept)."
                );
            }
            let mut conn = store.pool().acquire().await?;
            let s = retention::status(
                &mut conn,
                now,
                settings.retention_recordings.map(ms),
                settings.retention_audit.map(ms),
            )
            .await?;
            for (item, policy, status) in s.rows() {
                println!("{item}: retention {policy}: {status}");
            }
            Ok(ExitCode::SUCCESS)
        }
        ReportCommand::Tick => {
            let key = context::existing_signing_key(settings)?;
            let done = tick(settings, store, &key, now).await?;
            if done.is_empty() {
                println!("No report was due.");
            }
            for d in done {
                println!("Wrote {}", d.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        ReportCommand::Verify { .. } => unreachable!("handled before the store opens"),
    }
}

fn print_pack(p: &pack::Pack, out: &std::path::Path) {
    println!(
        "Wrote {} evidence pack for {} to {} into {} ({} files).",
        p.framework.as_str(),
        gatehouse_broker::clock::format_ms(p.period.from_ms),
        gatehouse_broker::clock::format_ms(p.period.to_ms),
        out.display(),
        p.files.len()
    );
    for r in &p.results {
        println!(
            "  {:<20} {:<11} {}",
            r.id,
            r.status,
            r.exceptions.join("; ")
        );
    }
    println!(
        "Check it offline: gatehouse report verify {}",
        out.display()
    );
}

fn schedule_key(r: &ReportSchedule) -> String {
    format!("{}:{}", r.framework, r.output.display())
}

/// Generates the `[[reports]]` due at `now_ms`. Each run is claimed first by moving its next
/// due time with a conditional UPDATE, so two instances never both generate it; the pack is
/// announced through the notification outbox (`report.generated`).
pub async fn tick(
    settings: &Settings,
    store: &Store,
    key: &SigningKeyPair,
    now_ms: i64,
) -> anyhow::Result<Vec<PathBuf>> {
    let mut done = Vec::new();
    for r in &settings.reports {
        let name = schedule_key(r);
        let Some(run) = schedule::claim(store, &name, &r.schedule, now_ms).await? else {
            continue;
        };
        let period = run.period;
        let f = Framework::parse(&r.framework)?;
        let o = options(settings, period, now_ms);
        let day = |ms: i64| {
            gatehouse_broker::clock::format_ms(ms)
                .get(..10)
                .unwrap_or_default()
                .to_string()
        };
        let dir = r
            .output
            .join(format!("{}-{}", f.as_str(), schedule::label(period)));
        let result = async {
            let p = pack::generate(store, key, f, &o).await?;
            pack::write(&p, &dir)?;
            anyhow::Ok(p)
        }
        .await;
        let mut tx = store.begin().await?;
        match &result {
            Ok(p) => {
                let exceptions: usize = p.results.iter().map(|c| c.exceptions.len()).sum();
                outbox::enqueue(
                    &mut tx,
                    now_ms,
                    Channel::Notify,
                    "report.generated",
                    &format!(
                        "Evidence pack {} for {} to {} written to {} ({} controls, {exceptions} exception(s))",
                        f.as_str(),
                        day(period.from_ms),
                        day(period.to_ms - 1),
                        dir.display(),
                        p.results.len()
                    ),
                    serde_json::json!({ "framework": f.as_str(), "dir": dir.display().to_string(),
                        "from": gatehouse_broker::clock::format_ms(period.from_ms),
                        "to": gatehouse_broker::clock::format_ms(period.to_ms),
                        "exceptions": exceptions }),
                )
                .await?;
            }
            Err(e) => {
                outbox::enqueue(
                    &mut tx,
                    now_ms,
                    Channel::Notify,
                    "report.failed",
                    &format!("Evidence pack {} could not be written to {}: {e}", f.as_str(), dir.display()),
                    serde_json::json!({ "framework": f.as_str(), "dir": dir.display().to_string(), "error": e.to_string() }),
                )
                .await?;
            }
        }
        tx.commit().await?;
        if result.is_ok() {
            schedule::done(store, &name, &run, &dir.display().to_string()).await?;
        }
        result?;
        done.push(dir);
    }
    Ok(done)
}
