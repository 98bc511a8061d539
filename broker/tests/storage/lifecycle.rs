//! The HR lifecycle engine on both backends: joiners in bulk and one at a time agree, a mover's
//! old birthright enters its grace period, a leaver is cut off, and the chain verifies.

use super::*;
use gatehouse_broker::access::role_spec::RoleSpec;
use gatehouse_broker::provisioning::lifecycle::{self, Kind};

pub async fn hr_joiners_in_bulk_movers_and_leavers(db: &TestDb) {
    let store = &db.store;
    let mut tx = store.begin().await.unwrap();
    for (name, dept) in [("eng-base", "engineering"), ("ops-base", "operations")] {
        let mut spec = RoleSpec::default();
        spec.birthright
            .insert("department".into(), vec![dept.into()]);
        roles::create_with(&mut tx, &Actor::Cli, T0, name, "", spec, "api")
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    let feed = "employee_number,first_name,last_name,email,manager,department,start_date\n\
                E1,Ann,Lee,ann@x.io,,engineering,2020-01-01\n\
                E2,Bo,Ray,bo@x.io,E1,engineering,2020-01-01\n\
                E3,Cy,Day,cy@x.io,E1,operations,2099-01-01\n";
    let today = chrono::NaiveDate::from_ymd_opt(2026, 11, 26).unwrap();
    let run = |text: &'static str| async move {
        let parsed = lifecycle::parse(text, false);
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        let mut conn = store.pool().acquire().await.unwrap();
        let current = lifecycle::current(&mut conn).await.unwrap();
        let rl = lifecycle::birthright_roles(&mut conn).await.unwrap();
        let ids: std::collections::HashMap<String, String> = roles::list(&mut conn)
            .await
            .unwrap()
            .into_iter()
            .map(|r| (r.name, r.id))
            .collect();
        drop(conn);
        let plan = lifecycle::plan(&parsed.records, &current, &rl, today);
        let refs: Vec<&lifecycle::Change> = plan.iter().collect();
        let mut tx = store.begin().await.unwrap();
        lifecycle::bulk::joiners(&mut tx, &Actor::System, T0, &refs, "feed.csv", &ids)
            .await
            .unwrap();
        for c in refs
            .iter()
            .filter(|c| !matches!(c.kind, Kind::Joiner | Kind::Staged))
        {
            lifecycle::apply(
                &mut tx,
                &Actor::System,
                T0,
                c,
                "feed.csv",
                lifecycle::DEFAULT_GRACE_MS,
            )
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
        plan.iter()
            .map(|c| (c.username.clone(), c.kind))
            .collect::<Vec<_>>()
    };
    let kinds = run(feed).await;
    assert_eq!(
        kinds,
        vec![
            ("ann".into(), Kind::Joiner),
            ("bo".into(), Kind::Joiner),
            ("cy".into(), Kind::Staged)
        ]
    );
    let mut conn = store.pool().acquire().await.unwrap();
    let bo = identities::by_username(&mut conn, "bo")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bo.attributes["manager"], "ann");
    let cy = identities::by_username(&mut conn, "cy")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cy.status, Status::Prehire);
    let held = lifecycle::current(&mut conn).await.unwrap();
    assert_eq!(held["E1"].birthright, ["eng-base".to_string()].into());
    assert!(
        held["E3"].birthright.is_empty(),
        "no access before the start date"
    );
    drop(conn);
    // bo moves to operations; ann leaves.
    let kinds = run(
        "employee_number,first_name,last_name,email,manager,department,start_date,status\n\
                     E1,Ann,Lee,ann@x.io,,engineering,2020-01-01,terminated\n\
                     E2,Bo,Ray,bo@x.io,E1,operations,2020-01-01,\n",
    )
    .await;
    assert_eq!(
        kinds,
        vec![("ann".into(), Kind::Leaver), ("bo".into(), Kind::Mover)]
    );
    let mut conn = store.pool().acquire().await.unwrap();
    let ann = identities::by_username(&mut conn, "ann")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ann.status, Status::Terminated);
    let now = lifecycle::current(&mut conn).await.unwrap();
    assert_eq!(
        now["E2"].birthright,
        ["ops-base".to_string()].into(),
        "eng-base is in its grace period"
    );
    let graced: i64 = sqlx::query(
        "SELECT COUNT(*) FROM role_assignments WHERE source = 'birthright' AND not_after = $1",
    )
    .bind(T0 + lifecycle::DEFAULT_GRACE_MS)
    .fetch_one(&mut *conn)
    .await
    .unwrap()
    .get(0);
    assert_eq!(graced, 1);
    drop(conn);
    let acts = actions(store).await;
    for a in [
        "hr.joiner",
        "hr.staged",
        "hr.mover",
        "hr.leaver",
        "lifecycle.grace",
    ] {
        assert!(acts.contains(&a.to_string()), "{a} missing from {acts:?}");
    }
    let report = audit::verify::verify(store, None, None).await.unwrap();
    assert_eq!(report.problem, None);
}

