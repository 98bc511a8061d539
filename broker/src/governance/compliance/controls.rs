//! The frameworks: each control, the evidence files that answer it, and the checks that find
//! exceptions in that evidence. Plain functions over the datasets, tested without a database.

use super::dataset::Dataset;
use super::gather::Datasets;
use crate::error::{Error, Result};
use serde::Serialize;
use serde_json::Value;

/// A compliance framework an evidence pack is made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Framework {
    Soc2,
    Iso27001,
    Sox,
    Hipaa,
}

impl Framework {
    pub const ALL: [Framework; 4] = [
        Framework::Soc2,
        Framework::Iso27001,
        Framework::Sox,
        Framework::Hipaa,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Framework::Soc2 => "soc2",
            Framework::Iso27001 => "iso27001",
            Framework::Sox => "sox",
            Framework::Hipaa => "hipaa",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Framework::Soc2 => "SOC 2 (Trust Services Criteria, Common Criteria 6 and 7)",
            Framework::Iso27001 => "ISO/IEC 27001:2022 Annex A",
            Framework::Sox => "SOX IT general controls (access to programs and data)",
            Framework::Hipaa => "HIPAA Security Rule (45 CFR 164.308, 164.312, 164.316)",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        Framework::ALL
            .into_iter()
            .find(|f| f.as_str() == s.to_ascii_lowercase())
            .ok_or_else(|| {
                Error::invalid(format!(
                    "unknown framework {s:?}: use soc2, iso27001, sox or hipaa"
                ))
            })
    }
}

/// A check that looks for exceptions in the evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    GrantsWithoutApproval,
    LeaversOverSla,
    BreakGlassUnreviewed,
    PrivilegedWithoutSecondFactor,
    SessionsUnrecorded,
    SodWithoutException,
    ChainProblems,
    Reconciliation,
    ReviewsUnfinished,
    AlertsUndelivered,
    RecordingsPastRetention,
}

/// A control and the evidence that answers it.
#[derive(Debug, Clone)]
pub struct Control {
    pub id: &'static str,
    pub title: &'static str,
    pub evidence: &'static [&'static str],
    pub checks: &'static [Check],
}

const fn c(
    id: &'static str,
    title: &'static str,
    evidence: &'static [&'static str],
    checks: &'static [Check],
) -> Control {
    Control {
        id,
        title,
        evidence,
        checks,
    }
}

use Check::*;

