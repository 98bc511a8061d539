//! Settings: the TOML file, overridden by environment and flags, resolved into one struct that
//! is passed down explicitly. Errors in the file name the file, line and column.

use crate::cli::{GlobalArgs, LogFormat, ServeArgs};
use anyhow::Context;
use gatehouse_broker::secrets::Secret;
use serde::{Deserialize, Deserializer};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The configuration file's shape. Unknown keys are errors, so typos do not pass silently.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub log_format: Option<LogFormat>,
    pub log_level: Option<String>,
    #[serde(default)]
    pub web: WebConfig,
    #[serde(default)]
    pub audit: AuditConfig,
    #[serde(default)]
    pub notifications: NotificationsConfig,
    #[serde(default)]
    pub ssh: SshConfig,
    #[serde(default)]
    pub hr: HrConfig,
    #[serde(default)]
    pub scim: ScimConfig,
    #[serde(default)]
    pub apps: AppsConfig,
    /// Web sign-in against an LDAP / Active Directory server.
    pub ldap: Option<LdapConfig>,
    /// Apps Gatehouse provisions over SCIM: `[[push]]` tables.
    #[serde(default)]
    pub push: Vec<PushApp>,
    /// Single sign-on through an OpenID provider.
    pub oidc: Option<OidcConfig>,
    #[serde(default)]
    pub tls: TlsConfig,
    #[serde(default)]
    pub retention: RetentionConfig,
    #[serde(default)]
    pub compliance: ComplianceConfig,
    /// Evidence packs `serve` generates on a schedule: `[[reports]]` tables.
    #[serde(default)]
    pub reports: Vec<ReportSchedule>,
}

/// `[retention]`: how long recordings and the audit log are kept.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Recordings that ended longer ago are deleted by `serve` (their signed manifests stay),
    /// each deletion audited [default: kept for ever]. E.g. "1y", "90days".
    #[serde(default, deserialize_with = "duration")]
    pub recordings: Option<Duration>,
    /// How long the audit log must be kept (reported against; the log is never rewritten or
    /// deleted) [default: not set]. E.g. "6y".
    #[serde(default, deserialize_with = "duration")]
    pub audit: Option<Duration>,
}

/// `[compliance]`: what evidence packs measure against.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComplianceConfig {
    /// A leaver must be cut off (access removed, live sessions ended) within this of the HR
    /// event [default: 1h].
    #[serde(default, deserialize_with = "duration")]
    pub termination_sla: Option<Duration>,
}

/// `[[reports]]`: an evidence pack `serve` generates on a schedule, announced through the
/// notification outbox.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportSchedule {
    /// soc2, iso27001, sox or hipaa.
    pub framework: String,
    /// `monthly`, `quarterly`, or a cron expression (UTC).
    pub schedule: String,
    /// Each run writes `FRAMEWORK-FROM-TO` under this directory.
    pub output: PathBuf,
}

/// `[tls]`: outbound HTTPS (webhooks, SCIM push, OIDC, `apply --server`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificates (one or more) trusted besides the built-in roots: a private CA.
    pub extra_ca_file: Option<PathBuf>,
}

