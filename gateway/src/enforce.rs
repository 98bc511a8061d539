//! Sessions die with their grant. Every live session is registered here with the request that
//! allowed it; on every access event (grant revoked or changed, identity disabled, assignment
//! removed, anything else) each one is decided again against the fresh catalog, and a session
//! the decision no longer allows is ended with its reason. Each session also sleeps until its
//! grant's end (a watch value the re-decision moves on extension). Events and timers, no polling.

use gatehouse_broker::SharedClock;
use gatehouse_broker::Store;
use gatehouse_broker::access::policy::{AccessRequest, CatalogCache, decide};
use gatehouse_broker::events::AccessEvent;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

/// Why a live session was ended by Gatehouse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    Expired,
    Revoked,
    IdentityDisabled,
    AccessRemoved,
    /// The access could not be re-checked (database unreachable): fail closed.
    CheckFailed,
    RecordingFailed,
    /// Data piled up past the hard flow limit with nobody reading it.
    Overflow,
    Shutdown,
    /// A reviewer terminated it.
    Terminated,
}

impl EndReason {
    /// As stored in `sessions.end_reason`.
    pub fn code(self) -> &'static str {
        match self {
            EndReason::Expired => "grant_expired",
            EndReason::Revoked => "grant_revoked",
            EndReason::IdentityDisabled => "identity_disabled",
            EndReason::AccessRemoved => "access_removed",
            EndReason::CheckFailed => "access_check_failed",
            EndReason::RecordingFailed => "recording_failed",
            EndReason::Overflow => "flow_overflow",
            EndReason::Shutdown => "gateway_shutdown",
            EndReason::Terminated => "terminated",
        }
    }

    /// The line the user sees.
    pub fn message(self) -> &'static str {
        match self {
            EndReason::Expired => "your access has expired",
            EndReason::Revoked => "your access was revoked",
            EndReason::IdentityDisabled => "your account was disabled",
            EndReason::AccessRemoved => "your access was removed",
            EndReason::CheckFailed => "your access could not be re-checked",
            EndReason::RecordingFailed => "the session could not be recorded",
            EndReason::Overflow => "too much data waited with nobody reading it",
            EndReason::Shutdown => "the gateway is shutting down",
            EndReason::Terminated => "a security reviewer ended this session",
        }
    }
}

/// One live session as enforcement sees it.
#[derive(Debug)]
pub struct LiveSession {
    pub id: String,
    /// The request that allowed it (decided again on every event).
    pub request: AccessRequest,
    /// The grant or assignment carrying it now.
    pub grant_id: Mutex<String>,
    /// When the carrying access ends (None: no end). Moved by extensions.
    pub deadline: watch::Sender<Option<i64>>,
    kill: CancellationToken,
    reason: Mutex<Option<EndReason>>,
}

impl LiveSession {
    pub fn new(
        id: String,
        request: AccessRequest,
        grant_id: String,
        deadline: Option<i64>,
    ) -> Self {
        LiveSession {
            id,
            request,
            grant_id: Mutex::new(grant_id),
            deadline: watch::Sender::new(deadline),
            kill: CancellationToken::new(),
            reason: Mutex::new(None),
        }
    }

    /// Ends the session with `reason` (the first reason given wins).
    pub fn end(&self, reason: EndReason) {
        if let Ok(mut r) = self.reason.lock()
            && r.is_none()
        {
            *r = Some(reason);
        }
        self.kill.cancel();
    }

    /// Resolves when the session is to end.
    pub async fn killed(&self) -> EndReason {
        self.kill.cancelled().await;
        self.reason().unwrap_or(EndReason::AccessRemoved)
    }

    pub fn reason(&self) -> Option<EndReason> {
        self.reason.lock().ok().and_then(|r| *r)
    }
}

/// Every live session of this gateway instance.
#[derive(Debug, Default)]
pub struct Live {
    sessions: Mutex<HashMap<String, Arc<LiveSession>>>,
}

impl Live {
    pub fn add(&self, s: Arc<LiveSession>) {
        if let Ok(mut m) = self.sessions.lock() {
            m.insert(s.id.clone(), s);
        }
    }

    pub fn remove(&self, id: &str) {
        if let Ok(mut m) = self.sessions.lock() {
            m.remove(id);
        }
    }

