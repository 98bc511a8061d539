//! Benchmark of `decide` (the authorize decision, Cedar conditions and entity building included)
//! over an in-memory catalog of 10,000 identities, 1,000 targets and 100 roles, against Cedar's
//! own `is_authorized` on the same inputs as the anchor. Run by bench/authorize.sh.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use gatehouse_broker::access::assignments::{Assignment, Kind, Subject};
use gatehouse_broker::access::policy::catalog::Catalog;
use gatehouse_broker::access::policy::cedar::{self, ContextFacts};
use gatehouse_broker::access::policy::{AccessRequest, decide};
use gatehouse_broker::access::role_spec::{RoleSpec, TargetSelector};
use serde_json::{Map, Value, json};
use std::time::Instant;

const IDENTITIES: usize = 10_000;
const TARGETS: usize = 1_000;
const ROLES: usize = 100;
const GROUPS: usize = 50;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const ENVS: [&str; 3] = ["prod", "staging", "dev"];
const TIERS: [&str; 4] = ["db", "web", "app", "cache"];
const DEPTS: [&str; 5] = ["engineering", "dba", "security", "sre", "finance"];
const CONDITIONS: [&str; 5] = [
    r#"principal.employment_type == "employee""#,
    r#"principal.department == "engineering" && resource.getTag("env") != "prod""#,
    r#"context.source_ip.isInRange(ip("10.0.0.0/8")) && principal.groups.contains("g1")"#,
    r#"context.mfa && context.mfa_age_seconds < 3600"#,
    r#"context.hour >= 6 && context.hour < 22 && principal.location == "paris""#,
];

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

