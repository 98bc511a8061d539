//! Forwarding an allowed request to the app: the upstream URL from the target's address, the
//! client's headers stripped and Gatehouse's set ([`super::headers`]), a signed assertion for
//! the app, bodies streamed both ways (hyper's own backpressure), redirects to the internal
//! host rewritten to the public one, websocket upgrades joined end to end.

use super::headers::{self, Forwarded, Names};
use super::record::{Counted, Rec};
use super::signin::Who;
use super::{Body, Shared, plain};
use crate::enforce::LiveSession;
use gatehouse_broker::access::apps::{self, ASSERTION_TTL_S, Claims};
use gatehouse_broker::access::policy::{AccessRequest, GrantRef};
use gatehouse_broker::access::targets::Target;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, LOCATION};
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::sync::Arc;

/// The upstream client: HTTP/1.1 over TCP or TLS (roots of the binary's outbound client); the
/// request body's bytes are counted for the request log.
pub type Client = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<HttpConnector>,
    Counted<http_body_util::Limited<Incoming>>,
>;

pub fn client(mut tls: rustls::ClientConfig) -> Client {
    // hyper-rustls sets ALPN itself (and refuses a config that has some: it would panic).
    tls.alpn_protocols.clear();
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .pool_idle_timeout(std::time::Duration::from_secs(60))
        .build(https)
}

fn bad_gateway(why: &str) -> Response<Body> {
    plain(
        StatusCode::BAD_GATEWAY,
        "text/plain; charset=utf-8",
        format!("the app did not answer: {why}\n"),
    )
}

/// The request's URI at the upstream: the target's address (scheme and authority) and the
/// request's path and query.
fn upstream_uri(target: &Target, req: &Request<Incoming>) -> Option<Uri> {
    let base: Uri = target.address.parse().ok()?;
    let scheme = base
        .scheme_str()
        .filter(|s| *s == "http" || *s == "https")?;
    let authority = base.authority()?;
    let pq = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    format!("{scheme}://{authority}{pq}").parse().ok()
}