    pub fn all(&self) -> Vec<Arc<LiveSession>> {
        self.sessions
            .lock()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.sessions.lock().map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Ends every session (shutdown).
    pub fn end_all(&self, reason: EndReason) {
        for s in self.all() {
            s.end(reason);
        }
    }
}

/// Decides `s` again at `now_ms`. Still allowed: the deadline follows the carrying access and
/// None is returned; otherwise the reason to end it, `hint` naming what the event said.
pub fn recheck(
    cat: &gatehouse_broker::access::policy::Catalog,
    s: &LiveSession,
    now_ms: i64,
    hint: Option<EndReason>,
) -> Option<EndReason> {
    let d = decide(cat, &s.request, now_ms);
    match (d.allow, d.grant) {
        (true, Some(g)) => {
            if let Ok(mut id) = s.grant_id.lock() {
                *id = g.id;
            }
            s.deadline.send_replace(g.not_after_ms);
            None
        }
        _ => {
            if let Some(h) = hint {
                return Some(h);
            }
            let identity_gone = cat
                .identities
                .get(&s.request.identity)
                .is_none_or(|i| !i.active);
            Some(if identity_gone {
                EndReason::IdentityDisabled
            } else {
                EndReason::AccessRemoved
            })
        }
    }
}

/// Re-decides every live session against the current catalog; ends those no longer allowed.
pub async fn recheck_all(
    store: &Store,
    cache: &CatalogCache,
    clock: &SharedClock,
    live: &Live,
    event: Option<&AccessEvent>,
) {
    let sessions = live.all();
    if sessions.is_empty() {
        return;
    }
    let now = clock.now_ms();
    let catalog = match store.pool().acquire().await {
        Ok(mut conn) => cache.current(&mut conn, now).await,
        Err(e) => Err(e.into()),
    };
    let catalog = match catalog {
        Ok(c) => c,
        Err(e) => {
            // Fail closed: a change happened that cannot be checked.
            tracing::error!(error = %e, "cannot re-check live sessions after an access change; ending them");
            live.end_all(EndReason::CheckFailed);
            return;
        }
    };
    for s in sessions {
        if let Some(AccessEvent::SessionTerminated { session_id, by }) = event
            && *session_id == s.id
        {
            tracing::info!(session = %s.id, by, "ending session: terminated by a reviewer");
            s.end(EndReason::Terminated);
            continue;
        }
        let grant = s.grant_id.lock().map(|g| g.clone()).unwrap_or_default();
        let hint = match event {
            Some(AccessEvent::GrantRevoked { grant_id, .. }) if *grant_id == grant => {
                Some(EndReason::Revoked)
            }
            Some(AccessEvent::IdentityDisabled { identity }) if *identity == s.request.identity => {
                Some(EndReason::IdentityDisabled)
            }
            _ => None,
        };
        if let Some(reason) = recheck(&catalog, &s, now, hint) {
            tracing::info!(session = %s.id, reason = reason.code(), "ending session");
            s.end(reason);
        }
    }
}

/// Listens to the access event stream until `stop` and re-decides live sessions on each event.
pub async fn run(
    store: Store,
    cache: CatalogCache,
    clock: SharedClock,
    live: Arc<Live>,
    stop: CancellationToken,
) {
    let mut events = store.subscribe();
    loop {
        let received = tokio::select! {
            () = stop.cancelled() => return,
            e = events.recv() => e,
        };
        match step(received) {
            Step::Recheck(event) => {
                recheck_all(&store, &cache, &clock, &live, event.as_ref()).await;
            }
            Step::EndAll => {
                live.end_all(EndReason::CheckFailed);
                return;
            }
        }
    }
}

/// What the enforcer does with what the event stream gave it.
#[derive(Debug, PartialEq)]
enum Step {
    /// Re-decide every live session, with the event as a hint (none: events were missed, so
    /// nothing is known about what changed).
    Recheck(Option<AccessEvent>),
    /// The stream is gone: no change can be seen any more, so every live session ends.
    EndAll,
}

fn step(received: Result<AccessEvent, broadcast::error::RecvError>) -> Step {
    match received {
        Ok(e) => Step::Recheck(Some(e)),
        Err(broadcast::error::RecvError::Lagged(n)) => {
            tracing::warn!(
                missed = n,
                "access events were missed; re-checking every session"
            );
            Step::Recheck(None)
        }
        Err(broadcast::error::RecvError::Closed) => {
            tracing::error!("the access event stream closed; ending live sessions");
            Step::EndAll
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn security_missed_events_recheck_every_session_and_a_closed_stream_ends_them() {
        let (tx, mut rx) = broadcast::channel(1);
        let revoked = |n: u32| AccessEvent::IdentityDisabled {
            identity: format!("i{n}"),
        };
        tx.send(revoked(1)).unwrap();
        assert_eq!(step(rx.recv().await), Step::Recheck(Some(revoked(1))));
        // Three events into a queue of one: two are lost, and what was lost is unknown.
        for n in 2..5 {
            tx.send(revoked(n)).unwrap();
        }
        assert_eq!(step(rx.recv().await), Step::Recheck(None));
        assert_eq!(step(rx.recv().await), Step::Recheck(Some(revoked(4))));
        drop(tx);
        assert_eq!(step(rx.recv().await), Step::EndAll);
    }
}
