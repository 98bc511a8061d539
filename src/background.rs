//! Background work of `serve` beside the listeners: delivering the webhook outbox with retries,
//! and noticing access changes made by other processes (`gatehouse apply` on the same SQLite
//! file) so the access event stream announces them within a second.

use gatehouse_broker::events::AccessEvent;
use gatehouse_broker::ledger::outbox;
use gatehouse_broker::secrets::Secret;
use gatehouse_broker::{Backend, SharedClock, Store};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Delivers due outbox messages every second until `stop`. A message is POSTed as JSON; any 2xx
/// is a delivery, anything else is retried with backoff (2 s doubling, at most 10 min, 12 tries).
/// HTTPS receivers are checked with `tls` (`crate::outbound`).
pub async fn webhooks(
    store: Store,
    clock: SharedClock,
    notify: Option<Secret>,
    alert: Option<Secret>,
    tls: rustls::ClientConfig,
    stop: CancellationToken,
) {
    if notify.is_none() && alert.is_none() {
        tracing::info!("no [notifications] webhook configured: notifications stay in the outbox");
        return;
    }
    let http = match crate::outbound::builder(&tls)
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the webhook client; notifications stay queued");
            return;
        }
    };
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        if let Err(e) = deliver_due(&store, &clock, &http, notify.as_ref(), alert.as_ref()).await {
            tracing::warn!(error = %e, "webhook delivery round failed");
        }
    }
}

async fn deliver_due(
    store: &Store,
    clock: &SharedClock,
    http: &reqwest::Client,
    notify: Option<&Secret>,
    alert: Option<&Secret>,
) -> gatehouse_broker::Result<()> {
    let mut conn = store.pool().acquire().await?;
    for m in outbox::due(&mut conn, clock.now_ms(), 50).await? {
        let url = if m.channel == "alert" { alert } else { notify };
        let Some(url) = url else { continue };
        let result = match http
            .post(url.expose())
            .header("content-type", "application/json")
            .body(m.payload.clone())
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(format!("answered {}", r.status())),
            // The URL may carry a secret: report the kind of failure and its causes (a refused
            // certificate is named), not the URL.
            Err(e) => Err(format!("not delivered: {}", crate::outbound::describe(e))),
        };
        if let Err(e) = &result {
            tracing::warn!(id = m.id, attempts = m.attempts + 1, error = %e, "webhook delivery failed");
        }
        outbox::record(&mut conn, &m.id, clock.now_ms(), result).await?;
    }
    Ok(())
}

/// Keeps the access event stream complete. On PostgreSQL: starts the LISTEN connection (every
/// instance's changes arrive by NOTIFY). On SQLite: compares `access_version` four times a second
/// and announces `AccessChanged` when another process moved it.
pub async fn watch_access(store: Store, stop: CancellationToken) {
    if store.backend() == Backend::Postgres {
        let _events = store.subscribe();
        stop.cancelled().await;
        return;
    }
    let mut seen: Option<i64> = None;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
        let version = match store.pool().acquire().await {
            Ok(mut c) => Store::access_version(&mut c).await,
            Err(e) => Err(gatehouse_broker::Error::from(e)),
        };
        match version {
            Ok(v) => {
                if seen.is_some_and(|s| s != v) {
                    store.publish_local(AccessEvent::AccessChanged);
                }
                seen = Some(v);
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the access version"),
        }
    }
}

/// How often `serve` deletes the app gateway's spent sign-in codes and old app sessions.
const APP_PURGE_EVERY: Duration = Duration::from_secs(3600);

