//! Access review campaigns end to end on the store: a quarterly campaign from policy as code
//! over a privileged role, decided over two stages with delegation, refusals audited, ended by
//! the scheduler with the clock moved, applied through the engine, verified, reported; and the
//! mover review of an HR move.

use super::*;
use gatehouse_broker::access::assignments;
use gatehouse_broker::access::sessions::{self, NewSession};
use gatehouse_broker::governance::campaigns::decide::{self, Choice};
use gatehouse_broker::governance::campaigns::{close, report, store as campaigns};
use gatehouse_broker::provisioning::apply;

const DAY: i64 = 24 * 3600 * 1000;

const POLICY: &str = r#"
[[identities]]
username = "mgr"
[[identities]]
username = "sec"
[[identities]]
username = "deputy"
[[identities]]
username = "stranger"
[[identities]]
username = "idle"
attributes = { manager = "mgr", department = "ops" }
[[identities]]
username = "busy"
attributes = { manager = "mgr", department = "ops" }
[[identities]]
username = "leaving"
attributes = { manager = "mgr", department = "ops", end_date = "2030-01-01" }
[[identities]]
username = "other"
attributes = { manager = "mgr", department = "ops" }

[[targets]]
name = "db-01"
address = "127.0.0.1:1"

[[roles]]
name = "prod-root"
targets = { names = ["db-01"] }
logins = ["root"]
owner = "sec"

[[assignments]]
role = "prod-root"
to = "idle"
kind = "standing"
[[assignments]]
role = "prod-root"
to = "busy"
kind = "standing"
[[assignments]]
role = "prod-root"
to = "leaving"
kind = "standing"
[[assignments]]
role = "prod-root"
to = "other"
kind = "standing"

[[reviews]]
name = "prod-root-quarterly"
owner = "sec"
scope = { roles = ["prod-root"] }
stages = ["manager", "role_owner"]
schedule = "quarterly"
duration = "14d"
"#;

