//! What a campaign reviews, who decides, when it runs and what happens at its end: the
//! [`CampaignSpec`] stored with a definition and frozen into each campaign, its policy-as-code
//! form ([`ReviewDoc`], `[[reviews]]`) and the schedule arithmetic ([`next_start`]).

use crate::access::requests::parse_duration;
use crate::error::{Error, Result};
use crate::provisioning::apply::doc::parse_instant;
use chrono::{Datelike, Months, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::str::FromStr;

/// Which access a campaign covers: the union of everything named. `all` covers every standing
/// and eligible role assignment (people and groups' members).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Scope {
    /// Assignments of these roles.
    pub roles: Vec<String>,
    /// Assignments of roles that reach these targets.
    pub targets: Vec<String>,
    /// Assignments of roles that reach a target with all these labels.
    pub labels: BTreeMap<String, String>,
    /// Memberships of these groups.
    pub groups: Vec<String>,
    /// Holders of these Gatehouse privileges (`admin`, `reviewer`).
    pub privileges: Vec<String>,
    pub all: bool,
}

impl Scope {
    fn is_empty(&self) -> bool {
        !self.all
            && self.roles.is_empty()
            && self.targets.is_empty()
            && self.labels.is_empty()
            && self.groups.is_empty()
            && self.privileges.is_empty()
    }
}

/// What an item nobody answered becomes when the campaign ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Unanswered {
    Keep,
    Revoke,
    /// The item's recommendation.
    #[default]
    Recommendation,
}

/// When decisions take effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ApplyMode {
    /// At the end of the campaign.
    #[default]
    Auto,
    /// When the campaign owner signs the results off.
    SignOff,
}

/// A campaign definition, as stored (times in ms).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignSpec {
    #[serde(default)]
    pub description: String,
    /// Who runs the campaign and signs it off (a username).
    pub owner: String,
    pub scope: Scope,
    /// The reviewer of each stage, in order: `manager`, `role_owner`, `target_owner`, `self`,
    /// `group:NAME` or a username.
    pub stages: Vec<String>,
    /// Who decides when a stage's reviewer cannot be found, and after escalation: a username or
    /// `group:NAME`.
    pub fallback: String,
    /// `once`, `monthly`, `quarterly`, or a cron expression (UTC).
    pub schedule: String,
    /// The first start; None: as soon as it is defined.
    #[serde(default)]
    pub start_ms: Option<i64>,
    pub duration_ms: i64,
    #[serde(default)]
    pub unanswered: Unanswered,
    #[serde(default)]
    pub apply: ApplyMode,
    /// Reviewers with open items are reminded this long before the end.
    pub remind_before_ms: i64,
    /// Open items go to the fallback reviewer this long before the end.
    pub escalate_before_ms: i64,
}

const DAY_MS: i64 = 86_400_000;

/// The reviewer kinds a stage may name besides `group:NAME` and a username.
pub const STAGE_KINDS: &[&str] = &["manager", "role_owner", "target_owner", "self"];

impl CampaignSpec {
    /// Checks what a database is not needed for.
    pub fn check(&self, name: &str) -> Result<()> {
        let bad = |m: String| Err(Error::invalid(format!("review {name}: {m}")));
        if self.owner.trim().is_empty() {
            return bad("owner is required (the username who signs the campaign off)".into());
        }
        if self.scope.is_empty() {
            return bad(
                "scope is empty: name roles, targets, labels, groups or privileges, or set all = true"
                    .into(),
            );
        }
        for p in &self.scope.privileges {
            if crate::access::privileges::parse(p).is_none() {
                return bad(format!(
                    "scope privilege {p:?}: use \"admin\" or \"reviewer\""
                ));
            }
        }
        if self.stages.is_empty() {
            return bad("stages: name at least one reviewer (e.g. [\"manager\"])".into());
        }
        if self.stages.len() > 5 {
            return bad("stages: at most 5".into());
        }
        for s in &self.stages {
            if s.trim().is_empty() || s.starts_with("group:") && s.len() == 6 {
                return bad(format!("stage reviewer {s:?} is empty"));
            }
        }
        if self.fallback.trim().is_empty() || STAGE_KINDS.contains(&self.fallback.as_str()) {
            return bad("fallback must be a username or group:NAME".into());
        }
        parse_schedule(&self.schedule)
            .map_err(|e| Error::invalid(format!("review {name}: {e}")))?;
        if self.duration_ms < 60_000 {
            return bad("duration must be at least 1m".into());
        }
        Ok(())
    }
}

/// How often a definition starts a campaign.
#[derive(Debug, Clone)]
pub enum Schedule {
    Once,
    Months(u32),
    Cron(Box<croner::Cron>),
}

/// Parses `once`, `monthly`, `quarterly` or a cron expression.
pub fn parse_schedule(s: &str) -> Result<Schedule> {
    match s.trim() {
        "once" => Ok(Schedule::Once),
        "monthly" => Ok(Schedule::Months(1)),
        "quarterly" => Ok(Schedule::Months(3)),
        "" => Err(Error::invalid(
            "schedule is empty: once, monthly, quarterly or a cron expression",
        )),
        other => croner::Cron::from_str(other)
            .map(|c| Schedule::Cron(Box::new(c)))
            .map_err(|e| {
                Error::invalid(format!(
                    "schedule {other:?}: not once, monthly, quarterly, nor a cron expression ({e})"
                ))
            }),
    }
}

