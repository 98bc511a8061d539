//! The broker's acceptance, through the API, on both backends: quorum approvals, expiry by the
//! clock, self-approval, SoD with exceptions, break-glass, and `apply` idempotence.

use super::{ADMIN_TOKEN, TestServer};
use gatehouse_broker::access::policy::{self, AccessRequest, CatalogCache};
use gatehouse_broker::secrets::Secret;
use gatehouse_broker::{Backend, Clock, ManualClock, SharedClock, bootstrap, ledger::audit};
use gatehouse_web::router;
use reqwest::Method;
use serde_json::{Value, json};
use std::sync::Arc;

pub(super) const POLICY: &str = r#"
[[identities]]
username = "alice"
email = "alice@example.com"
attributes = { department = "engineering", employment_type = "employee", manager = "dave" }

[[identities]]
username = "bob"
attributes = { department = "dba", employment_type = "employee" }

[[identities]]
username = "carol"
attributes = { department = "security", employment_type = "employee" }

[[identities]]
username = "eve"
attributes = { department = "engineering", employment_type = "contractor" }

[[groups]]
name = "engineering"
members = ["alice", "eve"]

[[groups]]
name = "db-owners"
members = ["bob"]

[[groups]]
name = "security"
members = ["carol"]

[[targets]]
name = "db-01"
kind = "ssh"
address = "10.0.0.5:22"
labels = { env = "prod", tier = "db" }

[[roles]]
name = "prod-db"
targets = { labels = { env = "prod", tier = "db" } }
logins = ["postgres"]
max_duration = "4h"
requestable_by = ["group:engineering"]
approvals = [{ from = "group:db-owners", count = 1 }, { from = "group:security", count = 1 }]
require_reason = true
condition = 'principal.employment_type == "employee"'

[[roles]]
name = "prod-deployer"
targets = { names = ["db-01"] }
logins = ["deploy"]

[[roles]]
name = "change-approver"
targets = { names = ["db-01"] }
logins = ["audit"]

[[roles]]
name = "emergency"
targets = { labels = { env = "prod" } }
logins = ["root"]
max_duration = "1h"
break_glass = true

[[assignments]]
role = "prod-db"
to = "group:engineering"
kind = "eligible"
until = "2099-01-01T00:00:00Z"

[[assignments]]
role = "prod-deployer"
to = "alice"
kind = "standing"

[[assignments]]
role = "change-approver"
to = "alice"
kind = "eligible"

[[assignments]]
role = "emergency"
to = "group:engineering"
kind = "eligible"

[[sod_rules]]
name = "deployer-vs-approver"
left = ["prod-deployer"]
right = ["change-approver"]
"#;

pub(super) struct World {
    pub(super) s: TestServer,
    pub(super) clock: Arc<ManualClock>,
    pub(super) alice: String,
    pub(super) bob: String,
    pub(super) carol: String,
}

impl World {
    pub(super) async fn new(backend: Backend) -> Self {
        let clock = Arc::new(ManualClock::new(
            chrono::DateTime::parse_from_rfc3339("2026-11-25T10:00:00Z")
                .unwrap()
                .into(),
        ));
        let shared: SharedClock = clock.clone();
        let s = TestServer::start_full(backend, shared, router).await;
        bootstrap::on_start(&s.db.store, 1, Some(&Secret::new(ADMIN_TOKEN)))
            .await
            .unwrap();
        let (st, plan) = call(
            &s,
            ADMIN_TOKEN,
            Method::POST,
            "/api/v1/apply",
            Some(Value::String(POLICY.into())),
        )
        .await;
        assert_eq!(st, 200, "{plan}");
        let mut w = World {
            s,
            clock,
            alice: String::new(),
            bob: String::new(),
            carol: String::new(),
        };
        w.alice = w.token("alice").await;
        w.bob = w.token("bob").await;
        w.carol = w.token("carol").await;
        w
    }

    pub(super) async fn token(&self, who: &str) -> String {
        let (st, body) = call(
            &self.s,
            ADMIN_TOKEN,
            Method::POST,
            &format!("/api/v1/identities/{who}/tokens"),
            Some(json!({ "name": "test" })),
        )
        .await;
        assert_eq!(st, 201, "{body}");
        body["token"].as_str().unwrap().to_string()
    }

    pub(super) async fn what_if(&self, who: &str) -> Value {
        let (st, d) = call(
            &self.s,
            ADMIN_TOKEN,
            Method::POST,
            "/api/v1/authorize",
            Some(json!({ "identity": who, "target": "db-01", "login": "postgres" })),
        )
        .await;
        assert_eq!(st, 200, "{d}");
        d
    }
}

