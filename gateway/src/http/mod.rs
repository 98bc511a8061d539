//! The app gateway: an identity-aware reverse proxy for internal web apps (targets of kind
//! `http`). One listener; each request's app comes from its authority (`NAME.DOMAIN`, see
//! [`host`]). A browser without the app host's cookie is sent to the web UI's
//! `/apps/authorize`, which returns it with a one-time code to `/.gatehouse/callback` on the app
//! host (bound to the state cookie set here before the redirect); the app host then sets its own
//! host-only cookie. Every request is decided by the broker's `decide` (protocol `http`); a
//! denial is audited and answered with a page that says why. Allowed requests go upstream with
//! the client's identity headers stripped and Gatehouse's set, including a signed assertion.
//! Each app session is a `sessions` row with a signed request log ([`record`]).

mod cache;
mod framing;
pub mod headers;
pub mod host;
mod proxy;
pub mod record;
mod signin;
mod upstream;
mod wsframes;

use gatehouse_broker::access::policy::CatalogCache;
use gatehouse_broker::keys::SigningKeyPair;
use gatehouse_broker::{SharedClock, Store};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The body type of every answer: streamed from upstream or made here.
pub type Body = BoxBody<Bytes, hyper::Error>;

/// How the app gateway is reached and whom it trusts.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The apps domain: app `NAME` is at `NAME.DOMAIN` (default `apps.localhost`).
    pub domain: String,
    /// The port browsers reach the app listener at (443 is left out of URLs).
    pub public_port: u16,
    /// The web UI's origin (`https://localhost:8080`): sign-in goes through its
    /// `/apps/authorize`, and it is the assertion's issuer.
    pub web_origin: String,
    /// TLS towards upstreams (the binary's outbound roots).
    pub upstream_tls: rustls::ClientConfig,
    /// Longest time for a TLS handshake and the request head.
    pub header_timeout: Duration,
    /// Where request logs are written (`YYYY/MM/DD/SESSION.requests.jsonl`).
    pub recordings_dir: std::path::PathBuf,
    /// Refuse an app session whose request log cannot be created.
    pub strict_recording: bool,
    /// Largest request body passed to an app (a larger declared length gets 413; a longer
    /// chunked body is cut off and the request fails).
    pub max_body: u64,
    /// Longest wait for an app's response head (then 504).
    pub upstream_timeout: Duration,
}

/// What every connection shares.
#[derive(Debug)]
pub struct Shared {
    pub store: Store,
    pub cache: CatalogCache,
    pub clock: SharedClock,
    pub settings: Settings,
    /// Signs the identity assertion apps receive (`X-Gatehouse-Assertion`).
    pub assertion_key: Arc<SigningKeyPair>,
    /// Open websockets, re-decided on every access event and ended with their access.
    pub live: Arc<crate::enforce::Live>,
    /// Signs the manifests of request logs (the gateway's recording key, as for SSH casts).
    pub signer: Arc<SigningKeyPair>,
    /// The app sessions being recorded, by app session id.
    pub recorders: record::Recorders,
    /// Opens the credentials vaulted for apps (credential injection); none: nothing injected.
    pub sealing: Option<Arc<gatehouse_broker::sealing::SealingKey>>,
    /// What requests read from the database, kept while nothing changed ([`cache`]).
    reads: cache::Cache,
    clients: upstream::Clients,
}

impl Shared {
    pub fn new(
        store: Store,
        cache: CatalogCache,
        clock: SharedClock,
        settings: Settings,
        assertion_key: Arc<SigningKeyPair>,
        signer: Arc<SigningKeyPair>,
    ) -> Self {
        let clients = upstream::Clients::new(settings.upstream_tls.clone());
        Self {
            store,
            cache,
            clock,
            settings,
            assertion_key,
            live: Arc::default(),
            signer,
            recorders: record::Recorders::default(),
            sealing: None,
            reads: cache::Cache::default(),
            clients,
        }
    }

    /// The same, opening credentials vaulted for apps with `key` (credential injection).
    pub fn with_sealing(mut self, key: Arc<gatehouse_broker::sealing::SealingKey>) -> Self {
        self.sealing = Some(key);
        self
    }

    pub(crate) fn clone_for_writer(&self) -> record::ForWriter {
        record::ForWriter {
            clock: self.clock.clone(),
            signer: self.signer.clone(),
        }
    }
}

/// A plain answer made here (never the app's): `status` with a short text or HTML body.
pub(crate) fn plain(status: StatusCode, content_type: &str, body: String) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r.headers_mut().insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-store"),
    );
    r
}