/// When the campaign after one started at `started_ms` starts; None for `once`.
pub fn next_start(schedule: &str, started_ms: i64) -> Result<Option<i64>> {
    let at = Utc
        .timestamp_millis_opt(started_ms)
        .single()
        .ok_or_else(|| Error::invalid("start time out of range"))?;
    Ok(match parse_schedule(schedule)? {
        Schedule::Once => None,
        Schedule::Months(n) => at
            .checked_add_months(Months::new(n))
            .map(|t| t.timestamp_millis()),
        Schedule::Cron(c) => c
            .find_next_occurrence(&at, false)
            .ok()
            .map(|t| t.timestamp_millis()),
    })
}

/// A `[[reviews]]` entry of a policy document: durations and times as text.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewDoc {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub owner: String,
    pub scope: Scope,
    #[serde(default = "manager_stage")]
    pub stages: Vec<String>,
    pub fallback: Option<String>,
    #[serde(default = "once")]
    pub schedule: String,
    /// RFC 3339 or a date; default: at once.
    #[serde(default)]
    pub start: Option<String>,
    #[serde(default = "two_weeks")]
    pub duration: String,
    #[serde(default)]
    pub unanswered: Unanswered,
    #[serde(default)]
    pub apply: ApplyMode,
    #[serde(default)]
    pub remind_before: Option<String>,
    #[serde(default)]
    pub escalate_before: Option<String>,
}

fn manager_stage() -> Vec<String> {
    vec!["manager".into()]
}
fn once() -> String {
    "once".into()
}
fn two_weeks() -> String {
    "14d".into()
}

impl ReviewDoc {
    /// The stored spec, checked.
    pub fn to_spec(&self) -> Result<CampaignSpec> {
        let name = &self.name;
        crate::access::roles::validate_name(name)
            .map_err(|e| Error::invalid(format!("review {name}: {e}")))?;
        let dur = |s: &str, what: &str| {
            parse_duration(s).map_err(|e| Error::invalid(format!("review {name} {what}: {e}")))
        };
        let duration_ms = dur(&self.duration, "duration")?;
        let remind = match &self.remind_before {
            Some(s) => dur(s, "remind_before")?,
            None => (3 * DAY_MS).min(duration_ms / 2),
        };
        let escalate = match &self.escalate_before {
            Some(s) => dur(s, "escalate_before")?,
            None => DAY_MS.min(duration_ms / 4),
        };
        let spec = CampaignSpec {
            description: self.description.clone(),
            owner: self.owner.clone(),
            scope: self.scope.clone(),
            stages: self.stages.clone(),
            fallback: self.fallback.clone().unwrap_or_else(|| self.owner.clone()),
            schedule: self.schedule.clone(),
            start_ms: self.start.as_deref().map(parse_instant).transpose()?,
            duration_ms,
            unanswered: self.unanswered,
            apply: self.apply,
            remind_before_ms: remind,
            escalate_before_ms: escalate,
        };
        spec.check(name)?;
        Ok(spec)
    }
}

/// A campaign's name: the definition's and the start date (`prod-root-2026-12-03`).
pub fn campaign_name(definition: &str, started_ms: i64) -> String {
    let d = Utc
        .timestamp_millis_opt(started_ms)
        .single()
        .unwrap_or_default();
    format!(
        "{definition}-{:04}-{:02}-{:02}",
        d.year(),
        d.month(),
        d.day()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(extra: &str) -> ReviewDoc {
        toml::from_str(&format!(
            "name = \"q\"\nowner = \"carol\"\nscope = {{ roles = [\"prod-root\"] }}\n{extra}"
        ))
        .unwrap()
    }

    #[test]
    fn defaults_are_one_manager_stage_two_weeks_once_owner_as_fallback() {
        let s = doc("").to_spec().unwrap();
        assert_eq!(s.stages, ["manager"]);
        assert_eq!(s.duration_ms, 14 * DAY_MS);
        assert_eq!(s.fallback, "carol");
        assert_eq!(s.remind_before_ms, 3 * DAY_MS);
        assert_eq!(s.escalate_before_ms, DAY_MS);
        assert_eq!(s.unanswered, Unanswered::Recommendation);
        assert_eq!(s.apply, ApplyMode::Auto);
    }

    #[test]
    fn bad_input_is_named() {
        let e = |extra: &str| doc(extra).to_spec().unwrap_err().to_string();
        assert!(e("schedule = \"fortnightly\"").contains("schedule \"fortnightly\""));
        assert!(e("duration = \"0s\"").contains("duration"));
        assert!(e("stages = []").contains("at least one reviewer"));
        assert!(e("fallback = \"manager\"").contains("fallback"));
        let mut d = doc("");
        d.scope = Scope::default();
        assert!(
            d.to_spec()
                .unwrap_err()
                .to_string()
                .contains("scope is empty")
        );
        d.scope.privileges = vec!["root".into()];
        assert!(d.to_spec().unwrap_err().to_string().contains("privilege"));
    }

    #[test]
    fn quarterly_monthly_cron_and_once() {
        let start = parse_instant("2026-01-31").unwrap();
        assert_eq!(
            next_start("quarterly", start).unwrap(),
            Some(parse_instant("2026-04-30").unwrap())
        );
        assert_eq!(
            next_start("monthly", parse_instant("2026-03-01").unwrap()).unwrap(),
            Some(parse_instant("2026-04-01").unwrap())
        );
        assert_eq!(
            next_start("0 9 1 * *", start).unwrap(),
            Some(parse_instant("2026-02-01T09:00:00Z").unwrap())
        );
        assert_eq!(next_start("once", start).unwrap(), None);
    }
}
