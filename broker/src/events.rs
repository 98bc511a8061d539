//! The access event stream: grants started, changed, ended or revoked, identities disabled, and
//! "access changed" for anything else that may alter a decision. The gateway subscribes to it to
//! end sessions. In-process it is a tokio broadcast; on PostgreSQL every committing transaction
//! also sends it with NOTIFY so every instance hears it (see [`crate::ledger::store::Store::subscribe`]).

use serde::{Deserialize, Serialize};

/// The PostgreSQL channel the events travel on.
pub const CHANNEL: &str = "gatehouse_access";

/// Something that may end or change a live session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum AccessEvent {
    /// A grant became known (it may start later: see `not_before_ms`).
    GrantStarted {
        grant_id: String,
        identity: String,
        role: String,
        not_before_ms: i64,
        not_after_ms: i64,
    },
    /// A grant's end moved (extension).
    GrantChanged {
        grant_id: String,
        identity: String,
        not_after_ms: i64,
    },
    /// A grant was revoked before its end.
    GrantRevoked {
        grant_id: String,
        identity: String,
        reason: String,
    },
    /// A standing assignment was removed: sessions it carried must be re-decided.
    AssignmentRemoved { assignment_id: String },
    /// An identity may no longer hold any access.
    IdentityDisabled { identity: String },
    /// A reviewer ended a live session from the web UI.
    SessionTerminated { session_id: String, by: String },
    /// Roles, targets, groups or assignments changed: re-decide live sessions.
    AccessChanged,
}

/// Capacity of the in-process broadcast. A subscriber that falls this far behind receives
/// `Lagged` and must re-check every session (treat it like `AccessChanged`).
pub const CAPACITY: usize = 1024;
