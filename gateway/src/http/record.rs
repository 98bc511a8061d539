//! App sessions as sessions: the first allowed request of an app session opens a `sessions` row
//! (protocol `http`, kind `app`, login empty) and its request log
//! ([`gatehouse_recordings::requests`], `YYYY/MM/DD/ROW.requests.jsonl` under the recordings
//! directory); every proxied request adds a line when its response body is done (bytes counted
//! as they stream); the row ends — counters, the log closed with its signed manifest — when the
//! app session's access ends, at `/.gatehouse/logout`, when the app session is gone or expired,
//! or when the gateway stops. The row is a live session of the enforcement registry (its id the
//! row's): revocation, expiry, a disabled identity or a reviewer's Terminate end it at once, with
//! its open websockets (Terminate also ends the app session, so its cookie is dead); otherwise a
//! denied next request does. One writer task per app session owns the file; requests hand it
//! lines through a bounded queue and never wait on the disk.

use super::Shared;
use super::signin::Who;
use crate::enforce::{EndReason, LiveSession};
use gatehouse_broker::access::policy::{AccessRequest, GrantRef};
use gatehouse_broker::access::sessions::{self, End, NewSession};
use gatehouse_broker::access::targets::Target;
use gatehouse_broker::clock::format_ms;
use gatehouse_recordings::manifest::{self, SessionInfo};
use gatehouse_recordings::requests::{self, RequestWriter};
use hyper::body::{Body as HttpBody, Bytes, Frame, SizeHint};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Most app sessions recorded at once; past it the one idle longest is ended (`evicted`).
pub const MAX_LIVE: usize = 10_000;
/// Most app sessions of one identity recorded at once; past it that identity's idlest is
/// ended, so nobody can push other people's sessions out by opening many of their own.
pub const MAX_PER_IDENTITY: usize = 32;
/// Lines waiting for the writer per app session; past it lines are counted, not queued.
const QUEUE: usize = 1024;
/// How often the recorded app sessions are checked (expired, signed out, identity gone)...
pub const SWEEP_EVERY: Duration = Duration::from_secs(10);
/// ...and how soon after this process learns of a change (a sign-out at the web UI, an access
/// event: [`gatehouse_broker::Store::generation`]).
pub const SWEEP_SOON: Duration = Duration::from_secs(1);
/// Longest wait for a writer to close its log and sign it.
const FINISH_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for the session's websockets to log their close before the log ends.
const WS_CLOSE_WAIT: Duration = Duration::from_secs(1);

enum Msg {
    Request(Instant, requests::Request),
    WsOpen(Instant, String),
    WsClose(WsClosed),
    End(String),
}

/// A websocket that closed: bytes and messages each way (in: client to app, out: app to
/// client), how long it was open, and why when the gateway closed it.
#[derive(Debug)]
pub struct WsClosed {
    pub path: String,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub messages_in: u64,
    pub messages_out: u64,
    pub open: Duration,
    pub reason: Option<String>,
}

/// One recorded app session.
#[derive(Debug)]
pub struct Rec {
    /// The `sessions` row.
    pub row_id: String,
    /// Whose session it is (identity id).
    identity_id: String,
    expires_at_ms: i64,
    tx: mpsc::Sender<Msg>,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<Option<String>>>>,
    requests: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
    last_ms: AtomicI64,
    dropped: AtomicU64,
    /// Cancelled when the session ends: its websockets close.
    closed: CancellationToken,
    reason: std::sync::Mutex<Option<String>>,
    websockets: AtomicUsize,
}

impl Rec {
    /// Resolves when the session ends; its end reason.
    pub async fn ended(&self) -> String {
        self.closed.cancelled().await;
        self.reason
            .lock()
            .ok()
            .and_then(|r| r.clone())
            .unwrap_or_else(|| "session_ended".into())
    }

    /// A websocket of this session opened (its close is logged before the session's end).
    pub fn ws_started(&self) {
        self.websockets.fetch_add(1, Ordering::SeqCst);
    }

