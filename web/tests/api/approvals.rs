//! Approval routing through the API: requests by target with a picked role, request expiry and
//! grant extension, manager and target-owner approvers, scheduled starts, and a role whose
//! approvals need a fresh second factor (which a bearer token never carries).

use super::ADMIN_TOKEN;
use super::workflow::{World, call};
use gatehouse_broker::Backend;
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test]
async fn requests_by_target_expire_when_pending_and_extend_live_grants() {
    let w = World::new(Backend::Sqlite).await;
    let s = &w.s;
    // No role named: Gatehouse picks prod-db, the eligible role covering db-01 as postgres.
    let (st, r) = call(
        s,
        &w.alice,
        Method::POST,
        "/api/v1/requests",
        Some(
            json!({ "targets": ["db-01"], "login": "postgres", "duration": "30m", "reason": "r" }),
        ),
    )
    .await;
    assert_eq!(st, 201, "{r}");
    assert_eq!(r["role"], "prod-db");
    let stale = r["id"].as_str().unwrap().to_string();
    // No role alice may request covers db-01 as "nobody".
    let (st, e) = call(
        s,
        &w.alice,
        Method::POST,
        "/api/v1/requests",
        Some(json!({ "targets": ["db-01"], "login": "nobody", "duration": "30m", "reason": "r" })),
    )
    .await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (403, Some("not_eligible")),
        "{e}"
    );

    // Past the role's 24 h request TTL the pending request is expired and cannot be approved.
    w.clock.advance(chrono::Duration::hours(25));
    let (_, mine) = call(s, &w.alice, Method::GET, "/api/v1/requests", None).await;
    assert_eq!(mine[0]["state"], "expired", "{mine}");
    let (st, _) = call(
        s,
        &w.bob,
        Method::POST,
        &format!("/api/v1/requests/{stale}/approve"),
        None,
    )
    .await;
    assert_eq!(st, 409);

    // A fresh request, approved by both sets, then extended by 30 minutes.
    let (_, r) = call(
        s,
        &w.alice,
        Method::POST,
        "/api/v1/requests",
        Some(json!({ "role": "prod-db", "duration": "1h", "reason": "r" })),
    )
    .await;
    let id = r["id"].as_str().unwrap().to_string();
    call(
        s,
        &w.bob,
        Method::POST,
        &format!("/api/v1/requests/{id}/approve"),
        None,
    )
    .await;
    let (_, o) = call(
        s,
        &w.carol,
        Method::POST,
        &format!("/api/v1/requests/{id}/approve"),
        None,
    )
    .await;
    let grant = o["request"]["grant_id"].as_str().unwrap().to_string();
    let (st, x) = call(s, &w.alice, Method::POST, "/api/v1/requests",
        Some(json!({ "role": "prod-db", "duration": "30m", "reason": "more", "extends_grant": grant }))).await;
    assert_eq!(st, 201, "{x}");
    let xid = x["id"].as_str().unwrap().to_string();
    call(
        s,
        &w.bob,
        Method::POST,
        &format!("/api/v1/requests/{xid}/approve"),
        None,
    )
    .await;
    call(
        s,
        &w.carol,
        Method::POST,
        &format!("/api/v1/requests/{xid}/approve"),
        None,
    )
    .await;
    let (_, mine) = call(s, &w.alice, Method::GET, "/api/v1/grants", None).await;
    assert_eq!(
        mine.as_array().unwrap().len(),
        1,
        "an extension moves the grant's end, no new grant"
    );
    assert_eq!(mine[0]["seconds_left"], 5400, "{mine}");

    // Revoking it ends access at once.
    let (st, _) = call(
        s,
        ADMIN_TOKEN,
        Method::POST,
        &format!("/api/v1/grants/{grant}/revoke"),
        Some(json!({ "reason": "done" })),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(w.what_if("alice").await["allow"], false);
}

