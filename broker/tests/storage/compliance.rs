//! Compliance evidence over a fixture year made by a script: 300 engineers hired by the HR feed,
//! a year of requests, approvals and sessions, 30 leavers cut off while a session runs, one
//! break-glass with its post-review, an SoD exception. Every framework's pack holds the exact
//! figures of the fixture, verifies, and fails after one changed byte or a removed file; the
//! entitlements rebuilt from the audit log equal a snapshot taken on that date.

use super::*;
use gatehouse_broker::access::assignments::{self, Kind as AssignmentKind, NewAssignment, Subject};
use gatehouse_broker::access::requests::{self, NewRequest, decision};
use gatehouse_broker::access::sessions::{self, End, NewSession};
use gatehouse_broker::access::sod;
use gatehouse_broker::governance::compliance::{Framework, Options, Period, entitlements, pack};
use gatehouse_broker::governance::reviews;
use gatehouse_broker::provisioning::{apply, lifecycle};

const DAY: i64 = 24 * 3600 * 1000;
/// 2025-01-01T00:00:00Z.
const Y0: i64 = 1_735_689_600_000;
const ENGINEERS: usize = 300;
const LEAVERS: usize = 30;
const REQUESTS: usize = 100;

const POLICY: &str = r#"
[[identities]]
username = "sec"
[[identities]]
username = "boss"

[[groups]]
name = "approvers"
members = ["sec", "boss"]

[[targets]]
name = "db-01"
address = "127.0.0.1:1"
labels = { env = "prod" }
[[targets]]
name = "web-01"
address = "127.0.0.1:2"
labels = { env = "prod" }
[[targets]]
name = "dev-01"
address = "127.0.0.1:3"
labels = { env = "dev" }

[[roles]]
name = "prod-deploy"
targets = { labels = { env = "prod" } }
logins = ["deploy"]
approvals = [{ from = "group:approvers", count = 1 }]
max_duration = "4h"

[[roles]]
name = "dev-shell"
targets = { names = ["dev-01"] }
logins = ["dev"]
birthright = { department = ["eng"] }

[[roles]]
name = "prod-root"
targets = { names = ["db-01"] }
logins = ["root"]
break_glass = true
max_duration = "1h"

[[roles]]
name = "pay-create"
targets = { names = ["web-01"] }
logins = ["payer"]
[[roles]]
name = "pay-approve"
targets = { names = ["web-01"] }
logins = ["approver"]

[[assignments]]
role = "prod-root"
to = "group:approvers"
kind = "eligible"

[[sod_rules]]
name = "payments"
left = ["pay-create"]
right = ["pay-approve"]
"#;

fn eng(i: usize) -> String {
    format!("eng{i:03}")
}

/// One HR row: (engineer number, department, status, end date).
type HrRow<'a> = (usize, &'a str, &'a str, &'a str);

