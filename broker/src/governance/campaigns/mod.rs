//! Access review campaigns: who holds what, put in front of the people who must answer for it,
//! with the evidence Gatehouse has (sessions through each access) and a recommendation; their
//! decisions applied through the same audited engine as every other change, and verified
//! afterwards by the decision function.
//!
//! - [`spec`]: what a campaign covers, who reviews, when (policy as code `[[reviews]]`).
//! - [`plan`]: the items with evidence and recommendation, a plain function over [`plan::Facts`].
//! - [`facts`]: what a campaign is planned from, read from the store.
//! - [`store`]: definitions, starting a campaign, reading campaigns and items.
//! - [`decide`]: a reviewer's decisions (keep, revoke, keep until, delegate, accept the
//!   recommendations), stage by stage.
//! - [`close`]: the end (unanswered items), remediation, verification, sign-off, the scheduler.
//! - [`report`]: the campaign report (rubber-stamp flags included), CSV and JSON, signed.
//! - [`mover`]: the review of a mover's access that is not birthright for the new position.

pub mod close;
pub mod decide;
pub mod facts;
pub mod mover;
pub mod plan;
pub mod report;
pub mod spec;
pub mod store;

pub use plan::{Access, Evidence};
pub use spec::{ApplyMode, CampaignSpec, ReviewDoc, Scope, Unanswered};
pub use store::{Campaign, Item};

use crate::error::{Error, Result};
use crate::ledger::audit::{self, NewEvent, Outcome};
use crate::ledger::store::Tx;

/// Audits a refusal — `action` by `username` on `object`, outcome failure, with the error's code
/// and words — and marks the transaction as holding it, so [`Tx::settle`] keeps it.
pub(crate) async fn audit_refusal(
    tx: &mut Tx,
    username: &str,
    now_ms: i64,
    action: &str,
    object: String,
    e: &Error,
) -> Result<()> {
    audit::append(
        tx,
        now_ms,
        NewEvent::new(format!("identity:{username}"), action, object)
            .outcome(Outcome::Failure)
            .details(serde_json::json!({ "code": e.code(), "reason": e.to_string() })),
    )
    .await?;
    tx.mark_refusal();
    Ok(())
}
