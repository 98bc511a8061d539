//! Campaign storage: definitions (`[[reviews]]` and the API), starting a campaign (facts read,
//! items planned and written in bulk, reviewers notified), and reading campaigns and items.

use super::plan::{self, Access, Evidence, NewItem};
use super::spec::{self, CampaignSpec};
use crate::actor::Actor;
use crate::error::{Error, Result};
use crate::ids;
use crate::ledger::audit::{self, NewEvent};
use crate::ledger::outbox::{self, Channel};
use crate::ledger::store::Tx;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use std::collections::BTreeMap;

/// A stored definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Definition {
    pub name: String,
    pub spec: CampaignSpec,
    pub source: String,
    pub next_start_ms: Option<i64>,
}

/// A campaign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Campaign {
    pub id: String,
    pub name: String,
    pub definition: Option<String>,
    /// `campaign` or `mover`.
    pub kind: String,
    pub owner: String,
    pub spec: CampaignSpec,
    /// `active`, `ended` (awaiting sign-off) or `closed`.
    pub state: String,
    pub started_ms: i64,
    pub ends_ms: i64,
    pub ended_ms: Option<i64>,
    pub signed_off_by: Option<String>,
    pub closed_ms: Option<i64>,
}

/// An item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Item {
    pub id: String,
    pub campaign_id: String,
    pub username: String,
    pub access: Access,
    pub access_ref: String,
    pub role: Option<String>,
    pub held_as: String,
    pub privileged: bool,
    pub evidence: Evidence,
    pub recommendation: String,
    pub rec_reason: String,
    /// The current stage (0-based) and who decides it.
    pub stage: i64,
    pub reviewer: String,
    /// `open`, `decided` or `applied`.
    pub state: String,
    pub decision: Option<String>,
    pub keep_until_ms: Option<i64>,
    pub reason: Option<String>,
    pub decided_by: Option<String>,
    pub decided_ms: Option<i64>,
    pub opened_ms: Option<i64>,
    pub applied_ms: Option<i64>,
    pub outcome: Option<String>,
    pub verified_ms: Option<i64>,
    pub verified: Option<bool>,
}

impl Item {
    /// What the item is about, in words: `role prod-root (standing)`, `group ops`, `privilege admin`.
    pub fn what(&self) -> String {
        match self.access {
            Access::Assignment => format!(
                "role {} ({})",
                self.role.as_deref().unwrap_or("?"),
                self.held_as
            ),
            Access::Membership => match &self.role {
                Some(r) => format!("group {} (carries {r})", self.access_ref),
                None => format!("group {}", self.access_ref),
            },
            Access::Privilege => format!("Gatehouse privilege {}", self.access_ref),
        }
    }
}

// ---------------------------------------------------------------- definitions

/// Creates or replaces a definition; audited as `review.define`. The next start is the spec's
/// start (or now) unless the schedule of an existing definition is unchanged.
pub async fn define(
    tx: &mut Tx,
    actor: &Actor,
    now_ms: i64,
    name: &str,
    spec: &CampaignSpec,
    source: &str,
) -> Result<bool> {
    spec.check(name)?;
    let current = definition(tx, name).await?;
    if current.as_ref().is_some_and(|c| c.spec == *spec) {
        return Ok(false);
    }
    let next = match &current {
        Some(c) if c.spec.schedule == spec.schedule && c.spec.start_ms == spec.start_ms => {
            c.next_start_ms
        }
        _ => Some(spec.start_ms.unwrap_or(now_ms)),
    };
    let json = serde_json::to_string(spec).map_err(|e| Error::Storage(e.to_string()))?;
    sqlx::query("DELETE FROM review_definitions WHERE name = $1")
        .bind(name)
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "INSERT INTO review_definitions (name, spec, source, next_start_at, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $5)",
    )
    .bind(name)
    .bind(json)
    .bind(source)
    .bind(next)
    .bind(now_ms)
    .execute(&mut **tx)
    .await?;
    audit::append(
        tx,
        now_ms,
        NewEvent::new(actor.to_string(), "review.define", format!("review:{name}")).details(
            serde_json::json!({ "spec": spec, "next_start": next.map(crate::clock::format_ms) }),
        ),
    )
    .await?;
    Ok(true)
}

