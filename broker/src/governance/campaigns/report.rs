//! The campaign report: every item with its evidence, each stage's decision (reviewer, time,
//! reason), what was done and whether the decision function confirmed it; with flags for
//! rubber-stamping. A plain function ([`build`]) over what the store holds; written as JSON and
//! CSV with a manifest signed by the Gatehouse key ([`sign`], [`verify`]), like checkpoints.

use super::store::{Campaign, DecisionRow, Item, Progress};
use crate::error::{Error, Result};
use crate::keys::{PublicKey, SigningKeyPair};
use base64::Engine as _;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Decisions closer together than this are "in seconds".
pub const RAPID_MS: i64 = 3_000;
/// A reviewer is flagged from this many decisions on.
pub const FLAG_FROM: usize = 10;

/// One row of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    pub item: String,
    pub identity: String,
    pub access: String,
    pub held_as: String,
    pub privileged: bool,
    pub last_used: Option<String>,
    pub uses_90d: i64,
    pub recommendation: String,
    pub recommendation_reason: String,
    pub decision: Option<String>,
    pub keep_until: Option<String>,
    pub reason: Option<String>,
    pub decided_by: Option<String>,
    pub decided_at: Option<String>,
    /// Every stage decision and delegation, in order, in words.
    pub history: Vec<String>,
    pub outcome: Option<String>,
    pub applied_at: Option<String>,
    pub verified: Option<bool>,
    pub verified_at: Option<String>,
}

/// A reviewer whose decisions look like rubber-stamping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Flag {
    pub reviewer: String,
    /// `never_opened` or `in_seconds`.
    pub kind: &'static str,
    pub detail: String,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub campaign: String,
    pub name: String,
    pub kind: String,
    pub owner: String,
    pub state: String,
    pub started: String,
    pub ends: String,
    pub ended: Option<String>,
    pub signed_off_by: Option<String>,
    /// The time of the last change the report includes (so the same state gives the same bytes).
    pub as_of: String,
    pub progress: Progress,
    pub flags: Vec<Flag>,
    pub rows: Vec<Row>,
}

fn t(ms: i64) -> String {
    crate::clock::format_ms(ms)
}

/// Rubber-stamp flags: a reviewer with at least [`FLAG_FROM`] decisions who decided most of
/// them without opening the item, or most of them within [`RAPID_MS`] of the one before.
pub fn rubber_stamps(decisions: &[DecisionRow]) -> Vec<Flag> {
    let mut by: BTreeMap<&str, Vec<&DecisionRow>> = BTreeMap::new();
    for d in decisions {
        if d.reviewer != "system" && d.decision != "delegate" {
            by.entry(&d.reviewer).or_default().push(d);
        }
    }
    let mut out = Vec::new();
    for (reviewer, mut ds) in by {
        let n = ds.len();
        if n < FLAG_FROM {
            continue;
        }
        let unopened = ds.iter().filter(|d| !d.opened).count();
        if unopened * 2 > n {
            out.push(Flag {
                reviewer: reviewer.into(),
                kind: "never_opened",
                detail: format!("{unopened} of {n} decisions on items never opened"),
            });
        }
        ds.sort_by_key(|d| d.at_ms);
        let rapid = ds
            .windows(2)
            .filter(|w| w[1].at_ms - w[0].at_ms < RAPID_MS)
            .count();
        if rapid * 2 > n - 1 {
            let span = (ds[n - 1].at_ms - ds[0].at_ms) / 1000;
            out.push(Flag {
                reviewer: reviewer.into(),
                kind: "in_seconds",
                detail: format!(
                    "{n} decisions in {span} s ({rapid} within {} s of the one before)",
                    RAPID_MS / 1000
                ),
            });
        }
    }
    out
}