/// Sends a request; a JSON string body is sent as text (for `apply`).
pub(super) async fn call(
    s: &TestServer,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = s.http.request(method, s.url(path)).bearer_auth(token);
    match body {
        Some(Value::String(text)) => req = req.body(text),
        Some(v) => req = req.json(&v),
        None => {}
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn quorum_approval_grants_until_the_clock_runs_out_on_sqlite() {
    quorum_approval(Backend::Sqlite).await;
}

#[tokio::test]
async fn quorum_approval_grants_until_the_clock_runs_out_on_postgres() {
    quorum_approval(Backend::Postgres).await;
}

async fn quorum_approval(backend: Backend) {
    let w = World::new(backend).await;
    let s = &w.s;
    assert_eq!(w.what_if("alice").await["allow"], false);

    // A reason is required by the role.
    let (st, e) = call(
        s,
        &w.alice,
        Method::POST,
        "/api/v1/requests",
        Some(json!({ "role": "prod-db", "duration": "1h" })),
    )
    .await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (400, Some("invalid")),
        "{e}"
    );
    // Longer than the role allows.
    let (st, _) = call(
        s,
        &w.alice,
        Method::POST,
        "/api/v1/requests",
        Some(json!({ "role": "prod-db", "duration": "5h", "reason": "x" })),
    )
    .await;
    assert_eq!(st, 400);

    let (st, r) = call(
        s,
        &w.alice,
        Method::POST,
        "/api/v1/requests",
        Some(json!({ "role": "prod-db", "duration": "1h", "reason": "INC-42 replica lag" })),
    )
    .await;
    assert_eq!(st, 201, "{r}");
    assert_eq!(r["state"], "pending");
    let id = r["id"].as_str().unwrap().to_string();

    // security_self_approval_is_refused
    let (st, e) = call(
        s,
        &w.alice,
        Method::POST,
        &format!("/api/v1/requests/{id}/approve"),
        None,
    )
    .await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (403, Some("self_approval")),
        "{e}"
    );

    // bob's queue holds it; carol's too.
    let (_, q) = call(s, &w.bob, Method::GET, "/api/v1/approvals", None).await;
    assert_eq!(q.as_array().unwrap().len(), 1, "{q}");

    w.clock.advance(chrono::Duration::minutes(5));
    let (st, o) = call(
        s,
        &w.bob,
        Method::POST,
        &format!("/api/v1/requests/{id}/approve"),
        Some(json!({ "comment": "ok" })),
    )
    .await;
    assert_eq!(st, 200, "{o}");
    assert_eq!(o["request"]["state"], "pending");
    assert_eq!(o["waiting_for"], json!(["1 of group:security"]));
    assert_eq!(w.what_if("alice").await["allow"], false);
    // bob cannot approve twice to fill the second set.
    let (st, _) = call(
        s,
        &w.bob,
        Method::POST,
        &format!("/api/v1/requests/{id}/approve"),
        None,
    )
    .await;
    assert_eq!(
        st, 409,
        "one approver fills one seat: a second approval by bob is a conflict"
    );

    w.clock.advance(chrono::Duration::minutes(5));
    let (st, o) = call(
        s,
        &w.carol,
        Method::POST,
        &format!("/api/v1/requests/{id}/approve"),
        None,
    )
    .await;
    assert_eq!(st, 200, "{o}");
    assert_eq!(o["request"]["state"], "approved");

    let d = w.what_if("alice").await;
    assert_eq!(d["allow"], true, "{d}");
    assert_eq!(d["grant"]["kind"], "request");
    // The clock started at approval: one hour from carol's approval.
    let (_, mine) = call(s, &w.alice, Method::GET, "/api/v1/grants", None).await;
    assert_eq!(mine[0]["not_after"], "2026-11-25T11:10:00.000Z", "{mine}");
    assert_eq!(mine[0]["seconds_left"], 3600);

    // eve (a contractor) is eligible but the Cedar condition refuses her whatever she holds.
    let d = w.what_if("eve").await;
    assert_eq!(d["allow"], false);

    // The audited decision path records allow and deny with their reasons.
    let cache = CatalogCache::default();
    let now = w.clock.now_ms();
    let mut req = AccessRequest {
        identity: "alice".into(),
        protocol: "ssh".into(),
        target: "db-01".into(),
        login: None,
        ..Default::default()
    };
    // alice also holds prod-deployer (login deploy): without a login the target is ambiguous.
    let d = policy::authorize(&s.db.store, &cache, now, &req)
        .await
        .unwrap();
    assert!(!d.allow);
    assert!(d.reasons[0].contains("deploy, postgres"), "{:?}", d.reasons);
    req.login = Some("postgres".into());
    let d = policy::authorize(&s.db.store, &cache, now, &req)
        .await
        .unwrap();
    assert!(d.allow, "{:?}", d.reasons);
    assert_eq!(d.grant.unwrap().kind, "request");

    w.clock.advance(chrono::Duration::minutes(61));
    let d = w.what_if("alice").await;
    assert_eq!(d["allow"], false, "{d}");
    assert!(d["reasons"][0].as_str().unwrap().contains("ended"), "{d}");
    let d = policy::authorize(&s.db.store, &cache, w.clock.now_ms(), &req)
        .await
        .unwrap();
    assert!(!d.allow);

    // Every step is in the audit log, and the chain verifies.
    let (_, log) = call(
        s,
        ADMIN_TOKEN,
        Method::GET,
        "/api/v1/audit?limit=1000",
        None,
    )
    .await;
    let actions: Vec<&str> = log["events"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for want in [
        "request.create",
        "request.approve",
        "grant.start",
        "authorize",
    ] {
        assert!(actions.contains(&want), "{want} missing from {actions:?}");
    }
    let denies: Vec<&Value> = log["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "authorize" && e["outcome"] == "deny")
        .collect();
    assert_eq!(denies.len(), 2);
    assert!(
        denies[0]["details"]["reasons"][0]
            .as_str()
            .unwrap()
            .contains("ended"),
        "{}",
        denies[0]
    );
    let report = audit::verify::verify(&s.db.store, None, None)
        .await
        .unwrap();
    assert_eq!(report.problem, None);
}

#[tokio::test]
async fn sod_conflicts_are_refused_unless_excepted_and_break_glass_grants_at_once_on_sqlite() {
    sod_and_break_glass(Backend::Sqlite).await;
}

#[tokio::test]
async fn sod_conflicts_are_refused_unless_excepted_and_break_glass_grants_at_once_on_postgres() {
    sod_and_break_glass(Backend::Postgres).await;
}

async fn sod_and_break_glass(backend: Backend) {
    let w = World::new(backend).await;
    let s = &w.s;
    // alice holds prod-deployer standing; change-approver conflicts with it.
    let body = json!({ "role": "change-approver", "duration": "1h", "reason": "audit" });
    let (st, e) = call(
        s,
        &w.alice,
        Method::POST,
        "/api/v1/requests",
        Some(body.clone()),
    )
    .await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (403, Some("sod_conflict")),
        "{e}"
    );
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("deployer-vs-approver"),
        "{e}"
    );
    // The detective control sees the eligible + standing pair already.
    let (_, v) = call(s, ADMIN_TOKEN, Method::GET, "/api/v1/sod/violations", None).await;
    assert_eq!(v[0]["conflict"]["rule"], "deployer-vs-approver", "{v}");
    assert_eq!(v[0]["excepted"], false);

    let (st, e) = call(
        s,
        ADMIN_TOKEN,
        Method::POST,
        "/api/v1/sod/exceptions",
        Some(json!({
            "rule": "deployer-vs-approver", "identity": "alice", "reason": "CAB-7 small team",
            "expires_at": "2026-12-31",
        })),
    )
    .await;
    assert_eq!(st, 201, "{e}");
    let (st, r) = call(s, &w.alice, Method::POST, "/api/v1/requests", Some(body)).await;
    assert_eq!(st, 201, "{r}");
    // No approvers on the role: PIM-style self-activation.
    assert_eq!(r["state"], "approved");

    // Break-glass: granted at once, alert queued, review opened.
    let (st, e) = call(
        s,
        &w.alice,
        Method::POST,
        "/api/v1/requests",
        Some(json!({ "role": "emergency", "duration": "30m" })),
    )
    .await;
    assert_eq!(st, 400, "break-glass needs a reason: {e}");
    let (st, r) = call(
        s,
        &w.alice,
        Method::POST,
        "/api/v1/requests",
        Some(json!({ "role": "emergency", "duration": "30m", "reason": "prod down, INC-9" })),
    )
    .await;
    assert_eq!(st, 201, "{r}");
    assert_eq!(r["state"], "approved");
    assert_eq!(r["break_glass"], true);
    let (_, reviews) = call(s, ADMIN_TOKEN, Method::GET, "/api/v1/reviews", None).await;
    assert_eq!(reviews.as_array().unwrap().len(), 1, "{reviews}");
    assert_eq!(reviews[0]["kind"], "break_glass");
    assert_eq!(reviews[0]["grant_id"], r["grant_id"]);
    let mut conn = s.db.store.pool().acquire().await.unwrap();
    let alerts: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM webhook_outbox WHERE channel = 'alert'")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    assert_eq!(alerts, 1);
    let d = call(
        s,
        ADMIN_TOKEN,
        Method::POST,
        "/api/v1/authorize",
        Some(json!({ "identity": "alice", "target": "db-01", "login": "root" })),
    )
    .await
    .1;
    assert_eq!(d["allow"], true, "{d}");
    assert_eq!(d["grant"]["kind"], "break_glass");
    // Break-glass is capped: asking more than the role's hour is refused.
    let (st, _) = call(
        s,
        &w.alice,
        Method::POST,
        "/api/v1/requests",
        Some(json!({ "role": "emergency", "duration": "2h", "reason": "x" })),
    )
    .await;
    assert_eq!(st, 400);
    let _ = (&w.bob, &w.carol);
}

