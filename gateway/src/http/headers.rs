//! What crosses the proxy in headers. From the client, nothing that could speak for Gatehouse
//! reaches the app: hop-by-hop headers and every header the client's `Connection` lists go,
//! then every `X-Gatehouse-*` header, every configured identity header and the forwarding
//! headers, matched after normalising `_` to `-` and case (some back ends read `X_User` as
//! `X-User`); the Gatehouse cookies are cut out of `Cookie`. Then Gatehouse sets its own. The
//! order matters: a client's `Connection: x-gatehouse-user` cannot remove a header set after it.

use http::header::{HeaderMap, HeaderName, HeaderValue};

/// Hop-by-hop headers (RFC 9110 §7.6.1) and the proxy ones, never forwarded.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Forwarding and proxy-identity headers only Gatehouse sets (or nobody may): exact names.
const FORWARDING: &[&str] = &[
    "forwarded",
    "x-rewrite-url",
    "x-real-ip",
    "x-client-ip",
    "remote-user",
    "x-remote-user",
    "x-remote-group",
    "x-user",
    "x-email",
];

/// Prefixes of headers that proxies in front of apps set and apps trust: every one of them
/// (`X-Forwarded-User`, `X-Forwarded-Groups` that Jenkins' proxy auth reads, `X-Original-Uri`,
/// oauth2-proxy's `X-Auth-Request-*`) is dropped from the client's request.
const PROXY_PREFIXES: &[&str] = &[
    "x-forwarded-",
    "x-original-",
    "x-auth-request-",
    "x-gatehouse-",
];

/// Cookie names of Gatehouse's app hosts; never forwarded to the app.
pub const COOKIE_PREFIXES: &[&str] = &["__Host-gh_app", "gh_app"];

/// A header name as back ends may read it: lower case, `_` as `-`.
fn normalised(name: &str) -> String {
    name.to_ascii_lowercase().replace('_', "-")
}

/// Removes from a client's request headers everything that must not reach the app (see the
/// module). `identity_headers` are the extra identity header names configured for the app.
pub fn strip_client(headers: &mut HeaderMap, identity_headers: &[String]) {
    // The client's Connection list first: those it names are hop-by-hop for this hop.
    let listed: Vec<String> = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|n| normalised(n.trim()))
        .filter(|n| !n.is_empty())
        .collect();
    let identity: Vec<String> = identity_headers.iter().map(|h| normalised(h)).collect();
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| {
            let n = normalised(name.as_str());
            HOP_BY_HOP.contains(&n.as_str())
                || FORWARDING.contains(&n.as_str())
                || PROXY_PREFIXES.iter().any(|p| n.starts_with(p))
                || identity.contains(&n)
                || listed.contains(&n)
        })
        .cloned()
        .collect();
    for name in doomed {
        headers.remove(&name);
    }
    strip_cookies(headers);
}

/// Cuts Gatehouse's own cookies out of every `Cookie` header (the rest is kept in order).
fn strip_cookies(headers: &mut HeaderMap) {
    let kept: Vec<String> = headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .filter(|c| {
            let name = c.split('=').next().unwrap_or_default().trim();
            !COOKIE_PREFIXES.iter().any(|p| name.starts_with(p))
        })
        .map(str::to_owned)
        .collect();
    headers.remove(http::header::COOKIE);
    if !kept.is_empty()
        && let Ok(v) = HeaderValue::from_str(&kept.join("; "))
    {
        headers.insert(http::header::COOKIE, v);
    }
}

/// Who the request is from, as the app is told.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    pub username: String,
    pub email: Option<String>,
    pub groups: Vec<String>,
    /// The signed assertion (`X-Gatehouse-Assertion`).
    pub assertion: String,
}

/// Where the request came from and for which host (the forwarding headers).
#[derive(Debug, Clone)]
pub struct Forwarded {
    pub client_ip: std::net::IpAddr,
    pub host: String,
}

/// Header names an app reads the identity from (Grafana's auth proxy wants `X-WEBAUTH-USER`).
#[derive(Debug, Clone)]
pub struct Names {
    pub user: String,
    pub email: String,
    pub groups: String,
}

impl Default for Names {
    fn default() -> Self {
        Self {
            user: "x-gatehouse-user".into(),
            email: "x-gatehouse-email".into(),
            groups: "x-gatehouse-groups".into(),
        }
    }
}