fn is_upgrade(req: &Request<Incoming>) -> bool {
    req.headers()
        .get(hyper::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// What allowed a request: the access carrying it and the request decided (a websocket is
/// decided again with it on every access event), and where it is recorded.
#[derive(Debug)]
pub struct Allowed {
    pub grant: GrantRef,
    pub request: AccessRequest,
    pub rec: Arc<Rec>,
    /// The request body's bytes, counted as they go upstream.
    pub bytes_in: Arc<std::sync::atomic::AtomicU64>,
}

/// Forwards `req` (allowed, for `who`) to `target`.
pub async fn forward(
    shared: &Shared,
    target: &Target,
    who: &Who,
    allowed: Allowed,
    peer: SocketAddr,
    public_authority: &str,
    mut req: Request<Incoming>,
) -> Response<Body> {
    let Some(uri) = upstream_uri(target, &req) else {
        tracing::error!(app = %target.name, address = %target.address, "app gateway: the app's address is not an http(s) URL");
        return bad_gateway("its address is not an http(s) URL");
    };
    let upgrade = is_upgrade(&req);
    let ws_headers: Vec<(hyper::header::HeaderName, HeaderValue)> = if upgrade {
        req.headers()
            .iter()
            .filter(|(k, _)| k.as_str().starts_with("sec-websocket-"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    } else {
        Vec::new()
    };
    let groups = who.groups.to_vec();
    let assertion = shared
        .reads
        .assertion(&shared.store, who, &allowed.grant.role, || {
            assertion(shared, target, who, &allowed.grant, groups.clone())
        })
        .to_string();
    let client_upgrade = if upgrade {
        Some(hyper::upgrade::on(&mut req))
    } else {
        None
    };
    let (mut parts, body) = req.into_parts();
    let app = &target.app;
    let configured: Vec<String> = [&app.user_header, &app.email_header, &app.groups_header]
        .into_iter()
        .flatten()
        .chain(app.strip_headers.iter())
        .cloned()
        .collect();
    headers::strip_client(&mut parts.headers, &configured);
    let defaults = Names::default();
    let names = Names {
        user: app.user_header.clone().unwrap_or(defaults.user),
        email: app.email_header.clone().unwrap_or(defaults.email),
        groups: app.groups_header.clone().unwrap_or(defaults.groups),
    };
    headers::set_gatehouse(
        &mut parts.headers,
        &headers::Identity {
            username: who.identity.username.clone(),
            email: who.identity.email.clone(),
            groups,
            assertion,
        },
        &names,
        &Forwarded {
            client_ip: peer.ip(),
            host: public_authority.to_string(),
        },
    );
    // Credential injection: the secret vaulted for this app and role replaces whatever the
    // client sent as Authorization; the client never sees it.
    if let Some(key) = &shared.sealing {
        let found = shared
            .reads
            .credential(&shared.store, &target.name, &allowed.grant.role, key)
            .await;
        match found {
            Ok(Some(cred)) => {
                parts.headers.remove(hyper::header::AUTHORIZATION);
                if let Ok(v) = HeaderValue::from_str(&cred.authorization()) {
                    parts.headers.insert(hyper::header::AUTHORIZATION, v);
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(app = %target.name, error = %e, "app gateway: cannot open the app's credential");
                return bad_gateway("its credential could not be opened");
            }
        }
    }
    if let Some(a) = uri.authority()
        && let Ok(v) = HeaderValue::from_str(a.as_str())
    {
        parts.headers.insert(hyper::header::HOST, v);
    }
    if upgrade {
        // The one hop-by-hop exchange that must cross: the websocket handshake.
        parts.headers.insert(
            hyper::header::CONNECTION,
            HeaderValue::from_static("upgrade"),
        );
        parts.headers.insert(
            hyper::header::UPGRADE,
            HeaderValue::from_static("websocket"),
        );
        for (k, v) in ws_headers {
            parts.headers.insert(k, v);
        }
    }
    let ws_path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    parts.uri = uri;
    parts.version = hyper::Version::HTTP_11;
    let limit = shared.settings.max_body;
    let declared = parts
        .headers
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            "text/plain; charset=utf-8",
            format!("the request body is larger than the {limit} bytes this gateway passes on\n"),
        );
    }
    let limited = http_body_util::Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX));
    let upstream_req = Request::from_parts(parts, Counted::new(limited, allowed.bytes_in.clone()));
    let client = match shared.clients.for_app(&target.app) {
        Ok(c) => c,
        Err(why) => {
            tracing::error!(app = %target.name, %why, "app gateway: no client for the app's upstream TLS");
            return bad_gateway("its upstream TLS settings cannot be used");
        }
    };
    let resp = match tokio::time::timeout(
        shared.settings.upstream_timeout,
        client.request(upstream_req),
    )
    .await
    {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            let why = error_chain(&e);
            tracing::warn!(app = %target.name, error = %why, "app gateway: upstream request failed");
            if why.contains("invalid peer certificate") || why.contains(crate::pinned::PIN_MISMATCH)
            {
                return bad_gateway("its certificate is not trusted");
            }
            return bad_gateway("connection failed");
        }
        Err(_) => {
            tracing::warn!(app = %target.name, "app gateway: the app did not answer in time");
            return plain(
                StatusCode::GATEWAY_TIMEOUT,
                "text/plain; charset=utf-8",
                "the app did not answer in time\n".into(),
            );
        }
    };
    if let Some(on_client) = client_upgrade
        && resp.status() == StatusCode::SWITCHING_PROTOCOLS
    {
        return join_websocket(shared, target, allowed, ws_path, on_client, resp);
    }
    let (mut parts, body) = resp.into_parts();
    headers::strip_response(&mut parts.headers);
    headers::host_only_cookies(&mut parts.headers);
    rewrite_location(&mut parts.headers, target, public_authority);
    Response::from_parts(parts, body.boxed())
}

