//! Push to apps: the SCIM client that provisions an app's users and groups from the holders of
//! the roles mapped to it (`[[push]]` in the configuration), with retries, a drift report and an
//! audit event per change. The plan itself is `gatehouse_broker::provisioning::push` (plain functions).

use crate::config::PushApp;
use anyhow::Context;
use gatehouse_broker::ledger::audit::{self, NewEvent};
use gatehouse_broker::provisioning::push::{self, Action, Drift, Person, Remote, RemoteGroup};
use gatehouse_broker::{Actor, SharedClock, Store};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Duration;

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// Attempts per request: the first and up to 4 retries (0.2 s doubling, or the app's Retry-After).
const ATTEMPTS: u32 = 5;

/// What one run found and did.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub app: String,
    pub dry_run: bool,
    pub drift: Vec<Drift>,
    pub done: Vec<Action>,
    pub failed: Vec<String>,
}

impl Report {
    /// The report as lines for people.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for d in &self.drift {
            let line = match d {
                Drift::Unmanaged { user_name, active } => format!(
                    "drift: {user_name} is in {} but not provisioned by Gatehouse ({}); left alone",
                    self.app,
                    if *active { "active" } else { "inactive" }
                ),
                Drift::Changed { user_name, fields } => format!(
                    "drift: {user_name} was changed in {} ({}); put back",
                    self.app,
                    fields.join(", ")
                ),
                Drift::ShouldNotHaveAccess { user_name } => format!(
                    "drift: {user_name} is active in {} without a mapped role",
                    self.app
                ),
                Drift::Missing { user_name } => format!(
                    "drift: {user_name} holds a mapped role but has no user in {}",
                    self.app
                ),
                Drift::GroupMembers {
                    role,
                    added,
                    removed,
                } => format!(
                    "drift: group {role} in {} had {added} member(s) too many and {removed} missing",
                    self.app
                ),
            };
            out.push_str(&line);
            out.push('\n');
        }
        let verb = if self.dry_run { "would" } else { "did" };
        for a in &self.done {
            let line = match a {
                Action::Create { person } => format!(
                    "{verb} create {} ({})",
                    person.user_name,
                    person.roles.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
                Action::Update { person, fields, .. } => {
                    format!("{verb} update {} ({})", person.user_name, fields.join(", "))
                }
                Action::Deactivate { user_name, .. } => format!("{verb} deactivate {user_name}"),
                Action::Group { role, members, .. } => {
                    format!("{verb} set group {role} to {} member(s)", members.len())
                }
            };
            out.push_str(&line);
            out.push('\n');
        }
        for f in &self.failed {
            out.push_str(&format!("failed: {f}\n"));
        }
        out.push_str(&format!(
            "{}: {} change(s){}, {} drift finding(s), {} failure(s)\n",
            self.app,
            self.done.len(),
            if self.dry_run {
                " planned (dry run: nothing changed)"
            } else {
                ""
            },
            self.drift.len(),
            self.failed.len()
        ));
        out
    }
}

/// The app's SCIM API.
struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    fn new(app: &PushApp, tls: &rustls::ClientConfig) -> anyhow::Result<Self> {
        let token = std::fs::read_to_string(&app.token_file)
            .with_context(|| {
                format!(
                    "push app {}: cannot read token_file {}",
                    app.name,
                    app.token_file.display()
                )
            })?
            .trim()
            .to_string();
        let http = crate::outbound::builder(tls)
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            http,
            base: app.url.trim_end_matches('/').to_string(),
            token,
        })
    }

    /// One SCIM call with retries on connection errors, 429 and 5xx.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let mut delay = Duration::from_millis(200);
        let mut last = String::new();
        for attempt in 1..=ATTEMPTS {
            let mut req = self
                .http
                .request(method.clone(), format!("{}{path}", self.base))
                .bearer_auth(&self.token)
                .header("accept", "application/scim+json");
            if let Some(b) = body {
                req = req
                    .header("content-type", "application/scim+json")
                    .body(b.to_string());
            }
            match req.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let retry_after = resp
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u64>().ok())
                        .map(Duration::from_secs);
                    let text = resp.text().await.unwrap_or_default();
                    if status.is_success() {
                        return Ok(serde_json::from_str(&text).unwrap_or(Value::Null));
                    }
                    last = format!(
                        "{method} {path}: {status}: {}",
                        text.chars().take(300).collect::<String>()
                    );
                    if !(status.as_u16() == 429 || status.is_server_error()) {
                        anyhow::bail!(last);
                    }
                    if let Some(r) = retry_after {
                        delay = r.min(Duration::from_secs(30));
                    }
                }
                Err(e) => {
                    last = format!("{method} {path}: {}", crate::outbound::describe(e));
                    // A refused certificate stays refused: no retries.
                    if crate::outbound::is_certificate_problem(&last) {
                        anyhow::bail!(last);
                    }
                }
            }
            if attempt < ATTEMPTS {
                tracing::warn!(attempt, error = %last, "push: retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
        anyhow::bail!("{last} (after {ATTEMPTS} attempts)")
    }

    /// Every resource of an endpoint, page by page.
    async fn all(&self, endpoint: &str) -> anyhow::Result<Vec<Value>> {
        let mut out = Vec::new();
        let mut start = 1;
        loop {
            let page = self
                .call(
                    reqwest::Method::GET,
                    &format!("/{endpoint}?startIndex={start}&count=100"),
                    None,
                )
                .await?;
            let items = page["Resources"].as_array().cloned().unwrap_or_default();
            let total = page["totalResults"].as_u64().unwrap_or(0) as usize;
            let n = items.len();
            out.extend(items);
            if n == 0 || out.len() >= total {
                return Ok(out);
            }
            start += n;
        }
    }
}