/// Deletes a definition (its campaigns stay); audited as `review.undefine`.
pub async fn undefine(tx: &mut Tx, actor: &Actor, now_ms: i64, name: &str) -> Result<()> {
    let n = sqlx::query("DELETE FROM review_definitions WHERE name = $1")
        .bind(name)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    if n == 0 {
        return Err(Error::NotFound(format!("review {name}")));
    }
    audit::append(
        tx,
        now_ms,
        NewEvent::new(
            actor.to_string(),
            "review.undefine",
            format!("review:{name}"),
        ),
    )
    .await?;
    Ok(())
}

fn definition_from(r: &AnyRow) -> Result<Definition> {
    let spec: String = r.try_get(1)?;
    Ok(Definition {
        name: r.try_get(0)?,
        spec: serde_json::from_str(&spec)
            .map_err(|e| Error::Storage(format!("review spec: {e}")))?,
        source: r.try_get(2)?,
        next_start_ms: r.try_get(3)?,
    })
}

/// One definition.
pub async fn definition(conn: &mut AnyConnection, name: &str) -> Result<Option<Definition>> {
    sqlx::query("SELECT name, spec, source, next_start_at FROM review_definitions WHERE name = $1")
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?
        .as_ref()
        .map(definition_from)
        .transpose()
}

/// Every definition, by name.
pub async fn definitions(conn: &mut AnyConnection) -> Result<Vec<Definition>> {
    sqlx::query("SELECT name, spec, source, next_start_at FROM review_definitions ORDER BY name")
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(definition_from)
        .collect()
}

// ---------------------------------------------------------------- starting

/// How many rows one INSERT carries (15 values each, 30,000 a statement: within SQLite's
/// 32,766 and PostgreSQL's 65,535).
const CHUNK: usize = 2000;

