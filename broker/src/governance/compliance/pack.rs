//! An evidence pack: the framework's datasets as CSV and JSON, the controls evaluated, a
//! one-file HTML summary, the audit checkpoint signed at generation, and `manifest.json`
//! (every file's SHA-256, its query, parameters and row count, the period, the time, the
//! checkpoint) signed with the Gatehouse key in `manifest.sig`. [`verify`] checks a pack offline
//! with only the public key.

use super::controls::{self, Figures, Framework, Result_};
use super::gather::{self, Datasets, Options, Period};
use crate::error::{Error, Result};
use crate::keys::{PublicKey, SigningKeyPair};
use crate::ledger::audit::{checkpoint, verify::verify as verify_chain};
use crate::ledger::store::{Backend, Store};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::path::Path;

/// The format line of a manifest.
pub const FORMAT: &str = "gatehouse-evidence-pack v1";

/// One file of the pack in the manifest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FileEntry {
    pub name: String,
    pub sha256: String,
    pub bytes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<serde_json::Value>,
}

/// The signed manifest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: String,
    pub framework: String,
    pub period_from: String,
    pub period_to: String,
    pub generated_at: String,
    pub audit_checkpoint_size: i64,
    pub audit_checkpoint_hash: String,
    pub signed_by: String,
    pub files: Vec<FileEntry>,
}

/// A generated pack, in memory.
#[derive(Debug, Clone)]
pub struct Pack {
    pub framework: Framework,
    pub period: Period,
    pub generated_ms: i64,
    pub results: Vec<Result_>,
    pub figures: Figures,
    /// (file name, bytes), manifest and signature last.
    pub files: Vec<(String, Vec<u8>)>,
}

/// Verifies the whole chain, then reads every dataset in one consistent snapshot whose audit
/// head — the first thing read in it — is signed as the pack's checkpoint (stored like any
/// other), so the checkpoint names exactly the log the datasets were read from.
pub async fn gather_all(
    store: &Store,
    key: &SigningKeyPair,
    o: &Options,
) -> Result<(Datasets, Option<checkpoint::Checkpoint>)> {
    let chain = verify_chain(store, Some(&key.public()), None).await?;
    let mut tx = store.pool().begin().await?;
    if store.backend() == Backend::Postgres {
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await?;
    }
    let (size, root) = crate::ledger::audit::head(&mut tx).await?;
    let ds = gather::gather(&mut tx, o, &chain).await?;
    tx.rollback().await?;
    if size == 0 {
        return Ok((ds, None));
    }
    let cp = checkpoint::Checkpoint::sign(size, &root, o.now_ms, key);
    sqlx::query(
        "INSERT INTO audit_checkpoints (size, root_hash, created_at, key_id, signature) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (size) DO NOTHING",
    )
    .bind(cp.size)
    .bind(cp.root_hash.as_str())
    .bind(cp.time_ms)
    .bind(cp.key.to_string())
    .bind(base64::engine::general_purpose::STANDARD.encode(&cp.signature))
    .execute(store.pool())
    .await?;
    Ok((ds, Some(cp)))
}

/// Builds the pack of `framework` from gathered datasets.
pub fn build(
    framework: Framework,
    o: &Options,
    ds: &Datasets,
    cp: Option<&checkpoint::Checkpoint>,
    key: &SigningKeyPair,
) -> Result<Pack> {
    let results = controls::evaluate(framework, ds);
    let figures = controls::figures(ds);
    let mut names: BTreeSet<&str> = BTreeSet::new();
    for c in controls::controls(framework) {
        names.extend(c.evidence.iter().copied());
    }
    names.extend(["reconciliation", "audit_integrity"]);
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let mut entries = Vec::new();
    let mut add = |name: String,
                   bytes: Vec<u8>,
                   d: Option<&super::dataset::Dataset>,
                   files: &mut Vec<(String, Vec<u8>)>| {
        entries.push(FileEntry {
            sha256: hex::encode(Sha256::digest(&bytes)),
            bytes: bytes.len() as u64,
            rows: d.map(|d| d.rows.len()),
            query: d.map(|d| d.query.clone()),
            parameters: d.map(|d| serde_json::Value::Object(d.params.iter().cloned().collect())),
            name: name.clone(),
        });
        files.push((name, bytes));
    };
    for n in names {
        if let Some(d) = ds.get(n) {
            add(
                format!("{n}.csv"),
                d.to_csv()?.into_bytes(),
                Some(d),
                &mut files,
            );
            add(
                format!("{n}.json"),
                d.to_json().into_bytes(),
                Some(d),
                &mut files,
            );
        }
    }
    let controls_json = serde_json::to_string_pretty(&serde_json::json!({
        "framework": framework.as_str(),
        "title": framework.title(),
        "figures": figures,
        "controls": results,
    }))
    .unwrap_or_default()
        + "\n";
    add(
        "controls.json".into(),
        controls_json.into_bytes(),
        None,
        &mut files,
    );
    let html = super::html::summary(framework, o, &results, &figures, ds);
    add("summary.html".into(), html.into_bytes(), None, &mut files);
    if let Some(cp) = cp {
        add(
            "checkpoint.txt".into(),
            cp.to_text().into_bytes(),
            None,
            &mut files,
        );
    }
    let fmt = crate::clock::format_ms;
    let manifest = Manifest {
        format: FORMAT.into(),
        framework: framework.as_str().into(),
        period_from: fmt(o.period.from_ms),
        period_to: fmt(o.period.to_ms),
        generated_at: fmt(o.now_ms),
        audit_checkpoint_size: cp.map_or(0, |c| c.size),
        audit_checkpoint_hash: cp.map_or(String::new(), |c| c.root_hash.clone()),
        signed_by: key.public().to_string(),
        files: entries,
    };
    let m = serde_json::to_string_pretty(&manifest).unwrap_or_default() + "\n";
    let sig = base64::engine::general_purpose::STANDARD.encode(key.sign(m.as_bytes())) + "\n";
    files.push(("manifest.json".into(), m.into_bytes()));
    files.push(("manifest.sig".into(), sig.into_bytes()));
    Ok(Pack {
        framework,
        period: o.period,
        generated_ms: o.now_ms,
        results,
        figures,
        files,
    })
}

