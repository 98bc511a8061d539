//! `gatehouse audit verify | checkpoint | export`.

use crate::cli::AuditCommand;
use crate::config::Settings;
use crate::context::{self, Schema};
use anyhow::{Context, bail};
use futures_util::StreamExt;
use gatehouse_broker::ledger::audit::{self, Checkpoint, checkpoint, verify};
use gatehouse_broker::{Clock, SystemClock};
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

pub async fn run(settings: Settings, cmd: AuditCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AuditCommand::Verify {
            checkpoint,
            public_key,
        } => verify_cmd(&settings, checkpoint.as_deref(), public_key.as_deref()).await,
        AuditCommand::Checkpoint { output } => {
            let signer = context::existing_signing_key(&settings)?;
            let store = context::open_store(&settings, Schema::RequireCurrent).await?;
            let cp = checkpoint::create(&store, SystemClock.now_ms(), &signer).await?;
            store.close().await;
            let Some(cp) = cp else {
                bail!("the audit log is empty: there is nothing to checkpoint yet");
            };
            write_out(output.as_deref(), cp.to_text().as_bytes())?;
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Export { since, output } => {
            let since_ms = match since.as_deref() {
                Some(s) => parse_since(s, SystemClock.now_ms())?,
                None => i64::MIN,
            };
            let store = context::open_store(&settings, Schema::RequireCurrent).await?;
            let result = export(&store, since_ms, output.as_deref()).await;
            store.close().await;
            result?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn verify_cmd(
    settings: &Settings,
    kept: Option<&Path>,
    public_key: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let kept = match kept {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read checkpoint file {}", path.display()))?;
            Some(
                Checkpoint::parse_text(&text)
                    .with_context(|| format!("checkpoint file {}", path.display()))?,
            )
        }
        None => None,
    };
    let trusted = context::trusted_public_key(settings, public_key)?;
    if kept.is_some() && trusted.is_none() {
        bail!(
            "checking a kept checkpoint needs the trusted public key: give --public-key ed25519:..."
        );
    }
    let store = context::open_store(settings, Schema::RequireCurrent).await?;
    let total = {
        let mut conn = store.pool().acquire().await?;
        audit::head(&mut conn).await?.0
    };
    let bar = progress_bar(total);
    let report = verify::verify_with_progress(&store, trusted.as_ref(), kept.as_ref(), &|n| {
        bar.set_position(u64::try_from(n).unwrap_or(0))
    })
    .await;
    bar.finish_and_clear();
    store.close().await;
    let report = report?;
    match report.problem {
        None => {
            println!(
                "audit log intact: {} event(s), head {}, {} signed checkpoint(s) matched",
                report.events,
                report.head_hash.as_deref().unwrap_or("(empty)"),
                report.checkpoints
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(problem) => {
            eprintln!(
                "error: audit log damaged at seq {}: {}",
                problem.seq, problem.message
            );
            match report.events {
                0 => eprintln!("(no event before it verified)"),
                n => eprintln!("(events 1 to {n} before it verified)"),
            }
            Ok(ExitCode::from(1))
        }
    }
}

fn progress_bar(total: i64) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() || total < gatehouse_broker::ledger::audit::scan::PAGE {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(u64::try_from(total).unwrap_or(0));
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "verifying {bar:40} {pos}/{len} events ({per_sec}, {eta} left)",
    ) {
        bar.set_style(style);
    }
    bar
}

async fn export(
    store: &gatehouse_broker::Store,
    since_ms: i64,
    output: Option<&Path>,
) -> anyhow::Result<()> {
    let sink: Box<dyn Write> = match output {
        Some(path) => Box::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = std::io::BufWriter::new(sink);
    let mut events = audit::stream_since(store.pool(), since_ms);
    while let Some(ev) = events.next().await {
        let line = ev?.to_export_json().to_string();
        if let Err(e) = writeln!(out, "{line}") {
            // `gatehouse audit export | head` closes the pipe early: that is not an error.
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(());
            }
            return Err(e).context("writing the export");
        }
    }
    match out.flush() {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("writing the export")
        }
        _ => Ok(()),
    }
}

fn write_out(output: Option<&Path>, bytes: &[u8]) -> anyhow::Result<()> {
    match output {
        Some(path) => {
            std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
        }
        None => std::io::stdout()
            .write_all(bytes)
            .context("writing to standard output"),
    }
}

/// `--since`: RFC 3339, a UTC date, or an age (24h, 7d) before `now_ms`.
pub fn parse_since(s: &str, now_ms: i64) -> anyhow::Result<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d
            .and_time(chrono::NaiveTime::MIN)
            .and_utc()
            .timestamp_millis());
    }
    if let Ok(age) = humantime::parse_duration(s) {
        let ms = i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
        return Ok(now_ms.saturating_sub(ms));
    }
    bail!(
        "--since {s:?}: use RFC 3339 (2026-11-25T08:00:00Z), a date (2026-11-25) or an age (24h, 7d)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_accepts_times_dates_and_ages() {
        let now = 1_764_000_000_000;
        assert_eq!(
            parse_since("2025-11-24T16:00:00Z", now).unwrap(),
            1_764_000_000_000
        );
        assert_eq!(parse_since("2025-11-24", now).unwrap(), 1_763_942_400_000);
        assert_eq!(parse_since("1h", now).unwrap(), now - 3_600_000);
        assert!(
            parse_since("yesterday-ish", now)
                .unwrap_err()
                .to_string()
                .contains("RFC 3339")
        );
    }
}
