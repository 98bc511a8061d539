//! `gatehouse serve`: open and migrate the database, make sure there is a way in for the first
//! administrator, serve the web listener, sign audit checkpoints periodically, stop cleanly.

use crate::config::Settings;
use crate::context::{self, Schema};
use anyhow::Context;
use gatehouse_broker::keys::SigningKeyPair;
use gatehouse_broker::ledger::audit::checkpoint;
use gatehouse_broker::secrets::Secret;
use gatehouse_broker::{Clock, SharedClock, Store, SystemClock, bootstrap};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Where a started server listens.
#[derive(Debug, Clone)]
pub struct Bound {
    /// Where browsers reach the web UI (`https://localhost:PORT` by default).
    pub web_url: String,
    pub ssh: std::net::SocketAddr,
    /// The app gateway's domain and public port, when it runs.
    pub apps: Option<(String, u16)>,
}

pub async fn run(settings: Settings) -> anyhow::Result<()> {
    run_with(settings, |_| {}).await
}

/// `serve`, calling `ready` once both listeners are bound (the demo prints its ssh line then).
pub async fn run_with(settings: Settings, ready: impl FnOnce(Bound)) -> anyhow::Result<()> {
    let store = context::open_store(&settings, Schema::Migrate).await?;
    tracing::info!(database = %store.describe(), schema = store.schema_version(), "database ready");
    if settings.database_url.is_some() {
        context::prepare_data_dir(&settings.data_dir)?;
    }
    let signer = Arc::new(context::signing_key(&settings)?);
    warn_if_another_key_signed(&store, &signer).await;
    let clock: SharedClock = Arc::new(SystemClock);

    let listener = tokio::net::TcpListener::bind(settings.web_listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.web_listen))?;
    let addr = listener
        .local_addr()
        .context("reading the listen address")?;
    let tls = match settings.web_tls {
        crate::cli::WebTls::Off => {
            if !addr.ip().is_loopback() {
                anyhow::bail!(
                    "plain HTTP (web tls = off) is only allowed on a loopback address, not {addr}; \
                     use tls = \"auto\" or give web.tls_cert and web.tls_key"
                );
            }
            None
        }
        crate::cli::WebTls::Auto => {
            let names: Vec<String> = settings
                .public_url
                .as_deref()
                .and_then(|u| url::Url::parse(u).ok())
                .and_then(|u| u.host_str().map(str::to_owned))
                .into_iter()
                .collect();
            let created = gatehouse_web::tls::ensure_certificate(
                &settings.web_tls_cert,
                &settings.web_tls_key,
                &names,
            )
            .map_err(anyhow::Error::msg)?;
            if created {
                tracing::info!(cert = %settings.web_tls_cert.display(), "generated a self-signed web certificate (browsers will ask you to trust it; configure web.tls_cert for a real one)");
            }
            Some((settings.web_tls_cert.clone(), settings.web_tls_key.clone()))
        }
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let origin = settings
        .public_url
        .as_deref()
        .and_then(|u| url::Url::parse(u).ok())
        .or_else(|| url::Url::parse(&format!("{scheme}://localhost:{}", addr.port())).ok())
        .context("the web origin")?;
    tracing::info!(%addr, url = %origin, "web listener bound");
    if tls.is_some() {
        crate::outbound::log_web_certificate(&settings.web_tls_cert);
    }
    let outbound_tls = crate::outbound::from_settings(&settings)?;

    let (host_key, created) =
        gatehouse_gateway::keys::load_or_create(&settings.ssh_host_key, "gatehouse host key")?;
    if created {
        tracing::info!(path = %settings.ssh_host_key.display(), "created the SSH host key");
    }
    let (user_ca, created) =
        gatehouse_gateway::keys::load_or_create(&settings.ssh_user_ca_key, "gatehouse user CA")?;
    if created {
        tracing::info!(path = %settings.ssh_user_ca_key.display(), "created the SSH user CA (targets trust it: `gatehouse ssh ca`)");
    }
    let user_ca_line = gatehouse_gateway::keys::public_line(&user_ca)?;
    let (client_ca, _) = gatehouse_gateway::keys::load_or_create(
        &settings.ssh_client_ca_key,
        "gatehouse client CA",
    )?;
    let ssh_listener = tokio::net::TcpListener::bind(settings.ssh_listen)
        .await
        .with_context(|| format!("cannot listen on {} (SSH)", settings.ssh_listen))?;
    let ssh_addr = ssh_listener
        .local_addr()
        .context("reading the SSH listen address")?;
    tracing::info!(addr = %ssh_addr, host_key = %gatehouse_gateway::keys::fingerprint(host_key.public_key()), "ssh listener bound");

    let bootstrap_token = std::env::var("GATEHOUSE_BOOTSTRAP_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
        .map(Secret::new);
    match bootstrap::on_start(&store, clock.now_ms(), bootstrap_token.as_ref()).await? {
        bootstrap::Outcome::AdminCreated => {
            tracing::info!(
                "created administrator `admin`; its API token is GATEHOUSE_BOOTSTRAP_TOKEN"
            )
        }
        bootstrap::Outcome::AdminExists if bootstrap_token.is_some() => {
            tracing::info!("an administrator exists; GATEHOUSE_BOOTSTRAP_TOKEN was not used")
        }
        bootstrap::Outcome::AdminExists => {}
        bootstrap::Outcome::SetupCode { code, .. } => {
            let base = settings
                .public_url
                .clone()
                .unwrap_or_else(|| origin.to_string());
            // Printed, not logged: the link is a credential and logs travel further than a console.
            eprintln!(
                "\nGatehouse has no administrator yet. Open this one-time link within an hour to create one:\n\n    {}/setup?code={}\n\n(Or restart with GATEHOUSE_BOOTSTRAP_TOKEN set to create `admin` without a browser.)\n",
                base.trim_end_matches('/'),
                code.expose()
            );
        }
    }

    // Bound after the first administrator exists: whoever waits for every listener (the tests,
    // a supervisor) finds the server ready.
    let apps = match settings.app_listen {
        Some(at) => Some(app_listener(&settings, at).await?),
        None => None,
    };
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    tokio::spawn(crate::background::webhooks(
        store.clone(),
        clock.clone(),
        settings.webhook_url.clone(),
        settings.alert_webhook_url.clone(),
        outbound_tls.clone(),
        shutdown.clone(),
    ));
    if let Some(dir) = settings.hr_drop_folder.clone() {
        tracing::info!(dir = %dir.display(), every = ?settings.hr_poll_interval, "watching the HR drop folder");
        tokio::spawn(crate::background::hr_drop_folder(
            store.clone(),
            dir,
            settings.hr_poll_interval,
            shutdown.clone(),
        ));
    }
    for app in settings.push.clone() {
        tracing::info!(app = %app.name, url = %app.url, "pushing users to the app over SCIM");
        tokio::spawn(crate::push::background(
            store.clone(),
            clock.clone(),
            app,
            outbound_tls.clone(),
            shutdown.clone(),
        ));
    }
    tokio::spawn(crate::background::hr_dates(
        store.clone(),
        clock.clone(),
        shutdown.clone(),
    ));
    tokio::spawn(crate::background::watch_access(
        store.clone(),
        shutdown.clone(),
    ));
    tokio::spawn(crate::background::app_purge(
        store.clone(),
        clock.clone(),
        shutdown.clone(),
    ));
    tokio::spawn(crate::background::reviews(
        store.clone(),
        clock.clone(),
        shutdown.clone(),
    ));
    tokio::spawn(crate::background::compliance(
        settings.clone(),
        store.clone(),
        signer.clone(),
        clock.clone(),
        shutdown.clone(),
    ));
    let checkpoints = tokio::spawn(checkpoint_loop(
        store.clone(),
        clock.clone(),
        signer.clone(),
        settings.checkpoint_interval,
        shutdown.clone(),
    ));

    let cache = gatehouse_broker::access::policy::CatalogCache::default();
    if store.backend() == gatehouse_broker::Backend::Sqlite {
        // One instance per SQLite file: sessions still open were cut by a stop or a crash.
        let mut tx = store.begin().await?;
        let n = gatehouse_broker::access::sessions::end_orphans(
            &mut tx,
            clock.now_ms(),
            "gateway_restarted",
        )
        .await?;
        tx.commit().await?;
        if n > 0 {
            tracing::warn!(sessions = n, "ended sessions left open by the previous run");
        }
    }
    let sealing = Arc::new(gatehouse_broker::sealing::SealingKey::load_or_create(
        &settings.sealing_key,
    )?);
    let gateway = gatehouse_gateway::ssh::Shared::new(
        store.clone(),
        cache.clone(),
        clock.clone(),
        signer.clone(),
        gatehouse_gateway::ssh::SshKeys {
            host_key,
            user_ca: Arc::new(user_ca),
            client_ca: client_ca.public_key().clone(),
            sealing: sealing.clone(),
        },
        gatehouse_gateway::ssh::Settings {
            recordings_dir: settings.recordings_dir.clone(),
            strict_recording: settings.strict_recording,
            login_timeout: settings.ssh_login_timeout,
        },
    );
    let apps_web = match apps {
        Some((app_listener, app_tls, port)) => {
            let key = Arc::new(
                gatehouse_broker::keys::SigningKeyPair::load_or_create(
                    &settings.app_assertion_key,
                )?
                .0,
            );
            let shared = Arc::new(
                gatehouse_gateway::http::Shared::new(
                    store.clone(),
                    cache.clone(),
                    clock.clone(),
                    gatehouse_gateway::http::Settings {
                        domain: settings.apps_domain.clone(),
                        public_port: port,
                        web_origin: origin.as_str().trim_end_matches('/').to_string(),
                        upstream_tls: outbound_tls.clone(),
                        header_timeout: std::time::Duration::from_secs(30),
                        recordings_dir: settings.recordings_dir.clone(),
                        strict_recording: settings.strict_recording,
                        max_body: settings.apps_max_body,
                        upstream_timeout: settings.apps_upstream_timeout,
                    },
                    key.clone(),
                    signer.clone(),
                )
                .with_sealing(sealing.clone()),
            );
            let served = tokio::spawn(gatehouse_gateway::http::serve(
                app_listener,
                Some(app_tls),
                shared,
                shutdown.clone(),
            ));
            Some((
                gatehouse_web::AppsWeb {
                    domain: settings.apps_domain.clone(),
                    port,
                    assertion_key: key.public(),
                },
                served,
            ))
        }
        None => None,
    };
    let (apps_web, apps_task) = match apps_web {
        Some((web, task)) => (Some(web), Some(task)),
        None => (None, None),
    };
    ready(Bound {
        web_url: origin.as_str().trim_end_matches('/').to_string(),
        ssh: ssh_addr,
        apps: apps_web.as_ref().map(|a| (a.domain.clone(), a.port)),
    });
    let ssh = tokio::spawn(gatehouse_gateway::ssh::serve(
        ssh_listener,
        gateway,
        shutdown.clone(),
    ));

    let ldap = match &settings.ldap {
        None => None,
        Some(l) => Some(ldap_settings(l)?),
    };
    if let (Some(l), Some(every)) = (&ldap, settings.ldap.as_ref().and_then(|c| c.sync_interval)) {
        tracing::info!(url = %l.url, every = ?every, "directory sync on");
        tokio::spawn(crate::background::directory_sync(
            store.clone(),
            clock.clone(),
            l.clone(),
            every,
            shutdown.clone(),
        ));
    }
    let oidc = match &settings.oidc {
        None => None,
        Some(o) => Some(oidc_settings(o, outbound_tls)?),
    };
    let state = gatehouse_web::AppState {
        store: store.clone(),
        clock: clock.clone(),
        cache,
        ssh_user_ca: Some(user_ca_line),
        web: Arc::new(gatehouse_web::WebConfig {
            ssh_address: Some(ssh_addr.to_string()),
            recording_key: Some(signer.public()),
            signer: Some(signer.clone()),
            ldap,
            oidc,
            scim_passwords: settings.scim_passwords,
            apps: apps_web,
            notifications: settings.webhook_url.is_some(),
            compliance: {
                let o = crate::report_cmd::options(
                    &settings,
                    gatehouse_broker::governance::compliance::Period {
                        from_ms: 0,
                        to_ms: 0,
                    },
                    0,
                );
                gatehouse_web::ComplianceWeb {
                    termination_sla_ms: o.termination_sla_ms,
                    recordings_retention_ms: o.recordings_retention_ms,
                    audit_retention_ms: o.audit_retention_ms,
                }
            },
            ..gatehouse_web::WebConfig::new(origin, sealing, settings.recordings_dir.clone())
        }),
    };
    let served = gatehouse_web::serve(listener, state, tls, shutdown.clone()).await;
    shutdown.cancel();
    let _ = ssh.await;
    // The app gateway ends its recorded app sessions (logs signed, rows ended) as it stops.
    if let Some(apps) = apps_task {
        let _ = apps.await;
    }
    let _ = checkpoints.await;
    sign_checkpoint(&store, clock.as_ref(), &signer).await;
    store.close().await;
    tracing::info!("stopped");
    served.context("web listener failed")
}

/// The app gateway's listener and TLS (a configured certificate for `*.DOMAIN` and `DOMAIN`, or
/// one generated in the data directory), and the port browsers reach it at.
async fn app_listener(
    settings: &Settings,
    at: std::net::SocketAddr,
) -> anyhow::Result<(tokio::net::TcpListener, Arc<rustls::ServerConfig>, u16)> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let domain = &settings.apps_domain;
    let created = gatehouse_web::tls::ensure_certificate(
        &settings.apps_tls_cert,
        &settings.apps_tls_key,
        &[format!("*.{domain}"), domain.clone()],
    )
    .map_err(anyhow::Error::msg)?;
    if created {
        tracing::info!(cert = %settings.apps_tls_cert.display(), "generated a self-signed certificate for the app gateway (configure [apps] tls_cert for a real one)");
    }
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(&settings.apps_tls_cert)
            .and_then(|i| i.collect::<Result<_, _>>())
            .with_context(|| format!("[apps] tls_cert {}", settings.apps_tls_cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(&settings.apps_tls_key)
        .with_context(|| format!("[apps] tls_key {}", settings.apps_tls_key.display()))?;
    let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS versions")?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .context("the app gateway's certificate and key do not match")?;
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let listener = tokio::net::TcpListener::bind(at).await.with_context(|| {
        format!("cannot listen on {at} (app gateway; [apps] listen = \"off\" turns it off)")
    })?;
    let addr = listener
        .local_addr()
        .context("reading the app listen address")?;
    let port = settings.apps_public_port.unwrap_or(addr.port());
    tracing::info!(%addr, domain = %domain, "app listener bound");
    Ok((listener, Arc::new(tls), port))
}

/// Instances sharing a database must share the signing key, or each one's checkpoints look
/// forged to whoever verifies with the other's key.
async fn warn_if_another_key_signed(store: &Store, signer: &SigningKeyPair) {
    let latest = match store.pool().acquire().await {
        Ok(mut conn) => checkpoint::latest(&mut conn).await.ok().flatten(),
        Err(_) => None,
    };
    if let Some(cp) = latest
        && cp.key != signer.public()
    {
        tracing::warn!(
            checkpoint_key = %cp.key,
            our_key = %signer.public(),
            path = %signer.path().display(),
            "the newest audit checkpoint was signed by another key: instances sharing this database should share audit.signing_key"
        );
    }
}

async fn stop_on_signal(shutdown: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
    tracing::info!("stopping");
    shutdown.cancel();
}

async fn checkpoint_loop(
    store: Store,
    clock: SharedClock,
    signer: Arc<SigningKeyPair>,
    every: Duration,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => sign_checkpoint(&store, clock.as_ref(), &signer).await,
        }
    }
}

