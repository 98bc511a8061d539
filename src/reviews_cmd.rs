//! `gatehouse reviews`: access review definitions and campaigns from the command line — list,
//! start, show, end, the scheduler's step, and the signed report (written and checked offline).
//! `gatehouse directory sync`: the directory read whole and applied (leavers, memberships).

use crate::cli::ReviewsCommand;
use crate::config::Settings;
use crate::context::{self, Schema};
use gatehouse_broker::governance::campaigns::{close, report, store as campaigns};
use gatehouse_broker::{Actor, Clock, Store, SystemClock};
use std::process::ExitCode;

pub async fn run(settings: &Settings, cmd: ReviewsCommand) -> anyhow::Result<ExitCode> {
    if let ReviewsCommand::Verify { dir, public_key } = &cmd {
        let Some(key) = context::trusted_public_key(settings, public_key.as_deref())? else {
            anyhow::bail!(
                "no public key: pass --public-key ed25519:... (in DATA_DIR/keys/signing-key.pub)"
            );
        };
        return Ok(match report::verify(dir, &key) {
            Ok(files) => {
                println!(
                    "OK: {} signed by {key}: {}",
                    dir.display(),
                    files.join(", ")
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
    cmd: ReviewsCommand,
) -> anyhow::Result<ExitCode> {
    let now = SystemClock.now_ms();
    let fmt = gatehouse_broker::clock::format_ms;
    match cmd {
        ReviewsCommand::List => {
            let mut conn = store.pool().acquire().await?;
            let defs = campaigns::definitions(&mut conn).await?;
            if defs.is_empty() {
                println!(
                    "No review definitions: add [[reviews]] to a policy document and apply it."
                );
            }
            for d in defs {
                println!(
                    "review {}  {}  owner {}  next start: {}",
                    d.name,
                    d.spec.schedule,
                    d.spec.owner,
                    d.next_start_ms.map_or("none".into(), fmt)
                );
            }
            for c in campaigns::campaigns(&mut conn).await? {
                let p = campaigns::progress(&mut conn, &c.id).await?;
                println!(
                    "campaign {}  {}  {}  {}% decided ({} of {} open)  ends {}",
                    c.id,
                    c.name,
                    c.state,
                    p.percent(),
                    p.open,
                    p.total,
                    fmt(c.ends_ms)
                );
            }
        }
        ReviewsCommand::Start { definition } => {
            let mut tx = store.begin().await?;
            let id = campaigns::start(&mut tx, &Actor::Cli, now, &definition).await?;
            tx.commit().await?;
            let mut conn = store.pool().acquire().await?;
            let c = campaigns::campaign(&mut conn, &id).await?;
            let p = campaigns::progress(&mut conn, &id).await?;
            println!(
                "Started campaign {} ({}): {} items, ends {}.",
                c.id,
                c.name,
                p.total,
                fmt(c.ends_ms)
            );
        }
        ReviewsCommand::Show { campaign, state } => {
            if let Some(s) = &state
                && !["open", "decided", "applied"].contains(&s.as_str())
            {
                anyhow::bail!("--state {s:?}: use open, decided or applied");
            }
            let mut conn = store.pool().acquire().await?;
            let c = campaigns::campaign(&mut conn, &campaign).await?;
            let p = campaigns::progress(&mut conn, &campaign).await?;
            println!(
                "{} ({}), owner {}, {}: {} items, {} open, {} decided, {} applied; keep {}, revoke {}, keep until {}",
                c.name,
                c.id,
                c.owner,
                c.state,
                p.total,
                p.open,
                p.decided,
                p.applied,
                p.keep,
                p.revoke,
                p.keep_until
            );
            for i in campaigns::items(&mut conn, &campaign, state.as_deref(), i64::MAX, 0).await? {
                println!(
                    "  {}  {}  {}  recommend {} ({})  reviewer {}  {}{}",
                    i.id,
                    i.username,
                    i.what(),
                    i.recommendation,
                    i.rec_reason,
                    i.reviewer,
                    i.state,
                    i.decision.map(|d| format!(": {d}")).unwrap_or_default()
                );
            }
        }
        ReviewsCommand::End { campaign } => {
            let mut tx = store.begin().await?;
            let applied = close::end(&mut tx, &Actor::Cli, now, &campaign).await?;
            tx.commit().await?;
            match applied {
                Some(a) => {
                    let (ok, bad) = close::verify(store, SystemClock.now_ms(), &campaign).await?;
                    println!(
                        "Ended and applied: {} revoked, {} kept, {} kept until a date, {} already gone; {ok} revokes verified, {bad} still there.",
                        a.revoked, a.kept, a.kept_until, a.already_gone
                    );
                    if bad > 0 {
                        return Ok(ExitCode::from(1));
                    }
                }
                None => {
                    println!("Ended: waiting for the owner's sign-off before anything changes.")
                }
            }
        }
        ReviewsCommand::Tick => {
            let t = close::tick(store, now).await?;
            println!(
                "started {}, reminded {}, escalated {}, ended {}",
                t.started.len(),
                t.reminded.len(),
                t.escalated.len(),
                t.ended.len()
            );
        }
        ReviewsCommand::Report { campaign, out } => {
            let key = context::existing_signing_key(settings)?;
            let files = build_report(store, &campaign).await?;
            std::fs::create_dir_all(&out)?;
            let (manifest, sig) = report::sign(
                &files.0,
                &[
                    ("report.json", files.1.as_bytes()),
                    ("report.csv", files.2.as_bytes()),
                ],
                &key,
            );
            std::fs::write(out.join("report.json"), &files.1)?;
            std::fs::write(out.join("report.csv"), &files.2)?;
            std::fs::write(out.join("manifest.txt"), manifest)?;
            std::fs::write(out.join("manifest.sig"), sig)?;
            println!(
                "Wrote {}: report.json, report.csv, manifest.txt, manifest.sig ({} items, {} flags).",
                out.display(),
                files.0.rows.len(),
                files.0.flags.len()
            );
        }
        ReviewsCommand::Verify { .. } => unreachable!("handled before the store opens"),
    }
    Ok(ExitCode::SUCCESS)
}

/// The report of a campaign with its JSON and CSV text.
pub async fn build_report(
    store: &Store,
    id: &str,
) -> anyhow::Result<(report::Report, String, String)> {
    let mut conn = store.pool().acquire().await?;
    let conn = &mut *conn;
    let c = campaigns::campaign(conn, id).await?;
    let p = campaigns::progress(conn, id).await?;
    let items = campaigns::items(conn, id, None, i64::MAX, 0).await?;
    let decisions = campaigns::decisions(conn, id, None).await?;
    let r = report::build(&c, p, &items, &decisions);
    let json = report::to_json(&r);
    let csv = report::to_csv(&r)?;
    Ok((r, json, csv))
}

/// `gatehouse directory sync [--dry-run]`.
pub async fn directory_sync(settings: &Settings, dry_run: bool) -> anyhow::Result<ExitCode> {
    use gatehouse_broker::identity::directory_sync::{self, Change};
    let Some(config) = &settings.ldap else {
        anyhow::bail!("no [ldap] section in the configuration: there is no directory to sync");
    };
    let ldap = crate::serve::ldap_settings(config)?;
    let listing = ldap
        .list_users()
        .await
        .map_err(|e| anyhow::anyhow!("cannot read the directory: {e}"))?;
    let store = context::open_store(settings, Schema::RequireCurrent).await?;
    let done = directory_sync::sync(&store, SystemClock.now_ms(), &listing, dry_run, true).await;
    store.close().await;
    let changes = done?;
    for c in &changes {
        match c {
            Change::Create { username } => println!("+ create identity {username}"),
            Change::Leaver { username, why } => println!("- leaver {username} ({why})"),
            Change::Update { username } => println!("~ update identity {username}"),
            Change::Join { username, group } => println!("+ {username} joins group {group}"),
            Change::Leave { username, group } => println!("- {username} leaves group {group}"),
            Change::Ambiguous { username } => {
                println!("! {username}: several directory entries give this username; left alone")
            }
        }
    }
    println!(
        "{} users listed, {} change(s){}.",
        listing.entries.len(),
        changes.len(),
        if dry_run {
            " (dry run: nothing changed)"
        } else {
            ""
        }
    );
    Ok(ExitCode::SUCCESS)
}