/// Sets Gatehouse's headers on a request already stripped by [`strip_client`]. A value that
/// cannot be a header value (a control character in a name) is left out rather than sent
/// broken.
pub fn set_gatehouse(headers: &mut HeaderMap, who: &Identity, names: &Names, fwd: &Forwarded) {
    let mut put = |name: &str, value: &str| {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.insert(n, v);
        }
    };
    put(&names.user, &who.username);
    if let Some(e) = &who.email {
        put(&names.email, e);
    }
    put(&names.groups, &who.groups.join(","));
    put("x-gatehouse-assertion", &who.assertion);
    put("x-forwarded-for", &fwd.client_ip.to_string());
    put("x-forwarded-proto", "https");
    put("x-forwarded-host", &fwd.host);
}

/// What an app may set as cookies: never one of Gatehouse's own (`__Host-gh_app…`), and only
/// for its own host: a `Domain` attribute is removed, so one app cannot set cookies every other
/// app host receives (cookie tossing, fixation, or filling every app's headers).
pub fn host_only_cookies(headers: &mut HeaderMap) {
    let kept: Vec<HeaderValue> = headers
        .get_all(http::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter(|c| {
            let name = c.split('=').next().unwrap_or_default().trim();
            !COOKIE_PREFIXES.iter().any(|p| name.starts_with(p))
        })
        .filter_map(|c| {
            let parts: Vec<&str> = c
                .split(';')
                .filter(|attr| {
                    !attr
                        .trim()
                        .get(..7)
                        .is_some_and(|a| a.eq_ignore_ascii_case("domain="))
                })
                .collect();
            HeaderValue::from_str(&parts.join(";")).ok()
        })
        .collect();
    headers.remove(http::header::SET_COOKIE);
    for v in kept {
        headers.append(http::header::SET_COOKIE, v);
    }
}

/// Whether `path` is in the one form conditions are decided on and the app is asked for: no
/// empty, `.` or `..` segments, no `;` parameters, no backslash, and no percent-encoding of an
/// unreserved character, `/`, `\` or `.` (`/%61dmin`, `/a%2f..`). Anything else could name the
/// same resource to the app as a path a condition refused under another spelling; it is refused.
pub fn path_is_normal(path: &str) -> bool {
    if !path.starts_with('/') || path.contains(['\\', ';']) {
        return false;
    }
    if path != "/" {
        // The segments between slashes; one trailing slash (an empty last segment) is fine.
        let body = &path[1..];
        let body = body.strip_suffix('/').unwrap_or(body);
        if body.is_empty()
            || body
                .split('/')
                .any(|s| s.is_empty() || s == "." || s == "..")
        {
            return false;
        }
    }
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            match path
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                Some(b)
                    if b.is_ascii_alphanumeric()
                        || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/' | b'\\') =>
                {
                    return false;
                }
                Some(_) => i += 3,
                None => return false,
            }
        } else {
            i += 1;
        }
    }
    true
}