/// Writes a new campaign with its items (state `active`); audited as `review.campaign.start`
/// and announced to its reviewers through the notification outbox. Returns its id.
#[allow(clippy::too_many_arguments)]
pub async fn create(
    tx: &mut Tx,
    actor: &Actor,
    now_ms: i64,
    name: &str,
    definition: Option<&str>,
    kind: &str,
    spec: &CampaignSpec,
    items: &[NewItem],
) -> Result<String> {
    let id = ids::new_id();
    let ends = now_ms + spec.duration_ms;
    sqlx::query(
        "INSERT INTO review_campaigns (id, name, definition, kind, owner, spec, state, started_at, \
         ends_at) VALUES ($1, $2, $3, $4, $5, $6, 'active', $7, $8)",
    )
    .bind(id.as_str())
    .bind(name)
    .bind(definition)
    .bind(kind)
    .bind(spec.owner.as_str())
    .bind(serde_json::to_string(spec).map_err(|e| Error::Storage(e.to_string()))?)
    .bind(now_ms)
    .bind(ends)
    .execute(&mut **tx)
    .await?;
    // Per item, once for either path: its id, its first reviewer, its evidence as stored.
    let mut reviewers: BTreeMap<&str, usize> = BTreeMap::new();
    let mut prepared = Vec::with_capacity(items.len());
    for item in items {
        let first = item.evidence.reviewers.first();
        *reviewers
            .entry(first.map_or("", String::as_str))
            .or_default() += 1;
        prepared.push((
            ids::new_id(),
            first.cloned().unwrap_or_else(|| spec.fallback.clone()),
            serde_json::to_string(&item.evidence).map_err(|e| Error::Storage(e.to_string()))?,
        ));
    }
    // SQLite: `?` placeholders (sqlx looks `$N` up by name: quadratic in a long statement).
    let backend = crate::ledger::store::backend_of(tx);
    let cols = [
        "id",
        "campaign_id",
        "identity_id",
        "username",
        "access",
        "access_ref",
        "role",
        "held_as",
        "privileged",
        "evidence",
        "recommendation",
        "rec_reason",
        "stage",
        "reviewer",
        "state",
    ];
    if backend == crate::Backend::Postgres {
        // One JSON parameter per 10,000 rows, unpacked by the server: far fewer values to bind
        // than a multi-row VALUES list.
        for (chunk, ready) in items.chunks(10_000).zip(prepared.chunks(10_000)) {
            let mut rows = Vec::with_capacity(chunk.len());
            for (item, (item_id, reviewer, evidence)) in chunk.iter().zip(ready) {
                rows.push(serde_json::json!({
                    "id": item_id, "campaign_id": id, "identity_id": item.identity_id,
                    "username": item.username, "access": item.access.as_str(),
                    "access_ref": item.access_ref, "role": item.role, "held_as": item.held_as,
                    "privileged": i64::from(item.privileged), "evidence": evidence,
                    "recommendation": item.recommendation, "rec_reason": item.rec_reason,
                    "stage": 0, "reviewer": reviewer, "state": "open",
                }));
            }
            sqlx::query(
                "INSERT INTO review_items (id, campaign_id, identity_id, username, access, \
                 access_ref, role, held_as, privileged, evidence, recommendation, rec_reason, \
                 stage, reviewer, state) SELECT id, campaign_id, identity_id, username, access, \
                 access_ref, role, held_as, privileged, evidence, recommendation, rec_reason, \
                 stage, reviewer, state FROM json_to_recordset($1::json) AS x(id text, \
                 campaign_id text, identity_id text, username text, access text, \
                 access_ref text, role text, held_as text, privileged bigint, evidence text, \
                 recommendation text, rec_reason text, stage bigint, reviewer text, state text)",
            )
            .bind(serde_json::Value::Array(rows).to_string())
            .execute(&mut **tx)
            .await?;
        }
    } else {
        for (chunk, ready) in items.chunks(CHUNK).zip(prepared.chunks(CHUNK)) {
            let sql = crate::provisioning::lifecycle::bulk::insert_sql(
                "review_items",
                &cols,
                chunk.len(),
                backend,
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (item, (item_id, reviewer, evidence)) in chunk.iter().zip(ready) {
                q = q
                    .bind(item_id.as_str())
                    .bind(id.as_str())
                    .bind(item.identity_id.as_str())
                    .bind(item.username.as_str())
                    .bind(item.access.as_str())
                    .bind(item.access_ref.as_str())
                    .bind(item.role.as_deref())
                    .bind(item.held_as.as_str())
                    .bind(i64::from(item.privileged))
                    .bind(evidence.as_str())
                    .bind(item.recommendation)
                    .bind(item.rec_reason.as_str())
                    .bind(0_i64)
                    .bind(reviewer.as_str())
                    .bind("open");
            }
            q.execute(&mut **tx).await?;
        }
    }
    let revoke = items
        .iter()
        .filter(|i| i.recommendation == "revoke")
        .count();
    audit::append(
        tx,
        now_ms,
        NewEvent::new(
            actor.to_string(),
            "review.campaign.start",
            format!("campaign:{id}"),
        )
        .details(serde_json::json!({
            "name": name, "definition": definition, "kind": kind, "items": items.len(),
            "recommend_revoke": revoke, "ends": crate::clock::format_ms(ends),
            "reviewers": reviewers.len(),
        })),
    )
    .await?;
    let top: BTreeMap<&str, usize> = reviewers.into_iter().take(1000).collect();
    outbox::enqueue(
        tx,
        now_ms,
        Channel::Notify,
        "review.started",
        &format!(
            "Access review {name} started: {} items to decide by {}",
            items.len(),
            crate::clock::format_ms(ends)
        ),
        serde_json::json!({ "campaign": id, "name": name, "items": items.len(),
            "ends": crate::clock::format_ms(ends), "reviewers": top }),
    )
    .await?;
    Ok(id)
}

/// Starts a campaign of definition `name` now (the scheduler, `gatehouse reviews start`, the
/// API). Returns its id.
pub async fn start(tx: &mut Tx, actor: &Actor, now_ms: i64, name: &str) -> Result<String> {
    let def = definition(tx, name)
        .await?
        .ok_or_else(|| Error::NotFound(format!("review {name}")))?;
    let t = std::time::Instant::now();
    let facts = super::facts::read(tx, now_ms, None).await?;
    let read = t.elapsed();
    let items = plan::plan(&def.spec, &facts);
    let planned = t.elapsed() - read;
    let campaign = spec::campaign_name(name, now_ms);
    let id = create(
        tx,
        actor,
        now_ms,
        &campaign,
        Some(name),
        "campaign",
        &def.spec,
        &items,
    )
    .await?;
    tracing::info!(
        campaign = %campaign,
        items = items.len(),
        read_ms = read.as_millis() as u64,
        plan_ms = planned.as_millis() as u64,
        write_ms = (t.elapsed() - read - planned).as_millis() as u64,
        "access review campaign started"
    );
    Ok(id)
}

/// Starts a one-off campaign from a finding (`review` is `role:NAME` or `privilege:NAME`, as a
/// finding names it), owned by `owner`: each holder's manager reviews, the owner is the
/// fallback, 14 days, unanswered items as recommended, applied at the end. Returns its id.
pub async fn start_for(tx: &mut Tx, owner: &str, now_ms: i64, review: &str) -> Result<String> {
    let mut scope = super::Scope::default();
    let name = match review.split_once(':') {
        Some(("role", r)) if crate::access::roles::by_name(tx, r).await?.is_some() => {
            scope.roles.push(r.to_string());
            r
        }
        Some(("privilege", p)) if crate::access::privileges::parse(p).is_some() => {
            scope.privileges.push(p.to_string());
            p
        }
        _ => {
            return Err(Error::invalid(format!(
                "review {review:?}: name an existing role:NAME or privilege:admin|reviewer"
            )));
        }
    };
    const DAY: i64 = 86_400_000;
    let spec = CampaignSpec {
        description: format!("Started from a finding about {review}"),
        owner: owner.to_string(),
        scope,
        stages: vec!["manager".into()],
        fallback: owner.to_string(),
        schedule: "once".into(),
        start_ms: None,
        duration_ms: 14 * DAY,
        unanswered: super::Unanswered::Recommendation,
        apply: super::ApplyMode::Auto,
        remind_before_ms: 3 * DAY,
        escalate_before_ms: DAY,
    };
    let facts = super::facts::read(tx, now_ms, None).await?;
    let items = plan::plan(&spec, &facts);
    let campaign = spec::campaign_name(&format!("finding-{name}"), now_ms);
    create(
        tx,
        &Actor::identity(owner),
        now_ms,
        &campaign,
        None,
        "campaign",
        &spec,
        &items,
    )
    .await
}

// ---------------------------------------------------------------- reading

const CAMPAIGN: &str = "SELECT id, name, definition, kind, owner, spec, state, started_at, \
     ends_at, ended_at, signed_off_by, closed_at FROM review_campaigns";

fn campaign_from(r: &AnyRow) -> Result<Campaign> {
    let spec: String = r.try_get(5)?;
    Ok(Campaign {
        id: r.try_get(0)?,
        name: r.try_get(1)?,
        definition: r.try_get(2)?,
        kind: r.try_get(3)?,
        owner: r.try_get(4)?,
        spec: serde_json::from_str(&spec)
            .map_err(|e| Error::Storage(format!("campaign spec: {e}")))?,
        state: r.try_get(6)?,
        started_ms: r.try_get(7)?,
        ends_ms: r.try_get(8)?,
        ended_ms: r.try_get(9)?,
        signed_off_by: r.try_get(10)?,
        closed_ms: r.try_get(11)?,
    })
}

/// One campaign.
pub async fn campaign(conn: &mut AnyConnection, id: &str) -> Result<Campaign> {
    sqlx::query(sqlx::AssertSqlSafe(format!("{CAMPAIGN} WHERE id = $1")))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .as_ref()
        .map(campaign_from)
        .transpose()?
        .ok_or_else(|| Error::NotFound(format!("campaign {id}")))
}

/// Campaigns, newest first.
pub async fn campaigns(conn: &mut AnyConnection) -> Result<Vec<Campaign>> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "{CAMPAIGN} ORDER BY started_at DESC, id DESC"
    )))
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(campaign_from)
    .collect()
}

