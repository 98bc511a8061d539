//! `gatehouse apply`, `policy check`, `authorize` (what-if) and `sod scan`.

use crate::cli::{ApplyArgs, AuthorizeArgs};
use crate::config::Settings;
use crate::context::{self, Schema};
use anyhow::{Context, bail};
use gatehouse_broker::access::policy::{self, AccessRequest, CatalogCache};
use gatehouse_broker::provisioning::apply::{self, Change};
use gatehouse_broker::{Actor, Clock, SystemClock, access::sod};
use std::path::Path;
use std::process::ExitCode;

fn read(file: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))
}

fn print_plan(plan: &[Change], dry_run: bool) {
    if plan.is_empty() {
        println!("No changes: the database already matches the file.");
        return;
    }
    for c in plan {
        println!("{c}");
    }
    let n = plan.len();
    if dry_run {
        println!("{n} change(s) planned; nothing applied (dry run).");
    } else {
        println!("{n} change(s) applied.");
    }
}

pub async fn apply(settings: &Settings, args: ApplyArgs) -> anyhow::Result<ExitCode> {
    let text = read(&args.file)?;
    let name = args.file.display().to_string();
    // Parse locally first: line and column refer to the user's file either way.
    let doc = apply::parse(&name, &text)?;
    let plan = match &args.server {
        Some(server) => {
            let tls = match &args.pin_sha256 {
                Some(pin) => crate::outbound::pinned_tls_config(crate::outbound::parse_pin(pin)?)?,
                None => {
                    let mut extra: Vec<&Path> =
                        settings.tls_extra_ca_file.as_deref().into_iter().collect();
                    extra.extend(args.ca_file.as_deref());
                    crate::outbound::tls_config(&extra)?
                }
            };
            remote_apply(server, &tls, &text, args.dry_run).await?
        }
        None => {
            let store = context::open_store(settings, Schema::Migrate).await?;
            let plan = apply::apply(
                &store,
                &Actor::Cli,
                SystemClock.now_ms(),
                &doc,
                args.dry_run,
            )
            .await;
            store.close().await;
            plan?
        }
    };
    print_plan(&plan, args.dry_run);
    Ok(ExitCode::SUCCESS)
}

async fn remote_apply(
    server: &str,
    tls: &rustls::ClientConfig,
    text: &str,
    dry_run: bool,
) -> anyhow::Result<Vec<Change>> {
    let token = std::env::var("GATEHOUSE_TOKEN")
        .context("GATEHOUSE_TOKEN must hold an API token of an admin to apply through --server")?;
    let url = format!(
        "{}/api/v1/apply?dry_run={dry_run}",
        server.trim_end_matches('/')
    );
    let http = crate::outbound::builder(tls)
        .build()
        .context("building the HTTP client")?;
    let resp = match http
        .post(&url)
        .bearer_auth(token.trim())
        .header("content-type", "application/toml")
        .body(text.to_owned())
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => {
            let why = crate::outbound::describe(e);
            let hint = if why.contains("invalid peer certificate") {
                " (trust the server with --ca-file FILE, or --pin-sha256 HEX: serve logs its certificate's SHA-256 at start)"
            } else {
                ""
            };
            bail!("cannot reach {server}: {why}{hint}");
        }
    };
    let status = resp.status();
    let body: serde_json::Value = resp
        .json()
        .await
        .with_context(|| format!("{server} answered {status} with something that is not JSON"))?;
    if !status.is_success() {
        bail!(
            "{server} refused ({status}): {}",
            body["error"]["message"].as_str().unwrap_or("no message")
        );
    }
    let mut plan = Vec::new();
    for c in body["changes"].as_array().into_iter().flatten() {
        let op = match c["op"].as_str() {
            Some("create") => "create",
            Some("update") => "update",
            Some("delete") => "delete",
            _ => "disable",
        };
        plan.push(Change {
            op,
            object: c["object"].as_str().unwrap_or_default().into(),
            detail: c["detail"].as_str().unwrap_or_default().into(),
        });
    }
    Ok(plan)
}

