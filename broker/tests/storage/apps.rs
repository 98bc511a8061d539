//! The app gateway's sign-in hand-off: one-time codes bound to an app, a browser session and
//! the app host's state; app sessions that live with their browser session and only for their
//! app.

use super::*;
use gatehouse_broker::access::apps::{self, Redeemed};
use gatehouse_broker::identity::web_sessions::{self, NewSession, Stage, Timeouts};

async fn app(store: &Store, name: &str) -> targets::Target {
    let mut tx = store.begin().await.unwrap();
    let t = targets::create(
        &mut tx,
        &Actor::Cli,
        T0,
        NewTarget {
            name: name.into(),
            kind: Kind::Http,
            address: "http://127.0.0.1:9".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    t
}

async fn browser(store: &Store, who: &identities::Identity) -> (String, web_sessions::WebSession) {
    let mut tx = store.begin().await.unwrap();
    let (cookie, s) = web_sessions::create(
        &mut tx,
        T0,
        NewSession {
            identity: who,
            stage: Stage::Active,
            methods: "password+totp",
            mfa_at_ms: Some(T0),
            address: "127.0.0.1",
            user_agent: "test",
        },
        Timeouts::default(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    (cookie.expose().to_string(), s)
}

const STATE: &str = "state-of-the-app-host-0123456789";

async fn code(store: &Store, who: &identities::Identity, web: &str, t: &targets::Target) -> String {
    let mut tx = store.begin().await.unwrap();
    let c = apps::issue_code(&mut tx, T0, who, web, t, STATE, "/d/home?x=1")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    c.expose().to_string()
}

async fn redeem(store: &Store, code: &str, t: &targets::Target, state: &str, now: i64) -> Redeemed {
    let mut tx = store.begin().await.unwrap();
    let r = apps::redeem_code(&mut tx, now, code, t, state).await;
    tx.settle(&r).await.unwrap();
    r.unwrap()
}

fn refused(r: &Redeemed) -> Option<&'static str> {
    match r {
        Redeemed::Refused(why) => Some(why),
        Redeemed::Session { .. } => None,
    }
}

pub async fn security_app_codes_are_single_use_and_bound_to_app_and_state(db: &TestDb) {
    let store = &db.store;
    let alice = add_identity(store, "alice").await;
    let grafana = app(store, "grafana").await;
    let jenkins = app(store, "jenkins").await;
    let (web_cookie, web) = browser(store, &alice).await;

    // Another app's host, another browser's state, a made-up or expired code: refused.
    let c = code(store, &alice, &web.id, &grafana).await;
    assert_eq!(
        refused(&redeem(store, &c, &jenkins, STATE, T0).await),
        Some("other_app")
    );
    let c = code(store, &alice, &web.id, &grafana).await;
    assert_eq!(
        refused(&redeem(store, &c, &grafana, "another-browsers-state-0000", T0).await),
        Some("state_mismatch")
    );
    assert_eq!(
        refused(&redeem(store, "ghac_made-up", &grafana, STATE, T0).await),
        Some("unknown_code")
    );
    let c = code(store, &alice, &web.id, &grafana).await;
    assert_eq!(
        refused(&redeem(store, &c, &grafana, STATE, T0 + apps::CODE_TTL_MS).await),
        Some("code_expired")
    );

    // The right one, once: a session for grafana only, its return path kept.
    let c = code(store, &alice, &web.id, &grafana).await;
    let Redeemed::Session {
        session,
        cookie,
        identity,
        next,
    } = redeem(store, &c, &grafana, STATE, T0 + 1).await
    else {
        panic!("refused");
    };
    assert_eq!(identity.username, "alice");
    assert_eq!(next, "/d/home?x=1");
    assert_eq!(session.mfa_at_ms, Some(T0));
    assert_eq!(
        refused(&redeem(store, &c, &grafana, STATE, T0 + 2).await),
        Some("code_used")
    );
    let mut conn = store.pool().acquire().await.unwrap();
    let found = apps::lookup(&mut conn, cookie.expose(), &grafana.id, T0 + 3)
        .await
        .unwrap();
    assert_eq!(found.map(|(s, _)| s.id), Some(session.id.clone()));
    // The same cookie on another app's host: nothing.
    assert!(
        apps::lookup(&mut conn, cookie.expose(), &jenkins.id, T0 + 3)
            .await
            .unwrap()
            .is_none()
    );
    drop(conn);
    let refusals: Vec<String> = actions(store)
        .await
        .into_iter()
        .filter(|a| a == "app.callback.refused")
        .collect();
    assert_eq!(refusals.len(), 5, "every refused callback is audited");

    // Signing out of the web UI ends the app session too.
    let mut conn = store.pool().acquire().await.unwrap();
    let (s, _) = web_sessions::lookup(&mut conn, &web_cookie, T0 + 4, Timeouts::default())
        .await
        .unwrap()
        .unwrap();
    drop(conn);
    let mut tx = store.begin().await.unwrap();
    web_sessions::end(&mut tx, T0 + 5, &s, "alice")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut conn = store.pool().acquire().await.unwrap();
    assert!(
        apps::lookup(&mut conn, cookie.expose(), &grafana.id, T0 + 6)
            .await
            .unwrap()
            .is_none()
    );
}

pub async fn app_sessions_end_with_the_identity_and_on_sign_out_at_the_app(db: &TestDb) {
    let store = &db.store;
    let bob = add_identity(store, "bob").await;
    let grafana = app(store, "grafana").await;
    let (_, web) = browser(store, &bob).await;
    let c = code(store, &bob, &web.id, &grafana).await;
    let Redeemed::Session {
        session, cookie, ..
    } = redeem(store, &c, &grafana, STATE, T0 + 1).await
    else {
        panic!("refused");
    };
    let live = |now| {
        let cookie = cookie.expose().to_string();
        let id = grafana.id.clone();
        async move {
            let mut conn = store.pool().acquire().await.unwrap();
            apps::lookup(&mut conn, &cookie, &id, now)
                .await
                .unwrap()
                .is_some()
        }
    };
    assert!(live(T0 + 2).await);
    // Sign-out at the app host.
    let mut tx = store.begin().await.unwrap();
    apps::end(&mut tx, T0 + 3, &session, "bob", "logout")
        .await
        .unwrap();
    apps::end(&mut tx, T0 + 3, &session, "bob", "logout")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(!live(T0 + 4).await);
    assert_eq!(
        actions(store)
            .await
            .iter()
            .filter(|a| *a == "app.session.end")
            .count(),
        1
    );
    // A new app session, then bob is suspended: it is gone.
    let c = code(store, &bob, &web.id, &grafana).await;
    let Redeemed::Session { cookie, .. } = redeem(store, &c, &grafana, STATE, T0 + 5).await else {
        panic!("refused");
    };
    let mut tx = store.begin().await.unwrap();
    identities::set_status(&mut tx, &Actor::Cli, T0 + 6, "bob", Status::Suspended)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut conn = store.pool().acquire().await.unwrap();
    assert!(
        apps::lookup(&mut conn, cookie.expose(), &grafana.id, T0 + 7)
            .await
            .unwrap()
            .is_none()
    );
}

pub async fn spent_codes_and_old_app_sessions_are_purged(db: &TestDb) {
    let store = &db.store;
    let carol = add_identity(store, "carol").await;
    let grafana = app(store, "grafana").await;
    let (_, web) = browser(store, &carol).await;
    let used = code(store, &carol, &web.id, &grafana).await;
    let Redeemed::Session { session, .. } = redeem(store, &used, &grafana, STATE, T0 + 1).await
    else {
        panic!("refused");
    };
    let _unused = code(store, &carol, &web.id, &grafana).await;
    let mut tx = store.begin().await.unwrap();
    apps::end(&mut tx, T0 + 2, &session, "carol", "logout")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let count = |table: &'static str| async move {
        let mut c = store.pool().acquire().await.unwrap();
        sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
            .fetch_one(&mut *c)
            .await
            .unwrap()
    };
    let mut c = store.pool().acquire().await.unwrap();
    // Within the week: kept.
    assert_eq!(
        apps::purge(&mut c, T0 + apps::KEEP_ENDED_MS).await.unwrap(),
        (0, 0)
    );
    // A week after: both codes (one used, one expired unused) and the ended session go.
    assert_eq!(
        apps::purge(&mut c, T0 + 3 + apps::KEEP_ENDED_MS + apps::CODE_TTL_MS)
            .await
            .unwrap(),
        (2, 1)
    );
    drop(c);
    assert_eq!(count("app_codes").await, 0);
    assert_eq!(count("app_sessions").await, 0);
}