/// The controls of a framework, in the framework's order.
pub fn controls(f: Framework) -> Vec<Control> {
    match f {
        Framework::Soc2 => vec![
            c(
                "CC6.1",
                "Logical access: who holds what, through which roles, with which sign-in factors",
                &[
                    "identities",
                    "privileges",
                    "roles",
                    "assignments",
                    "entitlements",
                ],
                &[PrivilegedWithoutSecondFactor],
            ),
            c(
                "CC6.2",
                "Access is granted only with approval before it starts; joiners registered",
                &["grants", "approvals", "requests", "joiners"],
                &[GrantsWithoutApproval, Reconciliation],
            ),
            c(
                "CC6.3",
                "Access removed when no longer needed: leavers cut off, removals, access reviews",
                &["leavers", "removals", "reviews"],
                &[LeaversOverSla, ReviewsUnfinished],
            ),
            c(
                "CC6.6",
                "All access to targets goes through the gateways",
                &["targets", "sessions"],
                &[],
            ),
            c(
                "CC7.2",
                "Monitoring: recorded sessions, terminations, break-glass alerts and their review",
                &[
                    "sessions",
                    "terminations",
                    "break_glass",
                    "alerts",
                    "audit_integrity",
                ],
                &[
                    SessionsUnrecorded,
                    BreakGlassUnreviewed,
                    AlertsUndelivered,
                    ChainProblems,
                ],
            ),
        ],
        Framework::Iso27001 => vec![
            c(
                "A.5.15",
                "Access control: the access policy as code and its change history",
                &["roles", "policy_changes", "sod_rules"],
                &[],
            ),
            c(
                "A.5.16",
                "Identity management: every identity, joiners and leavers",
                &["identities", "joiners", "leavers"],
                &[LeaversOverSla],
            ),
            c(
                "A.5.17",
                "Authentication information: sign-in factors held",
                &["identities", "sign_ins"],
                &[PrivilegedWithoutSecondFactor],
            ),
            c(
                "A.5.18",
                "Access rights: granted with approval, reviewed, removed",
                &["entitlements", "grants", "approvals", "reviews", "removals"],
                &[GrantsWithoutApproval, ReviewsUnfinished],
            ),
            c(
                "A.8.2",
                "Privileged access rights: just in time rather than standing",
                &[
                    "privileged_sessions",
                    "roles",
                    "assignments",
                    "privileges",
                    "break_glass",
                ],
                &[BreakGlassUnreviewed],
            ),
            c(
                "A.8.5",
                "Secure authentication: sign-ins and second factors",
                &["sign_ins", "identities"],
                &[PrivilegedWithoutSecondFactor],
            ),
            c(
                "A.8.15",
                "Logging: the audit chain verified, signed checkpoints",
                &["audit_integrity", "checkpoints", "reconciliation"],
                &[ChainProblems, Reconciliation],
            ),
        ],
        Framework::Sox => vec![
            c(
                "ITGC-1",
                "Provisioning: access granted with approval",
                &["grants", "approvals", "requests", "joiners"],
                &[GrantsWithoutApproval, Reconciliation],
            ),
            c(
                "ITGC-2",
                "Terminations within the SLA",
                &["leavers", "removals"],
                &[LeaversOverSla],
            ),
            c(
                "ITGC-3",
                "Periodic access reviews and their remediation",
                &["reviews", "entitlements"],
                &[ReviewsUnfinished],
            ),
            c(
                "ITGC-4",
                "Privileged access monitored",
                &[
                    "privileged_sessions",
                    "sessions",
                    "break_glass",
                    "privileges",
                ],
                &[SessionsUnrecorded, BreakGlassUnreviewed],
            ),
            c(
                "ITGC-5",
                "Segregation of duties: rules, violations, exceptions with approver and expiry",
                &["sod_rules", "sod_violations", "sod_exceptions"],
                &[SodWithoutException],
            ),
            c(
                "ITGC-6",
                "Changes to access policy",
                &["policy_changes", "roles"],
                &[],
            ),
            c(
                "IPE",
                "Completeness and accuracy of the reports (queries, parameters, totals reconciled with the audit log)",
                &["reconciliation", "audit_integrity", "checkpoints"],
                &[Reconciliation, ChainProblems],
            ),
        ],
        Framework::Hipaa => vec![
            c(
                "164.308(a)(3)",
                "Workforce security: clearance (approved access) and termination",
                &["grants", "approvals", "leavers"],
                &[GrantsWithoutApproval, LeaversOverSla],
            ),
            c(
                "164.308(a)(4)",
                "Information access management: access authorization",
                &["entitlements", "roles", "assignments", "reviews"],
                &[ReviewsUnfinished],
            ),
            c("164.308(a)(5)", "Log-in monitoring", &["sign_ins"], &[]),
            c(
                "164.312(a)(2)(i)",
                "Unique user identification",
                &["identities"],
                &[],
            ),
            c(
                "164.312(a)(2)(ii)",
                "Emergency access procedure: break-glass with post-review",
                &["break_glass", "alerts"],
                &[BreakGlassUnreviewed, AlertsUndelivered],
            ),
            c(
                "164.312(a)(2)(iii)",
                "Automatic logoff",
                &["automatic_logoff", "sessions"],
                &[],
            ),
            c(
                "164.312(b)",
                "Audit controls: recorded sessions, verified audit chain",
                &["audit_integrity", "checkpoints", "sessions"],
                &[ChainProblems, SessionsUnrecorded],
            ),
            c(
                "164.312(d)",
                "Person or entity authentication",
                &["identities", "sign_ins"],
                &[PrivilegedWithoutSecondFactor],
            ),
            c(
                "164.316(b)(2)",
                "Retention of documentation and records",
                &["retention"],
                &[RecordingsPastRetention],
            ),
        ],
    }
}

fn get<'a>(ds: &'a Datasets, name: &str) -> Option<&'a Dataset> {
    ds.get(name)
}

fn col<'a>(d: &'a Dataset, row: &'a [Value], name: &str) -> &'a Value {
    d.columns
        .iter()
        .position(|c| c == name)
        .and_then(|i| row.get(i))
        .unwrap_or(&Value::Null)
}

fn s<'a>(d: &'a Dataset, row: &'a [Value], name: &str) -> &'a str {
    col(d, row, name).as_str().unwrap_or_default()
}

/// Rows of `name` matching `pred`, as (count, up to 5 examples from column `show`).
fn find(
    ds: &Datasets,
    name: &str,
    show: &str,
    pred: impl Fn(&Dataset, &[Value]) -> bool,
) -> (usize, Vec<String>) {
    let Some(d) = get(ds, name) else {
        return (0, Vec::new());
    };
    let hits: Vec<String> = d
        .rows
        .iter()
        .filter(|r| pred(d, r))
        .map(|r| super::dataset::cell(col(d, r, show)))
        .collect();
    (hits.len(), hits.into_iter().take(5).collect())
}