    fn send(&self, m: Msg) {
        if self.tx.try_send(m).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A websocket the app accepted.
    pub fn ws_open(&self, path: &str) {
        self.send(Msg::WsOpen(Instant::now(), path.to_string()));
    }

    /// A websocket closed (see [`WsClosed`]).
    pub fn ws_close(&self, closed: WsClosed) {
        self.bytes_up.fetch_add(closed.bytes_in, Ordering::Relaxed);
        self.bytes_down
            .fetch_add(closed.bytes_out, Ordering::Relaxed);
        self.send(Msg::WsClose(closed));
        self.websockets.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The recorded app sessions of one gateway, by app session id.
#[derive(Debug, Default)]
pub struct Recorders {
    map: std::sync::Mutex<HashMap<String, Arc<Rec>>>,
    /// Serialises opening, so two first requests at once make one row.
    opening: tokio::sync::Mutex<()>,
}

impl Recorders {
    fn get(&self, app_session: &str) -> Option<Arc<Rec>> {
        self.map.lock().ok()?.get(app_session).cloned()
    }

    fn take(&self, app_session: &str) -> Option<Arc<Rec>> {
        self.map.lock().ok()?.remove(app_session)
    }

    /// How many app sessions are being recorded.
    pub fn len(&self) -> usize {
        self.map.lock().map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The recorded app session to end before another of `identity` opens: that identity's idlest
/// when it has [`MAX_PER_IDENTITY`], else anyone's idlest when there are [`MAX_LIVE`].
fn to_evict(shared: &Shared, identity: &str) -> Option<String> {
    let map = shared.recorders.map.lock().ok()?;
    let idlest = |only: Option<&str>| {
        map.iter()
            .filter(|(_, r)| only.is_none_or(|i| r.identity_id == i))
            .min_by_key(|(_, r)| r.last_ms.load(Ordering::Relaxed))
            .map(|(k, _)| k.clone())
    };
    let own = map.values().filter(|r| r.identity_id == identity).count();
    if own >= MAX_PER_IDENTITY {
        idlest(Some(identity))
    } else if map.len() >= MAX_LIVE {
        idlest(None)
    } else {
        None
    }
}

/// The recorder of `who`'s app session, opened (row and log) on its first allowed request.
/// `None` when the row cannot be written, or the log cannot and recording is strict: the
/// request is then refused.
pub async fn open(
    shared: &Arc<Shared>,
    target: &Target,
    who: &Who,
    grant: &GrantRef,
    request: &AccessRequest,
    peer: SocketAddr,
) -> Option<Arc<Rec>> {
    let now = shared.clock.now_ms();
    if let Some(r) = shared.recorders.get(&who.session.id) {
        r.last_ms.store(now, Ordering::Relaxed);
        return Some(r);
    }
    let _opening = shared.recorders.opening.lock().await;
    if let Some(r) = shared.recorders.get(&who.session.id) {
        return Some(r);
    }
    if let Some(k) = to_evict(shared, &who.identity.id) {
        end(shared, &k, "evicted").await;
    }
    let row = NewSession {
        id: gatehouse_broker::ids::new_id(),
        identity_id: who.identity.id.clone(),
        identity: who.identity.username.clone(),
        target: target.name.clone(),
        login: String::new(),
        protocol: "http".into(),
        kind: "app".into(),
        grant_kind: grant.kind.clone(),
        grant_id: grant.id.clone(),
        source: peer.to_string(),
    };
    let started = async {
        let mut tx = shared.store.begin().await?;
        sessions::start(&mut tx, now, &row).await?;
        tx.commit().await
    };
    if let Err(e) = started.await {
        tracing::error!(error = %e, "app gateway: cannot record the session start; refusing");
        return None;
    }
    let rel = requests::relative_path(now, &row.id);
    let header = requests::Header {
        format: requests::FORMAT.into(),
        session: row.id.clone(),
        identity: row.identity.clone(),
        app: row.target.clone(),
        timestamp: now / 1000,
    };
    let writer = match RequestWriter::create(&shared.settings.recordings_dir.join(&rel), &header)
        .await
    {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::error!(session = %row.id, error = %e, "app gateway: cannot create the request log");
            if shared.settings.strict_recording {
                end_row(shared, &row.id, "recording_failed", 0, 0, 0, None).await;
                return None;
            }
            None
        }
    };
    let info = SessionInfo {
        id: row.id.clone(),
        identity: row.identity.clone(),
        target: row.target.clone(),
        login: String::new(),
        grant: format!("{}:{}", grant.kind, grant.id),
        kind: "app".into(),
        source: row.source.clone(),
        started_at: format_ms(now),
        ended_at: String::new(),
    };
    let (tx, rx) = mpsc::channel(QUEUE);
    let task = tokio::spawn(write(shared.clone_for_writer(), writer, rx, info, rel));
    let rec = Arc::new(Rec {
        row_id: row.id,
        identity_id: who.identity.id.clone(),
        expires_at_ms: who.session.expires_at_ms,
        tx,
        task: std::sync::Mutex::new(Some(task)),
        requests: AtomicU64::new(0),
        bytes_up: AtomicU64::new(0),
        bytes_down: AtomicU64::new(0),
        last_ms: AtomicI64::new(now),
        dropped: AtomicU64::new(0),
        closed: CancellationToken::new(),
        reason: std::sync::Mutex::new(None),
        websockets: AtomicUsize::new(0),
    });
    if let Ok(mut m) = shared.recorders.map.lock() {
        m.insert(who.session.id.clone(), rec.clone());
    }
    // Enforcement: the row lives while its access does.
    let live = Arc::new(LiveSession::new(
        rec.row_id.clone(),
        request.clone(),
        grant.id.clone(),
        grant.not_after_ms,
    ));
    shared.live.add(live.clone());
    tokio::spawn(watch(shared.clone(), rec.clone(), live, who.clone()));
    Some(rec)
}

/// Ends the session when enforcement does (access gone, expired, terminated).
async fn watch(shared: Arc<Shared>, rec: Arc<Rec>, live: Arc<LiveSession>, who: Who) {
    let reason = tokio::select! {
        r = live.killed() => r,
        () = super::proxy::until_deadline(&live, shared.clock.clone()) => EndReason::Expired,
        () = rec.closed.cancelled() => return,
    };
    if reason == EndReason::Terminated {
        // A reviewer's Terminate ends the app session too: its cookie lets nobody back in.
        let ended = async {
            let mut tx = shared.store.begin().await?;
            gatehouse_broker::access::apps::end(
                &mut tx,
                shared.clock.now_ms(),
                &who.session,
                &who.identity.username,
                "terminated",
            )
            .await?;
            tx.commit().await
        };
        if let Err(e) = ended.await {
            tracing::error!(error = %e, "app gateway: cannot end a terminated app session");
        }
    }
    tracing::info!(session = %rec.row_id, reason = reason.code(), "app gateway: app session ended with its access");
    end(&shared, &who.session.id, reason.code()).await;
}

/// What the writer task needs of the gateway to sign the manifest.
pub(crate) struct ForWriter {
    pub clock: gatehouse_broker::SharedClock,
    pub signer: Arc<gatehouse_broker::keys::SigningKeyPair>,
}

/// Owns the log: writes lines, flushes at least once a second, and at the end closes and signs
/// it. Returns the log's path under the recordings directory when it was signed.
async fn write(
    ctx: ForWriter,
    mut writer: Option<RequestWriter>,
    mut rx: mpsc::Receiver<Msg>,
    mut info: SessionInfo,
    rel: std::path::PathBuf,
) -> Option<String> {
    let mut tick = tokio::time::interval(gatehouse_recordings::cast::FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let reason = loop {
        let msg = tokio::select! {
            m = rx.recv() => m,
            _ = tick.tick() => {
                if let Some(w) = writer.as_mut() && let Err(e) = w.flush_if_due().await {
                    tracing::error!(session = %info.id, error = %e, "app gateway: request log write failed");
                    writer = None;
                }
                continue;
            }
        };
        let Some(w) = writer.as_mut() else {
            match msg {
                Some(Msg::End(reason)) => break reason,
                None => break "gateway_stopped".to_string(),
                Some(_) => continue,
            }
        };
        let written = match msg {
            Some(Msg::Request(at, r)) => w.request(at, &r).await,
            Some(Msg::WsOpen(at, path)) => w.ws_open(at, &path).await,
            Some(Msg::WsClose(c)) => {
                w.ws_close(&requests::WsClose {
                    path: &c.path,
                    bytes_in: c.bytes_in,
                    bytes_out: c.bytes_out,
                    messages_in: c.messages_in,
                    messages_out: c.messages_out,
                    duration_ms: u64::try_from(c.open.as_millis()).unwrap_or(u64::MAX),
                    reason: c.reason.as_deref(),
                })
                .await
            }
            Some(Msg::End(reason)) => break reason,
            None => break "gateway_stopped".to_string(),
        };
        if let Err(e) = written {
            tracing::error!(session = %info.id, error = %e, "app gateway: request log write failed");
            writer = None;
        }
    };
    let w = writer?;
    let summary = match w.finish(&reason).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(session = %info.id, error = %e, "app gateway: cannot finish the request log");
            return None;
        }
    };
    info.ended_at = format_ms(ctx.clock.now_ms());
    let id = info.id.clone();
    let signer = ctx.signer.clone();
    let public = signer.public().to_string();
    match manifest::write(&summary, info, &reason, &public, |m| signer.sign(m)) {
        Ok(_) => Some(rel.display().to_string()),
        Err(e) => {
            tracing::error!(session = %id, error = %e, "app gateway: cannot write the request log's manifest");
            None
        }
    }
}

/// Ends the recorded app session `app_session` (if recorded here): its log closed and signed,
/// then its row ended with `reason`, the counters and the log's path.
pub async fn end(shared: &Shared, app_session: &str, reason: &str) {
    let Some(rec) = shared.recorders.take(app_session) else {
        return;
    };
    shared.live.remove(&rec.row_id);
    if let Ok(mut r) = rec.reason.lock() {
        *r = Some(reason.to_string());
    }
    rec.closed.cancel();
    // Its websockets close now and log it before the log ends.
    let _ = tokio::time::timeout(WS_CLOSE_WAIT, async {
        while rec.websockets.load(Ordering::SeqCst) > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let dropped = rec.dropped.load(Ordering::Relaxed);
    if dropped > 0 {
        tracing::warn!(session = %rec.row_id, dropped, "app gateway: request log lines were dropped (writer behind)");
    }
    let _ = rec.tx.send(Msg::End(reason.to_string())).await;
    let task = rec.task.lock().ok().and_then(|mut t| t.take());
    let recording = match task {
        Some(t) => tokio::time::timeout(FINISH_TIMEOUT, t)
            .await
            .ok()
            .and_then(Result::ok)
            .flatten(),
        None => None,
    };
    end_row(
        shared,
        &rec.row_id,
        reason,
        rec.requests.load(Ordering::Relaxed),
        rec.bytes_up.load(Ordering::Relaxed),
        rec.bytes_down.load(Ordering::Relaxed),
        recording,
    )
    .await;
}

async fn end_row(
    shared: &Shared,
    row_id: &str,
    reason: &str,
    requests: u64,
    bytes_up: u64,
    bytes_down: u64,
    recording: Option<String>,
) {
    let ended = async {
        let mut tx = shared.store.begin().await?;
        sessions::end(
            &mut tx,
            shared.clock.now_ms(),
            row_id,
            &End {
                reason: reason.into(),
                bytes_up,
                bytes_down,
                recording,
                kind: None,
                requests: Some(requests),
            },
        )
        .await?;
        tx.commit().await
    };
    if let Err(e) = ended.await {
        tracing::error!(session = %row_id, error = %e, "app gateway: cannot record the session end");
    }
}

/// A request of a recorded app session was denied: its line (403), then the session's end
/// (`access_ended`).
pub async fn denied(
    shared: &Shared,
    app_session: &str,
    req: &hyper::Request<hyper::body::Incoming>,
) {
    let Some(rec) = shared.recorders.get(app_session) else {
        return;
    };
    rec.requests.fetch_add(1, Ordering::Relaxed);
    rec.send(Msg::Request(
        Instant::now(),
        requests::Request {
            method: req.method().as_str().to_string(),
            path: req
                .uri()
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_else(|| "/".into()),
            status: 403,
            bytes_in: 0,
            bytes_out: 0,
            duration_ms: 0,
        },
    ));
    end(shared, app_session, "access_ended").await;
}

/// Ends every recorded app session (the gateway stops).
pub async fn end_all(shared: &Shared, reason: &str) {
    let keys: Vec<String> = shared
        .recorders
        .map
        .lock()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    for k in keys {
        end(shared, &k, reason).await;
    }
}

/// Ends the recorded app sessions past their app session's expiry, and those whose app session
/// is gone (signed out of the web UI, idle there, a factor change, logout elsewhere), with
/// their open websockets.
pub async fn sweep(shared: &Shared) {
    let now = shared.clock.now_ms();
    let (expired, live): (Vec<String>, Vec<String>) = shared
        .recorders
        .map
        .lock()
        .map(|m| {
            let (e, l): (Vec<_>, Vec<_>) = m.iter().partition(|(_, r)| r.expires_at_ms <= now);
            (
                e.into_iter().map(|(k, _)| k.clone()).collect(),
                l.into_iter().map(|(k, _)| k.clone()).collect(),
            )
        })
        .unwrap_or_default();
    for k in expired {
        end(shared, &k, "app_session_expired").await;
    }
    for k in live {
        let alive = match shared.store.pool().acquire().await {
            Ok(mut c) => gatehouse_broker::access::apps::alive(&mut c, &k, now).await,
            Err(e) => Err(e.into()),
        };
        match alive {
            Ok(true) => {}
            Ok(false) => end(shared, &k, "session_ended").await,
            // Fail closed: a session that cannot be checked ends.
            Err(e) => {
                tracing::warn!(error = %e, "app gateway: cannot check an app session; ending it");
                end(shared, &k, "access_check_failed").await;
            }
        }
    }
}

/// The request side of a proxied request: counts the body's bytes as the app reads them.
#[derive(Debug)]
pub struct Counted<B> {
    inner: B,
    n: Arc<AtomicU64>,
}

impl<B> Counted<B> {
    pub fn new(inner: B, n: Arc<AtomicU64>) -> Self {
        Counted { inner, n }
    }
}

impl<B: HttpBody<Data = Bytes> + Unpin> HttpBody for Counted<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(f))) = &polled
            && let Some(d) = f.data_ref()
        {
            self.n.fetch_add(d.len() as u64, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A request being answered: logged when its response body is done (or dropped).
#[derive(Debug)]
pub struct Pending {
    pub rec: Arc<Rec>,
    pub at: Instant,
    pub method: String,
    pub path: String,
    pub bytes_in: Arc<AtomicU64>,
}

/// The response side: counts the body as it streams to the client; the line is written once
/// the body ends or is dropped.
#[derive(Debug)]
pub struct Logged {
    inner: super::Body,
    out: u64,
    status: u16,
    pending: Option<Pending>,
    /// Resolves when the app session's recording ends (its access ended, Terminate, logout):
    /// a long response (server-sent events, a download) is cut off then.
    ended: Pin<Box<tokio_util::sync::WaitForCancellationFutureOwned>>,
}

impl Logged {
    pub fn new(inner: super::Body, status: u16, pending: Pending) -> Self {
        let ended = Box::pin(pending.rec.closed.clone().cancelled_owned());
        Logged {
            inner,
            out: 0,
            status,
            pending: Some(pending),
            ended,
        }
    }
}

impl HttpBody for Logged {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        if self.ended.as_mut().poll(cx).is_ready() {
            self.log();
            return Poll::Ready(None);
        }
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(f))) => {
                if let Some(d) = f.data_ref() {
                    self.out += d.len() as u64;
                }
                // A body that knows it is done may not be polled again: log it now.
                if self.inner.is_end_stream() {
                    self.log();
                }
            }
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => self.log(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Logged {
    fn log(&mut self) {
        let Some(p) = self.pending.take() else {
            return;
        };
        let bytes_in = p.bytes_in.load(Ordering::Relaxed);
        p.rec.requests.fetch_add(1, Ordering::Relaxed);
        p.rec.bytes_up.fetch_add(bytes_in, Ordering::Relaxed);
        p.rec.bytes_down.fetch_add(self.out, Ordering::Relaxed);
        p.rec.send(Msg::Request(
            p.at,
            requests::Request {
                method: p.method,
                path: p.path,
                status: self.status,
                bytes_in,
                bytes_out: self.out,
                duration_ms: u64::try_from(p.at.elapsed().as_millis()).unwrap_or(u64::MAX),
            },
        ));
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        self.log();
    }
}