/// `[ldap]`: people without a local password sign in to the web UI with their directory
/// password; their mapped groups follow the directory at each sign-in.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LdapConfig {
    /// `ldap://host:389` (with `starttls = true` in production) or `ldaps://host:636`.
    pub url: String,
    #[serde(default)]
    pub starttls: bool,
    /// A service account that looks users up [default: anonymous search].
    pub bind_dn: Option<String>,
    /// A file holding the service account's password.
    pub bind_password_file: Option<PathBuf>,
    /// Where users are searched, e.g. `ou=people,dc=example,dc=org`.
    pub base_dn: String,
    /// `{username}` is replaced by the escaped username
    /// [default: `(&(objectClass=person)(uid={username}))`; Active Directory: `(sAMAccountName={username})`].
    pub user_filter: Option<String>,
    /// Where groups are searched (group sync also reads `memberOf`).
    pub group_base_dn: Option<String>,
    /// `{dn}` is replaced by the user's escaped DN [default: `(&(objectClass=groupOfNames)(member={dn}))`].
    pub group_filter: Option<String>,
    /// Directory group (`cn` or DN) → Gatehouse group, e.g. `{ "dbas" = "db-admins" }`.
    #[serde(default)]
    pub group_mapping: std::collections::BTreeMap<String, String>,
    /// Create identities at their first sign-in [default: true].
    pub create_identities: Option<bool>,
    /// Connection timeout [default: 5s].
    #[serde(default, deserialize_with = "duration")]
    pub timeout: Option<Duration>,
    /// How often `serve` reads the whole directory: people removed or disabled there become
    /// leavers, group memberships follow [default: off; sign-in still follows groups].
    #[serde(default, deserialize_with = "duration")]
    pub sync_interval: Option<Duration>,
    /// The attribute holding the username [default: uid; Active Directory: sAMAccountName].
    pub username_attribute: Option<String>,
    /// Users matching this filter are disabled in the directory, e.g. `(pwdAccountLockedTime=*)`
    /// [default: none].
    pub disabled_filter: Option<String>,
}

/// `[oidc]`: a "Sign in with SSO" button on the sign-in page, through an OpenID provider
/// (authorization code + PKCE). Register Gatehouse at the provider with the redirect URI
/// `https://HOST:PORT/login/oidc/callback`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The provider's issuer URL (its discovery document is at
    /// `ISSUER/.well-known/openid-configuration`).
    pub issuer: String,
    pub client_id: String,
    /// A file holding the client secret.
    pub client_secret_file: PathBuf,
    /// Scopes besides `openid` [default: ["email", "profile"]].
    pub scopes: Option<Vec<String>>,
    /// The claim naming the username of a new identity [default: preferred_username].
    pub username_claim: Option<String>,
    /// The claim listing groups [default: groups].
    pub groups_claim: Option<String>,
    /// Provider group → Gatehouse group.
    #[serde(default)]
    pub group_mapping: std::collections::BTreeMap<String, String>,
    /// Create identities at their first sign-in [default: true].
    pub create_identities: Option<bool>,
    /// The sign-in page's button [default: "Sign in with SSO"].
    pub label: Option<String>,
    /// Where an identity must come from (its source: `oidc`, `scim`, `hr`, `ldap`, ...) to be
    /// linked by a verified e-mail at its first single sign-on [default: ["oidc"]]. Add `scim`
    /// when your SCIM client is this same identity provider. Local accounts and identities
    /// holding a privilege are never linked by e-mail: `gatehouse mfa link-sso` links them.
    pub link_by_email: Option<Vec<String>>,
}

/// An app (a SaaS tool) whose users Gatehouse provisions through the app's SCIM API: the active
/// holders of `roles` get a user there (and a group per role); the others are deactivated.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushApp {
    /// A short name, e.g. `jira` (audited as `app:NAME`).
    pub name: String,
    /// The app's SCIM base URL, e.g. `https://jira.example/scim/v2`.
    pub url: String,
    /// A file holding the app's SCIM bearer token (read at each run; never logged).
    pub token_file: PathBuf,
    /// Roles whose holders the app gets, e.g. `["jira-users"]`.
    pub roles: Vec<String>,
    /// How often `serve` reconciles the app [default: 5m]; leavers are pushed at once.
    #[serde(default, deserialize_with = "duration")]
    pub interval: Option<Duration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HrConfig {
    /// A folder `serve` watches for HR files (.csv, .json) to import; imported files move to
    /// `processed/` beside a `.report.txt`.
    pub drop_folder: Option<PathBuf>,
    /// How often the folder is looked at [default: 30s].
    #[serde(default, deserialize_with = "duration")]
    pub poll_interval: Option<Duration>,
}