/// The exceptions one check finds, each in words.
pub fn run(check: Check, ds: &Datasets) -> Vec<String> {
    let say = |(n, ex): (usize, Vec<String>), what: &str| {
        if n == 0 {
            Vec::new()
        } else {
            vec![format!("{n} {what} (e.g. {})", ex.join(", "))]
        }
    };
    match check {
        GrantsWithoutApproval => say(
            find(ds, "grants", "grant", |d, r| {
                s(d, r, "approval").starts_with("MISSING")
            }),
            "grant(s) without the approvals their role requires before they started",
        ),
        LeaversOverSla => say(
            find(ds, "leavers", "identity", |d, r| {
                col(d, r, "within_sla") != &Value::Bool(true)
            }),
            "leaver(s) not cut off within the termination SLA",
        ),
        BreakGlassUnreviewed => say(
            find(ds, "break_glass", "grant", |d, r| {
                s(d, r, "review_state") != "closed"
            }),
            "break-glass use(s) without a closed post-review",
        ),
        PrivilegedWithoutSecondFactor => say(
            find(ds, "identities", "username", |d, r| {
                s(d, r, "status") == "active"
                    && col(d, r, "privileges").as_i64().unwrap_or(0) > 0
                    && col(d, r, "totp") != &Value::Bool(true)
                    && col(d, r, "passkeys").as_i64().unwrap_or(0) == 0
            }),
            "active privileged identit(ies) without a second factor (TOTP or passkey)",
        ),
        SessionsUnrecorded => say(
            find(ds, "sessions", "session", |d, r| {
                col(d, r, "recorded") != &Value::Bool(true)
                    && s(d, r, "kind") != "forward"
                    && !s(d, r, "ended_at").is_empty()
                    && col(d, r, "bytes_down").as_i64().unwrap_or(0) > 0
            }),
            "session(s) that carried data but have no recording",
        ),
        SodWithoutException => say(
            find(ds, "sod_violations", "identity", |d, r| {
                col(d, r, "excepted") != &Value::Bool(true)
            }),
            "SoD conflict(s) without an unexpired exception",
        ),
        ChainProblems => say(
            find(ds, "audit_integrity", "first_problem", |d, r| {
                col(d, r, "problems").as_i64().unwrap_or(0) > 0
            }),
            "problem(s) in the audit chain",
        ),
        Reconciliation => say(
            find(ds, "reconciliation", "dataset", |d, r| {
                col(d, r, "reconciled") != &Value::Bool(true)
            }),
            "population(s) that do not reconcile with the audit log",
        ),
        ReviewsUnfinished => say(
            find(ds, "reviews", "name", |d, r| {
                let ended = s(d, r, "state") == "closed" || s(d, r, "state") == "ended";
                ended
                    && ((col(d, r, "needs_sign_off") == &Value::Bool(true)
                        && s(d, r, "signed_off_by").is_empty())
                        || col(d, r, "revokes_not_verified").as_i64().unwrap_or(0) > 0)
            }),
            "ended review campaign(s) awaiting their sign-off, or with revokes not verified as gone",
        ),
        AlertsUndelivered => say(
            find(ds, "alerts", "id", |d, r| {
                s(d, r, "channel") == "alert" && s(d, r, "delivered_at").is_empty()
            }),
            "alert(s) never delivered",
        ),
        RecordingsPastRetention => say(
            find(ds, "retention", "item", |d, r| {
                s(d, r, "item") == "session recordings"
                    && !s(d, r, "status").contains(" 0 past retention")
            }),
            "recording store(s) holding recordings past retention",
        ),
    }
}

/// A control's result in the pack.
#[derive(Debug, Clone, Serialize)]
pub struct Result_ {
    pub id: &'static str,
    pub title: &'static str,
    /// Evidence files with their row counts.
    pub evidence: Vec<(String, usize)>,
    pub exceptions: Vec<String>,
    /// `effective` (evidence, no exception), `exceptions`, or `no evidence`.
    pub status: &'static str,
}

/// Every control of `f` evaluated over the datasets.
pub fn evaluate(f: Framework, ds: &Datasets) -> Vec<Result_> {
    controls(f)
        .into_iter()
        .map(|c| {
            let evidence: Vec<(String, usize)> = c
                .evidence
                .iter()
                .filter_map(|n| get(ds, n).map(|d| (n.to_string(), d.rows.len())))
                .collect();
            let exceptions: Vec<String> = c.checks.iter().flat_map(|k| run(*k, ds)).collect();
            let status = if evidence.len() < c.evidence.len() {
                "no evidence"
            } else if exceptions.is_empty() {
                "effective"
            } else {
                "exceptions"
            };
            Result_ {
                id: c.id,
                title: c.title,
                evidence,
                exceptions,
                status,
            }
        })
        .collect()
}

