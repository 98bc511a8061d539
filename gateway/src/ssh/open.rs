//! What happens when a client opens a channel: the broker decides (audited), then either the
//! menu, a denial that reveals nothing, or a bridged session — upstream connection shared by the
//! connection's channels, a `sessions` row, registration with enforcement, the bridge, and at
//! the end the recording's signed manifest and the session's end.

use super::Shared;
use super::bridge::{self, Bridge};
use super::target::{self, Destination};
use super::upstream::{self, TargetInfo, Upstream};
use crate::enforce::LiveSession;
use crate::keys::CertRequest;
use gatehouse_broker::access::policy::{self, AccessRequest, Decision, reach};
use gatehouse_broker::access::{sessions, targets};
use russh::server::{self, ChannelOpenHandle, Msg};
use russh::{Channel, ChannelMsg, ChannelOpenFailure, client};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Who is connected, once their signature verified.
#[derive(Debug, Clone)]
pub struct Who {
    pub id: String,
    pub username: String,
    /// The SSH user they connected as (the destination).
    pub ssh_user: String,
}

/// What the channels of one connection share.
pub struct Conn {
    pub shared: Arc<Shared>,
    pub peer: SocketAddr,
    pub local: Option<SocketAddr>,
    /// The connection to the target, with the login it logged in as.
    upstream: tokio::sync::Mutex<Option<(String, Arc<client::Handle<Upstream>>)>>,
    /// When this connection passed a second factor at login, if it did.
    mfa_at_ms: std::sync::Mutex<Option<i64>>,
}

impl Conn {
    pub fn new(shared: Arc<Shared>, peer: SocketAddr, local: Option<SocketAddr>) -> Self {
        Conn {
            shared,
            peer,
            local,
            upstream: tokio::sync::Mutex::new(None),
            mfa_at_ms: std::sync::Mutex::new(None),
        }
    }

    pub fn set_mfa_at(&self, ms: i64) {
        if let Ok(mut m) = self.mfa_at_ms.lock() {
            *m = Some(ms);
        }
    }

    pub fn mfa_at(&self) -> Option<i64> {
        self.mfa_at_ms.lock().ok().and_then(|m| *m)
    }

    /// The connection to the target, made on first use.
    async fn upstream(
        &self,
        who: &Who,
        target: &TargetInfo,
        login: &str,
        d: &Decision,
        session_id: &str,
    ) -> crate::Result<Arc<client::Handle<Upstream>>> {
        let mut slot = self.upstream.lock().await;
        match slot.take() {
            // Reused only for the same login (a single-word destination may be decided to
            // another login later on the same connection).
            Some((l, h)) if l == login && !h.is_closed() => {
                *slot = Some((l, h.clone()));
                return Ok(h);
            }
            Some((_, old)) => disconnect(old),
            None => {}
        }
        let grant = d.grant.as_ref();
        let now = self.shared.clock.now_ms();
        let vaulted = {
            let mut c = self
                .shared
                .store
                .pool()
                .acquire()
                .await
                .map_err(gatehouse_broker::Error::from)?;
            gatehouse_broker::access::credentials::open(
                &mut c,
                &target.name,
                login,
                &self.shared.sealing,
            )
            .await?
        };
        let credential = match vaulted {
            Some(pem) => upstream::Credential::Vaulted {
                login,
                key: Box::new(crate::keys::parse_private(&pem)?),
            },
            None => upstream::Credential::Certificate {
                ca: &self.shared.user_ca,
                request: CertRequest {
                    login,
                    identity: &who.username,
                    session_id,
                    now_unix: u64::try_from(now / 1000).unwrap_or(0),
                    not_after_unix: grant
                        .and_then(|g| g.not_after_ms)
                        .map(|t| u64::try_from(t / 1000).unwrap_or(0)),
                    port_forwarding: grant.is_some_and(|g| g.port_forwarding),
                },
            },
        };
        let connected = upstream::connect(target, credential).await?;
        if let Some(key) = &connected.learned_host_key {
            let mut tx = self.shared.store.begin().await?;
            targets::learn_host_key(&mut tx, now, &target.name, key).await?;
            tx.commit().await?;
            tracing::info!(target = %target.name, "learned the target's host key (trust on first use)");
        }
        let h = Arc::new(connected.handle);
        *slot = Some((login.to_string(), h.clone()));
        Ok(h)
    }

    /// Drops the connection to the target (after a session was ended by Gatehouse: the next
    /// channel reconnects with a credential for its own decision).
    pub async fn drop_upstream(&self) {
        if let Some((_, h)) = self.upstream.lock().await.take() {
            disconnect(h);
        }
    }
}