/// Builds the report.
pub fn build(
    c: &Campaign,
    progress: Progress,
    items: &[Item],
    decisions: &[DecisionRow],
) -> Report {
    let mut history: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for d in decisions {
        let mut line = format!("stage {}: {} {}", d.stage + 1, d.reviewer, d.decision);
        if let Some(to) = &d.delegate_to {
            line.push_str(&format!(" to {to}"));
        }
        if let Some(u) = d.keep_until_ms {
            line.push_str(&format!(" (until {})", t(u)));
        }
        line.push_str(&format!(" at {}", t(d.at_ms)));
        if !d.reason.is_empty() {
            line.push_str(&format!(": {}", d.reason));
        }
        if d.bulk {
            line.push_str(" [accepted in bulk]");
        }
        history.entry(&d.item_id).or_default().push(line);
    }
    let mut as_of = c.started_ms;
    for i in items {
        for x in [i.decided_ms, i.applied_ms, i.verified_ms]
            .into_iter()
            .flatten()
        {
            as_of = as_of.max(x);
        }
    }
    for x in [c.ended_ms, c.closed_ms].into_iter().flatten() {
        as_of = as_of.max(x);
    }
    for d in decisions {
        as_of = as_of.max(d.at_ms);
    }
    Report {
        campaign: c.id.clone(),
        name: c.name.clone(),
        kind: c.kind.clone(),
        owner: c.owner.clone(),
        state: c.state.clone(),
        started: t(c.started_ms),
        ends: t(c.ends_ms),
        ended: c.ended_ms.map(t),
        signed_off_by: c.signed_off_by.clone(),
        as_of: t(as_of),
        progress,
        flags: rubber_stamps(decisions),
        rows: items
            .iter()
            .map(|i| Row {
                item: i.id.clone(),
                identity: i.username.clone(),
                access: i.what(),
                held_as: i.held_as.clone(),
                privileged: i.privileged,
                last_used: i.evidence.usage.last_ms.map(t),
                uses_90d: i.evidence.usage.count_90d,
                recommendation: i.recommendation.clone(),
                recommendation_reason: i.rec_reason.clone(),
                decision: i.decision.clone(),
                keep_until: i.keep_until_ms.map(t),
                reason: i.reason.clone(),
                decided_by: i.decided_by.clone(),
                decided_at: i.decided_ms.map(t),
                history: history.remove(i.id.as_str()).unwrap_or_default(),
                outcome: i.outcome.clone(),
                applied_at: i.applied_ms.map(t),
                verified: i.verified,
                verified_at: i.verified_ms.map(t),
            })
            .collect(),
    }
}

/// The report as JSON (pretty, stable).
pub fn to_json(r: &Report) -> String {
    serde_json::to_string_pretty(r).unwrap_or_default() + "\n"
}

/// The report's rows as CSV, one line per item.
pub fn to_csv(r: &Report) -> Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let e = |e: csv::Error| Error::Storage(format!("csv: {e}"));
    w.write_record([
        "item",
        "identity",
        "access",
        "held_as",
        "privileged",
        "last_used",
        "uses_90d",
        "recommendation",
        "recommendation_reason",
        "decision",
        "keep_until",
        "reason",
        "decided_by",
        "decided_at",
        "history",
        "outcome",
        "applied_at",
        "verified",
        "verified_at",
    ])
    .map_err(e)?;
    let o = |s: &Option<String>| s.clone().unwrap_or_default();
    for x in &r.rows {
        w.write_record([
            x.item.clone(),
            x.identity.clone(),
            x.access.clone(),
            x.held_as.clone(),
            x.privileged.to_string(),
            o(&x.last_used),
            x.uses_90d.to_string(),
            x.recommendation.clone(),
            x.recommendation_reason.clone(),
            o(&x.decision),
            o(&x.keep_until),
            o(&x.reason),
            o(&x.decided_by),
            o(&x.decided_at),
            x.history.join(" | "),
            o(&x.outcome),
            o(&x.applied_at),
            x.verified.map(|v| v.to_string()).unwrap_or_default(),
            o(&x.verified_at),
        ])
        .map_err(e)?;
    }
    String::from_utf8(w.into_inner().map_err(|e| Error::Storage(e.to_string()))?)
        .map_err(|e| Error::Storage(e.to_string()))
}

const MAGIC: &str = "gatehouse-review-report v1";