fn catalog(rng: &mut Rng) -> Catalog {
    let identities: Vec<_> = (0..IDENTITIES)
        .map(|i| {
            (
                format!("id{i}"),
                format!("user{i}"),
                true,
                obj(json!({
                    "department": DEPTS[i % DEPTS.len()],
                    "employment_type": if i % 10 == 0 { "contractor" } else { "employee" },
                    "location": if i % 3 == 0 { "paris" } else { "berlin" },
                    "title": "engineer",
                    "cost_center": format!("cc{}", i % 40),
                })),
            )
        })
        .collect();
    let memberships: Vec<_> = (0..IDENTITIES)
        .flat_map(|i| {
            let a = i % GROUPS;
            let b = (i * 7 + 3) % GROUPS;
            [
                (format!("id{i}"), format!("gid{a}"), format!("g{a}")),
                (format!("id{i}"), format!("gid{b}"), format!("g{b}")),
            ]
        })
        .collect();
    let targets: Vec<_> = (0..TARGETS)
        .map(|t| {
            (
                format!("host{t}"),
                "ssh".to_string(),
                obj(json!({ "env": ENVS[t % 3], "tier": TIERS[t % 4], "region": format!("r{}", t % 5) })),
                None,
            )
        })
        .collect();
    let roles: Vec<_> = (0..ROLES)
        .map(|r| {
            let targets = if r % 4 == 0 {
                TargetSelector {
                    names: (0..20)
                        .map(|k| format!("host{}", (r * 13 + k) % TARGETS))
                        .collect(),
                    ..Default::default()
                }
            } else {
                TargetSelector {
                    labels: [
                        ("env".to_string(), ENVS[r % 3].to_string()),
                        ("tier".to_string(), TIERS[(r / 3) % 4].to_string()),
                    ]
                    .into(),
                    ..Default::default()
                }
            };
            let spec = RoleSpec {
                targets,
                logins: vec!["root".into(), format!("svc{}", r % 3)],
                condition: (r % 5 != 4).then(|| CONDITIONS[r % CONDITIONS.len()].to_string()),
                ..Default::default()
            };
            (format!("rid{r}"), format!("role{r}"), spec)
        })
        .collect();
    // Each group holds 4 standing roles; 1 in 10 identities also holds one directly.
    let mut assignments = Vec::new();
    for g in 0..GROUPS {
        for k in 0..4 {
            let r = (g * 4 + k) % ROLES;
            assignments.push(Assignment {
                id: format!("a-g{g}-{k}"),
                role_id: format!("rid{r}"),
                role: format!("role{r}"),
                subject: Subject::Group(format!("g{g}")),
                subject_id: format!("gid{g}"),
                kind: Kind::Standing,
                not_before_ms: None,
                not_after_ms: None,
                source: "api".into(),
            });
        }
    }
    for i in (0..IDENTITIES).step_by(10) {
        let r = rng.pick(ROLES);
        assignments.push(Assignment {
            id: format!("a-i{i}"),
            role_id: format!("rid{r}"),
            role: format!("role{r}"),
            subject: Subject::Identity(format!("user{i}")),
            subject_id: format!("id{i}"),
            kind: Kind::Standing,
            not_before_ms: None,
            not_after_ms: Some(i64::MAX / 2),
            source: "api".into(),
        });
    }
    Catalog::build(
        1,
        identities,
        memberships,
        targets,
        roles,
        assignments,
        Vec::new(),
    )
    .unwrap()
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p) as usize] as f64
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let t0 = Instant::now();
    let cat = catalog(&mut rng);
    println!(
        "catalog: {IDENTITIES} identities, {TARGETS} targets, {ROLES} roles built in {:.0} ms",
        t0.elapsed().as_secs_f64() * 1e3
    );

    let now = 1_764_064_800_000; // 2025-11-25T10:00:00Z
    // Source addresses: a pool of 64 (a VPN or office range; 1 in 4 outside 10/8), and, for the
    // worst case, a new address on every request (nothing remembered between decisions).
    let pool = |k: usize| -> std::net::IpAddr {
        if k % 4 == 3 {
            format!("192.168.7.{}", k % 250 + 1).parse().unwrap()
        } else {
            format!("10.1.{}.{}", k / 250, k % 250 + 1).parse().unwrap()
        }
    };
    let reqs: Vec<AccessRequest> = (0..4096)
        .map(|_| AccessRequest {
            identity: format!("user{}", rng.pick(IDENTITIES)),
            protocol: "ssh".into(),
            target: format!("host{}", rng.pick(TARGETS)),
            login: Some("root".into()),
            source_ip: Some(pool(rng.pick(64))),
            mfa_at_ms: Some(now - 600_000),
            reason: None,
            ticket: None,
            http: None,
        })
        .collect();
    let fresh: Vec<AccessRequest> = reqs
        .iter()
        .enumerate()
        .map(|(k, r)| AccessRequest {
            source_ip: Some(pool(64 + k)),
            ..r.clone()
        })
        .collect();

    let (p50, p99, rate, allowed) = measure(&cat, &reqs, n, now);
    let (f50, f99, frate, _) = measure(&cat, &fresh, n, now);

    // Anchor: Cedar's is_authorized alone (context + entities + evaluation) on one condition.
    let policies = cedar::compile("anchor", CONDITIONS[0]).unwrap();
    let who = &cat.identities["user1"].entity;
    let what = &cat.targets["host1"].entity;
    let facts = ContextFacts {
        login: "root",
        protocol: "ssh",
        now_ms: now,
        source_ip: Some("10.1.2.3".parse().unwrap()),
        mfa_at_ms: Some(now - 600_000),
        reason: "",
        ticket: "",
        method: "",
        path: "",
    };
    let mut clat = Vec::with_capacity(n / 4);
    for _ in 0..(n / 4) {
        let t = Instant::now();
        std::hint::black_box(cedar::evaluate(&policies, who, what, &facts).is_ok());
        clat.push(t.elapsed().as_nanos() as u64);
    }
    clat.sort_unstable();
    let c50 = percentile(&clat, 0.50) / 1e3;

    println!(
        "decisions: {n}, allowed: {:.1}%",
        allowed as f64 * 100.0 / n as f64
    );
    println!(
        "gatehouse decide, 64 source addresses     p50 {p50:.2} us  p99 {p99:.2} us  {rate:.0} decisions/s (one thread)"
    );
    println!(
        "gatehouse decide, a new address each time p50 {f50:.2} us  p99 {f99:.2} us  {frate:.0} decisions/s (one thread)"
    );
    println!("cedar is_authorized alone (one condition)  p50 {c50:.2} us");
    println!("ratio decide p50 / cedar-alone p50: {:.2}", p50 / c50);
    println!("goal: p50 <= 5 us, p99 <= 25 us, >= 200000 decisions/s");
}

/// Runs `n` decisions over `reqs` (after a warm-up): p50 and p99 in µs, decisions/s, allowed.
fn measure(cat: &Catalog, reqs: &[AccessRequest], n: usize, now: i64) -> (f64, f64, f64, usize) {
    for r in reqs.iter().take(2000) {
        std::hint::black_box(decide(cat, r, now));
    }
    let mut lat = Vec::with_capacity(n);
    let mut allowed = 0usize;
    let start = Instant::now();
    for i in 0..n {
        let r = &reqs[i % reqs.len()];
        let t = Instant::now();
        let d = decide(cat, r, now);
        lat.push(t.elapsed().as_nanos() as u64);
        allowed += usize::from(d.allow);
        std::hint::black_box(d);
    }
    let total = start.elapsed().as_secs_f64();
    lat.sort_unstable();
    (
        percentile(&lat, 0.50) / 1e3,
        percentile(&lat, 0.99) / 1e3,
        n as f64 / total,
        allowed,
    )
}
