//! Which app a request is for: the app's public host is `NAME.DOMAIN` (the target's name under
//! the apps domain). Routing and authorization both use the one name this returns, from the
//! one authority the request carries (`:authority` in HTTP/2, else `Host`).

/// The app name `authority` (`host[:port]`) names under `domain`, or `None` (not an app host:
/// answered with a plain 404 that names nothing). Case-insensitive; one label only (no
/// `a.b.DOMAIN`), a trailing dot allowed, the port ignored.
pub fn app_of(authority: &str, domain: &str) -> Option<String> {
    let host = match authority.rsplit_once(':') {
        // An IPv6 literal is never an app host.
        _ if authority.starts_with('[') => return None,
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        Some(_) => return None,
        None => authority,
    };
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    let domain = domain.trim_matches('.').to_ascii_lowercase();
    let name = host.strip_suffix(&domain)?.strip_suffix('.')?;
    if name.is_empty() || name.contains('.') {
        return None;
    }
    gatehouse_broker::targets::validate_name(name).ok()?;
    Some(name.to_string())
}

/// The public origin of app `name`: `https://NAME.DOMAIN`, with `:PORT` unless it is 443.
pub fn origin(name: &str, domain: &str, port: u16) -> String {
    let domain = domain.trim_matches('.');
    if port == 443 {
        format!("https://{name}.{domain}")
    } else {
        format!("https://{name}.{domain}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_only_one_label_under_the_apps_domain_names_an_app() {
        let d = "apps.localhost";
        assert_eq!(
            app_of("grafana.apps.localhost", d).as_deref(),
            Some("grafana")
        );
        assert_eq!(
            app_of("Grafana.Apps.Localhost:8443", d).as_deref(),
            Some("grafana")
        );
        assert_eq!(
            app_of("grafana.apps.localhost.", d).as_deref(),
            Some("grafana")
        );
        for other in [
            "apps.localhost",
            "x.grafana.apps.localhost",
            "grafana.apps.localhost.evil.example",
            "grafanaapps.localhost",
            "evil.example",
            "grafana.apps.localhost:http",
            "[::1]:8443",
            "",
            "_bad.apps.localhost",
        ] {
            assert_eq!(app_of(other, d), None, "{other}");
        }
    }

    #[test]
    fn origins_omit_the_default_port() {
        assert_eq!(
            origin("grafana", "apps.localhost", 443),
            "https://grafana.apps.localhost"
        );
        assert_eq!(
            origin("grafana", "apps.localhost", 8443),
            "https://grafana.apps.localhost:8443"
        );
    }
}
