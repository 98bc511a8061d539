//! Browser cookies: the session, the pre-session CSRF token and the "known device" mark. With
//! TLS they are `__Host-` cookies (Secure, Path=/, no Domain); on plain-HTTP loopback they drop
//! the prefix and the Secure flag, which browsers would refuse there. All are HttpOnly and
//! SameSite=Lax.

use axum::http::{HeaderMap, HeaderValue, header};

/// The cookie names and flags of one server.
#[derive(Debug, Clone, Copy)]
pub struct Cookies {
    secure: bool,
}

/// Which cookie.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// The browser session (cleared when the browser closes; the server enforces lifetimes).
    Session,
    /// A random token for forms shown before sign-in (double submit).
    Csrf,
    /// Marks a browser an identity signed in from, so account throttling spares it.
    Device,
    /// A single sign-on in flight: state, nonce and PKCE verifier, sealed (10 minutes).
    Oidc,
}

impl Cookies {
    pub fn new(secure: bool) -> Self {
        Self { secure }
    }

    /// Whether cookies carry the Secure flag (the server speaks HTTPS).
    pub fn secure(&self) -> bool {
        self.secure
    }

    /// The cookie's name.
    pub fn name(&self, kind: Kind) -> &'static str {
        match (kind, self.secure) {
            (Kind::Session, true) => "__Host-gh_session",
            (Kind::Session, false) => "gh_session",
            (Kind::Csrf, true) => "__Host-gh_csrf",
            (Kind::Csrf, false) => "gh_csrf",
            (Kind::Device, true) => "__Host-gh_device",
            (Kind::Device, false) => "gh_device",
            (Kind::Oidc, true) => "__Host-gh_oidc",
            (Kind::Oidc, false) => "gh_oidc",
        }
    }

    /// The value of a cookie in a request, if present.
    pub fn read(&self, headers: &HeaderMap, kind: Kind) -> Option<String> {
        let name = self.name(kind);
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_owned())
            .filter(|v| !v.is_empty() && v.len() <= 512)
    }

    /// A `Set-Cookie` value. `max_age_s: None` is a browser-session cookie.
    pub fn set(&self, kind: Kind, value: &str, max_age_s: Option<i64>) -> HeaderValue {
        let mut s = format!(
            "{}={value}; Path=/; HttpOnly; SameSite=Lax",
            self.name(kind)
        );
        if self.secure {
            s.push_str("; Secure");
        }
        if let Some(age) = max_age_s {
            s.push_str(&format!("; Max-Age={age}"));
        }
        HeaderValue::from_str(&s).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    /// A `Set-Cookie` value that deletes the cookie.
    pub fn clear(&self, kind: Kind) -> HeaderValue {
        self.set(kind, "", Some(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_prefixed_cookies_are_secure_and_read_back() {
        let c = Cookies::new(true);
        let v = c.set(Kind::Session, "abc", None);
        assert_eq!(
            v.to_str().unwrap(),
            "__Host-gh_session=abc; Path=/; HttpOnly; SameSite=Lax; Secure"
        );
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("x=1; __Host-gh_session=abc"),
        );
        assert_eq!(c.read(&h, Kind::Session).as_deref(), Some("abc"));
        assert_eq!(c.read(&h, Kind::Csrf), None);
        assert!(
            Cookies::new(false)
                .set(Kind::Session, "a", Some(0))
                .to_str()
                .unwrap()
                .starts_with("gh_session=a;")
        );
    }
}