async fn sign_checkpoint(store: &Store, clock: &dyn Clock, signer: &SigningKeyPair) {
    match checkpoint::create(store, clock.now_ms(), signer).await {
        Ok(Some(cp)) => tracing::debug!(size = cp.size, "audit checkpoint"),
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "could not sign an audit checkpoint"),
    }
}

/// The directory settings `[ldap]` gives (the service password read from its file now, so a
/// mistake stops the start rather than every sign-in).
pub(crate) fn ldap_settings(
    l: &crate::config::LdapConfig,
) -> anyhow::Result<gatehouse_web::directory::Ldap> {
    let bind_password = match &l.bind_password_file {
        None => None,
        Some(f) => Some(gatehouse_broker::secrets::Secret::new(
            std::fs::read_to_string(f)
                .with_context(|| format!("[ldap] bind_password_file {}", f.display()))?
                .trim_end_matches(['\n', '\r'])
                .to_string(),
        )),
    };
    if l.bind_dn.is_some() != bind_password.is_some() {
        anyhow::bail!("[ldap] bind_dn and bind_password_file go together");
    }
    if !(l.url.starts_with("ldap://") || l.url.starts_with("ldaps://")) {
        anyhow::bail!(
            "[ldap] url must start with ldap:// or ldaps://, not {:?}",
            l.url
        );
    }
    tracing::info!(url = %l.url, starttls = l.starttls, "web sign-in through the LDAP directory");
    Ok(gatehouse_web::directory::Ldap {
        url: l.url.clone(),
        starttls: l.starttls,
        bind_dn: l.bind_dn.clone(),
        bind_password,
        base_dn: l.base_dn.clone(),
        user_filter: l
            .user_filter
            .clone()
            .unwrap_or_else(|| "(&(objectClass=person)(uid={username}))".into()),
        group_base_dn: l.group_base_dn.clone(),
        group_filter: l
            .group_filter
            .clone()
            .unwrap_or_else(|| "(&(objectClass=groupOfNames)(member={dn}))".into()),
        group_mapping: l.group_mapping.clone(),
        create_identities: l.create_identities.unwrap_or(true),
        timeout: l.timeout.unwrap_or(std::time::Duration::from_secs(5)),
        username_attribute: l.username_attribute.clone().unwrap_or_else(|| "uid".into()),
        disabled_filter: l.disabled_filter.clone().filter(|f| !f.trim().is_empty()),
    })
}