/// `[apps]`: the app gateway in front of internal web apps (targets of kind `http`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppsConfig {
    /// Where the app gateway listens, or `off` [default: 127.0.0.1:8443].
    pub listen: Option<String>,
    /// App `NAME` is served at `NAME.DOMAIN` [default: apps.localhost, which browsers resolve
    /// to loopback].
    pub domain: Option<String>,
    /// The port browsers reach the app gateway at, when something in front of it listens on
    /// another [default: the listener's].
    pub public_port: Option<u16>,
    /// PEM certificate chain and key for `*.DOMAIN` and `DOMAIN`; generated in DATA_DIR/keys
    /// when neither is set.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Largest request body passed to an app, in MiB [default: 64].
    pub max_body_mib: Option<u64>,
    /// Longest wait for an app's response head [default: 60s].
    #[serde(default, deserialize_with = "duration")]
    pub upstream_timeout: Option<Duration>,
}

/// `[scim]`: the SCIM 2.0 service provider at `/scim/v2`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScimConfig {
    /// Whether a password a SCIM client sends becomes the identity's web sign-in password
    /// [default: false: passwords are dropped unread]. Never for an identity that holds a
    /// privilege (admin, reviewer): such a request is refused (403) and audited.
    #[serde(default)]
    pub passwords: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshConfig {
    /// Where the SSH gateway listens [default: 127.0.0.1:2222].
    pub listen: Option<SocketAddr>,
    /// The gateway's host key (OpenSSH format) [default: DATA_DIR/keys/ssh_host_ed25519_key].
    pub host_key: Option<PathBuf>,
    /// The user CA that signs session certificates [default: DATA_DIR/keys/ssh_user_ca].
    pub user_ca_key: Option<PathBuf>,
    /// The CA that signs engineers' own certificates [default: DATA_DIR/keys/ssh_client_ca].
    pub client_ca_key: Option<PathBuf>,
    /// Where recordings are written [default: DATA_DIR/recordings].
    pub recordings_dir: Option<PathBuf>,
    /// Refuse or end a session whose recording cannot be written [default: true].
    pub strict_recording: Option<bool>,
    /// How long a client has to finish key exchange and authentication [default: 30s].
    #[serde(default, deserialize_with = "duration")]
    pub login_timeout: Option<Duration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationsConfig {
    /// Where request notifications are POSTed (JSON with a Slack-compatible `text`).
    pub webhook_url: Option<String>,
    /// Where break-glass alerts go [default: webhook_url].
    pub alert_webhook_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    pub listen: Option<SocketAddr>,
    /// The URL users reach the web UI at, for links Gatehouse prints.
    pub public_url: Option<String>,
    /// `auto` (default) or `off` (plain HTTP, loopback only).
    pub tls: Option<crate::cli::WebTls>,
    /// PEM certificate chain and key; generated in DATA_DIR/keys when neither is set.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    #[serde(default, deserialize_with = "duration")]
    pub checkpoint_interval: Option<Duration>,
    /// PKCS#8 PEM Ed25519 key; created there on first start if missing.
    pub signing_key: Option<PathBuf>,
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let s = String::deserialize(d)?;
    let v = humantime::parse_duration(&s).map_err(|e| {
        serde::de::Error::custom(format!("{e} (write e.g. \"30s\", \"5m\", \"1h\")"))
    })?;
    if v.is_zero() {
        return Err(serde::de::Error::custom("must be longer than zero"));
    }
    Ok(Some(v))
}

/// Everything a command needs to know, resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    /// `None`: SQLite in the data directory. May hold a password: hidden in `Debug`.
    pub database_url: Option<Secret>,
    pub log_format: LogFormat,
    pub log_level: Option<String>,
    pub web_listen: SocketAddr,
    pub public_url: Option<String>,
    pub web_tls: crate::cli::WebTls,
    pub web_tls_cert: PathBuf,
    pub web_tls_key: PathBuf,
    pub checkpoint_interval: Duration,
    pub signing_key: PathBuf,
    /// Webhook for notifications (may embed a secret in its path: hidden in `Debug`).
    pub webhook_url: Option<Secret>,
    /// Webhook for break-glass alerts.
    pub alert_webhook_url: Option<Secret>,
    pub ssh_listen: SocketAddr,
    pub ssh_host_key: PathBuf,
    pub ssh_user_ca_key: PathBuf,
    pub ssh_client_ca_key: PathBuf,
    /// Seals second-factor seeds (AES-256-GCM); instances sharing a database share it.
    pub sealing_key: PathBuf,
    pub recordings_dir: PathBuf,
    pub strict_recording: bool,
    pub ssh_login_timeout: Duration,
    pub hr_drop_folder: Option<PathBuf>,
    pub hr_poll_interval: Duration,
    pub push: Vec<PushApp>,
    pub ldap: Option<LdapConfig>,
    pub oidc: Option<OidcConfig>,
    /// `[scim] passwords`.
    pub scim_passwords: bool,
    /// The app gateway's listener; `None` when it is off.
    pub app_listen: Option<SocketAddr>,
    pub apps_domain: String,
    pub apps_public_port: Option<u16>,
    pub apps_tls_cert: PathBuf,
    pub apps_tls_key: PathBuf,
    /// The Ed25519 key app assertions are signed with (published as a JWKS).
    pub app_assertion_key: PathBuf,
    pub apps_max_body: u64,
    pub apps_upstream_timeout: Duration,
    /// Trusted by outbound HTTPS besides the built-in roots.
    pub tls_extra_ca_file: Option<PathBuf>,
    /// `[retention] recordings`.
    pub retention_recordings: Option<Duration>,
    /// `[retention] audit`.
    pub retention_audit: Option<Duration>,
    /// `[compliance] termination_sla`.
    pub termination_sla: Duration,
    /// `[[reports]]`.
    pub reports: Vec<ReportSchedule>,
}