async fn session(store: &Store, who: &str, assignment: &str, at: i64) {
    let id = identities::by_username(&mut store.pool().acquire().await.unwrap(), who)
        .await
        .unwrap()
        .unwrap()
        .id;
    let mut tx = store.begin().await.unwrap();
    let sid = format!("s-{who}-{at}");
    sessions::start(
        &mut tx,
        at,
        &NewSession {
            id: sid.clone(),
            identity_id: id,
            identity: who.into(),
            target: "db-01".into(),
            login: "root".into(),
            protocol: "ssh".into(),
            kind: "shell".into(),
            grant_kind: "standing".into(),
            grant_id: assignment.into(),
            source: "127.0.0.1".into(),
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

async fn assignment_of(store: &Store, who: &str) -> Option<String> {
    let mut c = store.pool().acquire().await.unwrap();
    assignments::list(&mut c)
        .await
        .unwrap()
        .into_iter()
        .find(|a| a.subject.to_string() == who)
        .map(|a| a.id)
}

fn item_of<'a>(items: &'a [campaigns::Item], who: &str) -> &'a campaigns::Item {
    items.iter().find(|i| i.username == who).unwrap()
}

async fn decide_as(
    store: &Store,
    who: &str,
    now: i64,
    item: &str,
    choice: Choice,
    reason: &str,
) -> Result<campaigns::Item, Error> {
    let mut tx = store.begin().await.unwrap();
    let r = decide::decide(&mut tx, who, now, item, &choice, reason).await;
    tx.settle(&r).await.unwrap();
    r
}

pub async fn quarterly_campaign_is_decided_applied_verified_and_reported(db: &TestDb) {
    let store = &db.store;
    let doc = apply::parse("p.toml", POLICY).unwrap();
    let plan = apply::apply(store, &Actor::Cli, T0, &doc, false)
        .await
        .unwrap();
    assert!(
        plan.iter()
            .any(|c| c.object == "review prod-root-quarterly"),
        "{plan:?}"
    );
    let now = T0 + 200 * DAY;
    let idle_a = assignment_of(store, "idle").await.unwrap();
    let busy_a = assignment_of(store, "busy").await.unwrap();
    session(store, "idle", &idle_a, now - 100 * DAY).await;
    session(store, "busy", &busy_a, now - DAY).await;

    // The scheduler starts it (due since T0: one campaign, not one per missed quarter).
    let t = close::tick(store, now).await.unwrap();
    assert_eq!(t.started.len(), 1);
    assert!(
        close::tick(store, now + 1000)
            .await
            .unwrap()
            .started
            .is_empty()
    );
    let id = t.started[0].clone();
    let mut c = store.pool().acquire().await.unwrap();
    let items = campaigns::items(&mut c, &id, None, 100, 0).await.unwrap();
    drop(c);
    assert_eq!(items.len(), 4);
    let idle = item_of(&items, "idle");
    assert_eq!(idle.recommendation, "revoke");
    assert!(
        idle.rec_reason.contains("last 100 days ago"),
        "{}",
        idle.rec_reason
    );
    assert_eq!(idle.evidence.usage.last_ms, Some(now - 100 * DAY));
    let busy = item_of(&items, "busy");
    assert_eq!(busy.recommendation, "keep");
    assert_eq!(busy.evidence.usage.count_90d, 1);
    let leaving = item_of(&items, "leaving");
    assert_eq!(leaving.recommendation, "revoke");
    assert!(items.iter().all(|i| i.reviewer == "mgr" && i.privileged));

    // Refusals: someone who is not the reviewer; a keep of privileged access without a reason;
    // delegating an item to its own subject.
    let e = decide_as(store, "stranger", now, &busy.id, Choice::Keep, "fine").await;
    assert_eq!(e.unwrap_err().code(), "not_reviewer");
    let e = decide_as(store, "mgr", now, &busy.id, Choice::Keep, "").await;
    assert_eq!(e.unwrap_err().code(), "reason_required");
    let e = decide_as(
        store,
        "mgr",
        now,
        &busy.id,
        Choice::Delegate("busy".into()),
        "",
    )
    .await;
    assert_eq!(e.unwrap_err().code(), "self_review");
    // Going against the recommendation needs a reason too.
    let e = decide_as(store, "mgr", now, &idle.id, Choice::Keep, "").await;
    assert_eq!(e.unwrap_err().code(), "reason_required");

    // Stage 1 (manager): keep busy (to stage 2, the role owner), revoke idle, delegate other.
    let after = decide_as(
        store,
        "mgr",
        now,
        &busy.id,
        Choice::Keep,
        "on call for db-01",
    )
    .await
    .unwrap();
    assert_eq!(
        (after.stage, after.reviewer.as_str(), after.state.as_str()),
        (1, "sec", "open")
    );
    decide_as(store, "mgr", now + 1000, &idle.id, Choice::Revoke, "")
        .await
        .unwrap();
    let other = item_of(&items, "other");
    decide_as(
        store,
        "mgr",
        now,
        &other.id,
        Choice::Delegate("deputy".into()),
        "on leave",
    )
    .await
    .unwrap();
    let e = decide_as(store, "mgr", now, &other.id, Choice::Keep, "x").await;
    assert_eq!(e.unwrap_err().code(), "not_reviewer", "delegated away");
    decide_as(
        store,
        "deputy",
        now,
        &other.id,
        Choice::Keep,
        "still needed",
    )
    .await
    .unwrap();
    // Stage 2 (role owner): keep both.
    decide_as(store, "sec", now, &busy.id, Choice::Keep, "confirmed")
        .await
        .unwrap();
    decide_as(store, "sec", now, &other.id, Choice::Keep, "confirmed")
        .await
        .unwrap();

    // Nothing changed yet: decisions apply at the end.
    assert!(assignment_of(store, "idle").await.is_some());
    // The clock moves past the end: the unanswered item (leaving) takes the recommendation.
    let end = now + 15 * DAY;
    let t = close::tick(store, end).await.unwrap();
    assert_eq!(t.ended, std::slice::from_ref(&id));
    assert!(assignment_of(store, "idle").await.is_none());
    assert!(assignment_of(store, "leaving").await.is_none());
    assert!(assignment_of(store, "busy").await.is_some());
    assert!(assignment_of(store, "other").await.is_some());

    let mut c = store.pool().acquire().await.unwrap();
    let cmp = campaigns::campaign(&mut c, &id).await.unwrap();
    assert_eq!(cmp.state, "closed");
    let items = campaigns::items(&mut c, &id, None, 100, 0).await.unwrap();
    let leaving = item_of(&items, "leaving");
    assert_eq!(leaving.decision.as_deref(), Some("revoke"));
    assert_eq!(leaving.decided_by.as_deref(), Some("system"));
    for who in ["idle", "leaving"] {
        let i = item_of(&items, who);
        assert_eq!(
            (i.verified, i.verified_ms),
            (Some(true), Some(end)),
            "{who}"
        );
        assert_eq!(i.outcome.as_deref(), Some("assignment removed"));
    }
    let p = campaigns::progress(&mut c, &id).await.unwrap();
    let decisions = campaigns::decisions(&mut c, &id, None).await.unwrap();
    let r = report::build(&cmp, p, &items, &decisions);
    let busy = r.rows.iter().find(|x| x.identity == "busy").unwrap();
    assert_eq!(busy.decided_by.as_deref(), Some("sec"));
    assert_eq!(busy.history.len(), 2, "{:?}", busy.history);
    assert!(busy.history[0].contains("mgr keep") && busy.history[0].contains("on call for db-01"));
    let other = r.rows.iter().find(|x| x.identity == "other").unwrap();
    assert!(
        other.history[0].contains("delegate to deputy"),
        "{:?}",
        other.history
    );
    let idle = r.rows.iter().find(|x| x.identity == "idle").unwrap();
    assert_eq!(
        (idle.decision.as_deref(), idle.verified),
        (Some("revoke"), Some(true))
    );
    drop(c);

    let all = actions(store).await;
    for a in [
        "review.define",
        "review.campaign.start",
        "review.item.refused",
        "review.item.stage",
        "review.item.decide",
        "review.item.delegate",
        "review.campaign.end",
        "assignment.remove",
        "review.campaign.apply",
        "review.campaign.verify",
    ] {
        assert!(all.iter().any(|x| x == a), "{a} not audited");
    }
    assert_eq!(
        audit::verify::verify(store, None, None)
            .await
            .unwrap()
            .problem,
        None
    );
    // The next quarter's campaign is scheduled.
    let mut c = store.pool().acquire().await.unwrap();
    let d = campaigns::definition(&mut c, "prod-root-quarterly")
        .await
        .unwrap()
        .unwrap();
    assert!(
        d.next_start_ms.unwrap() > end - 15 * DAY,
        "{:?}",
        d.next_start_ms
    );
}

pub async fn sign_off_campaigns_wait_for_their_owner_and_refuse_others(db: &TestDb) {
    let store = &db.store;
    let text = POLICY.replace(
        "duration = \"14d\"",
        "duration = \"14d\"\napply = \"sign_off\"\nunanswered = \"keep\"",
    );
    let doc = apply::parse("p.toml", &text).unwrap();
    apply::apply(store, &Actor::Cli, T0, &doc, false)
        .await
        .unwrap();
    let now = T0 + 200 * DAY;
    let mut tx = store.begin().await.unwrap();
    let id = campaigns::start(&mut tx, &Actor::Cli, now, "prod-root-quarterly")
        .await
        .unwrap();
    close::end(&mut tx, &Actor::Cli, now, &id).await.unwrap();
    tx.commit().await.unwrap();
    // Ended, unanswered kept, nothing applied until the owner signs off.
    let mut c = store.pool().acquire().await.unwrap();
    assert_eq!(
        campaigns::campaign(&mut c, &id).await.unwrap().state,
        "ended"
    );
    drop(c);
    let mut tx = store.begin().await.unwrap();
    let r = close::sign_off(&mut tx, "mgr", now, &id).await;
    tx.settle(&r).await.unwrap();
    assert_eq!(r.unwrap_err().code(), "not_owner");
    let mut tx = store.begin().await.unwrap();
    let done = close::sign_off(&mut tx, "sec", now, &id).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!((done.kept, done.revoked), (4, 0));
    assert!(
        actions(store)
            .await
            .iter()
            .any(|a| a == "review.campaign.sign_off.refused")
    );
}

/// An HR import moves alice from engineering to sales: her manually assigned eligibility on
/// prod-db (not birthright) goes to her new manager's queue, and is revoked when the grace
/// period ends unanswered; her birthright role is not in the review.
pub async fn a_movers_manual_access_goes_to_the_new_manager_and_is_revoked_at_grace_end(
    db: &TestDb,
) {
    let store = &db.store;
    let doc = apply::parse(
        "p.toml",
        r#"
[[targets]]
name = "prod-db"
address = "127.0.0.1:1"
[[roles]]
name = "prod-db-admin"
targets = { names = ["prod-db"] }
logins = ["postgres"]
[[roles]]
name = "sales-base"
targets = { names = ["prod-db"] }
logins = ["readonly"]
birthright = { department = ["sales"] }
"#,
    )
    .unwrap();
    apply::apply(store, &Actor::Cli, T0, &doc, false)
        .await
        .unwrap();
    let head = "employee_number,first_name,last_name,email,manager,department\n";
    super::lifecycle::import(
        store,
        &format!("{head}E1,Eve,Ng,eve@x.io,,engineering\nE3,Sam,Oh,sam@x.io,,sales\nE2,Alice,Lee,alice@x.io,E1,engineering\n"),
    )
    .await;
    let mut tx = store.begin().await.unwrap();
    assignments::add(
        &mut tx,
        &Actor::Cli,
        T0,
        assignments::NewAssignment {
            role: "prod-db-admin".into(),
            subject: assignments::Subject::Identity("alice".into()),
            kind: assignments::Kind::Eligible,
            not_before_ms: None,
            not_after_ms: None,
            source: String::new(),
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    // The move.
    super::lifecycle::import(
        store,
        &format!("{head}E1,Eve,Ng,eve@x.io,,engineering\nE3,Sam,Oh,sam@x.io,,sales\nE2,Alice,Lee,alice@x.io,E3,sales\n"),
    )
    .await;
    let mut c = store.pool().acquire().await.unwrap();
    let (queue, total) = campaigns::queue(&mut c, "sam", None, 10, 0).await.unwrap();
    assert_eq!(total, 1, "{queue:?}");
    assert_eq!(queue[0].username, "alice");
    assert_eq!(queue[0].role.as_deref(), Some("prod-db-admin"));
    assert_eq!(queue[0].held_as, "eligible");
    // The old manager has nothing to review.
    assert_eq!(
        campaigns::queue(&mut c, "eve", None, 10, 0)
            .await
            .unwrap()
            .1,
        0
    );
    let cmp = campaigns::campaign(&mut c, &queue[0].campaign_id)
        .await
        .unwrap();
    assert_eq!((cmp.kind.as_str(), cmp.owner.as_str()), ("mover", "sam"));
    assert_eq!(
        cmp.ends_ms,
        T0 + gatehouse_broker::provisioning::lifecycle::DEFAULT_GRACE_MS
    );
    drop(c);
    // Unanswered at the end of the grace period: revoked.
    close::tick(store, cmp.ends_ms + 1).await.unwrap();
    let mut c = store.pool().acquire().await.unwrap();
    let left: Vec<String> = assignments::list(&mut c)
        .await
        .unwrap()
        .into_iter()
        .filter(|a| a.subject.to_string() == "alice")
        .map(|a| a.role)
        .collect();
    assert_eq!(left, ["sales-base"]);
    let i = campaigns::item(&mut c, &queue[0].id).await.unwrap();
    assert_eq!(
        (i.decision.as_deref(), i.verified),
        (Some("revoke"), Some(true))
    );
}

/// Accepting the recommendations in bulk skips what needs a reason; a reminder goes out
/// `remind_before` the end and open items go to the fallback `escalate_before` it, both through
/// the notification outbox.
pub async fn bulk_accept_reminders_and_escalation_to_the_fallback(db: &TestDb) {
    let store = &db.store;
    let doc = apply::parse("p.toml", POLICY).unwrap();
    apply::apply(store, &Actor::Cli, T0, &doc, false)
        .await
        .unwrap();
    let now = T0 + 200 * DAY;
    let busy_a = assignment_of(store, "busy").await.unwrap();
    session(store, "busy", &busy_a, now - DAY).await;
    let mut tx = store.begin().await.unwrap();
    let id = campaigns::start(&mut tx, &Actor::Cli, now, "prod-root-quarterly")
        .await
        .unwrap();
    let bulk = decide::accept_recommendations(&mut tx, "mgr", now, &id, "")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    // idle, leaving and other (never used) are revoked as recommended; busy's keep of
    // privileged access needs a reason and stays.
    assert_eq!(bulk.decided, 3, "{bulk:?}");
    assert_eq!(bulk.skipped.len(), 1, "{bulk:?}");
    assert!(bulk.skipped[0].1.contains("reason"), "{bulk:?}");
    let outbox = |event: &'static str| async move {
        sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM webhook_outbox WHERE payload LIKE '%\"event\":\"' || $1 || '\"%'",
        )
        .bind(event)
        .fetch_one(store.pool())
        .await
        .unwrap()
    };
    assert_eq!(outbox("review.started").await, 1);
    let ends = now + 14 * DAY;
    let t = close::tick(store, ends - 3 * DAY + 1).await.unwrap();
    assert_eq!((t.reminded.len(), t.escalated.len()), (1, 0));
    assert_eq!(outbox("review.reminder").await, 1);
    let t = close::tick(store, ends - DAY + 1).await.unwrap();
    assert_eq!((t.reminded.len(), t.escalated.len()), (0, 1));
    assert_eq!(outbox("review.escalated").await, 1);
    let mut c = store.pool().acquire().await.unwrap();
    let (queue, _) = campaigns::queue(&mut c, "sec", Some(&id), 10, 0)
        .await
        .unwrap();
    assert_eq!(queue.len(), 1);
    // The queue page's counts per campaign, and its recommendation filter.
    let counts = campaigns::queue_counts(&mut c, "sec").await.unwrap();
    assert_eq!(counts.len(), 1);
    assert_eq!(
        (counts[0].0.as_str(), counts[0].3, counts[0].4),
        (id.as_str(), 1, 0)
    );
    let (kept, n) = campaigns::queue_filtered(&mut c, "sec", None, Some("keep"), 10, 0)
        .await
        .unwrap();
    assert_eq!((kept.len(), n), (1, 1));
    let (revoked, n) = campaigns::queue_filtered(&mut c, "sec", None, Some("revoke"), 10, 0)
        .await
        .unwrap();
    assert_eq!((revoked.len(), n), (0, 0));
    assert_eq!(queue[0].username, "busy");
    assert!(
        campaigns::queue(&mut c, "mgr", Some(&id), 10, 0)
            .await
            .unwrap()
            .0
            .is_empty()
    );
    let ds = campaigns::decisions(&mut c, &id, Some(&queue[0].id))
        .await
        .unwrap();
    assert_eq!(ds.last().unwrap().decision, "escalate");
    assert_eq!(ds.last().unwrap().delegate_to.as_deref(), Some("sec"));
    assert!(
        ds.iter()
            .filter(|d| d.decision != "escalate")
            .all(|d| !d.opened)
    );
    // A second pass sends nothing again.
    let t = close::tick(store, ends - DAY + 2).await.unwrap();
    assert_eq!((t.reminded.len(), t.escalated.len()), (0, 0));
}

/// A review that revokes the only active administrator's privilege leaves it (the outcome says
/// why) and revokes the rest: the check comes before anything is deleted.
pub async fn security_a_review_never_removes_the_last_administrator(db: &TestDb) {
    let store = &db.store;
    let doc = apply::parse(
        "p.toml",
        r#"
[[identities]]
username = "root-admin"
[[identities]]
username = "helper"
[[identities]]
username = "sec"

[[reviews]]
name = "admins"
owner = "sec"
scope = { privileges = ["admin", "reviewer"] }
stages = ["self"]
unanswered = "revoke"
start = "2099-01-01"
"#,
    )
    .unwrap();
    apply::apply(store, &Actor::Cli, T0, &doc, false)
        .await
        .unwrap();
    let mut tx = store.begin().await.unwrap();
    privileges::grant(
        &mut tx,
        &Actor::Cli,
        T0,
        "root-admin",
        privileges::Privilege::Admin,
    )
    .await
    .unwrap();
    privileges::grant(
        &mut tx,
        &Actor::Cli,
        T0,
        "helper",
        privileges::Privilege::Reviewer,
    )
    .await
    .unwrap();
    let now = T0 + 200 * DAY;
    let id = campaigns::start(&mut tx, &Actor::Cli, now, "admins")
        .await
        .unwrap();
    close::end(&mut tx, &Actor::Cli, now, &id).await.unwrap();
    tx.commit().await.unwrap();
    let mut c = store.pool().acquire().await.unwrap();
    let admin = identities::by_username(&mut c, "root-admin")
        .await
        .unwrap()
        .unwrap();
    assert!(
        privileges::has(&mut c, &admin.id, privileges::Privilege::Admin)
            .await
            .unwrap(),
        "the last administrator lost admin"
    );
    let helper = identities::by_username(&mut c, "helper")
        .await
        .unwrap()
        .unwrap();
    assert!(
        !privileges::has(&mut c, &helper.id, privileges::Privilege::Reviewer)
            .await
            .unwrap()
    );
    let items = campaigns::items(&mut c, &id, None, 10, 0).await.unwrap();
    let kept = items.iter().find(|i| i.username == "root-admin").unwrap();
    assert!(
        kept.outcome
            .as_deref()
            .unwrap()
            .contains("last active administrator"),
        "{:?}",
        kept.outcome
    );
}