/// The single sign-on settings `[oidc]` gives (the client secret read from its file now).
fn oidc_settings(
    o: &crate::config::OidcConfig,
    tls: rustls::ClientConfig,
) -> anyhow::Result<gatehouse_web::OidcSettings> {
    let secret = std::fs::read_to_string(&o.client_secret_file)
        .with_context(|| {
            format!(
                "[oidc] client_secret_file {}",
                o.client_secret_file.display()
            )
        })?
        .trim_end_matches(['\n', '\r'])
        .to_string();
    url::Url::parse(&o.issuer).with_context(|| format!("[oidc] issuer {:?}", o.issuer))?;
    tracing::info!(issuer = %o.issuer, "single sign-on through the OpenID provider");
    Ok(gatehouse_web::OidcSettings {
        issuer: o.issuer.clone(),
        client_id: o.client_id.clone(),
        client_secret: gatehouse_broker::secrets::Secret::new(secret),
        scopes: o
            .scopes
            .clone()
            .unwrap_or_else(|| vec!["email".into(), "profile".into()]),
        username_claim: o
            .username_claim
            .clone()
            .unwrap_or_else(|| "preferred_username".into()),
        groups_claim: o.groups_claim.clone().unwrap_or_else(|| "groups".into()),
        group_mapping: o.group_mapping.clone(),
        create_identities: o.create_identities.unwrap_or(true),
        label: o.label.clone().unwrap_or_else(|| "Sign in with SSO".into()),
        link_by_email: o
            .link_by_email
            .clone()
            .unwrap_or_else(|| vec!["oidc".into()]),
        tls,
    })
}
