//! An access review as its people live it, in chromium, against a real target: a quarterly
//! campaign from policy as code over a privileged role (db-root, login root) with three
//! holders — alice unused for 100 days, erin used yesterday, dave leaving. Their manager decides
//! in the browser (revoke alice; keep erin, refused until a reason is given); dave's item stays
//! unanswered; someone else is refused (403). The campaign's owner ends it from its page: dave
//! is revoked by the unanswered policy, alice's live SSH session ends, the page and the signed
//! report show every decision with reviewer, time, reason and verification; the review events
//! are in the audit log and `audit verify` is clean.

use super::*;
use crate::ui::Browser;

const PASSWORD: &str = "correct horse battery staple";
const DAY: i64 = 24 * 3600 * 1000;

const EXTRA: &str = r#"
[[identities]]
username = "mgr"

[[identities]]
username = "sec"

[[identities]]
username = "dave"
attributes = { manager = "mgr", end_date = "2031-12-31", department = "ops" }

[[identities]]
username = "erin"
attributes = { manager = "mgr", department = "ops" }

[[assignments]]
role = "db-root"
to = "dave"
kind = "standing"

[[assignments]]
role = "db-root"
to = "erin"
kind = "standing"

[[reviews]]
name = "db-root-quarterly"
description = "Who keeps root on the production database"
owner = "sec"
scope = { roles = ["db-root"] }
stages = ["manager"]
schedule = "quarterly"
start = "2031-01-01"
duration = "14d"
unanswered = "revoke"
"#;

async fn password(lab: &Lab, who: &str) {
    let (st, v) = lab
        .api(
            reqwest::Method::POST,
            &format!("/api/v1/identities/{who}/password"),
            TOKEN,
            Some(serde_json::json!({ "password": PASSWORD })),
        )
        .await;
    assert_eq!(st, 200, "{v}");
}

/// A past session through `assignment` (given 200 days ago) written straight into the
/// database: history the campaign reads as evidence.
async fn past_session(lab: &Lab, who: &str, assignment: &str, at_ms: i64) {
    use sqlx::{AnyConnection, Connection};
    sqlx::any::install_default_drivers();
    let url = gatehouse_broker::ledger::store::sqlite_url(&lab.path("data").join("gatehouse.db"));
    let mut c = AnyConnection::connect(&url).await.unwrap();
    sqlx::query("UPDATE role_assignments SET created_at = $1 WHERE id = $2")
        .bind(at_ms - 100 * DAY)
        .bind(assignment)
        .execute(&mut c)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO sessions (id, identity_id, identity, target, login, protocol, kind, \
         grant_kind, grant_id, started_at, ended_at, end_reason) SELECT $1, id, username, \
         'db-01', 'root', 'ssh', 'shell', 'standing', $2, $3, $4, 'client_closed' \
         FROM identities WHERE username = $5",
    )
    .bind(format!("past-{who}"))
    .bind(assignment)
    .bind(at_ms)
    .bind(at_ms + 60_000)
    .bind(who)
    .execute(&mut c)
    .await
    .unwrap();
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The page fits the width (no sideways scrolling) and axe-core finds nothing serious.
async fn fits(b: &Browser, name: &str) {
    for width in [1366, 390] {
        b.c.set_window_size(width, 900).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        b.shot(&format!("{name}-{width}")).await;
        let wide: bool =
            b.c.execute(
                "return document.documentElement.scrollWidth > window.innerWidth",
                vec![],
            )
            .await
            .unwrap()
            .as_bool()
            .unwrap();
        assert!(!wide, "{name} scrolls sideways at {width} px");
    }
    b.c.set_window_size(1366, 900).await.unwrap();
    let serious = b.axe_serious().await;
    assert!(serious.is_empty(), "{name}: axe-core: {serious:?}");
}