pub const DEFAULT_WEB_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_SSH_LISTEN: &str = "127.0.0.1:2222";
pub const DEFAULT_APP_LISTEN: &str = "127.0.0.1:8443";

/// An app listener setting: an address, or `off`.
fn app_listen(v: &str) -> anyhow::Result<Option<SocketAddr>> {
    if v.trim().eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    v.trim()
        .parse()
        .map(Some)
        .with_context(|| format!("app listen {v:?}: give ADDR:PORT or off"))
}

impl Settings {
    /// Merges flags/environment (already in `global`, `serve`) over the file over defaults.
    pub fn resolve(global: &GlobalArgs, serve: Option<&ServeArgs>) -> anyhow::Result<Self> {
        let (file, base) = match &global.config {
            Some(path) => (
                load_file(path)?,
                path.parent().map(Path::to_path_buf).unwrap_or_default(),
            ),
            None => (FileConfig::default(), PathBuf::new()),
        };
        // Relative paths in the file are relative to the file; on the command line, to the
        // working directory.
        let from_file = |p: PathBuf| if p.is_relative() { base.join(p) } else { p };
        let data_dir = global
            .data_dir
            .clone()
            .or(file.data_dir.map(from_file))
            .unwrap_or_else(|| PathBuf::from("gatehouse-data"));
        let signing_key = file
            .audit
            .signing_key
            .map(from_file)
            .unwrap_or_else(|| data_dir.join("keys").join("signing-key.pem"));
        let default_listen: SocketAddr = DEFAULT_WEB_LISTEN
            .parse()
            .context("default listen address")?;
        let default_ssh: SocketAddr = DEFAULT_SSH_LISTEN
            .parse()
            .context("default SSH listen address")?;
        let keys = data_dir.join("keys");
        let ssh = file.ssh;
        let ssh_host_key = ssh
            .host_key
            .map(from_file)
            .unwrap_or_else(|| keys.join("ssh_host_ed25519_key"));
        let ssh_user_ca_key = ssh
            .user_ca_key
            .map(from_file)
            .unwrap_or_else(|| keys.join("ssh_user_ca"));
        let ssh_client_ca_key = ssh
            .client_ca_key
            .map(from_file)
            .unwrap_or_else(|| keys.join("ssh_client_ca"));
        let recordings_dir = ssh
            .recordings_dir
            .map(from_file)
            .unwrap_or_else(|| data_dir.join("recordings"));
        let hr_drop_folder = file.hr.drop_folder.clone().map(from_file);
        let tls_extra_ca_file = global
            .tls_extra_ca_file
            .clone()
            .or(file.tls.extra_ca_file.map(from_file));
        let hr_poll_interval = file.hr.poll_interval.unwrap_or(Duration::from_secs(30));
        let push: Vec<PushApp> = file
            .push
            .iter()
            .cloned()
            .map(|mut a| {
                a.token_file = from_file(a.token_file);
                a
            })
            .collect();
        Ok(Self {
            database_url: global
                .database_url
                .clone()
                .or(file.database_url)
                .filter(|u| !u.is_empty())
                .map(Secret::new),
            log_format: global
                .log_format
                .or(file.log_format)
                .unwrap_or(LogFormat::Text),
            log_level: global.log_level.clone().or(file.log_level),
            web_listen: serve
                .and_then(|s| s.web_listen)
                .or(file.web.listen)
                .unwrap_or(default_listen),
            public_url: file.web.public_url.clone(),
            web_tls: serve
                .and_then(|s| s.web_tls)
                .or(file.web.tls)
                .unwrap_or(crate::cli::WebTls::Auto),
            web_tls_cert: file
                .web
                .tls_cert
                .clone()
                .map(from_file)
                .unwrap_or_else(|| keys.join("web-cert.pem")),
            web_tls_key: file
                .web
                .tls_key
                .clone()
                .map(from_file)
                .unwrap_or_else(|| keys.join("web-key.pem")),
            checkpoint_interval: file
                .audit
                .checkpoint_interval
                .unwrap_or(Duration::from_secs(60)),
            signing_key,
            data_dir,
            webhook_url: file.notifications.webhook_url.clone().map(Secret::new),
            alert_webhook_url: file
                .notifications
                .alert_webhook_url
                .or(file.notifications.webhook_url)
                .map(Secret::new),
            ssh_listen: serve
                .and_then(|s| s.ssh_listen)
                .or(ssh.listen)
                .unwrap_or(default_ssh),
            ssh_host_key,
            ssh_user_ca_key,
            ssh_client_ca_key,
            sealing_key: keys.join("secrets.key"),
            recordings_dir,
            strict_recording: ssh.strict_recording.unwrap_or(true),
            ssh_login_timeout: ssh.login_timeout.unwrap_or(Duration::from_secs(30)),
            hr_drop_folder,
            hr_poll_interval,
            push,
            ldap: file.ldap.clone().map(|mut l| {
                l.bind_password_file = l.bind_password_file.map(from_file);
                l
            }),
            oidc: file.oidc.clone().map(|mut o| {
                o.client_secret_file = from_file(o.client_secret_file);
                o
            }),
            scim_passwords: file.scim.passwords,
            app_listen: app_listen(
                serve
                    .and_then(|s| s.app_listen.as_deref())
                    .or(file.apps.listen.as_deref())
                    .unwrap_or(DEFAULT_APP_LISTEN),
            )?,
            apps_domain: {
                let d = file
                    .apps
                    .domain
                    .clone()
                    .unwrap_or_else(|| "apps.localhost".into())
                    .trim_matches('.')
                    .to_ascii_lowercase();
                if d.is_empty() || d.contains(['/', ':', ' ', '*']) {
                    anyhow::bail!("[apps] domain {d:?}: give a DNS name such as apps.example.com");
                }
                d
            },
            apps_public_port: file.apps.public_port,
            apps_tls_cert: file
                .apps
                .tls_cert
                .clone()
                .map(from_file)
                .unwrap_or_else(|| keys.join("apps-cert.pem")),
            apps_tls_key: file
                .apps
                .tls_key
                .clone()
                .map(from_file)
                .unwrap_or_else(|| keys.join("apps-key.pem")),
            app_assertion_key: keys.join("app-assertion-key.pem"),
            apps_max_body: match file.apps.max_body_mib {
                Some(0) => anyhow::bail!("[apps] max_body_mib must be at least 1"),
                Some(n) => n.saturating_mul(1024 * 1024),
                None => 64 * 1024 * 1024,
            },
            apps_upstream_timeout: file
                .apps
                .upstream_timeout
                .unwrap_or(Duration::from_secs(60)),
            tls_extra_ca_file,
            retention_recordings: file.retention.recordings,
            retention_audit: file.retention.audit,
            termination_sla: file
                .compliance
                .termination_sla
                .unwrap_or(Duration::from_secs(3600)),
            reports: {
                for r in &file.reports {
                    gatehouse_broker::governance::compliance::Framework::parse(&r.framework)
                        .map_err(|e| anyhow::anyhow!("[[reports]]: {e}"))?;
                    gatehouse_broker::governance::campaigns::spec::parse_schedule(&r.schedule)
                        .map_err(|e| anyhow::anyhow!("[[reports]]: {e}"))?;
                    if r.schedule.trim() == "once" {
                        anyhow::bail!(
                            "[[reports]] schedule \"once\": use monthly, quarterly or a cron expression (or `gatehouse report evidence` for one pack)"
                        );
                    }
                }
                file.reports
                    .iter()
                    .cloned()
                    .map(|mut r| {
                        r.output = from_file(r.output);
                        r
                    })
                    .collect()
            },
        })
    }

