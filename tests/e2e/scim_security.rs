//! SCIM against privileged accounts and administrators' decisions: a provisioning client never
//! sets a privileged identity's password, never lifts an administrator's suspension, and a
//! leaver it makes keeps no privilege, token or factor, not even when created again.

use crate::harness::{Server, gatehouse, run, stdout};
use crate::scim::{Scim, USER};
use serde_json::{Value, json};

/// A server with a bootstrap administrator token, `config` as its configuration file, and a
/// SCIM client token.
async fn start_admin(config: &str) -> (tempfile::TempDir, Server, String) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("gatehouse.toml");
    std::fs::write(&file, config).unwrap();
    let server = Server::start(
        &data,
        &["--config", file.to_str().unwrap()],
        &[("GATEHOUSE_BOOTSTRAP_TOKEN", ADMIN)],
    )
    .await;
    let out = run(gatehouse(&data).args(["scim", "client", "add", "okta"]));
    assert!(out.status.success());
    let token = stdout(&out).trim().to_string();
    (dir, server, token)
}

const ADMIN: &str = "scim-admin-bootstrap-token-0123456789";

/// An API call with `token`.
async fn api(
    server: &Server,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut r = crate::harness::http()
        .request(method, server.url(&format!("/api/v1{path}")))
        .bearer_auth(token);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let resp = r.send().await.unwrap();
    let st = resp.status().as_u16();
    (st, resp.json().await.unwrap_or(Value::Null))
}

/// The audit events of one action, oldest first.
fn audit_of(dir: &tempfile::TempDir, action: &str) -> Vec<Value> {
    let out = run(gatehouse(&dir.path().join("data")).args(["audit", "export"]));
    assert!(out.status.success());
    stdout(&out)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["action"] == action)
        .collect()
}

/// An identity as the API shows it, to the administrator.
async fn identity(server: &Server, name: &str) -> Value {
    api(
        server,
        ADMIN,
        reqwest::Method::GET,
        &format!("/identities/{name}"),
        None,
    )
    .await
    .1
}

/// A SCIM PATCH of `active` on User `id`, which must succeed.
async fn set_active(s: &Scim<'_>, id: &str, active: bool) {
    let (st, v, _) = s
        .call(
            reqwest::Method::PATCH,
            &format!("/Users/{id}"),
            Some(
                json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{ "op": "replace", "path": "active", "value": active }] }),
            ),
            &[],
        )
        .await;
    assert_eq!(st, 200, "{v}");
}

fn password_patch(pw: &str) -> Value {
    json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{ "op": "replace", "path": "password", "value": pw }] })
}

