//! Which app a request is for: the app's public host is `NAME.DOMAIN` (the target's name under
//! the apps domain), or the host its settings name instead (`host`). Routing and authorization
//! both use the one name found, from the one authority the request carries (`:authority` in
//! HTTP/2, else `Host`).

/// The host of `authority` (`host[:port]`): lower case, without the port or a trailing dot;
/// `None` for an IPv6 literal (never an app host) or a port that is no number.
pub fn hostname(authority: &str) -> Option<String> {
    let host = match authority.rsplit_once(':') {
        _ if authority.starts_with('[') => return None,
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        Some(_) => return None,
        None => authority,
    };
    Some(host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase())
}

/// Whether `host` is the apps domain or under it (where only `NAME.DOMAIN` hosts live: an
/// app's own host there could take another app's).
pub fn under_domain(host: &str, domain: &str) -> bool {
    let domain = domain.trim_matches('.').to_ascii_lowercase();
    host == domain || host.ends_with(&format!(".{domain}"))
}

/// The app name `authority` (`host[:port]`) names under `domain`, or `None` (not an app host:
/// answered with a plain 404 that names nothing). Case-insensitive; one label only (no
/// `a.b.DOMAIN`), a trailing dot allowed, the port ignored.
pub fn app_of(authority: &str, domain: &str) -> Option<String> {
    let host = hostname(authority)?;
    let domain = domain.trim_matches('.').to_ascii_lowercase();
    let name = host.strip_suffix(&domain)?.strip_suffix('.')?;
    if name.is_empty() || name.contains('.') {
        return None;
    }
    gatehouse_broker::access::targets::validate_name(name).ok()?;
    Some(name.to_string())
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
    fn hostnames_drop_the_port_case_and_trailing_dot() {
        assert_eq!(
            hostname("Grafana.Corp.Example.:8443").as_deref(),
            Some("grafana.corp.example")
        );
        assert_eq!(hostname("[::1]:8443"), None);
        assert!(under_domain("x.apps.localhost", "apps.localhost"));
        assert!(under_domain("apps.localhost", ".apps.localhost."));
        assert!(!under_domain("xapps.localhost", "apps.localhost"));
    }
}
