//! The demo's built-in web app behind the app gateway: one page that shows who the gateway says
//! the visitor is (the identity headers it received and the assertion's claims, decoded but not
//! verified here: an app verifies it against the JWKS). Not for production use.

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use tokio_util::sync::CancellationToken;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The page for one request.
fn page(req: &Request<Incoming>) -> String {
    let header = |n: &str| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("(none)")
            .to_string()
    };
    let claims = header("x-gatehouse-assertion")
        .split('.')
        .nth(1)
        .and_then(|p| {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_else(|| "(none)".into());
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Gatehouse demo app</title></head><body style=\"font-family:system-ui,sans-serif;\
         max-width:40rem;margin:2rem auto;padding:0 1rem\"><h1>Hello, <span id=\"user\">{user}</span></h1>\
         <p>This app sits behind the Gatehouse app gateway. It never saw a password: the gateway\
         told it who you are.</p><table><tr><th>X-Gatehouse-User</th><td>{user}</td></tr>\
         <tr><th>X-Gatehouse-Email</th><td>{email}</td></tr>\
         <tr><th>X-Gatehouse-Groups</th><td>{groups}</td></tr></table>\
         <h2>The assertion's claims</h2><pre style=\"white-space:pre-wrap;word-break:break-all\">{claims}</pre>\
         <p>Path asked for: <code>{path}</code></p></body></html>",
        user = escape(&header("x-gatehouse-user")),
        email = escape(&header("x-gatehouse-email")),
        groups = escape(&header("x-gatehouse-groups")),
        claims = escape(&claims),
        path = escape(&req.uri().to_string()),
    )
}

/// Serves the demo app on `listener` (plain HTTP on loopback) until `stop`.
pub async fn serve(listener: tokio::net::TcpListener, stop: CancellationToken) {
    loop {
        let (stream, _) = tokio::select! {
            () = stop.cancelled() => return,
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(_) => continue,
            },
        };
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                let mut r = Response::new(Full::new(Bytes::from(page(&req))));
                r.headers_mut().insert(
                    hyper::header::CONTENT_TYPE,
                    hyper::header::HeaderValue::from_static("text/html; charset=utf-8"),
                );
                Ok::<_, std::convert::Infallible>(r)
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                .await;
        });
    }
}
