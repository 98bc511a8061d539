//! Targets: the SSH hosts and internal web apps behind Gatehouse, with labels that roles select
//! on and, for SSH, the pinned host key.

use crate::actor::Actor;
use crate::error::{Error, Result};
use crate::ids;
use crate::ledger::audit::{self, NewEvent};
use crate::ledger::store::Tx;
use serde::Serialize;
use serde_json::{Map, Value};
use sqlx::AnyConnection;
use sqlx::Row;
use sqlx::any::AnyRow;

/// How a target is reached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    #[default]
    Ssh,
    Http,
}

impl Kind {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Ssh => "ssh",
            Kind::Http => "http",
        }
    }

    /// Parses `ssh` or `http`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "ssh" => Ok(Kind::Ssh),
            "http" => Ok(Kind::Http),
            other => Err(Error::invalid(format!(
                "target kind {other:?}: use \"ssh\" or \"http\""
            ))),
        }
    }
}

/// How the app gateway presents the identity to an app (`http` targets only). Each header name
/// replaces the default `X-Gatehouse-User` / `-Email` / `-Groups` (Grafana's auth proxy reads
/// `X-WEBAUTH-USER`, for example); the client's copies of every one of them are dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_header: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_header: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups_header: Option<String>,
    /// More headers the app trusts (e.g. Grafana's `X-WEBAUTH-ROLE`): the client's copies are
    /// dropped, and Gatehouse sets none of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub strip_headers: Vec<String>,
    /// The app's public host instead of `NAME.` + the apps domain (`grafana.corp.example`): it
    /// must resolve to the app listener, and the listener's certificate must name it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// An `https` upstream is verified against the CA certificates (PEM) in this file, read by
    /// the gateway, instead of the outbound roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_ca_file: Option<String>,
    /// An `https` upstream must present exactly the certificate with this SHA-256 (64 hex
    /// digits, colons allowed), instead of any chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_pin_sha256: Option<String>,
}

/// A public host name: lower-case DNS labels (letters, digits, '-', not at either end), at
/// least two, at most 253 characters; never an IP address.
pub fn validate_host(host: &str) -> Result<()> {
    let labels: Vec<&str> = host.split('.').collect();
    let ok = host.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
        && !labels
            .last()
            .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "app host {host:?}: use a lower-case DNS name such as grafana.corp.example (no port, no IP address)"
        )))
    }
}

/// 64 hex digits (colons allowed, as `openssl x509 -fingerprint -sha256` prints them) as the
/// 32 bytes of a SHA-256.
pub fn parse_sha256(text: &str) -> Result<[u8; 32]> {
    let digits: String = text.trim().chars().filter(|c| *c != ':').collect();
    hex::decode(&digits)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| {
            Error::invalid(format!(
                "upstream_pin_sha256 {text:?}: use the 64 hex digits of the certificate's SHA-256"
            ))
        })
}

impl AppSettings {
    /// Header names must be tokens, and none a header Gatehouse owns for another purpose.
    pub fn validate(&self) -> Result<()> {
        for name in [&self.user_header, &self.email_header, &self.groups_header]
            .into_iter()
            .flatten()
            .chain(self.strip_headers.iter())
        {
            let lower = name.to_ascii_lowercase();
            let token = !name.is_empty()
                && name.len() <= 64
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'));
            let reserved = [
                "host",
                "cookie",
                "authorization",
                "connection",
                "upgrade",
                "content-length",
                "transfer-encoding",
                "x-gatehouse-assertion",
            ]
            .contains(&lower.as_str())
                || lower.starts_with("x-forwarded-")
                || lower.starts_with("sec-");
            if !token || reserved {
                return Err(Error::invalid(format!(
                    "app header {name:?}: use letters, digits and '-', and not a header the gateway sets itself"
                )));
            }
        }
        if let Some(host) = &self.host {
            validate_host(host)?;
        }
        if let Some(pin) = &self.upstream_pin_sha256 {
            parse_sha256(pin)?;
        }
        if self.upstream_pin_sha256.is_some() && self.upstream_ca_file.is_some() {
            return Err(Error::invalid(
                "an app trusts its upstream by upstream_ca_file or by upstream_pin_sha256, not both",
            ));
        }
        if let Some(file) = &self.upstream_ca_file
            && (file.is_empty() || !std::path::Path::new(file).is_absolute())
        {
            return Err(Error::invalid(format!(
                "upstream_ca_file {file:?}: use an absolute path"
            )));
        }
        Ok(())
    }
}

/// A stored target.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Target {
    pub id: String,
    pub name: String,
    pub kind: Kind,
    pub address: String,
    pub labels: Map<String, Value>,
    pub host_key: Option<String>,
    pub description: String,
    /// Who owns it (`group:NAME` or a username): the `target_owner` approver set.
    pub owner: Option<String>,
    /// `apply` when managed by `gatehouse apply`, else `api`.
    pub source: String,
    /// App gateway settings (`http` targets).
    pub app: AppSettings,
}

