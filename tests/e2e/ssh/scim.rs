//! SCIM provisioning end to end: an identity provider creates a User through /scim/v2 (with
//! birthright access from its department), the person opens a live SSH session, and a PATCH
//! `active: false` — the identity provider's leaver — closes it.

use super::*;

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

#[tokio::test]
async fn scim_active_false_patch_kills_the_live_ssh_session() {
    let lab = Lab::start().await;
    lab.put_db_root(
        &["db-01"],
        serde_json::json!({ "birthright": { "department": ["engineering"] } }),
    )
    .await;
    let out = run(gatehouse(&lab.path("data")).args(["scim", "client", "add", "entra"]));
    let scim = ok(&out).trim().to_string();
    assert!(scim.starts_with("ghscim_"), "{scim}");

    // The identity provider provisions sam (userName as a UPN).
    let (st, user) = lab
        .api(
            reqwest::Method::POST,
            "/scim/v2/Users",
            &scim,
            Some(serde_json::json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
                "userName": "Sam@example.com",
                "name": { "givenName": "Sam", "familyName": "Scim" },
                "emails": [{ "value": "sam@example.com", "type": "work", "primary": true }],
                "active": true,
                ENTERPRISE: { "employeeNumber": "E900", "department": "engineering" },
            })),
        )
        .await;
    assert_eq!(st, 201, "{user}");
    let id = user["id"].as_str().unwrap().to_string();
    // An identity's API token is not a SCIM credential, and a SCIM token is not an API one.
    let (st, _) = lab
        .api(reqwest::Method::GET, "/scim/v2/Users", TOKEN, None)
        .await;
    assert_eq!(st, 401);
    let (st, _) = lab
        .api(reqwest::Method::GET, "/api/v1/whoami", &scim, None)
        .await;
    assert_eq!(st, 401);

    keygen(&lab.path("sam"), "sam@laptop");
    let key = std::fs::read_to_string(lab.path("sam.pub")).unwrap();
    let (st, v) = lab
        .api(
            reqwest::Method::POST,
            "/api/v1/identities/sam/ssh-keys",
            TOKEN,
            Some(serde_json::json!({ "public_key": key.trim() })),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let mut child = long_session(&lab, "sam");
    wait_started(&mut child);

    let t = Instant::now();
    let (st, v) = lab
        .api(
            reqwest::Method::PATCH,
            &format!("/scim/v2/Users/{id}"),
            &scim,
            Some(serde_json::json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{ "op": "Replace", "path": "active", "value": false }],
            })),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["active"], false);
    let (out, _) = ends_within(child, Duration::from_secs(10));
    println!(
        "SCIM leaver: the live session closed {:?} after the PATCH was sent",
        t.elapsed()
    );
    assert!(!text(&out.stdout).contains("still-here"));
    assert!(
        text(&out.stderr).contains("gatehouse: session ended"),
        "{}",
        text(&out.stderr)
    );
    let out = run(gatehouse(&lab.path("data")).args([
        "authorize",
        "--identity",
        "sam",
        "--target",
        "db-01",
    ]));
    assert!(stdout(&out).contains("DENY"), "{}", stdout(&out));
    // The leaver SLA is on the session's end event.
    lab.ended_sessions().await;
    let ends = lab.audit("session.end").await;
    let sla = ends
        .iter()
        .find_map(|e| e["details"]["leaver_sla_ms"].as_i64())
        .expect("session.end carries leaver_sla_ms");
    println!("SCIM leaver: leaver_sla_ms = {sla} on the session.end event");
    assert!((0..10_000).contains(&sla), "{sla}");
    let leaver = lab.audit("scim.leaver").await;
    assert_eq!(leaver.len(), 1, "{leaver:?}");
    assert_eq!(leaver[0]["actor"], "scim:entra");
    assert_eq!(leaver[0]["details"]["leaver"]["grants_revoked"], 0);
}