/// A SCIM client never sets the password of an identity an administrator made privileged (the
/// refusal audited), a leaver loses its privileges, tokens and factors, and re-creating the same
/// userName brings back an ordinary identity, not an administrator.
#[tokio::test]
async fn security_scim_never_sets_a_privileged_password_and_a_leaver_keeps_nothing() {
    let (dir, server, token) = start_admin("[scim]\npasswords = true\n").await;
    let s = Scim {
        server: &server,
        token: &token,
    };
    let (st, spc) = s.get("/ServiceProviderConfig").await;
    assert_eq!(
        (st, &spc["changePassword"]["supported"]),
        (200, &json!(true))
    );
    let doc = json!({ "schemas": [USER], "userName": "mallory", "active": true,
        "password": "Correct-horse-battery-42" });
    let (st, v, _) = s
        .call(reqwest::Method::POST, "/Users", Some(doc.clone()), &[])
        .await;
    assert_eq!(st, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    assert_eq!(
        audit_of(&dir, "scim.user.create")[0]["details"]["password"],
        "set"
    );
    assert_eq!(audit_of(&dir, "password.set").len(), 1);

    // An administrator makes mallory an administrator, who mints an API token.
    let (st, v) = api(
        &server,
        ADMIN,
        reqwest::Method::POST,
        "/identities/mallory/privileges",
        Some(json!({ "privilege": "admin" })),
    )
    .await;
    assert!(st < 300, "{v}");
    let (st, v) = api(
        &server,
        ADMIN,
        reqwest::Method::POST,
        "/identities/mallory/tokens",
        Some(json!({ "name": "laptop" })),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    let mallory_token = v["token"].as_str().unwrap().to_string();
    assert_eq!(server.whoami_status(&mallory_token).await, 200);

    // The SCIM client now tries to set the password: PATCH, then PUT. Both refused, audited.
    let (st, v, _) = s
        .call(
            reqwest::Method::PATCH,
            &format!("/Users/{id}"),
            Some(password_patch("Attacker-chosen-pass-1")),
            &[],
        )
        .await;
    assert_eq!(st, 403, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("admin"), "{v}");
    let (st, v, _) = s
        .call(
            reqwest::Method::PUT,
            &format!("/Users/{id}"),
            Some(
                json!({ "schemas": [USER], "userName": "mallory", "active": true,
            "password": "Attacker-chosen-pass-2" }),
            ),
            &[],
        )
        .await;
    assert_eq!(st, 403, "{v}");
    let refused = audit_of(&dir, "scim.password.refused");
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert_eq!(refused[0]["actor"], "scim:okta");
    assert_eq!(refused[0]["object"], "identity:mallory");
    assert_eq!(refused[0]["details"]["privileges"], json!(["admin"]));
    assert_eq!(
        audit_of(&dir, "password.set").len(),
        1,
        "no password was set"
    );

    // mallory leaves (active: false): privileges, tokens and factors go with her.
    set_active(&s, &id, false).await;
    let who = identity(&server, "mallory").await;
    assert_eq!(who["identity"]["status"], "terminated", "{who}");
    assert_eq!(who["privileges"], json!([]), "{who}");
    assert_eq!(server.whoami_status(&mallory_token).await, 401);
    let leaver = &audit_of(&dir, "scim.leaver")[0]["details"]["leaver"];
    assert_eq!(leaver["privileges_removed"], 1, "{leaver}");
    assert_eq!(leaver["factors_removed"], 1, "{leaver}");

    // Deleted and created again under the same userName: an ordinary identity, active.
    let (st, _, _) = s
        .call(reqwest::Method::DELETE, &format!("/Users/{id}"), None, &[])
        .await;
    assert_eq!(st, 204);
    let (st, v, _) = s
        .call(
            reqwest::Method::POST,
            "/Users",
            Some(json!({ "schemas": [USER], "userName": "mallory", "active": true })),
            &[],
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let who = identity(&server, "mallory").await;
    assert_eq!(who["identity"]["status"], "active", "{who}");
    assert_eq!(who["privileges"], json!([]), "{who}");
    server.stop();
}

/// An administrator's suspension outranks an identity provider's `active: true`, which comes
/// with every PUT and PATCH; SCIM re-activates only its own leavers. SCIM passwords are off
/// by default: a password sent is dropped unread, and the audit record says so.
#[tokio::test]
async fn security_scim_never_undoes_an_administrators_suspension() {
    let (dir, server, token) = start_admin("").await;
    let s = Scim {
        server: &server,
        token: &token,
    };
    let (_, spc) = s.get("/ServiceProviderConfig").await;
    assert_eq!(spc["changePassword"]["supported"], false);
    let (st, v, _) = s
        .call(
            reqwest::Method::POST,
            "/Users",
            Some(
                json!({ "schemas": [USER], "userName": "sam", "active": true,
            "password": "Correct-horse-battery-42" }),
            ),
            &[],
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    assert!(
        audit_of(&dir, "scim.user.create")[0]["details"]["password"]
            .as_str()
            .unwrap()
            .starts_with("ignored")
    );
    assert!(audit_of(&dir, "password.set").is_empty());
    let (_, v) = api(
        &server,
        ADMIN,
        reqwest::Method::POST,
        "/identities/sam/tokens",
        Some(json!({ "name": "laptop" })),
    )
    .await;
    let sam_token = v["token"].as_str().unwrap().to_string();
    assert_eq!(server.whoami_status(&sam_token).await, 200);

    // An incident responder suspends sam.
    let (st, v) = api(
        &server,
        ADMIN,
        reqwest::Method::POST,
        "/identities/sam/status",
        Some(json!({ "status": "suspended" })),
    )
    .await;
    assert!(st < 300, "{v}");
    assert_eq!(server.whoami_status(&sam_token).await, 401);

    // The identity provider changes only the title, resending active: true (PATCH, then PUT).
    let (st, v, _) = s
        .call(
            reqwest::Method::PATCH,
            &format!("/Users/{id}"),
            Some(
                json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{ "op": "replace", "value": { "title": "Lead", "active": true } }] }),
            ),
            &[],
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let (st, v, _) = s
        .call(
            reqwest::Method::PUT,
            &format!("/Users/{id}"),
            Some(json!({ "schemas": [USER], "userName": "sam", "active": true, "title": "Lead" })),
            &[],
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let who = identity(&server, "sam").await;
    assert_eq!(who["identity"]["status"], "suspended", "{who}");
    assert_eq!(who["identity"]["attributes"]["title"], "Lead", "{who}");
    assert_eq!(server.whoami_status(&sam_token).await, 401);
    let patched = audit_of(&dir, "scim.user.patch");
    assert!(
        patched[0]["details"]["status_kept"]
            .as_str()
            .unwrap()
            .contains("suspended (set by identity:admin)"),
        "{patched:?}"
    );
    assert!(
        audit_of(&dir, "identity.status")
            .iter()
            .all(|e| e["actor"] != "scim:okta" || e["details"]["to"] != "active")
    );

    // Leaving and rejoining does not lift it either: active: false makes a leaver (cut off
    // everywhere), and the following active: true, or a DELETE and a new POST, leave it to the
    // administrator who suspended sam.
    for active in [false, true] {
        set_active(&s, &id, active).await;
    }
    let who = identity(&server, "sam").await;
    assert_eq!(who["identity"]["status"], "terminated", "{who}");
    let (st, _, _) = s
        .call(reqwest::Method::DELETE, &format!("/Users/{id}"), None, &[])
        .await;
    assert_eq!(st, 204);
    let (st, v, _) = s
        .call(
            reqwest::Method::POST,
            "/Users",
            Some(json!({ "schemas": [USER], "userName": "sam", "active": true })),
            &[],
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let who = identity(&server, "sam").await;
    assert_eq!(who["identity"]["status"], "terminated", "{who}");
    assert_eq!(server.whoami_status(&sam_token).await, 401);

    // A leaver SCIM made of an active identity is one SCIM may bring back.
    let (st, v, _) = s
        .call(
            reqwest::Method::POST,
            "/Users",
            Some(json!({ "schemas": [USER], "userName": "tia", "active": true })),
            &[],
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let tia = v["id"].as_str().unwrap().to_string();
    for active in [false, true] {
        set_active(&s, &tia, active).await;
    }
    let who = identity(&server, "tia").await;
    assert_eq!(who["identity"]["status"], "active", "{who}");
    server.stop();
}