/// How far a campaign is: items by state and by final decision.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Progress {
    pub total: i64,
    pub open: i64,
    pub decided: i64,
    pub applied: i64,
    pub keep: i64,
    pub revoke: i64,
    pub keep_until: i64,
}

impl Progress {
    /// Decided or applied, in percent.
    pub fn percent(&self) -> i64 {
        if self.total == 0 {
            100
        } else {
            (self.total - self.open) * 100 / self.total
        }
    }
}

/// See [`Progress`].
pub async fn progress(conn: &mut AnyConnection, campaign_id: &str) -> Result<Progress> {
    let mut p = Progress::default();
    for r in sqlx::query(
        "SELECT state, COALESCE(decision, ''), COUNT(*) FROM review_items WHERE campaign_id = $1 \
         GROUP BY state, decision",
    )
    .bind(campaign_id)
    .fetch_all(&mut *conn)
    .await?
    {
        let state: String = r.try_get(0)?;
        let decision: String = r.try_get(1)?;
        let n: i64 = r.try_get(2)?;
        p.total += n;
        match state.as_str() {
            "open" => p.open += n,
            "decided" => p.decided += n,
            _ => p.applied += n,
        }
        match decision.as_str() {
            "keep" => p.keep += n,
            "revoke" => p.revoke += n,
            "keep_until" => p.keep_until += n,
            _ => {}
        }
    }
    Ok(p)
}