/// The 404 for a host that is no app: it names nothing.
pub(crate) fn not_found() -> Response<Body> {
    plain(
        StatusCode::NOT_FOUND,
        "text/plain; charset=utf-8",
        "not found\n".into(),
    )
}

/// Serves the app gateway on `listener` (TLS when `tls` is given) until `shutdown`; then ends
/// the recorded app sessions (each log closed and signed, each row ended) before returning.
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    // Open websockets end with their access: the same enforcement as SSH sessions.
    tokio::spawn(crate::enforce::run(
        shared.store.clone(),
        shared.cache.clone(),
        shared.clock.clone(),
        shared.live.clone(),
        shutdown.clone(),
    ));
    // The recorded app sessions are checked every SWEEP_EVERY, and within SWEEP_SOON of a
    // change this process learns of (a sign-out at the web UI ends its app sessions' websockets
    // and rows then, not only at their next request); in a task of its own, so a long sweep
    // never holds up accepting connections.
    tokio::spawn({
        let shared = shared.clone();
        let stop = shutdown.clone();
        async move {
            let mut tick = tokio::time::interval(record::SWEEP_SOON);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut swept = (shared.store.generation(), std::time::Instant::now());
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let generation = shared.store.generation();
                if generation != swept.0 || swept.1.elapsed() >= record::SWEEP_EVERY {
                    swept = (generation, std::time::Instant::now());
                    record::sweep(&shared).await;
                }
            }
        }
    });
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "app gateway: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let acceptor = acceptor.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let timeout = shared.settings.header_timeout;
            let framing = Arc::new(framing::Framing::default());
            match acceptor {
                Some(a) => match tokio::time::timeout(timeout, a.accept(stream)).await {
                    Ok(Ok(tls)) => {
                        let io = TokioIo::new(framing::Sniffed::new(tls, framing.clone()));
                        connection(io, peer, shared, framing, stop).await
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "app gateway: TLS handshake failed")
                    }
                    Err(_) => tracing::debug!(%peer, "app gateway: TLS handshake timed out"),
                },
                None => {
                    let io = TokioIo::new(framing::Sniffed::new(stream, framing.clone()));
                    connection(io, peer, shared, framing, stop).await
                }
            }
        });
    }
    record::end_all(&shared, crate::enforce::EndReason::Shutdown.code()).await;
}

async fn connection<I>(
    io: I,
    peer: SocketAddr,
    shared: Arc<Shared>,
    framing: Arc<framing::Framing>,
    stop: CancellationToken,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let shared = shared.clone();
        // In request order (HTTP/1 asks one at a time): was this head ambiguous, or the last
        // one the framing check could follow?
        let verdict = framing.check();
        async move {
            let mut resp = match verdict {
                framing::Verdict::Ambiguous => ambiguous_framing(),
                framing::Verdict::Fine | framing::Verdict::Last => handle(&shared, peer, req).await,
            };
            if verdict == framing::Verdict::Last && resp.status() != StatusCode::SWITCHING_PROTOCOLS
            {
                resp.headers_mut().insert(
                    hyper::header::CONNECTION,
                    hyper::header::HeaderValue::from_static("close"),
                );
            }
            Ok::<_, std::convert::Infallible>(resp)
        }
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .max_buf_size(64 * 1024);
    builder.http2().max_header_list_size(64 * 1024);
    let conn = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(%peer, error = %e, "app gateway: connection ended");
            }
        }
        _ = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// The answer to a request whose length is ambiguous ([`framing`]); the connection closes
/// after it, as RFC 9112 §6.3 requires.
fn ambiguous_framing() -> Response<Body> {
    let mut r = plain(
        StatusCode::BAD_REQUEST,
        "text/plain; charset=utf-8",
        "bad request: ambiguous message length\n".into(),
    );
    r.headers_mut().insert(
        hyper::header::CONNECTION,
        hyper::header::HeaderValue::from_static("close"),
    );
    r
}