fn disconnect(h: Arc<client::Handle<Upstream>>) {
    tokio::spawn(async move {
        let _ = h.disconnect(russh::Disconnect::ByApplication, "", "").await;
    });
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some((_, h)) = self.upstream.get_mut().take()
            && tokio::runtime::Handle::try_current().is_ok()
        {
            disconnect(h);
        }
    }
}

/// The denial every refused destination gets, whether it exists or not.
fn denial(host: &str, port: u16) -> String {
    format!(
        "gatehouse: access denied (no such target, or no live access to it with this login). Run `ssh -p {port} {host}` to list what you may reach.\r\n"
    )
}

fn where_we_are(conn: &Conn) -> (String, u16) {
    match conn.local {
        Some(a) => (a.ip().to_string(), a.port()),
        None => ("gatehouse".into(), 22),
    }
}

/// A session channel was opened.
pub(super) async fn session(
    conn: Arc<Conn>,
    who: Who,
    channel: Channel<Msg>,
    reply: ChannelOpenHandle,
    handle: server::Handle,
) {
    let shared = conn.shared.clone();
    let (host, port) = where_we_are(&conn);
    let now = shared.clock.now_ms();
    let template = AccessRequest {
        identity: who.username.clone(),
        protocol: "ssh".into(),
        source_ip: Some(conn.peer.ip()),
        mfa_at_ms: conn.mfa_at(),
        ..Default::default()
    };
    let catalog = match shared.store.pool().acquire().await {
        Ok(mut c) => shared.cache.current(&mut c, now).await.ok(),
        Err(_) => None,
    };
    let Some(catalog) = catalog else {
        // Fail closed.
        tracing::error!("cannot load the access catalog; refusing the session");
        reply.accept().await;
        respond(
            channel,
            "gatehouse: temporarily unavailable, try again later\r\n",
            1,
        )
        .await;
        return;
    };
    let (target_name, login, word) = match target::parse(&who.ssh_user) {
        Destination::Explicit { login, target } => (target, Some(login), false),
        Destination::Word(w) => (w, None, true),
    };
    let menu = || {
        let reach = reach::reachable(&catalog, &template, now);
        let requestable = reach::requestable(&catalog, &who.username);
        super::menu::text(&who.username, &reach, &requestable, &host, port)
    };
    if word && !catalog.targets.contains_key(&target_name) {
        reply.accept().await;
        respond(channel, &menu(), 0).await;
        return;
    }
    let request = AccessRequest {
        target: target_name.clone(),
        login: login.clone(),
        ..template.clone()
    };
    let decision = policy::authorize(&shared.store, &shared.cache, now, &request).await;
    let decision = match decision {
        Ok(d) if d.allow => d,
        other => {
            let reasons = match other {
                Ok(d) => d.reasons,
                Err(e) => vec![format!("could not decide: {e}")],
            };
            audit_denied(&shared, &who, &request, &conn, &reasons).await;
            reply.accept().await;
            if word {
                respond(channel, &menu(), 1).await;
            } else {
                respond(channel, &denial(&host, port), 1).await;
            }
            return;
        }
    };
    let login = decision.login.clone().unwrap_or_default();
    let grant = decision.grant.clone();
    let session_id = gatehouse_broker::ids::new_id();

    // The target's address and pinned key.
    let target = match shared.store.pool().acquire().await {
        Ok(mut c) => targets::by_name(&mut c, &target_name).await.ok().flatten(),
        Err(_) => None,
    };
    let Some(target) = target else {
        reply.accept().await;
        respond(channel, &denial(&host, port), 1).await;
        return;
    };
    let info = TargetInfo {
        name: target.name.clone(),
        address: target.address.clone(),
        host_key: target.host_key.clone(),
    };
    let up = match conn
        .upstream(&who, &info, &login, &decision, &session_id)
        .await
    {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(target = %info.name, error = %e, "cannot reach the target");
            audit_denied(&shared, &who, &request, &conn, &[e.to_string()]).await;
            reply.accept().await;
            respond(
                channel,
                &format!("gatehouse: cannot reach {} right now\r\n", info.name),
                1,
            )
            .await;
            return;
        }
    };
    let up_channel = match up.channel_open_session().await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(target = %info.name, error = %e, "the target refused a session channel");
            reply.reject(ChannelOpenFailure::ConnectFailed).await;
            return;
        }
    };
    let grant = grant.unwrap_or_else(|| policy::GrantRef {
        kind: "standing".into(),
        id: String::new(),
        role: String::new(),
        not_after_ms: None,
        port_forwarding: false,
    });
    let row = sessions::NewSession {
        id: session_id.clone(),
        identity_id: who.id.clone(),
        identity: who.username.clone(),
        target: info.name.clone(),
        login: login.clone(),
        protocol: "ssh".into(),
        kind: "session".into(),
        grant_kind: grant.kind.clone(),
        grant_id: grant.id.clone(),
        source: conn.peer.to_string(),
    };
    let started = async {
        let mut tx = shared.store.begin().await?;
        sessions::start(&mut tx, now, &row).await?;
        tx.commit().await
    };
    if let Err(e) = started.await {
        tracing::error!(error = %e, "cannot record the session start; refusing it");
        reply.reject(ChannelOpenFailure::ResourceShortage).await;
        return;
    }
    let live = Arc::new(LiveSession::new(
        session_id.clone(),
        AccessRequest {
            login: Some(login.clone()),
            ..request
        },
        grant.id.clone(),
        grant.not_after_ms,
    ));
    shared.live.add(live.clone());
    // An access event between the decision and the registration above was not seen by the
    // enforcement loop: decide once more now that the session is registered.
    recheck_now(&shared, &live).await;
    reply.accept().await;
    let ended = bridge::run(
        Bridge {
            shared: shared.clone(),
            live: live.clone(),
            handle,
            identity: who.username.clone(),
            target: info.name.clone(),
            login: login.clone(),
            grant: format!("{}:{}", grant.kind, grant.id),
            source: conn.peer.to_string(),
            started_ms: now,
        },
        channel,
        up_channel,
    )
    .await;
    shared.live.remove(&session_id);
    if live.reason().is_some() {
        conn.drop_upstream().await;
    }
    let finished = async {
        let mut tx = shared.store.begin().await?;
        sessions::end(&mut tx, shared.clock.now_ms(), &session_id, &ended).await?;
        tx.commit().await
    };
    if let Err(e) = finished.await {
        tracing::error!(session = %session_id, error = %e, "cannot record the session end");
    }
}