#[tokio::test]
async fn browser_quarterly_review_revokes_what_is_unused_or_unanswered_and_cuts_live_sessions() {
    let lab = Lab::start_full("", "{ manager = \"mgr\", department = \"ops\" }", EXTRA).await;
    for who in ["mgr", "sec"] {
        password(&lab, who).await;
    }
    let (_, all) = lab
        .api(reqwest::Method::GET, "/api/v1/assignments", TOKEN, None)
        .await;
    let assignment = |who: &str| {
        all.as_array()
            .unwrap()
            .iter()
            .find(|a| a["subject"] == who && a["role"] == "db-root")
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let now = now_ms();
    past_session(&lab, "alice", &assignment("alice"), now - 100 * DAY).await;
    past_session(&lab, "erin", &assignment("erin"), now - DAY).await;
    past_session(&lab, "dave", &assignment("dave"), now - 2 * DAY).await;

    // The definition came from `apply`; its first start is in 2031, so start one now.
    let (st, v) = lab
        .api(
            reqwest::Method::POST,
            "/api/v1/campaigns",
            TOKEN,
            Some(serde_json::json!({ "definition": "db-root-quarterly" })),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    assert_eq!(v["progress"]["total"], 3, "{v}");

    // alice is at work on the target while her access is under review.
    let mut live = long_session(&lab, "alice");
    wait_started(&mut live);

    // Her manager reviews in the browser.
    let base = lab.server.base.replace("127.0.0.1", "localhost");
    let b = Browser::start(&base).await;
    b.sign_in("mgr", PASSWORD, None).await;
    b.click("nav a[href='/reviews']").await;
    let queue = b.text("#review-queue").await;
    assert!(
        queue.contains("alice") && queue.contains("dave") && queue.contains("erin"),
        "{queue}"
    );
    assert_eq!(b.text("#queue-total").await, "3");
    fits(&b, "reviews-queue").await;

    b.click("li.review-item[data-username='alice'] a.open-item")
        .await;
    let evidence = b.text("#evidence").await;
    assert!(evidence.contains("(0 sessions in 90 days)"), "{evidence}");
    assert!(
        b.text("#recommendation")
            .await
            .contains("no sessions in 90 days (last 100 days ago)")
    );
    fits(&b, "review-item").await;
    // Revoke is the recommendation and is chosen already.
    b.click("#record-decision").await;
    assert!(b.text(".flash").await.contains("Decision recorded"));

    b.goto("/reviews").await;
    b.click("li.review-item[data-username='erin'] a.open-item")
        .await;
    assert!(b.text("#recommendation").await.contains("keep"));
    // Keeping privileged access needs a reason: refused without one, recorded with one.
    b.click("#record-decision").await;
    assert!(b.text(".alert").await.contains("A reason is needed"));
    b.fill("#reason", "on call for db-01 this quarter").await;
    b.click("#record-decision").await;
    assert!(b.text(".flash").await.contains("Decision recorded"));
    b.goto("/reviews").await;
    assert_eq!(b.text("#queue-total").await, "1");

    // Someone who is not the reviewer is refused, by the API too.
    let (_, items) = lab
        .api(
            reqwest::Method::GET,
            &format!("/api/v1/campaigns/{id}/items"),
            TOKEN,
            None,
        )
        .await;
    let dave_item = items
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["username"] == "dave")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let bob = lab.token("bob").await;
    let (st, v) = lab
        .api(
            reqwest::Method::POST,
            &format!("/api/v1/review-items/{dave_item}/decision"),
            &bob,
            Some(serde_json::json!({ "decision": "keep", "reason": "mine now" })),
        )
        .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (403, Some("not_reviewer")),
        "{v}"
    );
    b.sign_out().await;

    // The owner ends the campaign from its page: dave's unanswered item is revoked, and the
    // decisions are applied at once.
    b.sign_in("sec", PASSWORD, None).await;
    b.goto("/reviews").await;
    b.click(&format!("#campaigns a[href='/reviews/campaigns/{id}']"))
        .await;
    assert!(
        b.text("#progress").await.contains("66% decided"),
        "{}",
        b.text("#progress").await
    );
    fits(&b, "review-campaign").await;
    b.click("#end input[name='confirm']").await;
    let clicked = Instant::now();
    b.click("#end-campaign").await;
    let (out, _) = ends_within(live, Duration::from_secs(10));
    println!(
        "review: alice's ssh client exited {:?} after the owner clicked End (the page's reload included)",
        clicked.elapsed()
    );
    assert!(
        text(&out.stderr).contains("gatehouse: session ended"),
        "{}",
        text(&out.stderr)
    );
    assert!(b.text(".flash").await.contains("The campaign has ended"));
    let table = b.text("#items").await;
    assert!(table.contains("revoke by mgr"), "{table}");
    assert!(table.contains("revoke by system"), "{table}");
    assert!(table.contains("keep by mgr"), "{table}");
    assert!(table.contains("assignment removed ✓ verified"), "{table}");
    b.shot("review-campaign-closed").await;

    // The signed report: every decision with reviewer, time, reason and verification.
    let (st, r) = lab
        .api(
            reqwest::Method::GET,
            &format!("/api/v1/campaigns/{id}/report"),
            TOKEN,
            None,
        )
        .await;
    assert_eq!(st, 200, "{r}");
    let row = |who: &str| {
        r["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["identity"] == who)
            .unwrap()
            .clone()
    };
    assert_eq!(row("alice")["decision"], "revoke");
    assert_eq!(row("alice")["decided_by"], "mgr");
    assert_eq!(row("alice")["verified"], true);
    assert!(row("alice")["verified_at"].is_string());
    assert_eq!(row("erin")["reason"], "on call for db-01 this quarter");
    assert!(row("erin")["decided_at"].is_string());
    assert_eq!(row("dave")["decided_by"], "system");
    assert_eq!(row("dave")["verified"], true);
    let out = run(gatehouse(&lab.path("data"))
        .args(["reviews", "report", &id, "--out"])
        .arg(lab.path("report")));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(gatehouse(&lab.path("data"))
        .args(["reviews", "verify"])
        .arg(lab.path("report")));
    assert!(out.status.success(), "{}", text(&out.stdout));
    std::fs::write(lab.path("report").join("report.csv"), "forged\n").unwrap();
    let out = run(gatehouse(&lab.path("data"))
        .args(["reviews", "verify"])
        .arg(lab.path("report")));
    assert!(!out.status.success());
    assert!(
        text(&out.stdout).contains("report.csv was changed"),
        "{}",
        text(&out.stdout)
    );

    for action in [
        "review.campaign.start",
        "review.item.decide",
        "review.item.refused",
        "review.campaign.end",
        "review.campaign.apply",
        "review.campaign.verify",
    ] {
        assert!(
            !lab.audit(action).await.is_empty(),
            "{action} not in the audit log"
        );
    }
    let out = run(gatehouse(&lab.path("data")).args(["audit", "verify"]));
    assert!(out.status.success(), "{}", text(&out.stdout));
    b.close().await;
}