/// Generates the pack of one framework.
pub async fn generate(
    store: &Store,
    key: &SigningKeyPair,
    framework: Framework,
    o: &Options,
) -> Result<Pack> {
    let (ds, cp) = gather_all(store, key, o).await?;
    build(framework, o, &ds, cp.as_ref(), key)
}

/// Writes the pack's files into `dir` (created; it must be empty if it exists).
pub fn write(pack: &Pack, dir: &Path) -> Result<()> {
    let io = |e: std::io::Error| Error::invalid(format!("{}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(io)?;
    if std::fs::read_dir(dir).map_err(io)?.next().is_some() {
        return Err(Error::invalid(format!(
            "{} is not empty: write a pack into a new or empty directory",
            dir.display()
        )));
    }
    for (name, bytes) in &pack.files {
        std::fs::write(dir.join(name), bytes).map_err(io)?;
    }
    Ok(())
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub framework: String,
    pub period: (String, String),
    pub files: usize,
    pub checkpoint_size: i64,
}

/// Checks a pack directory offline: `manifest.json` is signed by `trusted`, every file it
/// lists is there with its SHA-256, no other file is there, and the checkpoint is signed by
/// the same key and names the manifest's size and hash.
pub fn verify(dir: &Path, trusted: &PublicKey) -> Result<Verified> {
    let read =
        |n: &str| std::fs::read(dir.join(n)).map_err(|e| Error::invalid(format!("{n}: {e}")));
    let m = read("manifest.json")?;
    let sig = String::from_utf8(read("manifest.sig")?)
        .map_err(|_| Error::invalid("manifest.sig is not text"))?;
    let sig = base64::engine::general_purpose::STANDARD
        .decode(sig.trim())
        .map_err(|_| Error::invalid("manifest.sig is not base64"))?;
    if !trusted.verify(&m, &sig) {
        return Err(Error::invalid(
            "manifest.json's signature does not verify with the trusted key: it was changed, or signed by another key",
        ));
    }
    let manifest: Manifest =
        serde_json::from_slice(&m).map_err(|e| Error::invalid(format!("manifest.json: {e}")))?;
    if manifest.format != FORMAT {
        return Err(Error::invalid(format!(
            "manifest.json is {:?}, not a {FORMAT}",
            manifest.format
        )));
    }
    let mut listed = BTreeSet::from(["manifest.json".to_string(), "manifest.sig".to_string()]);
    for f in &manifest.files {
        if f.name.contains('/') || f.name.contains('\\') || f.name.starts_with('.') {
            return Err(Error::invalid(format!("manifest names {:?}", f.name)));
        }
        let bytes = read(&f.name).map_err(|_| {
            Error::invalid(format!("{} is listed in the manifest but missing", f.name))
        })?;
        if hex::encode(Sha256::digest(&bytes)) != f.sha256 {
            return Err(Error::invalid(format!(
                "{} was changed after the pack was signed",
                f.name
            )));
        }
        listed.insert(f.name.clone());
    }
    let entries =
        std::fs::read_dir(dir).map_err(|e| Error::invalid(format!("{}: {e}", dir.display())))?;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if !listed.contains(&name) {
            return Err(Error::invalid(format!(
                "{name} is not in the signed manifest"
            )));
        }
    }
    if listed.contains("checkpoint.txt") {
        let text = String::from_utf8(read("checkpoint.txt")?)
            .map_err(|_| Error::invalid("checkpoint.txt is not text"))?;
        let cp = checkpoint::Checkpoint::parse_text(&text)?;
        if !cp.signed_by(trusted)
            || cp.size != manifest.audit_checkpoint_size
            || cp.root_hash != manifest.audit_checkpoint_hash
        {
            return Err(Error::invalid(
                "checkpoint.txt is not the audit checkpoint the manifest names, signed by the trusted key",
            ));
        }
    }
    Ok(Verified {
        framework: manifest.framework,
        period: (manifest.period_from, manifest.period_to),
        files: manifest.files.len(),
        checkpoint_size: manifest.audit_checkpoint_size,
    })
}