pub fn check(file: &Path) -> anyhow::Result<ExitCode> {
    let text = read(file)?;
    let checked = apply::parse(&file.display().to_string(), &text).and_then(|doc| {
        let warnings = apply::check(&doc)?;
        Ok((doc, warnings))
    });
    match checked {
        Ok((doc, warnings)) => {
            for w in &warnings {
                println!("warning: {w}");
            }
            println!(
                "{}: valid ({} identities, {} groups, {} targets, {} roles, {} assignments, {} SoD rules)",
                file.display(),
                doc.identities.len(),
                doc.groups.len(),
                doc.targets.len(),
                doc.roles.len(),
                doc.assignments.len(),
                doc.sod_rules.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!(
                "{}: invalid: {}",
                file.display(),
                e.to_string().replace("invalid input: ", "")
            );
            Ok(ExitCode::from(1))
        }
    }
}

pub async fn authorize(settings: &Settings, a: AuthorizeArgs) -> anyhow::Result<ExitCode> {
    let store = context::open_store(settings, Schema::RequireCurrent).await?;
    let now = SystemClock.now_ms();
    let req = AccessRequest {
        identity: a.identity,
        protocol: a.protocol,
        target: a.target,
        login: a.login,
        source_ip: a.source_ip,
        mfa_at_ms: a.mfa_age.map(|s| now - s * 1000),
        reason: None,
        ticket: None,
        http: None,
    };
    let decision = policy::explain(&store, &CatalogCache::default(), now, &req).await;
    store.close().await;
    let d = decision?;
    println!("{}", if d.allow { "ALLOW" } else { "DENY" });
    if let Some(l) = &d.login {
        println!("  login: {l}");
    }
    if let Some(g) = &d.grant {
        let until = g
            .not_after_ms
            .map(gatehouse_broker::clock::format_ms)
            .unwrap_or_else(|| "no end".into());
        println!(
            "  carried by: {} {} (role {}), until {until}",
            g.kind, g.id, g.role
        );
    }
    for r in &d.reasons {
        println!("  - {r}");
    }
    Ok(if d.allow {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

pub async fn sod_scan(settings: &Settings) -> anyhow::Result<ExitCode> {
    let store = context::open_store(settings, Schema::RequireCurrent).await?;
    let found = {
        let mut conn = store
            .pool()
            .acquire()
            .await
            .map_err(gatehouse_broker::Error::from)?;
        sod::scan(&mut conn, SystemClock.now_ms()).await
    };
    store.close().await;
    let found = found?;
    if found.is_empty() {
        println!("No SoD violations.");
        return Ok(ExitCode::SUCCESS);
    }
    let mut open = 0;
    for (c, excepted) in &found {
        let tag = if *excepted { "excepted" } else { "VIOLATION" };
        if !excepted {
            open += 1;
        }
        println!("{tag}: {}: {}", c.identity, c.describe());
    }
    println!("{} violation(s), {open} without an exception.", found.len());
    Ok(if open > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

pub async fn findings(
    settings: &Settings,
    args: &crate::cli::FindingsArgs,
) -> anyhow::Result<ExitCode> {
    use gatehouse_broker::governance::findings::{self, Kind};
    const KINDS: [Kind; 9] = [
        Kind::StandingPrivilegedAccess,
        Kind::EligibleNeverActivated,
        Kind::InactiveIdentity,
        Kind::StandingGatehousePrivilege,
        Kind::PrivilegedRoleWithoutSessionMfa,
        Kind::SodViolation,
        Kind::BreakGlassWithoutReview,
        Kind::UnusedSshKey,
        Kind::UnusedApiToken,
    ];
    let only = match &args.kind {
        None => None,
        Some(k) => Some(KINDS.into_iter().find(|x| x.as_str() == k).ok_or_else(|| {
            let names: Vec<&str> = KINDS.iter().map(|k| k.as_str()).collect();
            anyhow::anyhow!("--kind {k:?}: use one of {}", names.join(", "))
        })?),
    };
    let store = context::open_store(settings, Schema::RequireCurrent).await?;
    let snapshot = async {
        let mut conn = store
            .pool()
            .acquire()
            .await
            .map_err(gatehouse_broker::Error::from)?;
        findings::snapshot(&mut conn, SystemClock.now_ms()).await
    }
    .await;
    store.close().await;
    let found: Vec<_> = findings::findings(&snapshot?)
        .into_iter()
        .filter(|f| only.is_none_or(|k| f.kind == k))
        .collect();
    if args.json {
        for f in &found {
            println!("{}", serde_json::to_string(f)?);
        }
    } else if found.is_empty() {
        println!("No findings.");
    } else {
        for f in &found {
            println!(
                "{}  {}  {}\n    do: {}",
                f.kind.as_str(),
                f.subject,
                f.detail,
                f.remediation
            );
        }
        println!("{} finding(s).", found.len());
    }
    Ok(if found.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