#[tokio::test]
async fn apply_twice_is_a_no_op_and_dry_run_changes_nothing_on_sqlite() {
    apply_idempotent(Backend::Sqlite).await;
}

#[tokio::test]
async fn apply_twice_is_a_no_op_and_dry_run_changes_nothing_on_postgres() {
    apply_idempotent(Backend::Postgres).await;
}

async fn apply_idempotent(backend: Backend) {
    let w = World::new(backend).await;
    let s = &w.s;
    let head = |s: &TestServer| {
        let store = s.db.store.clone();
        async move {
            let mut c = store.pool().acquire().await.unwrap();
            audit::head(&mut c).await.unwrap().0
        }
    };
    let (st, again) = call(
        s,
        ADMIN_TOKEN,
        Method::POST,
        "/api/v1/apply",
        Some(Value::String(POLICY.into())),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(again["changes"], json!([]), "second apply must be a no-op");

    let changed = POLICY
        .replace("max_duration = \"4h\"", "max_duration = \"2h\"")
        .replace("members = [\"carol\"]", "members = [\"carol\", \"bob\"]");
    let before = head(s).await;
    let (st, plan) = call(
        s,
        ADMIN_TOKEN,
        Method::POST,
        "/api/v1/apply?dry_run=true",
        Some(Value::String(changed.clone())),
    )
    .await;
    assert_eq!(st, 200, "{plan}");
    let ops: Vec<String> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{} {}",
                c["op"].as_str().unwrap(),
                c["object"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        ops,
        ["create member bob of group security", "update role prod-db"]
    );
    assert_eq!(head(s).await, before, "dry run wrote nothing");
    let (_, role) = call(s, ADMIN_TOKEN, Method::GET, "/api/v1/roles/prod-db", None).await;
    assert_eq!(role["spec"]["max_duration_ms"], 4 * 3600 * 1000);

    // Removing a role from the file deletes it and its assignments.
    let without = changed.replace("[[sod_rules]]\nname = \"deployer-vs-approver\"\nleft = [\"prod-deployer\"]\nright = [\"change-approver\"]\n", "");
    let (st, plan) = call(
        s,
        ADMIN_TOKEN,
        Method::POST,
        "/api/v1/apply",
        Some(Value::String(without)),
    )
    .await;
    assert_eq!(st, 200, "{plan}");
    assert!(
        plan["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["op"] == "delete" && c["object"] == "SoD rule deployer-vs-approver"),
        "{plan}"
    );

    // A TOML error names line and column.
    let (st, e) = call(
        s,
        ADMIN_TOKEN,
        Method::POST,
        "/api/v1/apply",
        Some(Value::String("[[roles]]\nname = 1\n".into())),
    )
    .await;
    assert_eq!(st, 400);
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("request body:2:"),
        "{e}"
    );
    let report = audit::verify::verify(&s.db.store, None, None)
        .await
        .unwrap();
    assert_eq!(report.problem, None);
}

#[tokio::test]
async fn security_every_route_has_a_rule_and_admin_routes_refuse_plain_identities() {
    let w = World::new(Backend::Sqlite).await;
    let s = &w.s;
    for (method, path, req, _) in gatehouse_web::access::RULES {
        let url = path
            .replace("{username}", "alice")
            .replace("{name}", "x")
            .replace("{id}", "x");
        let resp = s
            .http
            .request(method.clone(), s.url(&url))
            .bearer_auth(&w.alice)
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        let st = resp.status().as_u16();
        match req {
            gatehouse_web::access::Requirement::Privilege(_) => {
                assert_eq!(st, 403, "{method} {path}")
            }
            _ => assert_ne!(st, 403, "{method} {path} refused an authenticated identity"),
        }
    }
    // The OpenAPI document lists exactly the API routes of the table.
    let (_, doc) = call(s, &w.alice, Method::GET, "/api/v1/openapi.json", None).await;
    let n: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p.as_object().unwrap().len())
        .sum();
    let api = gatehouse_web::access::RULES
        .iter()
        .filter(|r| r.1.starts_with("/api/v1"))
        .count();
    assert_eq!(n, api);
}