async fn hr(store: &Store, now: i64, rows: &[HrRow<'_>]) {
    let mut text =
        String::from("employee_number,first_name,last_name,email,department,status,end_date\n");
    for (i, dept, status, end) in rows {
        text.push_str(&format!(
            "E{i},First{i},Last{i},{}@x.io,{dept},{status},{end}\n",
            eng(*i)
        ));
    }
    let parsed = lifecycle::parse(&text, false);
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    let mut conn = store.pool().acquire().await.unwrap();
    let current = lifecycle::current(&mut conn).await.unwrap();
    let rl = lifecycle::birthright_roles(&mut conn).await.unwrap();
    drop(conn);
    let today = gatehouse_broker::clock::from_ms(now).date_naive();
    let plan = lifecycle::plan(&parsed.records, &current, &rl, today);
    let mut tx = store.begin().await.unwrap();
    for c in &plan {
        lifecycle::apply(
            &mut tx,
            &Actor::System,
            now,
            c,
            "feed.csv",
            lifecycle::DEFAULT_GRACE_MS,
        )
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
}

async fn who(store: &Store, name: &str) -> identities::Identity {
    identities::by_username(&mut store.pool().acquire().await.unwrap(), name)
        .await
        .unwrap()
        .unwrap()
}

async fn open_session(
    store: &Store,
    user: &str,
    target: &str,
    login: &str,
    kind: &str,
    grant: &str,
    at: i64,
) -> String {
    let id = who(store, user).await.id;
    let sid = format!("s-{user}-{target}-{at}");
    let mut tx = store.begin().await.unwrap();
    sessions::start(
        &mut tx,
        at,
        &NewSession {
            id: sid.clone(),
            identity_id: id,
            identity: user.into(),
            target: target.into(),
            login: login.into(),
            protocol: "ssh".into(),
            kind: "shell".into(),
            grant_kind: kind.into(),
            grant_id: grant.into(),
            source: "127.0.0.1".into(),
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    sid
}

async fn close_session(store: &Store, sid: &str, at: i64, reason: &str) {
    let mut tx = store.begin().await.unwrap();
    sessions::end(
        &mut tx,
        at,
        sid,
        &End {
            reason: reason.into(),
            bytes_up: 10,
            bytes_down: 100,
            recording: Some(format!("2025/01/01/{sid}.cast")),
            kind: None,
            requests: None,
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

async fn snapshot(store: &Store, at: i64) -> Vec<entitlements::Entitlement> {
    let mut c = store.pool().acquire().await.unwrap();
    entitlements::entitlements(&entitlements::State::load(&mut c).await.unwrap(), at)
}

pub async fn evidence_packs_of_a_fixture_year_hold_its_exact_figures(db: &TestDb) {
    let store = &db.store;
    let doc = apply::parse("p.toml", POLICY).unwrap();
    apply::apply(store, &Actor::Cli, Y0, &doc, false)
        .await
        .unwrap();
    let everyone: Vec<HrRow> = (0..ENGINEERS).map(|i| (i, "eng", "active", "")).collect();
    hr(store, Y0 + 1000, &everyone).await;

    // The first 100 engineers may request prod-deploy; one holds both payment roles, excepted.
    let mut tx = store.begin().await.unwrap();
    for i in 0..REQUESTS {
        assignments::add(
            &mut tx,
            &Actor::Cli,
            Y0 + 2000,
            NewAssignment {
                role: "prod-deploy".into(),
                subject: Subject::Identity(eng(i)),
                kind: AssignmentKind::Eligible,
                not_before_ms: None,
                not_after_ms: None,
                source: "api".into(),
            },
        )
        .await
        .unwrap();
    }
    for role in ["pay-create", "pay-approve"] {
        assignments::add(
            &mut tx,
            &Actor::Cli,
            Y0 + 2000,
            NewAssignment {
                role: role.into(),
                subject: Subject::Identity(eng(299)),
                kind: AssignmentKind::Standing,
                not_before_ms: None,
                not_after_ms: None,
                source: "api".into(),
            },
        )
        .await
        .unwrap();
    }
    sod::add_exception(
        &mut tx,
        &Actor::identity("sec"),
        Y0 + 3000,
        "payments",
        &eng(299),
        "finance sign-off FIN-12",
        Y0 + 400 * DAY,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    // A year of work: every third day an engineer asks for prod-deploy, sec approves five
    // minutes later, a ten-minute session follows; each day someone uses the dev box.
    let sec = who(store, "sec").await;
    let mut snaps = Vec::new();
    for k in 0..REQUESTS {
        let day = Y0 + (k as i64 * 3 + 1) * DAY;
        let me = who(store, &eng(k)).await;
        let mut tx = store.begin().await.unwrap();
        let r = requests::create(
            &mut tx,
            &me,
            day,
            NewRequest {
                role: Some("prod-deploy".into()),
                targets: vec![],
                login: None,
                duration: "1h".into(),
                reason: format!("deploy {k}"),
                ticket: None,
                start_at: None,
                extends_grant: None,
            },
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let mut tx = store.begin().await.unwrap();
        decision::approve(&mut tx, &sec, day + 300_000, &r.id, "ok", None)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let grant: String = sqlx::query("SELECT grant_id FROM access_requests WHERE id = $1")
            .bind(&r.id)
            .fetch_one(store.pool())
            .await
            .unwrap()
            .get(0);
        let s = open_session(
            store,
            &eng(k),
            "db-01",
            "deploy",
            "request",
            &grant,
            day + 360_000,
        )
        .await;
        close_session(store, &s, day + 960_000, "client_closed").await;
        let s = open_session(
            store,
            &eng(ENGINEERS - 1 - k),
            "dev-01",
            "dev",
            "standing",
            "birthright",
            day + 400_000,
        )
        .await;
        close_session(store, &s, day + 500_000, "client_closed").await;
        if k == 50 {
            // The entitlements at this moment, from the tables, for the as-of check below.
            let at = day + 330_000;
            snaps.push((at, snapshot(store, at).await));
        }
        if k == 33 {
            // Day 100: eng200 moves to ops; its birthright dev-shell enters a 7-day grace.
            hr(store, day, &[(200, "ops", "active", "")]).await;
            snaps.push((day + 1, snapshot(store, day + 1).await));
        }
        if k == 35 {
            // Day 106, inside the grace: back to eng, the end is lifted (lifecycle.restore).
            hr(store, day, &[(200, "eng", "active", "")]).await;
        }
    }

    // One break-glass on day 200, post-reviewed the next day.
    let bg_day = Y0 + 200 * DAY + 7;
    let boss = who(store, "boss").await;
    let mut tx = store.begin().await.unwrap();
    let bg = requests::create(
        &mut tx,
        &boss,
        bg_day,
        NewRequest {
            role: Some("prod-root".into()),
            targets: vec![],
            login: None,
            duration: "30m".into(),
            reason: "db down, INC-7".into(),
            ticket: None,
            start_at: None,
            extends_grant: None,
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let review: String = sqlx::query("SELECT id FROM reviews WHERE kind = 'break_glass'")
        .fetch_one(store.pool())
        .await
        .unwrap()
        .get(0);
    let mut tx = store.begin().await.unwrap();
    reviews::close(
        &mut tx,
        &Actor::identity("sec"),
        bg_day + DAY,
        &review,
        "justified: INC-7 postmortem",
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert!(bg.break_glass);

    // 30 leavers, each in a live session when HR says they left; the gateway ends the session
    // (here: by hand) k seconds later. The worst cut-off is therefore 30 s.
    for j in 0..LEAVERS {
        let i = 100 + j;
        let at = Y0 + (310 + j as i64) * DAY;
        let s = open_session(
            store,
            &eng(i),
            "dev-01",
            "dev",
            "standing",
            "birthright",
            at - 60_000,
        )
        .await;
        hr(store, at, &[(i, "eng", "terminated", "")]).await;
        close_session(store, &s, at + (j as i64 + 1) * 1000, "identity_disabled").await;
    }

    // One more leaver, dated by HR five days before the feed arrived: cut off four days late.
    let late = Y0 + 340 * DAY;
    hr(store, late, &[(250, "eng", "terminated", "2025-12-02")]).await;
    snaps.push((Y0 + 130 * DAY, Vec::new()));

    // The packs, for the whole year.
    let end = Y0 + 365 * DAY;
    let (_kd, key) = signer();
    let o = Options {
        period: Period {
            from_ms: Y0,
            to_ms: end,
        },
        termination_sla_ms: 3_600_000,
        recordings_retention_ms: Some(365 * DAY),
        audit_retention_ms: Some(6 * 365 * DAY),
        web_idle_ms: 1_800_000,
        web_absolute_ms: 43_200_000,
        now_ms: end + DAY,
    };
    // Before the alert webhook delivered the break-glass alert, CC7.2 names it.
    let (ds, cp) = pack::gather_all(store, &key, &o).await.unwrap();
    let p = pack::build(Framework::Soc2, &o, &ds, cp.as_ref(), &key).unwrap();
    let cc72 = p.results.iter().find(|c| c.id == "CC7.2").unwrap();
    assert_eq!(cc72.status, "exceptions");
    assert!(
        cc72.exceptions[0].starts_with("1 alert(s) never delivered"),
        "{:?}",
        cc72.exceptions
    );
    let mut c = store.pool().acquire().await.unwrap();
    for m in gatehouse_broker::ledger::outbox::due(&mut c, end, 1000)
        .await
        .unwrap()
    {
        gatehouse_broker::ledger::outbox::record(&mut c, &m.id, bg_day + 2000, Ok(()))
            .await
            .unwrap();
    }
    drop(c);
    let (ds, cp) = pack::gather_all(store, &key, &o).await.unwrap();
    let figures = gatehouse_broker::governance::compliance::controls::figures(&ds);
    assert_eq!(figures.leavers, LEAVERS + 1);
    assert_eq!(figures.leavers_within_sla, LEAVERS);
    assert_eq!(figures.cut_off_max_ms, Some(4 * DAY));
    assert_eq!(figures.cut_off_p50_ms, Some(16_000));
    assert_eq!(figures.grants, REQUESTS + 1);
    assert_eq!(figures.grants_without_approval, 0);
    assert_eq!((figures.break_glass, figures.break_glass_reviewed), (1, 1));
    assert_eq!(figures.sessions, 2 * REQUESTS + LEAVERS);
    assert_eq!(figures.sod_exceptions, 1);
    assert_eq!(figures.identities, ENGINEERS + 2);
    let recon = &ds["reconciliation"];
    assert!(
        recon
            .rows
            .iter()
            .all(|r| r[4] == serde_json::Value::Bool(true)),
        "{:?}",
        recon.rows
    );
    assert_eq!(ds["sod_violations"].rows.len(), 1);
    assert_eq!(
        ds["sod_violations"].rows[0][4],
        serde_json::Value::Bool(true)
    );
    assert_eq!(ds["audit_integrity"].rows[0][3], serde_json::json!(0));

    for f in Framework::ALL {
        let p = pack::build(f, &o, &ds, cp.as_ref(), &key).unwrap();
        let mut late_found = 0;
        for c in &p.results {
            assert_ne!(c.status, "no evidence", "{} {}", f.as_str(), c.id);
            for e in &c.exceptions {
                assert_eq!(
                    e,
                    "1 leaver(s) not cut off within the termination SLA (e.g. eng250)",
                    "{} {}",
                    f.as_str(),
                    c.id
                );
                late_found += 1;
            }
        }
        assert!(
            late_found >= 1,
            "{}: the late leaver is an exception",
            f.as_str()
        );
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("pack");
        pack::write(&p, &out).unwrap();
        let v = pack::verify(&out, &key.public()).unwrap();
        assert_eq!(v.framework, f.as_str());
        // One changed byte.
        let csv = out.join("leavers.csv");
        let name = if csv.exists() {
            csv
        } else {
            out.join("identities.csv")
        };
        let mut bytes = std::fs::read(&name).unwrap();
        bytes[0] ^= 1;
        std::fs::write(&name, &bytes).unwrap();
        let e = pack::verify(&out, &key.public()).unwrap_err().to_string();
        assert!(e.contains("was changed"), "{e}");
        bytes[0] ^= 1;
        std::fs::write(&name, &bytes).unwrap();
        pack::verify(&out, &key.public()).unwrap();
        // A removed file, then an added one.
        std::fs::remove_file(out.join("reconciliation.json")).unwrap();
        let e = pack::verify(&out, &key.public()).unwrap_err().to_string();
        assert!(e.contains("missing"), "{e}");
        std::fs::write(out.join("reconciliation.json"), b"{}").unwrap();
        assert!(pack::verify(&out, &key.public()).is_err());
        let (_k2, other) = signer();
        assert!(pack::verify(&out, &other.public()).is_err());
    }
    let soc2 = pack::build(Framework::Soc2, &o, &ds, cp.as_ref(), &key).unwrap();
    let html = String::from_utf8(
        soc2.files
            .iter()
            .find(|f| f.0 == "summary.html")
            .unwrap()
            .1
            .clone(),
    )
    .unwrap();
    assert!(html.contains("CC6.3") && html.contains("<svg") && !html.contains("<script"));
    assert!(
        !html.contains("http://")
            || html.matches("http://").count()
                == html.matches("http://www.w3.org/2000/svg").count()
    );

    // Each snapshot taken in the year equals the entitlements rebuilt from the audit log alone
    // for that moment: day 100 (eng200 in its grace period), day 151 (eng50 holding a grant).
    let mut c = store.pool().acquire().await.unwrap();
    for (at, then) in &snaps[..2] {
        let replayed = entitlements::State::replay(&mut c, at + 1).await.unwrap();
        let rebuilt = entitlements::entitlements(&replayed, *at);
        let only_rebuilt: Vec<_> = rebuilt.iter().filter(|e| !then.contains(e)).collect();
        let only_then: Vec<_> = then.iter().filter(|e| !rebuilt.contains(e)).collect();
        assert!(
            only_rebuilt.is_empty() && only_then.is_empty() && rebuilt.len() == then.len(),
            "as of {at}: only rebuilt {only_rebuilt:?}; only in the snapshot {only_then:?}"
        );
    }
    let in_grace = &snaps[0].1;
    assert!(
        in_grace
            .iter()
            .any(|e| e.identity == eng(200) && e.role == "dev-shell" && e.until.is_some()),
        "{in_grace:?}"
    );
    let rebuilt = &snaps[1].1;
    assert!(
        rebuilt
            .iter()
            .any(|e| e.held_as == "grant" && e.identity == eng(50)),
        "{rebuilt:?}"
    );
    assert!(
        rebuilt
            .iter()
            .any(|e| e.identity == eng(100) && e.role == "dev-shell")
    );
    // Day 130, after the grace would have ended: eng200 still holds dev-shell (restored), and
    // the replay says so too.
    let at = snaps[2].0;
    let replayed = entitlements::State::replay(&mut c, at + 1).await.unwrap();
    assert!(
        entitlements::entitlements(&replayed, at)
            .iter()
            .any(|e| e.identity == eng(200) && e.role == "dev-shell" && e.until.is_none())
    );
    // And now: the leavers hold nothing, replay and tables agree.
    let now = end + DAY;
    let replayed = entitlements::State::replay(&mut c, now + 1).await.unwrap();
    assert_eq!(
        entitlements::entitlements(&replayed, now),
        snapshot(store, now).await
    );
    assert!(
        !snapshot(store, now)
            .await
            .iter()
            .any(|e| e.identity == eng(100))
    );
}