/// What it takes to create (or, by name, replace) a target.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewTarget {
    pub name: String,
    pub kind: Kind,
    pub address: String,
    pub labels: Map<String, Value>,
    pub host_key: Option<String>,
    pub description: String,
    pub owner: Option<String>,
    /// Empty means `api`.
    pub source: String,
    pub app: AppSettings,
}

/// Target names appear in `ssh LOGIN@TARGET@gatehouse`: the username rules apply.
pub fn validate_name(name: &str) -> Result<()> {
    crate::identity::identities::validate_username(name).map_err(|_| {
        Error::invalid(format!(
            "target name {name:?}: use 1-64 lower-case letters, digits, '.', '_' or '-'"
        ))
    })
}

fn from_row(row: &AnyRow) -> Result<Target> {
    let labels: String = row.try_get(4)?;
    Ok(Target {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        kind: Kind::parse(&row.try_get::<String, _>(2)?)?,
        address: row.try_get(3)?,
        labels: serde_json::from_str(&labels)
            .map_err(|e| Error::Storage(format!("target labels are not a JSON object: {e}")))?,
        host_key: row.try_get(5)?,
        description: row.try_get(6)?,
        owner: row.try_get(7)?,
        source: row.try_get(8)?,
        app: serde_json::from_str(&row.try_get::<String, _>(9)?)
            .map_err(|e| Error::Storage(format!("target app settings: {e}")))?,
    })
}

const SELECT: &str = "SELECT id, name, kind, address, labels, host_key, description, owner, \
                      source, app FROM targets";

fn app_json(app: &AppSettings) -> String {
    serde_json::to_string(app).unwrap_or_else(|_| "{}".into())
}

fn check(new: &NewTarget) -> Result<()> {
    validate_name(&new.name)?;
    if new.address.trim().is_empty() {
        return Err(Error::invalid(format!(
            "target {}: address is empty",
            new.name
        )));
    }
    if let Some(k) = &new.host_key {
        crate::identity::ssh_keys::parse(k)
            .map_err(|e| Error::invalid(format!("target {} host_key: {e}", new.name)))?;
    }
    for (k, v) in &new.labels {
        if !v.is_string() {
            return Err(Error::invalid(format!(
                "target {} label {k}: values are strings",
                new.name
            )));
        }
    }
    if let Some(o) = &new.owner {
        crate::access::assignments::Subject::parse(o)
            .map_err(|e| Error::invalid(format!("target {} owner: {e}", new.name)))?;
    }
    if new.app != AppSettings::default() && new.kind != Kind::Http {
        return Err(Error::invalid(format!(
            "target {}: app settings are for kind \"http\" targets",
            new.name
        )));
    }
    new.app
        .validate()
        .map_err(|e| Error::invalid(format!("target {}: {e}", new.name)))?;
    // A pin or CA file on a plain-HTTP app would protect nothing while looking as if it did.
    if (new.app.upstream_pin_sha256.is_some() || new.app.upstream_ca_file.is_some())
        && !new.address.to_ascii_lowercase().starts_with("https://")
    {
        return Err(Error::invalid(format!(
            "target {}: upstream_pin_sha256 and upstream_ca_file are for an https:// address",
            new.name
        )));
    }
    Ok(())
}

/// Creates a target; audited as `target.create`.
pub async fn create(tx: &mut Tx, actor: &Actor, now_ms: i64, new: NewTarget) -> Result<Target> {
    check(&new)?;
    let target = Target {
        id: ids::new_id(),
        name: new.name,
        kind: new.kind,
        address: new.address,
        labels: new.labels,
        host_key: new.host_key,
        description: new.description,
        owner: new.owner,
        source: if new.source.is_empty() {
            "api".into()
        } else {
            new.source
        },
        app: new.app,
    };
    sqlx::query(
        "INSERT INTO targets (id, name, kind, address, labels, host_key, description, owner, \
         source, created_at, updated_at, app) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11)",
    )
    .bind(target.id.as_str())
    .bind(target.name.as_str())
    .bind(target.kind.as_str())
    .bind(target.address.as_str())
    .bind(Value::Object(target.labels.clone()).to_string())
    .bind(target.host_key.as_deref())
    .bind(target.description.as_str())
    .bind(target.owner.as_deref())
    .bind(target.source.as_str())
    .bind(now_ms)
    .bind(app_json(&target.app))
    .execute(&mut **tx)
    .await
    .map_err(|e| Error::from(e).on_conflict(|| format!("target {} already exists", target.name)))?;
    audit::append(
        tx,
        now_ms,
        NewEvent::new(
            actor.to_string(),
            "target.create",
            format!("target:{}", target.name),
        )
        .details(serde_json::json!({
            "kind": target.kind,
            "address": target.address,
            "labels": target.labels,
            "host_key_pinned": target.host_key.is_some(),
        })),
    )
    .await?;
    Ok(target)
}

