//! Background work of `serve` beside the listeners: delivering the webhook outbox with retries,
//! and noticing access changes made by other processes (`gatehouse apply` on the same SQLite
//! file) so the access event stream announces them within a second.

use gatehouse_broker::events::AccessEvent;
use gatehouse_broker::outbox;
use gatehouse_broker::secrets::Secret;
use gatehouse_broker::{Backend, SharedClock, Store};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Delivers due outbox messages every second until `stop`. A message is POSTed as JSON; any 2xx
/// is a delivery, anything else is retried with backoff (2 s doubling, at most 10 min, 12 tries).
pub async fn webhooks(
    store: Store,
    clock: SharedClock,
    notify: Option<Secret>,
    alert: Option<Secret>,
    stop: CancellationToken,
) {
    if notify.is_none() && alert.is_none() {
        tracing::info!("no [notifications] webhook configured: notifications stay in the outbox");
        return;
    }
    let http = match reqwest::Client::builder()
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
            // The URL may carry a secret: report the kind of failure, not the URL.
            Err(e) => Err(format!("not delivered: {}", e.without_url())),
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