#[tokio::test]
async fn manager_and_target_owner_approve_and_a_scheduled_start_waits() {
    let w = World::new(Backend::Sqlite).await;
    let s = &w.s;
    let admin = |m: Method, p: &'static str, b: Value| async move {
        let (st, v) = call(s, ADMIN_TOKEN, m, p, Some(b)).await;
        assert_eq!(st, 201, "{p}: {v}");
    };
    // alice's manager is dave (her `manager` attribute); web-01 is owned by carol.
    admin(
        Method::POST,
        "/api/v1/identities",
        json!({ "username": "dave" }),
    )
    .await;
    admin(
        Method::POST,
        "/api/v1/targets",
        json!({ "name": "web-01", "kind": "ssh", "address": "10.0.0.6:22", "owner": "carol" }),
    )
    .await;
    admin(
        Method::POST,
        "/api/v1/roles",
        json!({
        "name": "web-admin", "targets": { "names": ["web-01"] }, "logins": ["root"],
        "requestable_by": ["group:engineering"],
        "approvals": [{ "from": "manager", "count": 1 }, { "from": "target_owner", "count": 1 }] }),
    )
    .await;
    admin(
        Method::POST,
        "/api/v1/assignments",
        json!({ "role": "web-admin", "to": "alice", "kind": "eligible" }),
    )
    .await;
    let dave = w.token("dave").await;

    let start = "2026-11-25T12:00:00Z"; // two hours from the test clock's now
    let (st, r) = call(
        s,
        &w.alice,
        Method::POST,
        "/api/v1/requests",
        Some(
            json!({ "role": "web-admin", "duration": "1h", "reason": "deploy", "start_at": start }),
        ),
    )
    .await;
    assert_eq!(st, 201, "{r}");
    let id = r["id"].as_str().unwrap().to_string();
    let approve = |who: String| {
        let path = format!("/api/v1/requests/{id}/approve");
        async move { call(s, &who, Method::POST, &path, None).await }
    };
    // bob is neither alice's manager nor web-01's owner.
    let (st, e) = approve(w.bob.clone()).await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (403, Some("not_approver")),
        "{e}"
    );
    let (st, o) = approve(dave).await;
    assert_eq!(st, 200, "{o}");
    assert_eq!(o["request"]["state"], "pending");
    assert_eq!(o["waiting_for"], json!(["1 of target_owner"]), "{o}");
    let (st, o) = approve(w.carol.clone()).await;
    assert_eq!(st, 200, "{o}");
    assert_eq!(o["request"]["state"], "approved", "{o}");

    let what_if = || async {
        let (_, d) = call(
            s,
            ADMIN_TOKEN,
            Method::POST,
            "/api/v1/authorize",
            Some(json!({ "identity": "alice", "target": "web-01", "login": "root" })),
        )
        .await;
        d
    };
    // Approved, but the grant waits for its scheduled start; then it runs one hour from then.
    let d = what_if().await;
    assert_eq!(d["allow"], false, "{d}");
    assert!(d["reasons"].to_string().contains("scheduled"), "{d}");
    w.clock.advance(chrono::Duration::hours(2));
    let d = what_if().await;
    assert_eq!(d["allow"], true, "{d}");
    let end = chrono::DateTime::parse_from_rfc3339("2026-11-25T13:00:00Z").unwrap();
    assert_eq!(d["grant"]["not_after_ms"], end.timestamp_millis(), "{d}");
    w.clock.advance(chrono::Duration::minutes(61));
    assert_eq!(what_if().await["allow"], false);
}

#[tokio::test]
async fn security_a_bearer_token_never_approves_for_a_role_that_needs_mfa() {
    let w = World::new(Backend::Sqlite).await;
    let s = &w.s;
    for (path, body) in [
        (
            "/api/v1/roles",
            json!({
            "name": "db-admin", "targets": { "names": ["db-01"] }, "logins": ["dba"],
            "requestable_by": ["group:engineering"],
            "approvals": [{ "from": "group:db-owners", "count": 1 }],
            "approval_requires_mfa": true }),
        ),
        (
            "/api/v1/assignments",
            json!({ "role": "db-admin", "to": "alice", "kind": "eligible" }),
        ),
    ] {
        let (st, v) = call(s, ADMIN_TOKEN, Method::POST, path, Some(body)).await;
        assert_eq!(st, 201, "{path}: {v}");
    }
    let (st, r) = call(
        s,
        &w.alice,
        Method::POST,
        "/api/v1/requests",
        Some(json!({ "role": "db-admin", "duration": "1h", "reason": "INC-7" })),
    )
    .await;
    assert_eq!(st, 201, "{r}");
    let id = r["id"].as_str().unwrap().to_string();
    // bob is an approver (db-owners), but his token proves no second factor.
    let (st, e) = call(
        s,
        &w.bob,
        Method::POST,
        &format!("/api/v1/requests/{id}/approve"),
        None,
    )
    .await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (403, Some("mfa_required")),
        "{e}"
    );
    let (_, mine) = call(s, &w.alice, Method::GET, "/api/v1/requests", None).await;
    assert_eq!(mine[0]["state"], "pending", "{mine}");
    // Denying needs no second factor: it grants nothing.
    let (st, d) = call(
        s,
        &w.bob,
        Method::POST,
        &format!("/api/v1/requests/{id}/deny"),
        Some(json!({ "comment": "not now" })),
    )
    .await;
    assert_eq!(st, 200, "{d}");
}
