//! Cross-site request forgery defence for browser requests that change state (every method but
//! GET, HEAD and OPTIONS, when no bearer token is used): the request must come from this site
//! (`Sec-Fetch-Site` and `Origin`, when the browser sends them) and carry the token of its
//! session — or, before sign-in, the token of the pre-session cookie — in the `csrf` form field
//! or the `X-CSRF-Token` header.

use crate::cookies::{Cookies, Kind};
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, Method, header};

/// Why a request was refused (for the log; the client sees one generic message).
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    CrossSite,
    WrongOrigin,
    NoToken,
    BadToken,
    Unreadable,
}

/// Whether the method changes state.
pub fn is_unsafe(m: &Method) -> bool {
    !matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The origin this request was addressed to: HTTP/2's `:authority`, else the Host header.
fn own_origin(req: &Request, secure: bool) -> Option<String> {
    let host = match req.uri().authority() {
        Some(a) => a.as_str().to_string(),
        None => req.headers().get(header::HOST)?.to_str().ok()?.to_string(),
    };
    Some(format!(
        "{}://{host}",
        if secure { "https" } else { "http" }
    ))
}

fn origin_of(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::ORIGIN).and_then(|v| v.to_str().ok())
}

fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Checks `req`; gives it back (its body re-assembled if it was read) when it passes.
pub async fn check(
    req: Request,
    cookies: &Cookies,
    session_token: Option<&str>,
    max_body: usize,
) -> Result<Request, Refusal> {
    let headers = req.headers();
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && site != "same-origin"
        && site != "none"
    {
        return Err(Refusal::CrossSite);
    }
    if let Some(origin) = origin_of(headers) {
        match own_origin(&req, cookies.secure()) {
            Some(own) if own == origin => {}
            _ => return Err(Refusal::WrongOrigin),
        }
    }
    let headers = req.headers();
    let expected = match session_token {
        Some(t) => t.to_owned(),
        None => cookies.read(headers, Kind::Csrf).ok_or(Refusal::NoToken)?,
    };
    if let Some(t) = headers.get("x-csrf-token").and_then(|v| v.to_str().ok()) {
        return if same(t, &expected) {
            Ok(req)
        } else {
            Err(Refusal::BadToken)
        };
    }
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Err(Refusal::NoToken);
    }
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, max_body)
        .await
        .map_err(|_| Refusal::Unreadable)?;
    let token = url::form_urlencoded::parse(&bytes)
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.into_owned())
        .ok_or(Refusal::NoToken)?;
    if !same(&token, &expected) {
        return Err(Refusal::BadToken);
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(body: &'static str, extra: &[(&'static str, &'static str)]) -> Request {
        let mut b = Request::builder()
            .method("POST")
            .uri("/x")
            .header(header::HOST, "localhost:8443")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        for (k, v) in extra {
            b = b.header(*k, *v);
        }
        b.body(Body::from(body)).unwrap()
    }

    #[tokio::test]
    async fn security_cross_site_form_posts_are_refused() {
        let c = Cookies::new(true);
        // The right token passes, and the body is still readable afterwards.
        let ok = check(
            form("a=1&csrf=tok", &[("origin", "https://localhost:8443")]),
            &c,
            Some("tok"),
            1024,
        )
        .await
        .unwrap();
        let body = axum::body::to_bytes(ok.into_body(), 1024).await.unwrap();
        assert_eq!(&body[..], b"a=1&csrf=tok");
        // No token, a wrong token, another origin, a cross-site fetch: refused.
        assert_eq!(
            check(form("a=1", &[]), &c, Some("tok"), 1024)
                .await
                .unwrap_err(),
            Refusal::NoToken
        );
        assert_eq!(
            check(form("csrf=nope", &[]), &c, Some("tok"), 1024)
                .await
                .unwrap_err(),
            Refusal::BadToken
        );
        assert_eq!(
            check(
                form("csrf=tok", &[("origin", "https://evil.example")]),
                &c,
                Some("tok"),
                1024
            )
            .await
            .unwrap_err(),
            Refusal::WrongOrigin
        );
        assert_eq!(
            check(
                form("csrf=tok", &[("sec-fetch-site", "cross-site")]),
                &c,
                Some("tok"),
                1024
            )
            .await
            .unwrap_err(),
            Refusal::CrossSite
        );
        // Before sign-in the token is the pre-session cookie's.
        assert!(
            check(
                form("csrf=pre", &[("cookie", "__Host-gh_csrf=pre")]),
                &c,
                None,
                1024
            )
            .await
            .is_ok()
        );
        assert_eq!(
            check(form("csrf=pre", &[]), &c, None, 1024)
                .await
                .unwrap_err(),
            Refusal::NoToken
        );
    }
}