const ITEM_COLS: [&str; 24] = [
    "id",
    "campaign_id",
    "username",
    "access",
    "access_ref",
    "role",
    "held_as",
    "privileged",
    "evidence",
    "recommendation",
    "rec_reason",
    "stage",
    "reviewer",
    "state",
    "decision",
    "keep_until",
    "reason",
    "decided_by",
    "decided_at",
    "opened_at",
    "applied_at",
    "outcome",
    "verified_at",
    "verified",
];

/// `SELECT` of every item column, each prefixed with `alias.` when given.
fn select_items(alias: &str) -> String {
    let cols: Vec<String> = ITEM_COLS
        .iter()
        .map(|c| {
            if alias.is_empty() {
                c.to_string()
            } else {
                format!("{alias}.{c}")
            }
        })
        .collect();
    format!("SELECT {}", cols.join(", "))
}

fn item_from(r: &AnyRow) -> Result<Item> {
    let evidence: String = r.try_get(8)?;
    Ok(Item {
        id: r.try_get(0)?,
        campaign_id: r.try_get(1)?,
        username: r.try_get(2)?,
        access: Access::parse(&r.try_get::<String, _>(3)?),
        access_ref: r.try_get(4)?,
        role: r.try_get(5)?,
        held_as: r.try_get(6)?,
        privileged: r.try_get::<i64, _>(7)? != 0,
        evidence: serde_json::from_str(&evidence).unwrap_or_default(),
        recommendation: r.try_get(9)?,
        rec_reason: r.try_get(10)?,
        stage: r.try_get(11)?,
        reviewer: r.try_get(12)?,
        state: r.try_get(13)?,
        decision: r.try_get(14)?,
        keep_until_ms: r.try_get(15)?,
        reason: r.try_get(16)?,
        decided_by: r.try_get(17)?,
        decided_ms: r.try_get(18)?,
        opened_ms: r.try_get(19)?,
        applied_ms: r.try_get(20)?,
        outcome: r.try_get(21)?,
        verified_ms: r.try_get(22)?,
        verified: r.try_get::<Option<i64>, _>(23)?.map(|v| v != 0),
    })
}