/// Removes hop-by-hop headers (and those the app's `Connection` lists) from a response.
pub fn strip_response(headers: &mut HeaderMap) {
    let listed: Vec<String> = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|n| normalised(n.trim()))
        .collect();
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| {
            let n = normalised(name.as_str());
            HOP_BY_HOP.contains(&n.as_str()) || listed.contains(&n)
        })
        .cloned()
        .collect();
    for name in doomed {
        headers.remove(&name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn security_client_identity_and_forwarding_headers_never_reach_the_app() {
        let mut h = client(&[
            ("X-Gatehouse-User", "admin"),
            ("x-gatehouse-assertion", "forged.jwt.here"),
            ("X_Gatehouse_Email", "admin@example.com"),
            ("X-WEBAUTH-USER", "admin"),
            ("x_webauth_user", "admin"),
            ("X-Forwarded-For", "10.9.9.9"),
            ("X-Forwarded-Host", "admin.internal"),
            ("X-Forwarded-Uri", "/admin"),
            ("Forwarded", "for=10.9.9.9"),
            ("X-Real-IP", "10.9.9.9"),
            (
                "Cookie",
                "theme=dark; __Host-gh_app=secret; gh_app_state=s; lang=en",
            ),
            ("Connection", "keep-alive, x-custom"),
            ("X-Custom", "dropped as listed"),
            ("Accept", "text/html"),
            ("Transfer-Encoding", "chunked"),
        ]);
        strip_client(&mut h, &["X-WEBAUTH-USER".to_string()]);
        let mut names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["accept", "cookie"], "{h:?}");
        assert_eq!(h["cookie"], "theme=dark; lang=en");
        set_gatehouse(
            &mut h,
            &Identity {
                username: "alice".into(),
                email: Some("alice@example.com".into()),
                groups: vec!["eng".into(), "ops".into()],
                assertion: "a.b.c".into(),
            },
            &Names {
                user: "X-WEBAUTH-USER".into(),
                ..Names::default()
            },
            &Forwarded {
                client_ip: "127.0.0.1".parse().unwrap(),
                host: "grafana.apps.localhost:8443".into(),
            },
        );
        assert_eq!(h["x-webauth-user"], "alice");
        assert_eq!(h["x-gatehouse-email"], "alice@example.com");
        assert_eq!(h["x-gatehouse-groups"], "eng,ops");
        assert_eq!(h["x-gatehouse-assertion"], "a.b.c");
        assert_eq!(h["x-forwarded-for"], "127.0.0.1");
        assert_eq!(h.get_all("x-forwarded-for").iter().count(), 1);
        assert!(h.get("x-gatehouse-user").is_none(), "renamed for this app");
    }

    #[test]
    fn security_a_connection_list_cannot_remove_what_gatehouse_sets() {
        let mut h = client(&[("Connection", "X-Gatehouse-User, X-Forwarded-For, Cookie")]);
        strip_client(&mut h, &[]);
        set_gatehouse(
            &mut h,
            &Identity {
                username: "alice".into(),
                ..Identity::default()
            },
            &Names::default(),
            &Forwarded {
                client_ip: "127.0.0.1".parse().unwrap(),
                host: "app.apps.localhost".into(),
            },
        );
        assert_eq!(h["x-gatehouse-user"], "alice");
        assert_eq!(h["x-forwarded-for"], "127.0.0.1");
        assert!(h.get("connection").is_none());
    }

    #[test]
    fn security_proxy_identity_headers_of_any_proxy_are_dropped() {
        let mut h = client(&[
            ("X-Forwarded-User", "admin"),
            ("X_Forwarded_Groups", "admins"),
            ("X-Forwarded-Email", "admin@example.com"),
            ("X-Original-Uri", "/admin"),
            ("X-Auth-Request-User", "admin"),
            ("Remote-User", "admin"),
            ("Accept", "*/*"),
        ]);
        strip_client(&mut h, &[]);
        let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["accept"]);
    }

    #[test]
    fn security_only_normal_paths_are_decided_and_passed_on() {
        for ok in [
            "/",
            "/admin",
            "/d/home/",
            "/a%20b",
            "/api/v1/x%3Fy",
            "/%C3%A9t%C3%A9",
        ] {
            assert!(path_is_normal(ok), "{ok}");
        }
        for bad in [
            "//admin",
            "/./admin",
            "/x/../admin",
            "/admin/..",
            "/;x/admin",
            "/admin;jsessionid=1",
            "/%61dmin",
            "/a%2fadmin",
            "/a%2Fb",
            "/%2e%2e/admin",
            "/a\\b",
            "/%5cadmin",
            "/%zz",
            "/%4",
            "//",
            "/a//b",
        ] {
            assert!(!path_is_normal(bad), "{bad}");
        }
    }

    #[test]
    fn security_apps_set_only_host_only_cookies_of_their_own() {
        let mut h = HeaderMap::new();
        for c in [
            "grafana_session=abc; Path=/; Domain=apps.localhost; HttpOnly",
            "__Host-gh_app=fixed; Path=/; Secure",
            "gh_app_state=x",
            "theme=dark; domain=.apps.localhost",
        ] {
            h.append(http::header::SET_COOKIE, HeaderValue::from_str(c).unwrap());
        }
        host_only_cookies(&mut h);
        let got: Vec<&str> = h
            .get_all(http::header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(got, ["grafana_session=abc; Path=/; HttpOnly", "theme=dark"]);
    }

    #[test]
    fn responses_lose_hop_by_hop_headers() {
        let mut h = client(&[
            ("Connection", "close, x-internal"),
            ("X-Internal", "1"),
            ("Keep-Alive", "timeout=5"),
            ("Content-Type", "text/plain"),
        ]);
        strip_response(&mut h);
        let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["content-type"]);
    }
}