/// The app `authority` names: one with that host of its own, else `NAME.DOMAIN` for an app
/// without one. `None`: no app (404).
async fn route(
    shared: &Shared,
    authority: &str,
) -> gatehouse_broker::Result<Option<Arc<gatehouse_broker::access::targets::Target>>> {
    let Some(hostname) = host::hostname(authority) else {
        return Ok(None);
    };
    let web_host = url::Url::parse(&shared.settings.web_origin)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
        .unwrap_or_default();
    let own = shared
        .reads
        .hosts(&shared.store, &shared.settings.domain, &web_host)
        .await?;
    let (name, by_own_host) = match own.get(&hostname) {
        Some(name) => (name.clone(), true),
        None => match host::app_of(authority, &shared.settings.domain) {
            Some(name) => (name, false),
            None => return Ok(None),
        },
    };
    Ok(shared
        .reads
        .app(&shared.store, &name)
        .await?
        .filter(|t| t.kind == gatehouse_broker::access::targets::Kind::Http)
        // An app with a host of its own is not also at NAME.DOMAIN.
        .filter(|t| by_own_host || t.app.host.is_none()))
}

/// One request: which app, whose, allowed or not, then upstream.
async fn handle(shared: &Arc<Shared>, peer: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    // Ambiguous framing (both lengths, or several lengths) is refused, never passed on. On
    // HTTP/1 `framing` has refused it already (hyper drops the duplicates before this point);
    // this catches what HTTP/2 may carry.
    let h = req.headers();
    if (h.contains_key(hyper::header::TRANSFER_ENCODING)
        && h.contains_key(hyper::header::CONTENT_LENGTH))
        || h.get_all(hyper::header::CONTENT_LENGTH).iter().count() > 1
    {
        return ambiguous_framing();
    }
    let authority = req
        .uri()
        .authority()
        .map(|a| a.as_str().to_string())
        .or_else(|| {
            req.headers()
                .get(hyper::header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        })
        .unwrap_or_default();
    let target = match route(shared, &authority).await {
        Ok(Some(t)) => t,
        Ok(None) => return not_found(),
        Err(e) => {
            tracing::error!(error = %e, "app gateway: cannot read the app");
            return plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain; charset=utf-8",
                "unavailable\n".into(),
            );
        }
    };
    // TRACE would echo the request back, the injected credential and the assertion included.
    if matches!(req.method().as_str(), "TRACE" | "TRACK" | "CONNECT") {
        return plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "method not allowed\n".into(),
        );
    }
    // One spelling of a path only: what a condition is decided on is what the app is asked for
    // (`//admin`, `/%61dmin`, `/./admin`, `/admin;x` would pass a rule on `/admin*`).
    if !headers::path_is_normal(req.uri().path()) {
        return plain(
            StatusCode::BAD_REQUEST,
            "text/plain; charset=utf-8",
            "bad request: the path is not in normal form\n".into(),
        );
    }
    match req.uri().path() {
        signin::CALLBACK => return signin::callback(shared, &target, &req).await,
        signin::LOGOUT => return signin::logout(shared, &target, &req).await,
        _ => {}
    }
    let who = match signin::session(shared, &target, &req).await {
        Ok(Some(who)) => who,
        Ok(None) => {
            // An app session recorded here that is gone (signed out at the web UI, expired,
            // its identity disabled) ends its row now.
            if let Some(id) = signin::app_session_id(&req) {
                record::end(shared, &id, "session_ended").await;
            }
            return signin::to_sign_in(shared, &target, &req);
        }
        Err(e) => {
            tracing::error!(error = %e, "app gateway: cannot read the app session");
            return plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain; charset=utf-8",
                "unavailable\n".into(),
            );
        }
    };
    let decision = signin::decide(shared, &target, &who, peer, &req).await;
    match decision {
        Some((grant, request)) => {
            let Some(rec) = record::open(shared, &target, &who, &grant, &request, peer).await
            else {
                return plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain; charset=utf-8",
                    "unavailable\n".into(),
                );
            };
            let pending = record::Pending {
                rec: rec.clone(),
                at: std::time::Instant::now(),
                method: req.method().as_str().to_string(),
                path: req
                    .uri()
                    .path_and_query()
                    .map(|p| p.as_str().to_string())
                    .unwrap_or_else(|| "/".into()),
                bytes_in: Arc::default(),
            };
            let bytes_in = pending.bytes_in.clone();
            let resp = proxy::forward(
                shared,
                &target,
                &who,
                proxy::Allowed {
                    grant,
                    request,
                    rec,
                    bytes_in,
                },
                peer,
                &authority,
                req,
            )
            .await;
            let status = resp.status().as_u16();
            let (parts, body) = resp.into_parts();
            Response::from_parts(parts, record::Logged::new(body, status, pending).boxed())
        }
        None => {
            // The access behind this app session ended: the denied request is its last line.
            record::denied(shared, &who.session.id, &req).await;
            signin::denied(shared, &target, &req)
        }
    }
}
