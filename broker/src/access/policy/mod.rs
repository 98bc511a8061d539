//! Authorization: `authorize(identity, action, target, login, context) → Decision`. The pure
//! decision lives in [`decide`]; this module adds the cache refresh and the audit event every
//! decision leaves (allow or deny, with its reasons). Any error while deciding is a deny.

pub mod catalog;
pub mod cedar;
pub mod decide;
pub mod reach;

pub use catalog::{Catalog, CatalogCache};
pub use decide::{AccessRequest, Decision, GrantRef, decide};

use crate::error::Result;
use crate::ledger::audit::{self, NewEvent, Outcome};
use crate::ledger::store::Store;

/// Decides and records the decision as an `authorize` audit event in its own transaction.
/// Returns an error (to be treated as a deny by the caller) only when the decision could not be
/// made or recorded.
pub async fn authorize(
    store: &Store,
    cache: &CatalogCache,
    now_ms: i64,
    req: &AccessRequest,
) -> Result<Decision> {
    let catalog = {
        let mut conn = store.pool().acquire().await?;
        cache.current(&mut conn, now_ms).await?
    };
    let decision = decide(&catalog, req, now_ms);
    let mut tx = store.begin().await?;
    audit::append(
        &mut tx,
        now_ms,
        NewEvent::new(
            format!("identity:{}", req.identity),
            "authorize",
            format!("target:{}", req.target),
        )
        .outcome(if decision.allow {
            Outcome::Allow
        } else {
            Outcome::Deny
        })
        .details(serde_json::json!({
            "protocol": req.protocol,
            "login": decision.login.as_ref().or(req.login.as_ref()),
            "source_ip": req.source_ip.map(|i| i.to_string()),
            "reasons": decision.reasons,
            "grant": decision.grant,
        })),
    )
    .await?;
    tx.commit().await?;
    Ok(decision)
}

/// The same decision without recording it (what-if: `gatehouse authorize`, `POST
/// /api/v1/authorize`). Changes nothing.
pub async fn explain(
    store: &Store,
    cache: &CatalogCache,
    now_ms: i64,
    req: &AccessRequest,
) -> Result<Decision> {
    let mut conn = store.pool().acquire().await?;
    let catalog = cache.current(&mut conn, now_ms).await?;
    Ok(decide(&catalog, req, now_ms))
}