/// One item.
pub async fn item(conn: &mut AnyConnection, id: &str) -> Result<Item> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "{} FROM review_items WHERE id = $1",
        select_items("")
    )))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .as_ref()
    .map(item_from)
    .transpose()?
    .ok_or_else(|| Error::NotFound(format!("review item {id}")))
}

/// A campaign's items, by person then access; `state` filters when given.
pub async fn items(
    conn: &mut AnyConnection,
    campaign_id: &str,
    state: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<Vec<Item>> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "{} FROM review_items WHERE campaign_id = $1 AND ($2 = '' OR state = $2) \
         ORDER BY username, access, access_ref LIMIT $3 OFFSET $4",
        select_items("")
    )))
    .bind(campaign_id)
    .bind(state.unwrap_or(""))
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(item_from)
    .collect()
}

/// Who `username` may decide for: themselves and `group:NAME` of each group they are in.
pub async fn reviewer_names(conn: &mut AnyConnection, username: &str) -> Result<Vec<String>> {
    let mut out = vec![username.to_string()];
    for g in crate::identity::groups::of_identity(conn, username).await? {
        out.push(format!("group:{g}"));
    }
    Ok(out)
}

/// The open items `username` decides (directly or through a group) in active campaigns, oldest
/// campaign first, at most `limit` from `offset`; with the total.
pub async fn queue(
    conn: &mut AnyConnection,
    username: &str,
    campaign: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Item>, i64)> {
    queue_filtered(conn, username, campaign, None, limit, offset).await
}

/// [`queue`], only the items recommended `recommendation` (`keep`, `revoke`) when given.
pub async fn queue_filtered(
    conn: &mut AnyConnection,
    username: &str,
    campaign: Option<&str>,
    recommendation: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Item>, i64)> {
    let names = reviewer_names(conn, username).await?;
    // $1 the campaign, $2 the recommendation, then the names; paging follows.
    let list: Vec<String> = (0..names.len()).map(|i| format!("${}", i + 3)).collect();
    let n = names.len() + 3;
    let filter = format!(
        "FROM review_items i JOIN review_campaigns c ON c.id = i.campaign_id \
         WHERE c.state = 'active' AND i.state = 'open' AND i.reviewer IN ({}) \
         AND ($1 = '' OR i.campaign_id = $1) AND ($2 = '' OR i.recommendation = $2)",
        list.join(", ")
    );
    let cols = select_items("i");
    let sql = format!(
        "{cols} {filter} ORDER BY c.ends_at, i.username, i.access, i.access_ref LIMIT ${n} OFFSET ${}",
        n + 1
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(campaign.unwrap_or(""))
        .bind(recommendation.unwrap_or(""));
    for name in &names {
        q = q.bind(name.clone());
    }
    let rows = q.bind(limit).bind(offset).fetch_all(&mut *conn).await?;
    let mut c =
        sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) {filter}")))
            .bind(campaign.unwrap_or(""))
            .bind(recommendation.unwrap_or(""));
    for name in &names {
        c = c.bind(name.clone());
    }
    let total = c.fetch_one(&mut *conn).await?;
    Ok((rows.iter().map(item_from).collect::<Result<_>>()?, total))
}