/// The manifest of a report's files: their SHA-256, the campaign and the signing key; with its
/// Ed25519 signature (base64), made with the Gatehouse key that signs checkpoints.
pub fn sign(r: &Report, files: &[(&str, &[u8])], key: &SigningKeyPair) -> (String, String) {
    let mut m = format!("{MAGIC}\ncampaign {}\nas-of {}\n", r.campaign, r.as_of);
    for (name, bytes) in files {
        m.push_str(&format!(
            "sha256 {} {name}\n",
            hex::encode(Sha256::digest(bytes))
        ));
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    m.push_str(&format!("key {}\n", b64.encode(key.public().bytes())));
    let sig = b64.encode(key.sign(m.as_bytes()));
    (m, sig + "\n")
}

/// Checks a report directory offline: the manifest is signed by `trusted` and every file it
/// lists has its hash. Returns the files checked.
pub fn verify(dir: &std::path::Path, trusted: &PublicKey) -> Result<Vec<String>> {
    let read = |n: &str| {
        std::fs::read(dir.join(n))
            .map_err(|e| Error::invalid(format!("{}: {e}", dir.join(n).display())))
    };
    let manifest = String::from_utf8(read("manifest.txt")?)
        .map_err(|_| Error::invalid("manifest.txt is not text"))?;
    let sig = String::from_utf8(read("manifest.sig")?)
        .map_err(|_| Error::invalid("manifest.sig is not text"))?;
    let sig = base64::engine::general_purpose::STANDARD
        .decode(sig.trim())
        .map_err(|_| Error::invalid("manifest.sig is not base64"))?;
    if !manifest.starts_with(MAGIC) {
        return Err(Error::invalid(
            "manifest.txt is not a Gatehouse review report manifest",
        ));
    }
    if !trusted.verify(manifest.as_bytes(), &sig) {
        return Err(Error::invalid(
            "the manifest's signature does not verify with the trusted key: it was changed, or signed by another key",
        ));
    }
    let mut checked = Vec::new();
    for line in manifest.lines() {
        if let Some(rest) = line.strip_prefix("sha256 ") {
            let (hash, name) = rest
                .split_once(' ')
                .ok_or_else(|| Error::invalid(format!("manifest line {line:?}")))?;
            if name.contains('/') || name.contains("..") {
                return Err(Error::invalid(format!("manifest names {name:?}")));
            }
            if hex::encode(Sha256::digest(read(name)?)) != hash {
                return Err(Error::invalid(format!(
                    "{name} was changed after it was signed"
                )));
            }
            checked.push(name.to_string());
        }
    }
    Ok(checked)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(reviewer: &str, at_ms: i64, opened: bool) -> DecisionRow {
        DecisionRow {
            item_id: format!("i{at_ms}"),
            stage: 0,
            reviewer: reviewer.into(),
            decision: "keep".into(),
            reason: String::new(),
            keep_until_ms: None,
            delegate_to: None,
            opened,
            bulk: false,
            at_ms,
        }
    }

    #[test]
    fn rubber_stamping_is_flagged_and_careful_review_is_not() {
        let mut ds: Vec<DecisionRow> = (0..12).map(|i| d("fast", i * 1000, false)).collect();
        ds.extend((0..12).map(|i| d("careful", i * 60_000, true)));
        ds.extend((0..3).map(|i| d("few", i, false)));
        let flags = rubber_stamps(&ds);
        let kinds: Vec<(&str, &str)> = flags
            .iter()
            .map(|f| (f.reviewer.as_str(), f.kind))
            .collect();
        assert_eq!(kinds, [("fast", "never_opened"), ("fast", "in_seconds")]);
        assert!(flags[0].detail.starts_with("12 of 12"));
    }

    #[test]
    fn a_signed_report_verifies_and_a_changed_one_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let (key, _) = SigningKeyPair::load_or_create(&dir.path().join("k")).unwrap();
        let r = Report {
            campaign: "c1".into(),
            name: "q".into(),
            kind: "campaign".into(),
            owner: "carol".into(),
            state: "closed".into(),
            started: "x".into(),
            ends: "y".into(),
            ended: None,
            signed_off_by: None,
            as_of: "z".into(),
            progress: Progress::default(),
            flags: vec![],
            rows: vec![],
        };
        let json = to_json(&r);
        let csv = to_csv(&r).unwrap();
        let (m, s) = sign(
            &r,
            &[
                ("report.json", json.as_bytes()),
                ("report.csv", csv.as_bytes()),
            ],
            &key,
        );
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        std::fs::write(out.join("report.json"), &json).unwrap();
        std::fs::write(out.join("report.csv"), &csv).unwrap();
        std::fs::write(out.join("manifest.txt"), &m).unwrap();
        std::fs::write(out.join("manifest.sig"), &s).unwrap();
        assert_eq!(
            verify(&out, &key.public()).unwrap(),
            ["report.json", "report.csv"]
        );
        std::fs::write(out.join("report.csv"), csv.replace("item", "ITEM")).unwrap();
        assert!(
            verify(&out, &key.public())
                .unwrap_err()
                .to_string()
                .contains("report.csv was changed")
        );
        let (other, _) = SigningKeyPair::load_or_create(&dir.path().join("k2")).unwrap();
        assert!(
            verify(&out, &other.public())
                .unwrap_err()
                .to_string()
                .contains("signature")
        );
    }
}
