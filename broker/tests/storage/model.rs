//! Storage scenarios of the domain model: identities, groups, keys, targets, roles, tokens and
//! the first administrator. Each runs on both backends (see `main.rs`).

use super::*;

pub async fn migrations_are_idempotent(db: &TestDb) {
    assert_eq!(
        db.store.migrate().await.unwrap(),
        0,
        "second run applies nothing"
    );
    assert!(db.store.schema_version() >= 1);
    let (seq, hash) = audit::head(&mut db.store.pool().acquire().await.unwrap())
        .await
        .unwrap();
    assert_eq!((seq, hash.as_str()), (0, "0".repeat(64).as_str()));
    db.store.ping().await.unwrap();
}

pub async fn identities_round_trip_and_are_audited(db: &TestDb) {
    let store = &db.store;
    let mut tx = store.begin().await.unwrap();
    let mut new = NewIdentity::named("alice");
    new.display_name = "Alice Liddell".into();
    new.email = Some("alice@example.com".into());
    new.attributes
        .insert("department".into(), "engineering".into());
    let alice = identities::create(&mut tx, &Actor::Cli, T0, new)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut conn = store.pool().acquire().await.unwrap();
    let got = identities::by_username(&mut conn, "alice")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, alice);
    assert_eq!(got.attributes["department"], "engineering");
    assert_eq!(
        identities::by_id(&mut conn, &alice.id)
            .await
            .unwrap()
            .unwrap()
            .username,
        "alice"
    );
    assert!(
        identities::by_username(&mut conn, "nobody")
            .await
            .unwrap()
            .is_none()
    );
    drop(conn);

    let mut tx = store.begin().await.unwrap();
    let disabled = identities::set_status(&mut tx, &Actor::Cli, T0 + 1, "alice", Status::Disabled)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(disabled.status, Status::Disabled);
    let all = identities::list(&mut store.pool().acquire().await.unwrap())
        .await
        .unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].status, Status::Disabled);
    assert_eq!(actions(store).await, ["identity.create", "identity.status"]);
}

pub async fn duplicate_and_invalid_names_are_refused(db: &TestDb) {
    add_identity(&db.store, "bob").await;
    let mut tx = db.store.begin().await.unwrap();
    let err = identities::create(&mut tx, &Actor::Cli, T0, NewIdentity::named("bob"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err:?}");
    assert_eq!(err.code(), "conflict");
    drop(tx);
    let mut tx = db.store.begin().await.unwrap();
    let err = identities::create(&mut tx, &Actor::Cli, T0, NewIdentity::named("Bob@x"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Invalid(_)), "{err:?}");
    drop(tx);
    assert_eq!(count(&db.store, "identities").await, 1);
    assert_eq!(count(&db.store, "audit_events").await, 1);
}

pub async fn groups_hold_members(db: &TestDb) {
    add_identity(&db.store, "bob").await;
    add_identity(&db.store, "carol").await;
    let mut tx = db.store.begin().await.unwrap();
    groups::create(
        &mut tx,
        &Actor::Cli,
        T0,
        "db-owners",
        "Owners of the databases",
    )
    .await
    .unwrap();
    assert!(
        groups::add_member(&mut tx, &Actor::Cli, T0, "db-owners", "bob")
            .await
            .unwrap()
    );
    assert!(
        groups::add_member(&mut tx, &Actor::Cli, T0, "db-owners", "carol")
            .await
            .unwrap()
    );
    assert!(
        !groups::add_member(&mut tx, &Actor::Cli, T0, "db-owners", "carol")
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    let mut conn = db.store.pool().acquire().await.unwrap();
    assert_eq!(
        groups::members(&mut conn, "db-owners").await.unwrap(),
        ["bob", "carol"]
    );
    assert_eq!(
        groups::of_identity(&mut conn, "bob").await.unwrap(),
        ["db-owners"]
    );
    drop(conn);
    let mut tx = db.store.begin().await.unwrap();
    assert!(
        groups::remove_member(&mut tx, &Actor::Cli, T0, "db-owners", "bob")
            .await
            .unwrap()
    );
    let err = groups::add_member(&mut tx, &Actor::Cli, T0, "db-owners", "nobody")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound(_)));
    tx.commit().await.unwrap();
    let mut conn = db.store.pool().acquire().await.unwrap();
    assert_eq!(
        groups::members(&mut conn, "db-owners").await.unwrap(),
        ["carol"]
    );
    let acts = actions(&db.store).await;
    assert_eq!(
        acts.iter().filter(|a| *a == "group.member.add").count(),
        2,
        "no-op add is not audited"
    );
    assert_eq!(acts.last().unwrap(), "group.member.remove");
}