/// `username`'s open items per active campaign: (campaign id, name, ends at, open, of which
/// recommended for revocation), soonest end first.
pub async fn queue_counts(
    conn: &mut AnyConnection,
    username: &str,
) -> Result<Vec<(String, String, i64, i64, i64)>> {
    let names = reviewer_names(conn, username).await?;
    let list: Vec<String> = (0..names.len()).map(|i| format!("${}", i + 1)).collect();
    let sql = format!(
        "SELECT c.id, c.name, c.ends_at, COUNT(*), \
         SUM(CASE WHEN i.recommendation = 'revoke' THEN 1 ELSE 0 END) \
         FROM review_items i JOIN review_campaigns c ON c.id = i.campaign_id \
         WHERE c.state = 'active' AND i.state = 'open' AND i.reviewer IN ({}) \
         GROUP BY c.id, c.name, c.ends_at ORDER BY c.ends_at, c.id",
        list.join(", ")
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for name in &names {
        q = q.bind(name.clone());
    }
    q.fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| {
            Ok((
                r.try_get(0)?,
                r.try_get(1)?,
                r.try_get(2)?,
                r.try_get(3)?,
                r.try_get::<Option<i64>, _>(4)?.unwrap_or(0),
            ))
        })
        .collect()
}

/// Every decision on an item, oldest first: (stage, reviewer, decision, reason, keep until,
/// delegated to, opened, bulk, time).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DecisionRow {
    pub item_id: String,
    pub stage: i64,
    pub reviewer: String,
    pub decision: String,
    pub reason: String,
    pub keep_until_ms: Option<i64>,
    pub delegate_to: Option<String>,
    pub opened: bool,
    pub bulk: bool,
    pub at_ms: i64,
}

/// The decisions of a campaign's items (or of one item), in time order.
pub async fn decisions(
    conn: &mut AnyConnection,
    campaign_id: &str,
    item_id: Option<&str>,
) -> Result<Vec<DecisionRow>> {
    sqlx::query(
        "SELECT d.item_id, d.stage, d.reviewer, d.decision, d.reason, d.keep_until, \
         d.delegate_to, d.opened, d.bulk, d.created_at FROM review_decisions d \
         JOIN review_items i ON i.id = d.item_id WHERE i.campaign_id = $1 \
         AND ($2 = '' OR d.item_id = $2) ORDER BY d.created_at, d.id",
    )
    .bind(campaign_id)
    .bind(item_id.unwrap_or(""))
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|r| {
        Ok(DecisionRow {
            item_id: r.try_get(0)?,
            stage: r.try_get(1)?,
            reviewer: r.try_get(2)?,
            decision: r.try_get(3)?,
            reason: r.try_get(4)?,
            keep_until_ms: r.try_get(5)?,
            delegate_to: r.try_get(6)?,
            opened: r.try_get::<i64, _>(7)? != 0,
            bulk: r.try_get::<i64, _>(8)? != 0,
            at_ms: r.try_get(9)?,
        })
    })
    .collect()
}

/// Whether `who` may see a campaign with all its items and its report: its owner, a reviewer or
/// an administrator. (A reviewer of items sees their own items through the queue.)
pub async fn may_view(
    conn: &mut AnyConnection,
    c: &Campaign,
    who: &crate::identity::identities::Identity,
) -> Result<bool> {
    use crate::access::privileges::{Privilege, has};
    Ok(c.owner == who.username || has(conn, &who.id, Privilege::Reviewer).await?)
}

/// The campaign, if `who` may see it ([`may_view`]); else `forbidden`.
pub async fn campaign_for(
    conn: &mut AnyConnection,
    id: &str,
    who: &crate::identity::identities::Identity,
) -> Result<Campaign> {
    let c = campaign(conn, id).await?;
    if !may_view(conn, &c, who).await? {
        return Err(Error::Forbidden(
            "only the campaign's owner, reviewers and administrators see a whole campaign".into(),
        ));
    }
    Ok(c)
}

/// Campaigns `who` may see, newest first.
pub async fn campaigns_for(
    conn: &mut AnyConnection,
    who: &crate::identity::identities::Identity,
) -> Result<Vec<Campaign>> {
    use crate::access::privileges::{Privilege, has};
    let all = campaigns(conn).await?;
    if has(conn, &who.id, Privilege::Reviewer).await? {
        return Ok(all);
    }
    Ok(all
        .into_iter()
        .filter(|c| c.owner == who.username)
        .collect())
}
