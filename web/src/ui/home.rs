//! "My access": what the signed-in person holds now — standing and eligible roles, live and
//! scheduled grants with a countdown — and, for every target they may reach, the ssh line and an
//! ssh_config snippet to copy.

use super::{Chrome, PageResult, Signed, conn, render, span, when};
use crate::AppState;
use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use gatehouse_broker::access::assignments::Kind;
use gatehouse_broker::access::grants::{self, Grant};
use gatehouse_broker::access::policy::decide::AccessRequest;
use gatehouse_broker::access::policy::reach::{self, Reach};

pub fn routes() -> Router<AppState> {
    Router::new().route("/", get(page))
}

/// A role held by assignment.
struct HeldRole {
    role: String,
    kind: &'static str,
    until: Option<String>,
    via: Option<String>,
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    page: Chrome,
    held: Vec<HeldRole>,
    grants: Vec<Grant>,
    reach: Vec<Reach>,
    apps: Vec<AppLink>,
    requestable: Vec<String>,
    ssh_host: String,
    ssh_port: String,
    now_ms: i64,
}

impl HomePage {
    fn when(&self, ms: &i64) -> String {
        when(*ms)
    }
    fn left(&self, until: &i64) -> String {
        span(until - self.now_ms)
    }
    fn state_of(&self, g: &Grant) -> &'static str {
        g.state(self.now_ms)
    }
    fn ssh_line(&self, login: &str, target: &str) -> String {
        if self.ssh_port == "22" {
            format!("ssh {login}@{target}@{}", self.ssh_host)
        } else {
            format!(
                "ssh -p {} {login}@{target}@{}",
                self.ssh_port, self.ssh_host
            )
        }
    }
    fn ssh_config(&self, login: &str, target: &str) -> String {
        format!(
            "Host {target}\n  HostName {}\n  Port {}\n  User {login}@{target}",
            self.ssh_host, self.ssh_port
        )
    }
}

async fn page(State(state): State<AppState>, s: Signed) -> PageResult {
    let now = state.clock.now_ms();
    let mut c = conn(&state).await?;
    let cat = state.cache.current(&mut c, now).await?;
    let username = s.username().to_string();
    let template = AccessRequest {
        identity: username.clone(),
        protocol: "ssh".into(),
        target: String::new(),
        login: None,
        source_ip: None,
        mfa_at_ms: s.0.session.mfa_at_ms,
        reason: None,
        ticket: None,
        http: None,
    };
    let reach = reach::reachable(&cat, &template, now);
    // Apps, with the address of each on the app gateway (none when it is off).
    let apps: Vec<AppLink> = match &state.web.apps {
        Some(a) => {
            let reachable = reach::apps(&cat, &template, now);
            // Apps served at a host of their own.
            let own_hosts: std::collections::HashMap<String, String> = if reachable.is_empty() {
                Default::default()
            } else {
                let mut c = conn(&state).await?;
                gatehouse_broker::access::targets::list(&mut c)
                    .await?
                    .into_iter()
                    .filter_map(|t| t.app.host.map(|h| (t.name, h)))
                    .collect()
            };
            reachable
                .into_iter()
                .map(|(name, until_ms)| AppLink {
                    url: crate::ui::apps::app_origin(
                        &name,
                        own_hosts.get(&name).map(String::as_str),
                        a,
                    ),
                    name,
                    until_ms,
                })
                .collect()
        }
        None => Vec::new(),
    };
    let requestable = reach::requestable(&cat, &username);
    let held = cat
        .identities
        .get(&username)
        .map(|who| {
            who.held
                .iter()
                .filter(|h| h.not_after_ms.is_none_or(|t| t > now))
                .map(|h| HeldRole {
                    role: cat
                        .roles
                        .get(&h.role_id)
                        .map(|r| r.name.clone())
                        .unwrap_or_default(),
                    kind: match h.kind {
                        Kind::Standing => "standing",
                        Kind::Eligible => "eligible",
                    },
                    until: h.not_after_ms.map(when),
                    via: h.via_group.clone(),
                })
                .collect()
        })
        .unwrap_or_default();
    let grants = grants::active_of(&mut c, &s.0.identity.id, now).await?;
    let (ssh_host, ssh_port) = ssh_host_port(&state);
    render(&HomePage {
        page: s.chrome(&state, "My access", "access").await?,
        held,
        grants,
        reach,
        apps,
        requestable,
        ssh_host,
        ssh_port,
        now_ms: now,
    })
}

/// Where users point ssh: the gateway's configured address, else the web origin's host with
/// the default port.
fn ssh_host_port(state: &AppState) -> (String, String) {
    let host = state
        .web
        .origin
        .host_str()
        .unwrap_or("localhost")
        .to_string();
    match state
        .web
        .ssh_address
        .as_deref()
        .and_then(|a| a.rsplit_once(':'))
    {
        Some((h, p)) => {
            let h = h.trim_matches(['[', ']']);
            let h = if h == "127.0.0.1" || h == "::1" || h == "0.0.0.0" || h == "::" {
                host
            } else {
                h.to_string()
            };
            (h, p.to_string())
        }
        None => (host, "2222".to_string()),
    }
}

/// An app the person may open now.
pub struct AppLink {
    pub name: String,
    /// `https://NAME.DOMAIN[:PORT]/`.
    pub url: String,
    pub until_ms: Option<i64>,
}