fn remote_user(v: &Value) -> Option<Remote> {
    let emails = v["emails"].as_array().cloned().unwrap_or_default();
    let email = emails
        .iter()
        .find(|e| e["primary"] == true)
        .or(emails.first())
        .and_then(|e| e["value"].as_str())
        .map(str::to_owned);
    Some(Remote {
        id: v["id"].as_str()?.to_string(),
        user_name: v["userName"].as_str().unwrap_or_default().to_string(),
        external_id: v["externalId"].as_str().map(str::to_owned),
        active: v["active"].as_bool().unwrap_or(true),
        display_name: v["displayName"].as_str().map(str::to_owned),
        email,
    })
}

fn user_document(p: &Person) -> Value {
    let mut v = json!({
        "schemas": [USER],
        "userName": p.user_name,
        "externalId": p.external_id(),
        "displayName": p.display_name,
        "name": { "givenName": p.given_name, "familyName": p.family_name },
        "active": true,
    });
    if let Some(e) = &p.email {
        v["emails"] = json!([{ "value": e, "type": "work", "primary": true }]);
    }
    v
}

async fn audit_change(
    store: &Store,
    clock: &SharedClock,
    app: &str,
    action: &str,
    object: String,
    details: Value,
) {
    let result = async {
        let mut tx = store.begin().await?;
        audit::append(
            &mut tx,
            clock.now_ms(),
            NewEvent::new(Actor::System.to_string(), action, object).details(details),
        )
        .await?;
        tx.commit().await
    }
    .await;
    if let Err(e) = result {
        tracing::error!(app, error = %e, "push: could not audit a change made in the app");
    }
}