/// A websocket the app accepted: answer the client with the app's 101 and copy both ways once
/// both sides have upgraded, until either side closes or the access ends (revoked, expired,
/// the identity disabled, a reviewer's terminate: the live-session registry).
fn join_websocket(
    shared: &Shared,
    target: &Target,
    allowed: Allowed,
    path: String,
    on_client: hyper::upgrade::OnUpgrade,
    mut resp: Response<Incoming>,
) -> Response<Body> {
    let on_upstream = hyper::upgrade::on(&mut resp);
    let app = target.name.clone();
    let rec = allowed.rec.clone();
    rec.ws_started();
    rec.ws_open(&path);
    let opened = std::time::Instant::now();
    let live = Arc::new(LiveSession::new(
        gatehouse_broker::ids::new_id(),
        allowed.request,
        allowed.grant.id.clone(),
        allowed.grant.not_after_ms,
    ));
    shared.live.add(live.clone());
    let registry = shared.live.clone();
    let clock = shared.clock.clone();
    tokio::spawn(async move {
        // Bytes and messages each way, counted as they are copied (the copy may be cut off by
        // the access).
        let up = Arc::new(Counts::default());
        let down = Arc::new(Counts::default());
        let joined = async {
            let (client, upstream) = tokio::try_join!(on_client, on_upstream)?;
            let (mut c_r, mut c_w) = tokio::io::split(TokioIo::new(client));
            let (mut u_r, mut u_w) = tokio::io::split(TokioIo::new(upstream));
            let to_app = copy_counted(&mut c_r, &mut u_w, &up);
            let to_client = copy_counted(&mut u_r, &mut c_w, &down);
            let _ = tokio::join!(to_app, to_client);
            Ok::<(), hyper::Error>(())
        };
        let reason = tokio::select! {
            r = joined => {
                if let Err(e) = r {
                    tracing::debug!(%app, error = %e, "app gateway: websocket upgrade failed");
                }
                None
            }
            reason = live.killed() => {
                tracing::info!(%app, reason = reason.code(), "app gateway: websocket ended with its access");
                Some(reason.code().to_string())
            }
            () = until_deadline(&live, clock) => {
                tracing::info!(%app, "app gateway: websocket ended: its access expired");
                Some(crate::enforce::EndReason::Expired.code().to_string())
            }
            reason = rec.ended() => {
                tracing::info!(%app, reason, "app gateway: websocket ended with its app session");
                Some(reason)
            }
        };
        registry.remove(&live.id);
        use std::sync::atomic::Ordering::Relaxed;
        rec.ws_close(super::record::WsClosed {
            path,
            bytes_in: up.bytes.load(Relaxed),
            bytes_out: down.bytes.load(Relaxed),
            messages_in: up.messages.load(Relaxed),
            messages_out: down.messages.load(Relaxed),
            open: opened.elapsed(),
            reason,
        });
    });
    let (mut parts, _) = resp.into_parts();
    headers::host_only_cookies(&mut parts.headers);
    let mut out = Response::from_parts(
        parts,
        http_body_util::Empty::new()
            .map_err(|never| match never {})
            .boxed(),
    );
    *out.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    out
}

/// What went one way through a websocket.
#[derive(Debug, Default)]
struct Counts {
    bytes: std::sync::atomic::AtomicU64,
    messages: std::sync::atomic::AtomicU64,
}

/// Copies `from` to `to` until end of stream or an error, counting bytes and websocket
/// messages into `n`; shuts `to` down at the end (a half-close passed on).
async fn copy_counted<R, W>(from: &mut R, to: &mut W, n: &Counts)
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    use std::sync::atomic::Ordering::Relaxed;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 8 * 1024];
    let mut frames = super::wsframes::Frames::default();
    loop {
        let got = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(got) => got,
        };
        if to.write_all(&buf[..got]).await.is_err() {
            break;
        }
        n.bytes.fetch_add(got as u64, Relaxed);
        frames.feed(&buf[..got]);
        n.messages.store(frames.messages, Relaxed);
    }
    let _ = to.shutdown().await;
}

/// Resolves when the access carrying `live` reaches its end (it moves when the access is
/// extended; no end: never).
pub(crate) async fn until_deadline(live: &LiveSession, clock: gatehouse_broker::SharedClock) {
    let mut rx = live.deadline.subscribe();
    loop {
        let deadline = *rx.borrow_and_update();
        match deadline {
            None => {
                if rx.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
            Some(t) => {
                let wait = u64::try_from(t - clock.now_ms()).unwrap_or(0);
                tokio::select! {
                    () = tokio::time::sleep(std::time::Duration::from_millis(wait)) => return,
                    changed = rx.changed() => {
                        if changed.is_err() {
                            tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
                            return;
                        }
                    }
                }
            }
        }
    }
}

/// An error and its causes in one line (a refused certificate is named deep in the chain).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        next = cause.source();
    }
    out
}

/// A redirect to the app's internal address is turned into one to its public host.
fn rewrite_location(headers: &mut hyper::HeaderMap, target: &Target, public_authority: &str) {
    let Some(loc) = headers.get(LOCATION).and_then(|v| v.to_str().ok()) else {
        return;
    };
    let internal = target.address.trim_end_matches('/');
    if let Some(rest) = loc.strip_prefix(internal)
        && (rest.is_empty() || rest.starts_with('/') || rest.starts_with('?'))
        && let Ok(v) = HeaderValue::from_str(&format!("https://{public_authority}{rest}"))
    {
        headers.insert(LOCATION, v);
    }
}

/// The identity assertion for this request (empty if it cannot be made: the app then sees no
/// assertion rather than a stale one).
fn assertion(
    shared: &Shared,
    target: &Target,
    who: &Who,
    grant: &GrantRef,
    groups: Vec<String>,
) -> String {
    let now_s = shared.clock.now_ms() / 1000;
    let claims = Claims {
        iss: shared.settings.web_origin.trim_end_matches('/').to_string(),
        sub: who.identity.username.clone(),
        aud: target.name.clone(),
        email: who.identity.email.clone(),
        groups,
        roles: vec![grant.role.clone()],
        iat: now_s,
        exp: now_s + ASSERTION_TTL_S,
    };
    apps::assertion(&shared.assertion_key, &claims).unwrap_or_default()
}