/// Deletes the app gateway's sign-in codes and app sessions that ended or expired over a week
/// ago (`gatehouse_broker::access::apps::purge`): at start-up, then every hour.
pub async fn app_purge(store: Store, clock: SharedClock, stop: CancellationToken) {
    loop {
        let purged = match store.pool().acquire().await {
            Ok(mut c) => gatehouse_broker::access::apps::purge(&mut c, clock.now_ms()).await,
            Err(e) => Err(e.into()),
        };
        match purged {
            Ok((0, 0)) => {}
            Ok((codes, sessions)) => {
                tracing::info!(
                    codes,
                    sessions,
                    "app gateway: spent sign-in codes and old app sessions deleted"
                )
            }
            Err(e) => tracing::warn!(error = %e, "cannot purge the app gateway's old sign-ins"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(APP_PURGE_EVERY) => {}
        }
    }
}

/// Reads the whole directory every `every` and applies it (`directory_sync::sync`): leavers,
/// memberships, new people. A directory that cannot be read changes nothing.
pub async fn directory_sync(
    store: Store,
    clock: SharedClock,
    ldap: gatehouse_web::directory::Ldap,
    every: Duration,
    stop: CancellationToken,
) {
    use gatehouse_broker::identity::directory_sync;
    // When a refusal was last recorded: a failing sync is audited and logged once an hour, not
    // at every pass.
    let mut refused_at: Option<std::time::Instant> = None;
    loop {
        match ldap.list_users().await {
            Ok(listing) => {
                let record = refused_at.is_none_or(|at| at.elapsed() > Duration::from_secs(3600));
                match directory_sync::sync(&store, clock.now_ms(), &listing, false, record).await {
                    Ok(changes) => {
                        refused_at = None;
                        if !changes.is_empty() {
                            tracing::info!(
                                listed = listing.entries.len(),
                                changes = changes.len(),
                                "directory sync applied"
                            );
                        }
                    }
                    Err(e) if record => {
                        tracing::warn!(error = %e, "directory sync refused or failed");
                        refused_at = Some(std::time::Instant::now());
                    }
                    Err(_) => {}
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the directory: nothing changed"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}

/// How often `serve` runs the access review scheduler.
const REVIEWS_EVERY: Duration = Duration::from_secs(60);

/// The access review scheduler (`gatehouse_broker::governance::campaigns::close::tick`): starts
/// campaigns when due, reminds, escalates and ends them; at start-up, then every minute.
pub async fn reviews(store: Store, clock: SharedClock, stop: CancellationToken) {
    use gatehouse_broker::governance::campaigns::close;
    loop {
        match close::tick(&store, clock.now_ms()).await {
            Ok(t) => {
                for id in &t.started {
                    tracing::info!(campaign = %id, "access review campaign started");
                }
                for id in &t.ended {
                    tracing::info!(campaign = %id, "access review campaign ended");
                }
                for f in &t.failed {
                    tracing::warn!(what = %f, "access review scheduler: a step failed");
                }
            }
            Err(e) => tracing::warn!(error = %e, "access review scheduler step failed"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(REVIEWS_EVERY) => {}
        }
    }
}

/// How often `serve` applies start and end dates that have come (`hr dates`).
const DATES_EVERY: Duration = Duration::from_secs(60);

/// Applies HR start and end dates as they come, between imports: at start-up, then every
/// minute (a date takes effect within a minute of midnight UTC).
pub async fn hr_dates(store: Store, clock: SharedClock, stop: CancellationToken) {
    use gatehouse_broker::provisioning::lifecycle;
    loop {
        match lifecycle::dates::run(
            &store,
            &gatehouse_broker::Actor::System,
            clock.now_ms(),
            lifecycle::DEFAULT_GRACE_MS,
        )
        .await
        {
            Ok(done) => {
                for d in done {
                    tracing::info!(identity = %d.username, change = d.kind, date = %d.date, "HR date applied");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot apply HR start and end dates"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(DATES_EVERY) => {}
        }
    }
}

/// Watches the HR drop folder: every `interval`, imports the `.csv` and `.json` files in it (by
/// name order; dot-files and `*.tmp` are skipped, so writers should write elsewhere and rename
/// in), then moves each to `processed/` (or `failed/` when it could not be imported at all)
/// with the import's report beside it as `NAME.report.txt`.
pub async fn hr_drop_folder(
    store: Store,
    dir: std::path::PathBuf,
    interval: Duration,
    stop: CancellationToken,
) {
    let opts = crate::hr_cmd::Options {
        dry_run: false,
        strict: false,
        grace_ms: gatehouse_broker::provisioning::lifecycle::DEFAULT_GRACE_MS,
        progress: false,
        stderr: false,
    };
    loop {
        let mut files: Vec<std::path::PathBuf> = match std::fs::read_dir(&dir) {
            Ok(entries) => entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .filter(|p| {
                    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or(".");
                    let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
                    !name.starts_with('.')
                        && (ext.eq_ignore_ascii_case("csv") || ext.eq_ignore_ascii_case("json"))
                })
                .collect(),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot read the HR drop folder");
                Vec::new()
            }
        };
        files.sort();
        for file in files {
            let mut report: Vec<u8> = Vec::new();
            let result = crate::hr_cmd::import(&store, &file, opts, &mut report).await;
            let (sub, outcome) = match &result {
                Ok(o) => (
                    "processed",
                    format!(
                        "{} applied, {} failed, {} bad row(s)",
                        o.applied, o.failed, o.bad_rows
                    ),
                ),
                Err(e) => {
                    report.extend_from_slice(format!("import failed: {e:#}\n").as_bytes());
                    ("failed", format!("import failed: {e:#}"))
                }
            };
            let target_dir = dir.join(sub);
            let name = file.file_name().map(|n| n.to_owned()).unwrap_or_default();
            let moved = std::fs::create_dir_all(&target_dir)
                .and_then(|()| std::fs::rename(&file, target_dir.join(&name)));
            let _ = std::fs::write(
                target_dir.join(format!("{}.report.txt", name.to_string_lossy())),
                &report,
            );
            match moved {
                Ok(()) => {
                    tracing::info!(file = %file.display(), outcome, "imported an HR file from the drop folder")
                }
                Err(e) => {
                    // Not moved: stop watching rather than import it again and again.
                    tracing::error!(file = %file.display(), error = %e, "cannot move an imported HR file; the drop folder is no longer watched");
                    return;
                }
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

/// How often `serve` looks for due `[[reports]]`.
const REPORTS_EVERY: Duration = Duration::from_secs(60);
/// How often `serve` deletes recordings past `[retention] recordings`.
const RETENTION_EVERY: Duration = Duration::from_secs(3600);

/// Compliance work: the `[[reports]]` due (every minute) and recordings past retention (at
/// start-up, then every hour, in batches of 500).
pub async fn compliance(
    settings: crate::config::Settings,
    store: Store,
    key: std::sync::Arc<gatehouse_broker::keys::SigningKeyPair>,
    clock: SharedClock,
    stop: CancellationToken,
) {
    use gatehouse_broker::governance::compliance::retention;
    let mut last_purge: Option<tokio::time::Instant> = None;
    loop {
        if !settings.reports.is_empty() {
            match crate::report_cmd::tick(&settings, &store, &key, clock.now_ms()).await {
                Ok(done) => {
                    for d in done {
                        tracing::info!(dir = %d.display(), "scheduled evidence pack written");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "scheduled evidence pack failed"),
            }
        }
        if let Some(r) = settings.retention_recordings
            && last_purge.is_none_or(|t| t.elapsed() >= RETENTION_EVERY)
        {
            last_purge = Some(tokio::time::Instant::now());
            let ms = i64::try_from(r.as_millis()).unwrap_or(i64::MAX);
            loop {
                match retention::purge_recordings(
                    &store,
                    &settings.recordings_dir,
                    clock.now_ms(),
                    ms,
                    500,
                )
                .await
                {
                    Ok(n) => {
                        if n > 0 {
                            tracing::info!(deleted = n, "recordings past retention deleted");
                        }
                        if n < 500 {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "deleting recordings past retention failed");
                        break;
                    }
                }
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(REPORTS_EVERY) => {}
        }
    }
}