    /// Path of the embedded SQLite database.
    pub fn sqlite_path(&self) -> PathBuf {
        self.data_dir.join("gatehouse.db")
    }
}

/// Reads and parses the configuration file.
pub fn load_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    parse(&text).map_err(|(line, col, msg)| {
        anyhow::anyhow!("config file {}:{line}:{col}: {msg}", path.display())
    })
}

/// Parses configuration text; an error is (line, column, message), both 1-based.
pub fn parse(text: &str) -> Result<FileConfig, (usize, usize, String)> {
    toml::from_str(text).map_err(|e: toml::de::Error| {
        let offset = e.span().map(|s| s.start).unwrap_or(0);
        let (line, col) = line_col(text, offset);
        (line, col, e.message().trim().to_string())
    })
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_file_parses() {
        let cfg = parse(
            r#"
            data_dir = "/var/lib/gatehouse"
            database_url = "postgres://gatehouse@db/gatehouse"
            log_format = "json"
            [web]
            listen = "0.0.0.0:8443"
            public_url = "https://gatehouse.example"
            [audit]
            checkpoint_interval = "5m"
            signing_key = "keys/k.pem"
            [tls]
            extra_ca_file = "private-ca.pem"
            "#,
        )
        .unwrap();
        assert_eq!(cfg.tls.extra_ca_file, Some("private-ca.pem".into()));
        assert_eq!(
            cfg.audit.checkpoint_interval,
            Some(Duration::from_secs(300))
        );
        assert_eq!(cfg.log_format, Some(LogFormat::Json));
    }

    #[test]
    fn security_settings_debug_hides_the_database_password() {
        use clap::Parser;
        let cli = crate::cli::Cli::parse_from([
            "gatehouse",
            "--database-url",
            "postgres://gh:hunter2@db/gatehouse",
            "migrate",
        ]);
        let settings = Settings::resolve(&cli.global, None).unwrap();
        assert!(!format!("{settings:?}").contains("hunter2"));
        assert_eq!(
            settings.database_url.as_ref().map(Secret::expose),
            Some("postgres://gh:hunter2@db/gatehouse")
        );
    }

    #[test]
    fn errors_name_line_and_column() {
        let (line, col, msg) = parse("data_dir = \"x\"\n[web]\nlisten = \"nope\"\n").unwrap_err();
        assert_eq!((line, col), (3, 10), "{msg}");
        assert!(msg.contains("invalid socket address"), "{msg}");
        let (line, _, msg) = parse("\n\ndatabase_ulr = \"x\"").unwrap_err();
        assert_eq!(line, 3);
        assert!(msg.contains("unknown field `database_ulr`"), "{msg}");
        let (line, _, msg) = parse("[tls]\n\nextra_ca = \"ca.pem\"").unwrap_err();
        assert_eq!(line, 3);
        assert!(msg.contains("unknown field `extra_ca`"), "{msg}");
        let (line, _, _) = parse("[audit]\ncheckpoint_interval = \"often\"").unwrap_err();
        assert_eq!(line, 2);
        let (line, col, _) = parse("a = [").unwrap_err();
        assert_eq!((line, col), (1, 6));
    }
}
