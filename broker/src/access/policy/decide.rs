//! The decision itself: a plain function over a [`Catalog`] and a request, no IO. It finds what
//! could carry the access (standing assignments in their window, live grants), narrows by target,
//! protocol and login, then evaluates the role's Cedar condition. Deny by default.

use super::catalog::{Catalog, IdentityFacts, RoleFacts, TargetFacts};
use super::cedar::{self, ContextFacts};
use crate::access::assignments::Kind as AssignmentKind;
use serde::Serialize;
use std::net::IpAddr;

/// What is asked.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AccessRequest {
    pub identity: String,
    /// `ssh` or `http`.
    pub protocol: String,
    pub target: String,
    /// None: the one login the access allows (denied when there are several).
    pub login: Option<String>,
    pub source_ip: Option<IpAddr>,
    /// When the identity last passed a multi-factor check.
    pub mfa_at_ms: Option<i64>,
    pub reason: Option<String>,
    pub ticket: Option<String>,
    /// For an app request: its method and path (`context.method`, `context.path` in Cedar
    /// conditions; empty for SSH).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpFacts>,
}

/// What an app request asks for, as a condition may read it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HttpFacts {
    /// Upper case, e.g. `GET`.
    pub method: String,
    /// The path as routed (no query).
    pub path: String,
}

/// What carries an allowed access.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GrantRef {
    /// `standing` (an assignment), `request` or `break_glass` (a stored grant).
    pub kind: String,
    /// The assignment id (standing) or the grant id.
    pub id: String,
    pub role: String,
    /// When the access ends; None for a standing assignment without an end.
    pub not_after_ms: Option<i64>,
    /// Whether SSH local port forwarding is allowed.
    pub port_forwarding: bool,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub allow: bool,
    /// Why: for an allow, what carries it; for a deny, every reason found.
    pub reasons: Vec<String>,
    pub grant: Option<GrantRef>,
    /// The login decided (the one asked, or the only one allowed).
    pub login: Option<String>,
}

impl Decision {
    fn deny(reason: impl Into<String>) -> Self {
        Decision {
            allow: false,
            reasons: vec![reason.into()],
            grant: None,
            login: None,
        }
    }
}

/// One way the identity might hold access to the target.
struct Candidate<'a> {
    role: &'a RoleFacts,
    grant: GrantRef,
    logins: Vec<String>,
    label: String,
}

fn candidates<'a>(
    cat: &'a Catalog,
    who: &'a IdentityFacts,
    target: &TargetFacts,
    protocol: &str,
    now_ms: i64,
    reasons: &mut Vec<String>,
) -> Vec<Candidate<'a>> {
    let mut out = Vec::new();
    for h in &who.held {
        if h.kind != AssignmentKind::Standing {
            continue;
        }
        let Some(role) = cat.roles.get(&h.role_id) else {
            continue;
        };
        if !role.spec.targets.matches(&target.name, &target.labels) {
            continue;
        }
        let label = match &h.via_group {
            Some(g) => format!("standing role {} (through group {g})", role.name),
            None => format!("standing role {}", role.name),
        };
        if h.not_before_ms.is_some_and(|t| now_ms < t)
            || h.not_after_ms.is_some_and(|t| now_ms >= t)
        {
            reasons.push(format!("{label} is outside its validity window"));
            continue;
        }
        if !role.spec.allows_protocol(protocol) {
            reasons.push(format!("{label} does not allow {protocol}"));
            continue;
        }
        out.push(Candidate {
            role,
            grant: GrantRef {
                kind: "standing".into(),
                id: h.assignment_id.clone(),
                role: role.name.clone(),
                not_after_ms: h.not_after_ms,
                port_forwarding: role.spec.port_forwarding,
            },
            logins: role.spec.logins.clone(),
            label,
        });
    }
    for g in &who.grants {
        let Some(role) = cat.roles.get(&g.role_id) else {
            continue;
        };
        let selected = role.spec.targets.matches(&target.name, &target.labels)
            && g.targets.as_ref().is_none_or(|t| t.contains(&target.name));
        if !selected {
            continue;
        }
        let label = format!("grant {} (role {})", g.id, role.name);
        if !g.is_active(now_ms) {
            reasons.push(format!("{label} is {}", g.state(now_ms)));
            continue;
        }
        if !role.spec.allows_protocol(protocol) {
            reasons.push(format!("{label} does not allow {protocol}"));
            continue;
        }
        let logins = match &g.login {
            Some(l) => role
                .spec
                .logins
                .iter()
                .filter(|x| *x == l)
                .cloned()
                .collect(),
            None => role.spec.logins.clone(),
        };
        out.push(Candidate {
            role,
            grant: GrantRef {
                kind: match g.source {
                    crate::access::grants::Source::Request => "request".into(),
                    crate::access::grants::Source::BreakGlass => "break_glass".into(),
                },
                id: g.id.clone(),
                role: role.name.clone(),
                not_after_ms: Some(g.not_after_ms),
                port_forwarding: role.spec.port_forwarding,
            },
            logins,
            label,
        });
    }
    out
}