/// Start and end dates take effect without a new import (`lifecycle::dates`, run by `serve`
/// every minute): the staged hire starts with its birthright roles on the start date, the
/// contractor is a leaver the day after the end date, and running again changes nothing.
pub async fn hr_start_and_end_dates_apply_between_imports(db: &TestDb) {
    const DAY: i64 = 86_400_000;
    let store = &db.store;
    let mut tx = store.begin().await.unwrap();
    let mut spec = RoleSpec::default();
    spec.birthright
        .insert("department".into(), vec!["operations".into()]);
    roles::create_with(&mut tx, &Actor::Cli, T0, "ops-base", "", spec, "api")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let today = gatehouse_broker::clock::from_ms(T0).date_naive();
    let tomorrow = today.succ_opt().unwrap();
    let feed = format!(
        "employee_number,first_name,last_name,email,department,employment_type,start_date,end_date,sponsor\n\
         E1,Ann,Lee,ann@x.io,engineering,employee,2020-01-01,,\n\
         E3,Cy,Day,cy@x.io,operations,employee,{tomorrow},,\n\
         E4,Dan,Fox,dan@x.io,operations,contractor,2020-01-01,{today},E1\n"
    );
    let parsed = lifecycle::parse(&feed, false);
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    let mut conn = store.pool().acquire().await.unwrap();
    let current = lifecycle::current(&mut conn).await.unwrap();
    let rl = lifecycle::birthright_roles(&mut conn).await.unwrap();
    drop(conn);
    let plan = lifecycle::plan(&parsed.records, &current, &rl, today);
    let mut tx = store.begin().await.unwrap();
    for c in &plan {
        lifecycle::apply(&mut tx, &Actor::System, T0, c, "feed.csv", 0)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    let status = |name: &'static str| async move {
        let mut conn = store.pool().acquire().await.unwrap();
        identities::by_username(&mut conn, name)
            .await
            .unwrap()
            .unwrap()
            .status
    };
    assert_eq!(status("cy").await, Status::Prehire);
    assert_eq!(status("dan").await, Status::Active);

    let dates = |now: i64| async move {
        lifecycle::dates::run(store, &Actor::System, now, 0)
            .await
            .unwrap()
            .into_iter()
            .map(|d| (d.username, d.kind))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        dates(T0).await,
        vec![],
        "nothing is due on the day of the import"
    );
    let mut done = dates(T0 + DAY).await;
    done.sort();
    assert_eq!(
        done,
        vec![("cy".to_string(), "start"), ("dan".to_string(), "leaver")]
    );
    assert_eq!(status("cy").await, Status::Active);
    assert_eq!(status("dan").await, Status::Terminated);
    let mut conn = store.pool().acquire().await.unwrap();
    let held = lifecycle::current(&mut conn).await.unwrap();
    assert_eq!(held["E3"].birthright, ["ops-base".to_string()].into());
    assert!(held["E4"].birthright.is_empty(), "the leaver keeps nothing");
    drop(conn);
    assert_eq!(dates(T0 + 2 * DAY).await, vec![], "applied once");
    let acts = actions(store).await;
    assert!(acts.contains(&"hr.start".to_string()), "{acts:?}");
    let report = audit::verify::verify(store, None, None).await.unwrap();
    assert_eq!(report.problem, None);
}

/// One HR import of `text` as the drop folder runs it (actor `system`).
pub async fn import(store: &Store, text: &str) {
    let parsed = lifecycle::parse(text, false);
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    let mut conn = store.pool().acquire().await.unwrap();
    let current = lifecycle::current(&mut conn).await.unwrap();
    let rl = lifecycle::birthright_roles(&mut conn).await.unwrap();
    drop(conn);
    let today = chrono::NaiveDate::from_ymd_opt(2026, 11, 26).unwrap();
    let plan = lifecycle::plan(&parsed.records, &current, &rl, today);
    let mut tx = store.begin().await.unwrap();
    for c in &plan {
        lifecycle::apply(
            &mut tx,
            &Actor::System,
            T0,
            c,
            "feed.csv",
            lifecycle::DEFAULT_GRACE_MS,
        )
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
}

/// An administrator's suspension outranks the HR feed: every import that lists the person as
/// active leaves it (noted as `hr.status_kept`); a status HR set, HR may lift.
pub async fn security_the_hr_feed_never_lifts_an_administrators_suspension(db: &TestDb) {
    let store = &db.store;
    let head = "employee_number,first_name,last_name,email,manager,department,status\n";
    import(
        store,
        &format!("{head}E1,Ann,Lee,ann@x.io,,engineering,active\n"),
    )
    .await;
    let status = |name: &'static str| async move {
        let mut conn = store.pool().acquire().await.unwrap();
        identities::by_username(&mut conn, name)
            .await
            .unwrap()
            .unwrap()
            .status
    };
    let ann = status("ann").await;
    assert_eq!(ann, Status::Active);
    let mut tx = store.begin().await.unwrap();
    identities::set_status(
        &mut tx,
        &Actor::identity("admin"),
        T0,
        "ann",
        Status::Suspended,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    import(
        store,
        &format!("{head}E1,Ann,Lee,ann@x.io,,engineering,active\n"),
    )
    .await;
    assert_eq!(status("ann").await, Status::Suspended);
    assert!(actions(store).await.contains(&"hr.status_kept".to_string()));
    // HR's own leave (suspended by the feed) is HR's to end.
    let mut tx = store.begin().await.unwrap();
    identities::set_status(
        &mut tx,
        &Actor::identity("admin"),
        T0,
        "ann",
        Status::Active,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    import(
        store,
        &format!("{head}E1,Ann,Lee,ann@x.io,,engineering,leave\n"),
    )
    .await;
    assert_eq!(status("ann").await, Status::Suspended);
    import(
        store,
        &format!("{head}E1,Ann,Lee,ann@x.io,,engineering,active\n"),
    )
    .await;
    assert_eq!(status("ann").await, Status::Active);
}