async fn audit_denied(
    shared: &Shared,
    who: &Who,
    request: &AccessRequest,
    conn: &Conn,
    reasons: &[String],
) {
    let done = async {
        let mut tx = shared.store.begin().await?;
        sessions::denied(
            &mut tx,
            shared.clock.now_ms(),
            &who.username,
            &request.target,
            request.login.as_deref().unwrap_or(""),
            &conn.peer.to_string(),
            reasons,
        )
        .await?;
        tx.commit().await
    };
    if let Err(e) = done.await {
        tracing::error!(error = %e, "cannot audit a denied session");
    }
}

/// Answers a channel that will not reach a target: waits for its shell, exec or subsystem
/// request, writes `text` (standard output for the menu, standard error for a denial), the exit
/// status, and closes.
pub(super) async fn respond(mut channel: Channel<Msg>, text: &str, status: u32) {
    let work = async {
        while let Some(msg) = channel.wait().await {
            match msg {
                ChannelMsg::RequestShell { .. }
                | ChannelMsg::Exec { .. }
                | ChannelMsg::RequestSubsystem { .. } => {
                    let bytes = text.as_bytes().to_vec();
                    let _ = if status == 0 {
                        channel.data_bytes(bytes).await
                    } else {
                        channel.extended_data_bytes(1, bytes).await
                    };
                    let _ = channel.exit_status(status).await;
                    let _ = channel.eof().await;
                    break;
                }
                ChannelMsg::Close | ChannelMsg::Eof => break,
                _ => {}
            }
        }
        let _ = channel.close().await;
    };
    let _ = tokio::time::timeout(Duration::from_secs(30), work).await;
}

/// Where a `direct-tcpip` channel wants to go.
#[derive(Debug, Clone)]
pub struct ForwardTo {
    pub host: String,
    pub port: u32,
    pub from_address: String,
    pub from_port: u32,
}