pub async fn ssh_keys_belong_to_one_identity(db: &TestDb) {
    let alice = add_identity(&db.store, "alice").await;
    add_identity(&db.store, "mallory").await;
    let mut tx = db.store.begin().await.unwrap();
    let key = ssh_keys::add(&mut tx, &Actor::Cli, T0, "alice", ALICE_KEY)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        key.fingerprint,
        "SHA256:2B53fzy3qHcQYvVpbKOmzZuWAd+72ogJu4gdACUn5Oc"
    );
    let mut tx = db.store.begin().await.unwrap();
    let err = ssh_keys::add(&mut tx, &Actor::Cli, T0, "mallory", ALICE_KEY)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err:?}");
    drop(tx);
    let mut conn = db.store.pool().acquire().await.unwrap();
    assert_eq!(
        ssh_keys::owner_of(&mut conn, &key.fingerprint)
            .await
            .unwrap(),
        Some(alice.id.clone())
    );
    assert_eq!(
        ssh_keys::of_identity(&mut conn, &alice.id).await.unwrap(),
        vec![key]
    );
}

pub async fn targets_and_roles_round_trip(db: &TestDb) {
    let mut labels = serde_json::Map::new();
    labels.insert("env".into(), "prod".into());
    let mut tx = db.store.begin().await.unwrap();
    let t = targets::create(
        &mut tx,
        &Actor::Cli,
        T0,
        NewTarget {
            name: "db-01".into(),
            kind: Kind::Ssh,
            address: "10.0.0.5:22".into(),
            labels,
            host_key: Some(ALICE_KEY.into()),
            description: String::new(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    roles::create(&mut tx, &Actor::Cli, T0, "prod-db", "Production databases")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut conn = db.store.pool().acquire().await.unwrap();
    assert_eq!(
        targets::by_name(&mut conn, "db-01").await.unwrap().unwrap(),
        t
    );
    assert_eq!(targets::list(&mut conn).await.unwrap().len(), 1);
    assert_eq!(roles::list(&mut conn).await.unwrap()[0].name, "prod-db");
    drop(conn);
    let mut tx = db.store.begin().await.unwrap();
    let bad = NewTarget {
        name: "x".into(),
        kind: Kind::Http,
        address: " ".into(),
        labels: Default::default(),
        host_key: None,
        description: String::new(),
        ..Default::default()
    };
    assert!(matches!(
        targets::create(&mut tx, &Actor::Cli, T0, bad).await,
        Err(Error::Invalid(_))
    ));
    assert_eq!(actions(&db.store).await, ["target.create", "role.create"]);
}

pub async fn security_api_tokens_are_stored_hashed_and_checked(db: &TestDb) {
    add_identity(&db.store, "alice").await;
    let mut tx = db.store.begin().await.unwrap();
    let (tok, secret) = tokens::create(&mut tx, &Actor::Cli, T0, "alice", "ci", Some(T0 + 60_000))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(secret.expose().starts_with(tokens::PREFIX));

    // Nothing in the database holds the token itself.
    let stored: String = sqlx::query("SELECT token_hash FROM api_tokens")
        .fetch_one(db.store.pool())
        .await
        .unwrap()
        .get(0);
    assert_ne!(stored, secret.expose());
    assert!(!stored.contains(&secret.expose()[4..12]));
    let details: Vec<String> = sqlx::query("SELECT details FROM audit_events")
        .fetch_all(db.store.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        details.iter().all(|d| !d.contains(secret.expose())),
        "token leaked into audit"
    );

    let mut conn = db.store.pool().acquire().await.unwrap();
    let who = tokens::authenticate(&mut conn, secret.expose(), T0 + 1)
        .await
        .unwrap();
    assert_eq!(who.username, "alice");
    drop(conn);
    for bad in ["", "ght_nope", &"x".repeat(10_000)] {
        assert!(refused(db, bad, T0).await, "{bad:.20}");
    }
    assert!(refused(db, secret.expose(), T0 + 60_000).await, "expired");

    set_status(db, "alice", Status::Disabled).await;
    assert!(refused(db, secret.expose(), T0).await, "disabled identity");

    set_status(db, "alice", Status::Active).await;
    assert!(!refused(db, secret.expose(), T0).await);
    let mut tx = db.store.begin().await.unwrap();
    tokens::revoke(&mut tx, &Actor::Cli, T0, &tok.id)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(refused(db, secret.expose(), T0).await, "revoked");
    let mut conn = db.store.pool().acquire().await.unwrap();
    assert_eq!(
        tokens::of_identity(&mut conn, &who.id).await.unwrap()[0].revoked_at_ms,
        Some(T0)
    );
}

pub async fn security_bootstrap_token_creates_admin_once(db: &TestDb) {
    let short = Secret::new("too-short");
    let err = bootstrap::on_start(&db.store, T0, Some(&short))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("at least 24 characters"), "{err}");
    assert_eq!(count(&db.store, "identities").await, 0);

    let token = Secret::new("bootstrap-token-0123456789abcdef");
    let out = bootstrap::on_start(&db.store, T0, Some(&token))
        .await
        .unwrap();
    assert!(matches!(out, bootstrap::Outcome::AdminCreated), "{out:?}");
    let mut conn = db.store.pool().acquire().await.unwrap();
    let admin = tokens::authenticate(&mut conn, token.expose(), T0)
        .await
        .unwrap();
    assert_eq!(admin.username, "admin");
    assert!(
        privileges::has(&mut conn, &admin.id, privileges::Privilege::Admin)
            .await
            .unwrap()
    );
    drop(conn);
    assert_eq!(
        actions(&db.store).await,
        ["identity.create", "privilege.grant", "api_token.create"]
    );

    let again = bootstrap::on_start(&db.store, T0, Some(&token))
        .await
        .unwrap();
    assert!(matches!(again, bootstrap::Outcome::AdminExists));
    let other = bootstrap::on_start(&db.store, T0, None).await.unwrap();
    assert!(matches!(other, bootstrap::Outcome::AdminExists));
    assert_eq!(count(&db.store, "api_tokens").await, 1);

    // The only admin is disabled: bootstrapping again re-activates it (audited), with a new
    // token; the old value is refused with a reason.
    set_status(db, "admin", Status::Disabled).await;
    let err = bootstrap::on_start(&db.store, T0, Some(&token))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("used before"), "{err}");
    let fresh = Secret::new("bootstrap-token-fedcba9876543210");
    let out = bootstrap::on_start(&db.store, T0, Some(&fresh))
        .await
        .unwrap();
    assert!(matches!(out, bootstrap::Outcome::AdminCreated), "{out:?}");
    let mut conn = db.store.pool().acquire().await.unwrap();
    assert_eq!(
        tokens::authenticate(&mut conn, fresh.expose(), T0)
            .await
            .unwrap()
            .username,
        "admin"
    );
}

pub async fn security_setup_code_is_one_time_and_expires(db: &TestDb) {
    let first = match bootstrap::on_start(&db.store, T0, None).await.unwrap() {
        bootstrap::Outcome::SetupCode { code, .. } => code,
        other => panic!("{other:?}"),
    };
    // A restart prints a new link; the old one stops working.
    let second = match bootstrap::on_start(&db.store, T0 + 1, None).await.unwrap() {
        bootstrap::Outcome::SetupCode { code, .. } => code,
        other => panic!("{other:?}"),
    };
    assert_ne!(first, second);
    let err = bootstrap::redeem_setup_code(&db.store, T0 + 2, first.expose())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unauthenticated));
    // Expired.
    let late = T0 + bootstrap::SETUP_CODE_TTL_MS + 2;
    let err = bootstrap::redeem_setup_code(&db.store, late, second.expose())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unauthenticated));
    let (admin, token) = bootstrap::redeem_setup_code(&db.store, T0 + 3, second.expose())
        .await
        .unwrap();
    assert_eq!(admin.username, "admin");
    let mut conn = db.store.pool().acquire().await.unwrap();
    assert_eq!(
        tokens::authenticate(&mut conn, token.expose(), T0 + 4)
            .await
            .unwrap()
            .id,
        admin.id
    );
    drop(conn);
    // Used.
    let err = bootstrap::redeem_setup_code(&db.store, T0 + 5, second.expose())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unauthenticated));
    assert!(
        actions(&db.store)
            .await
            .contains(&"setup_code.issue".to_string())
    );
}

/// Whether `token` is refused as `Unauthenticated` at `now`.
async fn refused(db: &TestDb, token: &str, now: i64) -> bool {
    let mut conn = db.store.pool().acquire().await.unwrap();
    matches!(
        tokens::authenticate(&mut conn, token, now).await,
        Err(Error::Unauthenticated)
    )
}

async fn set_status(db: &TestDb, username: &str, status: Status) {
    let mut tx = db.store.begin().await.unwrap();
    identities::set_status(&mut tx, &Actor::Cli, T0, username, status)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}