/// Headline figures of the evidence, the same for every framework.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Figures {
    pub identities: usize,
    pub leavers: usize,
    pub leavers_within_sla: usize,
    pub cut_off_p50_ms: Option<i64>,
    pub cut_off_p99_ms: Option<i64>,
    pub cut_off_max_ms: Option<i64>,
    pub grants: usize,
    pub grants_without_approval: usize,
    pub break_glass: usize,
    pub break_glass_reviewed: usize,
    pub sessions: usize,
    pub sessions_recorded: usize,
    pub campaigns: usize,
    pub sod_exceptions: usize,
}

fn pct(sorted: &[i64], p: usize) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let i = (sorted.len() * p).div_ceil(100).max(1) - 1;
    sorted.get(i.min(sorted.len() - 1)).copied()
}

/// The headline figures.
pub fn figures(ds: &Datasets) -> Figures {
    let rows = |n: &str| get(ds, n).map_or(0, |d| d.rows.len());
    let count = |n: &str, pred: &dyn Fn(&Dataset, &[Value]) -> bool| {
        get(ds, n).map_or(0, |d| d.rows.iter().filter(|r| pred(d, r)).count())
    };
    let mut cuts: Vec<i64> = get(ds, "leavers")
        .map(|d| {
            d.rows
                .iter()
                .filter_map(|r| col(d, r, "cut_off_ms").as_i64())
                .collect()
        })
        .unwrap_or_default();
    cuts.sort_unstable();
    Figures {
        identities: rows("identities"),
        leavers: rows("leavers"),
        leavers_within_sla: count("leavers", &|d, r| {
            col(d, r, "within_sla") == &Value::Bool(true)
        }),
        cut_off_p50_ms: pct(&cuts, 50),
        cut_off_p99_ms: pct(&cuts, 99),
        cut_off_max_ms: cuts.last().copied(),
        grants: rows("grants"),
        grants_without_approval: count("grants", &|d, r| {
            s(d, r, "approval").starts_with("MISSING")
        }),
        break_glass: rows("break_glass"),
        break_glass_reviewed: count("break_glass", &|d, r| s(d, r, "review_state") == "closed"),
        sessions: rows("sessions"),
        sessions_recorded: count("sessions", &|d, r| {
            col(d, r, "recorded") == &Value::Bool(true)
        }),
        campaigns: rows("reviews"),
        sod_exceptions: rows("sod_exceptions"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ds(name: &str, cols: &[&str], rows: Vec<Vec<Value>>) -> (String, Dataset) {
        let mut d = Dataset::derived(name, "", "", cols);
        d.rows = rows;
        (name.to_string(), d)
    }

    #[test]
    fn every_control_names_evidence_and_a_missing_file_is_no_evidence() {
        for f in Framework::ALL {
            for c in controls(f) {
                assert!(!c.evidence.is_empty(), "{} {}", f.as_str(), c.id);
            }
            let r = evaluate(f, &Datasets::new());
            assert!(r.iter().all(|c| c.status == "no evidence"));
        }
    }

    #[test]
    fn exceptions_are_found_and_counted() {
        let all: Datasets = [
            ds(
                "grants",
                &["grant", "approval"],
                vec![
                    vec!["g1".into(), "1 approval(s) of 1 before start".into()],
                    vec![
                        "g2".into(),
                        "MISSING: 0 approval(s) of 1 before start".into(),
                    ],
                ],
            ),
            ds(
                "leavers",
                &["identity", "cut_off_ms", "within_sla"],
                vec![
                    vec!["a".into(), 10.into(), true.into()],
                    vec!["b".into(), 30.into(), true.into()],
                    vec!["c".into(), Value::Null, false.into()],
                ],
            ),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            run(GrantsWithoutApproval, &all),
            ["1 grant(s) without the approvals their role requires before they started (e.g. g2)"]
        );
        assert_eq!(run(LeaversOverSla, &all).len(), 1);
        let f = figures(&all);
        assert_eq!((f.grants, f.grants_without_approval), (2, 1));
        assert_eq!((f.leavers, f.leavers_within_sla), (3, 2));
        assert_eq!((f.cut_off_p50_ms, f.cut_off_max_ms), (Some(10), Some(30)));
        assert_eq!(Framework::parse("SOC2").unwrap(), Framework::Soc2);
        assert!(Framework::parse("pci").is_err());
    }
}