/// A local port forward (`ssh -L`): allowed only when the access carrying the connection allows
/// forwarding; decided and audited like a session, then bytes are bridged as they are.
pub(super) async fn forward(
    conn: Arc<Conn>,
    who: Who,
    channel: Channel<Msg>,
    reply: ChannelOpenHandle,
    to: ForwardTo,
) {
    let shared = conn.shared.clone();
    let now = shared.clock.now_ms();
    let (target_name, login) = match target::parse(&who.ssh_user) {
        Destination::Explicit { login, target } => (target, Some(login)),
        Destination::Word(w) => (w, None),
    };
    let request = AccessRequest {
        identity: who.username.clone(),
        protocol: "ssh".into(),
        target: target_name,
        login,
        source_ip: Some(conn.peer.ip()),
        mfa_at_ms: conn.mfa_at(),
        ..Default::default()
    };
    let decision = policy::authorize(&shared.store, &shared.cache, now, &request).await;
    let allowed = matches!(&decision, Ok(d) if d.allow && d.grant.as_ref().is_some_and(|g| g.port_forwarding));
    let detail = format!("port forward to {}:{}", to.host, to.port);
    if !allowed {
        audit_denied(
            &shared,
            &who,
            &request,
            &conn,
            &[format!("{detail} not allowed")],
        )
        .await;
        reply
            .reject(ChannelOpenFailure::AdministrativelyProhibited)
            .await;
        return;
    }
    // The connection to the target (made here for `ssh -N -L`, which opens no session).
    let Ok(d) = &decision else {
        return;
    };
    let target = match shared.store.pool().acquire().await {
        Ok(mut c) => targets::by_name(&mut c, &request.target)
            .await
            .ok()
            .flatten(),
        Err(_) => None,
    };
    let Some(target) = target else {
        reply.reject(ChannelOpenFailure::ConnectFailed).await;
        return;
    };
    let info = TargetInfo {
        name: target.name.clone(),
        address: target.address.clone(),
        host_key: target.host_key.clone(),
    };
    let login = d.login.clone().unwrap_or_default();
    let session_id = gatehouse_broker::ids::new_id();
    let up = match conn.upstream(&who, &info, &login, d, &session_id).await {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(target = %info.name, error = %e, "cannot reach the target for a forward");
            reply.reject(ChannelOpenFailure::ConnectFailed).await;
            return;
        }
    };
    let up_channel = match up
        .channel_open_direct_tcpip(
            to.host.clone(),
            to.port,
            to.from_address.clone(),
            to.from_port,
        )
        .await
    {
        Ok(c) => c,
        Err(_) => {
            reply.reject(ChannelOpenFailure::ConnectFailed).await;
            return;
        }
    };
    let audited = async {
        let mut tx = shared.store.begin().await?;
        gatehouse_broker::ledger::audit::append(
            &mut tx,
            now,
            gatehouse_broker::ledger::audit::NewEvent::new(
                format!("identity:{}", who.username),
                "session.forward",
                format!("target:{}", request.target),
            )
            .outcome(gatehouse_broker::ledger::audit::Outcome::Allow)
            .details(serde_json::json!({ "host": to.host, "port": to.port, "source": conn.peer.to_string() })),
        )
        .await?;
        tx.commit().await
    };
    if let Err(e) = audited.await {
        tracing::error!(error = %e, "cannot audit a port forward; refusing it");
        reply.reject(ChannelOpenFailure::ResourceShortage).await;
        return;
    }
    // Enforced like a session: it ends when its access ends.
    let Ok(d) = decision else {
        return;
    };
    let grant = d.grant.clone().unwrap_or_else(|| policy::GrantRef {
        kind: "standing".into(),
        id: String::new(),
        role: String::new(),
        not_after_ms: None,
        port_forwarding: false,
    });
    let live = Arc::new(LiveSession::new(
        format!("forward-{}", gatehouse_broker::ids::new_id()),
        AccessRequest {
            login: d.login.clone(),
            ..request
        },
        grant.id,
        grant.not_after_ms,
    ));
    shared.live.add(live.clone());
    recheck_now(&shared, &live).await;
    reply.accept().await;
    bridge::raw(&shared, &live, channel, up_channel).await;
    shared.live.remove(&live.id);
}

/// Whether the destination `who` asked for is allowed only with a second factor: denied without
/// one, allowed with one given now. Not audited (the session's own decision is).
pub(super) async fn needs_second_factor(shared: &Shared, who: &Who, peer: SocketAddr) -> bool {
    let now = shared.clock.now_ms();
    let catalog = match shared.store.pool().acquire().await {
        Ok(mut c) => shared.cache.current(&mut c, now).await.ok(),
        Err(_) => None,
    };
    let Some(catalog) = catalog else {
        return false;
    };
    let (target, login) = match target::parse(&who.ssh_user) {
        Destination::Explicit { login, target } => (target, Some(login)),
        Destination::Word(w) => (w, None),
    };
    let mut req = AccessRequest {
        identity: who.username.clone(),
        protocol: "ssh".into(),
        target,
        login,
        source_ip: Some(peer.ip()),
        ..Default::default()
    };
    if policy::decide(&catalog, &req, now).allow {
        return false;
    }
    req.mfa_at_ms = Some(now);
    policy::decide(&catalog, &req, now).allow
}

/// Decides a just-registered session again; ends it when it is no longer allowed.
async fn recheck_now(shared: &Shared, live: &LiveSession) {
    let now = shared.clock.now_ms();
    let cat = match shared.store.pool().acquire().await {
        Ok(mut c) => shared.cache.current(&mut c, now).await.ok(),
        Err(_) => None,
    };
    let verdict = match cat {
        Some(cat) => crate::enforce::recheck(&cat, live, now, None),
        None => Some(crate::enforce::EndReason::CheckFailed),
    };
    if let Some(reason) = verdict {
        live.end(reason);
    }
}