/// Decides `req` at `now_ms`. Never fails: anything missing or broken is a deny with its reason.
pub fn decide(cat: &Catalog, req: &AccessRequest, now_ms: i64) -> Decision {
    let Some(who) = cat.identities.get(&req.identity) else {
        return Decision::deny(format!("unknown identity {}", req.identity));
    };
    if !who.active {
        return Decision::deny(format!("identity {} is not active", who.username));
    }
    let Some(target) = cat.targets.get(&req.target) else {
        return Decision::deny(format!("unknown target {}", req.target));
    };
    if target.kind != req.protocol {
        return Decision::deny(format!(
            "target {} is reached over {}, not {}",
            target.name, target.kind, req.protocol
        ));
    }
    let mut reasons = Vec::new();
    let found = candidates(cat, who, target, &req.protocol, now_ms, &mut reasons);
    if found.is_empty() && reasons.is_empty() {
        return Decision::deny(format!(
            "no standing role or live grant of {} covers target {}",
            who.username, target.name
        ));
    }
    let mut allowed: Vec<(Candidate<'_>, String)> = Vec::new();
    let mut evaluations = cedar::Evaluations::new(&who.entity, &target.entity, &cat.entities);
    for c in found {
        let login = match &req.login {
            Some(l) if c.logins.iter().any(|x| x == l) => l.clone(),
            Some(l) => {
                reasons.push(format!("{} does not allow login {l}", c.label));
                continue;
            }
            None => match c.logins.as_slice() {
                [one] => one.clone(),
                // An app's role may name no login (no app role): the person is just let in.
                [] if req.protocol == "http" => String::new(),
                [] => {
                    reasons.push(format!("{} allows no login", c.label));
                    continue;
                }
                many => {
                    reasons.push(format!(
                        "{} allows several logins ({}): name one as LOGIN@{}",
                        c.label,
                        many.join(", "),
                        target.name
                    ));
                    continue;
                }
            },
        };
        if c.role.spec.session_mfa && req.mfa_at_ms.is_none() {
            reasons.push(format!(
                "{} requires a second factor at login (none was given)",
                c.label
            ));
            continue;
        }
        if let Some(cond) = &c.role.condition {
            let verdict = match cond {
                Ok(condition) => evaluations.check(
                    condition,
                    &ContextFacts {
                        login: &login,
                        protocol: &req.protocol,
                        now_ms,
                        source_ip: req.source_ip,
                        mfa_at_ms: req.mfa_at_ms,
                        reason: req.reason.as_deref().unwrap_or(""),
                        ticket: req.ticket.as_deref().unwrap_or(""),
                        method: req.http.as_ref().map_or("", |h| h.method.as_str()),
                        path: req.http.as_ref().map_or("", |h| h.path.as_str()),
                    },
                ),
                Err(e) => Err(format!("condition does not compile: {e}")),
            };
            if let Err(why) = verdict {
                reasons.push(format!("{}: {why}", c.label));
                continue;
            }
        }
        allowed.push((c, login));
    }
    // Without a login, the access must allow exactly one across everything that carries it.
    if req.login.is_none() {
        let mut logins: Vec<&String> = allowed.iter().map(|(_, l)| l).collect();
        logins.sort();
        logins.dedup();
        if logins.len() > 1 {
            let names: Vec<&str> = logins.iter().map(|l| l.as_str()).collect();
            return Decision::deny(format!(
                "several logins are allowed on {} ({}): name one as LOGIN@{}",
                target.name,
                names.join(", "),
                target.name
            ));
        }
    }
    // Several may allow: keep the one that lasts longest (no end counts as longest).
    allowed.sort_by_key(|(c, _)| std::cmp::Reverse(c.grant.not_after_ms.unwrap_or(i64::MAX)));
    match allowed.into_iter().next() {
        Some((c, login)) => Decision {
            allow: true,
            reasons: vec![format!("allowed by {}", c.label)],
            grant: Some(c.grant),
            login: Some(login),
        },
        None => Decision {
            allow: false,
            reasons,
            grant: None,
            login: None,
        },
    }
}