/// Replaces a target's settings (found by `new.name`); audited as `target.update`.
pub async fn update(tx: &mut Tx, actor: &Actor, now_ms: i64, new: NewTarget) -> Result<Target> {
    check(&new)?;
    let before = by_name(tx, &new.name)
        .await?
        .ok_or_else(|| Error::NotFound(format!("target {}", new.name)))?;
    sqlx::query(
        "UPDATE targets SET kind = $1, address = $2, labels = $3, host_key = $4, description = $5, \
         owner = $6, updated_at = $7, app = $9 WHERE id = $8",
    )
    .bind(new.kind.as_str())
    .bind(new.address.as_str())
    .bind(Value::Object(new.labels.clone()).to_string())
    .bind(new.host_key.as_deref())
    .bind(new.description.as_str())
    .bind(new.owner.as_deref())
    .bind(now_ms)
    .bind(before.id.as_str())
    .bind(app_json(&new.app))
    .execute(&mut **tx)
    .await?;
    audit::append(
        tx,
        now_ms,
        NewEvent::new(
            actor.to_string(),
            "target.update",
            format!("target:{}", new.name),
        )
        .details(serde_json::json!({
            "kind": new.kind,
            "address": new.address,
            "labels": new.labels,
            "owner": new.owner,
            "host_key_pinned": new.host_key.is_some(),
            "app": new.app,
        })),
    )
    .await?;
    Ok(Target {
        kind: new.kind,
        address: new.address,
        labels: new.labels,
        host_key: new.host_key,
        description: new.description,
        owner: new.owner,
        app: new.app,
        ..before
    })
}

/// Deletes a target; audited as `target.delete`.
pub async fn delete(tx: &mut Tx, actor: &Actor, now_ms: i64, name: &str) -> Result<()> {
    let done = sqlx::query("DELETE FROM targets WHERE name = $1")
        .bind(name)
        .execute(&mut **tx)
        .await?;
    if done.rows_affected() == 0 {
        return Err(Error::NotFound(format!("target {name}")));
    }
    audit::append(
        tx,
        now_ms,
        NewEvent::new(actor.to_string(), "target.delete", format!("target:{name}")),
    )
    .await?;
    Ok(())
}

/// Trust on first use: records the host key a gateway saw on its first connection to a target
/// that had none pinned, audited as `ssh.host_key_learned`. Returns false (and changes nothing)
/// when a key was pinned meanwhile: the caller must then compare against that one.
pub async fn learn_host_key(tx: &mut Tx, now_ms: i64, name: &str, key: &str) -> Result<bool> {
    let done = sqlx::query("UPDATE targets SET host_key = $2 WHERE name = $1 AND host_key IS NULL")
        .bind(name)
        .bind(key)
        .execute(&mut **tx)
        .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    audit::append(
        tx,
        now_ms,
        NewEvent::new("system", "ssh.host_key_learned", format!("target:{name}"))
            .details(serde_json::json!({ "host_key": key })),
    )
    .await?;
    Ok(true)
}

/// Looks a target up by name.
pub async fn by_name(conn: &mut AnyConnection, name: &str) -> Result<Option<Target>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} WHERE name = $1")))
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Every target, by name.
pub async fn list(conn: &mut AnyConnection) -> Result<Vec<Target>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} ORDER BY name")))
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(from_row).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(f: impl FnOnce(&mut AppSettings)) -> Result<()> {
        let mut a = AppSettings::default();
        f(&mut a);
        a.validate()
    }

    #[test]
    fn app_hosts_pins_and_ca_files_are_checked() {
        assert!(app(|a| a.host = Some("grafana.corp.example".into())).is_ok());
        for bad in [
            "grafana",
            "Grafana.corp.example",
            "grafana.corp.example:443",
            "127.0.0.1",
            "-x.corp.example",
            "a..example",
            "",
        ] {
            assert!(app(|a| a.host = Some(bad.into())).is_err(), "{bad}");
        }
        let pin = "AB:".repeat(31) + "AB";
        assert!(app(|a| a.upstream_pin_sha256 = Some(pin.clone())).is_ok());
        assert!(app(|a| a.upstream_pin_sha256 = Some("ab".repeat(31))).is_err());
        assert!(app(|a| a.upstream_ca_file = Some("/etc/ssl/ca.pem".into())).is_ok());
        assert!(app(|a| a.upstream_ca_file = Some("ca.pem".into())).is_err());
        let both = app(|a| {
            a.upstream_ca_file = Some("/etc/ssl/ca.pem".into());
            a.upstream_pin_sha256 = Some(pin);
        })
        .unwrap_err()
        .to_string();
        assert!(both.contains("not both"), "{both}");
    }

    #[test]
    fn security_an_upstream_pin_or_ca_file_needs_an_https_address() {
        let new = |address: &str| NewTarget {
            name: "vault".into(),
            kind: Kind::Http,
            address: address.into(),
            app: AppSettings {
                upstream_pin_sha256: Some("ab".repeat(32)),
                ..Default::default()
            },
            ..Default::default()
        };
        let e = check(&new("http://10.0.0.5:8200")).unwrap_err().to_string();
        assert!(e.contains("https://"), "{e}");
        assert!(check(&new("https://10.0.0.5:8200")).is_ok());
    }
}