/// Reconciles one app: reads its users and groups, plans, and (unless `dry_run`) applies.
pub async fn run(
    store: &Store,
    clock: &SharedClock,
    app: &PushApp,
    tls: &rustls::ClientConfig,
    dry_run: bool,
) -> anyhow::Result<Report> {
    let client = Client::new(app, tls)?;
    let desired = {
        let mut conn = store.pool().acquire().await?;
        push::holders(&mut conn, &app.roles, clock.now_ms()).await?
    };
    let users: Vec<Remote> = client
        .all("Users")
        .await?
        .iter()
        .filter_map(remote_user)
        .collect();
    let (actions, mut drift) = push::plan_users(&desired, &users);
    let mut report = Report {
        app: app.name.clone(),
        dry_run,
        ..Report::default()
    };
    let mut ids: HashMap<String, String> = users
        .iter()
        .filter_map(|r| {
            let ext = r
                .external_id
                .as_deref()?
                .strip_prefix(push::EXTERNAL_PREFIX)?;
            Some((ext.to_string(), r.id.clone()))
        })
        .collect();
    for a in actions {
        if dry_run {
            report.done.push(a);
            continue;
        }
        let result = match &a {
            Action::Create { person } => client.call(reqwest::Method::POST, "/Users", Some(&user_document(person))).await.map(|v| {
                if let Some(id) = v["id"].as_str() {
                    ids.insert(person.identity_id.clone(), id.to_string());
                }
                ("push.create", person.user_name.clone())
            }),
            Action::Update { remote_id, person, .. } => client
                .call(reqwest::Method::PUT, &format!("/Users/{remote_id}"), Some(&user_document(person)))
                .await
                .map(|_| ("push.update", person.user_name.clone())),
            Action::Deactivate { remote_id, user_name } => client
                .call(
                    reqwest::Method::PATCH,
                    &format!("/Users/{remote_id}"),
                    Some(&json!({ "schemas": [PATCH], "Operations": [{ "op": "replace", "path": "active", "value": false }] })),
                )
                .await
                .map(|_| ("push.deactivate", user_name.clone())),
            Action::Group { .. } => continue,
        };
        match result {
            Ok((event, who)) => {
                audit_change(
                    store,
                    clock,
                    &app.name,
                    event,
                    format!("app:{}", app.name),
                    json!({ "user": who, "change": a }),
                )
                .await;
                report.done.push(a);
            }
            Err(e) => report.failed.push(format!("{e:#}")),
        }
    }
    // Groups, one per role, once the users exist.
    let groups: Vec<RemoteGroup> = client
        .all("Groups")
        .await?
        .iter()
        .filter_map(|g| {
            Some(RemoteGroup {
                id: g["id"].as_str()?.to_string(),
                display_name: g["displayName"].as_str().unwrap_or_default().to_string(),
                members: g["members"]
                    .as_array()
                    .map(|m| {
                        m.iter()
                            .filter_map(|x| x["value"].as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect();
    let (group_actions, group_drift) = push::plan_groups(&app.roles, &desired, &groups, &ids);
    drift.extend(group_drift);
    for a in group_actions {
        if dry_run {
            report.done.push(a);
            continue;
        }
        let Action::Group {
            role,
            remote_id,
            members,
        } = &a
        else {
            continue;
        };
        let members_doc: Vec<Value> = members.iter().map(|m| json!({ "value": m })).collect();
        let result = match remote_id {
            None => client
                .call(reqwest::Method::POST, "/Groups", Some(&json!({ "schemas": [GROUP], "displayName": role, "members": members_doc })))
                .await,
            Some(id) => client
                .call(
                    reqwest::Method::PATCH,
                    &format!("/Groups/{id}"),
                    Some(&json!({ "schemas": [PATCH], "Operations": [{ "op": "replace", "path": "members", "value": members_doc }] })),
                )
                .await,
        };
        match result {
            Ok(_) => {
                audit_change(
                    store,
                    clock,
                    &app.name,
                    "push.group",
                    format!("app:{}", app.name),
                    json!({ "role": role, "members": members.len() }),
                )
                .await;
                report.done.push(a);
            }
            Err(e) => report.failed.push(format!("{e:#}")),
        }
    }
    report.drift = drift;
    if !dry_run {
        audit_change(
            store,
            clock,
            &app.name,
            "push.run",
            format!("app:{}", app.name),
            json!({ "changes": report.done.len(), "drift": report.drift.len(), "failed": report.failed.len() }),
        )
        .await;
    }
    Ok(report)
}

/// `serve`'s loop for one app: a run every `interval`, and at once when someone leaves.
pub async fn background(
    store: Store,
    clock: SharedClock,
    app: PushApp,
    tls: rustls::ClientConfig,
    stop: tokio_util::sync::CancellationToken,
) {
    let interval = app.interval.unwrap_or(Duration::from_secs(300));
    let mut events = store.subscribe();
    loop {
        match run(&store, &clock, &app, &tls, false).await {
            Ok(r) if !r.done.is_empty() || !r.failed.is_empty() => {
                tracing::info!(app = %app.name, report = %r.text(), "push run")
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(app = %app.name, error = %format!("{e:#}"), "push run failed; next at the next interval")
            }
        }
        let sleep = tokio::time::sleep(interval);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = &mut sleep => break,
                ev = events.recv() => match ev {
                    Ok(gatehouse_broker::events::AccessEvent::IdentityDisabled { .. }) => break,
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                    Err(_) => return,
                },
            }
        }
    }
}

/// `gatehouse push run`.
pub async fn command(
    settings: &crate::config::Settings,
    cmd: crate::cli::PushCommand,
) -> anyhow::Result<std::process::ExitCode> {
    let crate::cli::PushCommand::Run { app, dry_run } = cmd;
    let apps: Vec<&PushApp> = settings
        .push
        .iter()
        .filter(|a| app.as_ref().is_none_or(|n| &a.name == n))
        .collect();
    if apps.is_empty() {
        anyhow::bail!(match app {
            Some(n) => format!("no [[push]] app named {n} in the configuration"),
            None => "no [[push]] apps in the configuration: add one (name, url, token_file, roles)"
                .to_string(),
        });
    }
    let tls = crate::outbound::from_settings(settings)?;
    let store =
        crate::context::open_store(settings, crate::context::Schema::RequireCurrent).await?;
    let clock: SharedClock = std::sync::Arc::new(gatehouse_broker::SystemClock);
    let mut failed = false;
    for a in apps {
        let r = run(&store, &clock, a, &tls, dry_run)
            .await
            .with_context(|| format!("push app {}", a.name))?;
        print!("{}", r.text());
        failed |= !r.failed.is_empty();
    }
    store.close().await;
    Ok(if failed {
        std::process::ExitCode::from(1)
    } else {
        std::process::ExitCode::SUCCESS
    })
}
