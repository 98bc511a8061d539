//! The command line: global options (each with a `GATEHOUSE_*` environment twin) and commands.

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Workforce privileged access: the only door into critical systems.
///
/// Engineers reach SSH hosts through Gatehouse only while they hold a live, time-bound grant;
/// every decision lands in a hash-chained audit log.
///
/// Settings come from, in order of precedence: flags, GATEHOUSE_* environment variables, the
/// TOML file given with --config, and built-in defaults (SQLite in ./gatehouse-data).
#[derive(Debug, Parser)]
#[command(
    name = "gatehouse",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command accepts.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// TOML configuration file (see docs/configuration.md); flags and environment override it.
    #[arg(long, global = true, env = "GATEHOUSE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Directory for the SQLite database, the signing key and recordings
    /// [default: ./gatehouse-data].
    #[arg(long, global = true, env = "GATEHOUSE_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// PostgreSQL URL (postgres://USER@HOST:PORT/DB) to share state between instances
    /// [default: SQLite in the data directory].
    #[arg(
        long,
        global = true,
        env = "GATEHOUSE_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,

    /// Log output format [default: text].
    #[arg(long, global = true, env = "GATEHOUSE_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,

    /// Log filter, e.g. `debug` or `info,gatehouse_web=debug` [default: info for serve, warn
    /// for other commands].
    #[arg(long, global = true, env = "GATEHOUSE_LOG", value_name = "FILTER")]
    pub log_level: Option<String>,

    /// PEM certificates (a private CA) outbound HTTPS trusts besides the built-in roots:
    /// webhooks, SCIM push, single sign-on, `apply --server` (config: `[tls] extra_ca_file`).
    #[arg(
        long,
        global = true,
        env = "GATEHOUSE_TLS_EXTRA_CA_FILE",
        value_name = "FILE"
    )]
    pub tls_extra_ca_file: Option<PathBuf>,
}

/// How logs are written to standard error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run Gatehouse: migrate the database, then serve the web UI and API until stopped.
    ///
    /// On first start (no administrator yet) it creates identity `admin` from
    /// GATEHOUSE_BOOTSTRAP_TOKEN (at least 24 characters, becomes admin's API token), or prints
    /// a one-time setup link valid for an hour. GET /healthz answers 200 while the database is
    /// reachable and 503 when it is not.
    Serve(ServeArgs),

    /// Try Gatehouse in one command: a demo data directory (DATA_DIR/demo), a built-in sandbox SSH
    /// target, demo identities (alice with a key made for you, bob the approver) and roles, then
    /// the server itself. Prints the ssh line to paste for a recorded session.
    Demo(ServeArgs),

    /// Apply database migrations (serve also does this at start) and exit.
    Migrate,

    /// Verify, checkpoint and export the hash-chained audit log.
    #[command(subcommand)]
    Audit(AuditCommand),

    /// Apply a policy-as-code TOML file (identities, groups, targets, roles, assignments, SoD
    /// rules) and print the plan: + create, ~ update, - delete.
    ///
    /// Idempotent: applying the same file again changes nothing. Things apply created and the
    /// file no longer names are deleted (identities are disabled); things made elsewhere (API,
    /// HR, SCIM, LDAP) are left alone. Format: docs/policy-as-code.md.
    ///
    /// With --server (or GATEHOUSE_SERVER) it goes through that server's API with the token in
    /// GATEHOUSE_TOKEN; otherwise it writes to the database of --data-dir / --database-url, and a
    /// server running on it acts on the change within a second.
    Apply(ApplyArgs),

    /// Policy files: validate without applying.
    #[command(subcommand)]
    Policy(PolicyCommand),

    /// What-if: explain whether IDENTITY may reach TARGET as LOGIN now, and why. Changes nothing.
    ///
    /// Exits 0 when allowed and 1 when denied.
    Authorize(AuthorizeArgs),

    /// Segregation of duties.
    #[command(subcommand)]
    Sod(SodCommand),

    /// Least-privilege findings: privileged access held standing, eligible roles never
    /// activated, inactive identities, standing Gatehouse privileges, privileged roles without
    /// session MFA, SoD violations, break-glass uses not reviewed, SSH keys and API tokens unused
    /// for 90 days — each with what to do. Changes nothing. Exits 1 when there are findings.
    Findings(FindingsArgs),

    /// The LDAP directory (`[ldap]`): read it whole and apply it now.
    #[command(subcommand)]
    Directory(DirectoryCommand),

    /// Access reviews: campaigns defined as `[[reviews]]` in policy as code, started on their
    /// schedule by `serve` (or now with `start`), decided in the web UI or the API, ended,
    /// applied and verified; their signed reports.
    #[command(subcommand)]
    Reviews(ReviewsCommand),

    /// Compliance evidence: signed evidence packs for SOC 2, ISO 27001, SOX and HIPAA that an
    /// auditor checks offline, entitlements (who can reach what, now or as of a past date,
    /// rebuilt from the audit log), and the retention of recordings and the audit log.
    #[command(subcommand)]
    Report(ReportCommand),

    /// Session recordings.
    #[command(subcommand)]
    Recordings(RecordingsCommand),

    /// The SSH gateway's keys.
    #[command(subcommand)]
    Ssh(SshCommand),

    /// Second factors.
    #[command(subcommand)]
    Mfa(MfaCommand),

    /// Internal web apps behind the app gateway.
    #[command(subcommand)]
    Apps(AppsCommand),

    /// The HR feed: joiners, movers and leavers.
    #[command(subcommand)]
    Hr(HrCommand),

    /// SCIM 2.0 provisioning at /scim/v2: the clients (identity providers, HR systems) allowed
    /// to call it.
    #[command(subcommand)]
    Scim(ScimCommand),

    /// Push to apps: provision the users (and a group per role) of the apps in `[[push]]` from
    /// the holders of the roles mapped to them, over each app's SCIM API.
    #[command(subcommand)]
    Push(PushCommand),

    /// Print the version, the database schema version and the supported backends.
    Version,
}

#[derive(Debug, Subcommand)]
pub enum PushCommand {
    /// Reconcile the apps now: create users for new role holders, put back what was changed in
    /// the app, deactivate those who no longer hold a mapped role (leavers included), set each
    /// role's group; print the drift found and what was done. Users Gatehouse did not create are
    /// reported, never touched. Exit 1 when a change failed (after retries).
    Run {
        /// Only this app (by its `name` in `[[push]]`).
        #[arg(long)]
        app: Option<String>,
        /// Print the drift and the changes it would make; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ScimCommand {
    /// Manage SCIM clients: each gets its own bearer token.
    #[command(subcommand)]
    Client(ScimClientCommand),
}

#[derive(Debug, Subcommand)]
pub enum ScimClientCommand {
    /// Register a SCIM client and print its bearer token (shown once; only its hash is kept).
    ///
    /// Give the identity provider the endpoint `https://HOST:PORT/scim/v2` and this token.
    /// Users it provisions become identities (the part of userName before any '@',
    /// lower-cased, is the username); `active: false` or a DELETE is a leaver.
    Add {
        /// A name for the client, e.g. `entra` or `okta` (audited as `scim:NAME`).
        name: String,
    },
    /// List SCIM clients (never their tokens).
    List,
    /// Revoke a SCIM client's token at once.
    Revoke { name: String },
}

#[derive(Debug, Subcommand)]
pub enum HrCommand {
    /// Import an HR file (CSV with a header row, or a JSON array of objects) and apply the
    /// joiner / mover / leaver changes it implies.
    ///
    /// Columns: employee_number (the correlation key, required), username (default: the email's
    /// local part, else first.last), first_name, last_name, email, manager and sponsor (employee
    /// numbers), department, title, location, employment_type (employee | contractor | vendor;
    /// contractors and vendors need a sponsor and an end_date), start_date and end_date
    /// (YYYY-MM-DD), status (active | leave | terminated).
    ///
    /// Joiners get their birthright roles (roles with a `birthright` rule matching their
    /// attributes); future start dates are staged as `prehire` with no access; movers get new
    /// birthright roles at once and keep those no longer implied for the grace period; leavers
    /// (terminated, or past their end date) are cut off at once: grants revoked, live sessions
    /// ended, tokens and SSH keys disabled. People absent from the file are left as they are.
    /// Each change is audited with its file and line.
    ///
    /// A bad row is reported with its line and field and skipped; the exit code is then 1.
    /// With --strict, nothing is applied when any row is bad.
    Import {
        /// The HR file (.csv or .json).
        file: PathBuf,
        /// Print the changes and the access each adds or removes; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Apply nothing if any row is bad.
        #[arg(long)]
        strict: bool,
        /// How long a mover keeps access no longer implied [default: 7d].
        #[arg(long, value_name = "DURATION")]
        grace: Option<humantime::Duration>,
    },
    /// Apply start and end dates that have come since the last import: staged hires whose start
    /// date is today or earlier become active with their birthright roles (`hr.start`); people
    /// past their end date become leavers (`hr.leaver`). `serve` does this every minute.
    Dates {
        /// Print what is due; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The TOML file.
    pub file: PathBuf,
    /// Print the plan only; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Base URL of a running server (https://localhost:8080); the token comes from GATEHOUSE_TOKEN.
    #[arg(long, env = "GATEHOUSE_SERVER", value_name = "URL")]
    pub server: Option<String>,
    /// With --server: also trust the certificates in FILE (PEM), e.g. the server's generated
    /// DATA_DIR/keys/web-cert.pem.
    #[arg(
        long,
        env = "GATEHOUSE_SERVER_CA_FILE",
        value_name = "FILE",
        requires = "server"
    )]
    pub ca_file: Option<PathBuf>,
    /// With --server: accept exactly the server certificate with this SHA-256 (64 hex digits;
    /// `serve` logs it at start) instead of checking its chain.
    #[arg(
        long,
        env = "GATEHOUSE_SERVER_PIN_SHA256",
        value_name = "HEX",
        requires = "server",
        conflicts_with = "ca_file"
    )]
    pub pin_sha256: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Check a policy file: TOML shape (errors name line and column), names, durations, SSH
    /// keys, and every role's Cedar condition against the Gatehouse schema. Warns about
    /// references the file does not define. Exits 0 when valid, 1 when not.
    Check {
        /// The TOML file.
        file: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct AuthorizeArgs {
    /// Username.
    #[arg(long)]
    pub identity: String,
    /// Target name.
    #[arg(long)]
    pub target: String,
    /// Account on the target [default: the only one allowed].
    #[arg(long)]
    pub login: Option<String>,
    /// ssh or http.
    #[arg(long, default_value = "ssh")]
    pub protocol: String,
    /// Source address the decision should assume.
    #[arg(long, value_name = "IP")]
    pub source_ip: Option<std::net::IpAddr>,
    /// Seconds since the identity's last multi-factor check [default: none].
    #[arg(long, value_name = "SECONDS")]
    pub mfa_age: Option<i64>,
}

#[derive(Debug, Args)]
pub struct FindingsArgs {
    /// Only findings of this kind (e.g. unused_api_token; `--kind help` is refused with the list).
    #[arg(long, value_name = "KIND")]
    pub kind: Option<String>,
    /// One JSON object per line instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum DirectoryCommand {
    /// Read the whole directory and apply it (what `serve` does every `[ldap] sync_interval`):
    /// people removed or disabled there become leavers, mapped group memberships follow, new
    /// people get an identity (with `create_identities`). Prints the changes. Refuses an answer
    /// with no user, or one that would make more than half of the directory's people leavers.
    Sync {
        /// Print the changes without making them.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ReviewsCommand {
    /// Definitions (with their next start) and campaigns (with their progress), newest first.
    List,
    /// Start a campaign of a definition now, whatever its schedule.
    Start { definition: String },
    /// One campaign: its progress and its items.
    Show {
        campaign: String,
        /// Only items in this state: open, decided or applied.
        #[arg(long, value_name = "STATE")]
        state: Option<String>,
    },
    /// End a running campaign now: unanswered items take its `unanswered` policy; with
    /// `apply = "auto"` the results are applied and verified at once, else the owner signs off.
    End { campaign: String },
    /// Run the scheduler's step now (what `serve` does every minute): start due campaigns,
    /// remind, escalate, end those whose time has come.
    Tick,
    /// Write a campaign's report into DIR: report.json, report.csv, and manifest.txt with
    /// manifest.sig (signed with the Gatehouse key; check with `gatehouse reviews verify DIR`).
    Report {
        campaign: String,
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Check a report directory offline: the manifest's signature, then every file's SHA-256.
    /// Exits 0 when intact, 1 naming what does not match.
    Verify {
        dir: PathBuf,
        /// The trusted public key (`ed25519:...`, or a file holding it) [default: the key in
        /// the data directory].
        #[arg(long, value_name = "KEY|FILE")]
        public_key: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Write a signed evidence pack for FRAMEWORK covering FROM to TO into DIR: each control's
    /// evidence as CSV and JSON (with the query and parameters that produced it), controls.json
    /// (status and exceptions), summary.html (one file, charts included), checkpoint.txt (the
    /// audit checkpoint signed at generation) and manifest.json with manifest.sig (SHA-256 and
    /// row count of every file, signed with the Gatehouse key). Check it with `report verify`.
    Evidence {
        /// soc2, iso27001, sox or hipaa.
        #[arg(long, value_name = "FRAMEWORK")]
        framework: String,
        /// Start of the period: a date (00:00 UTC) or an RFC 3339 time.
        #[arg(long, value_name = "DATE")]
        from: String,
        /// End of the period: a date (included: up to its end, UTC) or an RFC 3339 time
        /// (excluded) [default: now].
        #[arg(long, value_name = "DATE")]
        to: Option<String>,
        /// A new or empty directory.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Check an evidence pack offline with only the public key: the manifest's signature, every
    /// file's SHA-256, no file missing or added, the checkpoint's signature. Exits 0 when
    /// intact, 1 naming what does not match.
    Verify {
        dir: PathBuf,
        /// The trusted public key (`ed25519:...`, or a file holding it) [default: the key in
        /// the data directory].
        #[arg(long, value_name = "KEY|FILE")]
        public_key: Option<String>,
    },
    /// Who can reach what, and why: identity, target, login, role, how held, since, until,
    /// last used. Now from the tables, or with --as-of rebuilt from the audit log alone.
    Entitlements {
        /// A past moment: a date (its end, UTC) or an RFC 3339 time [default: now].
        #[arg(long, value_name = "DATE")]
        as_of: Option<String>,
        /// Only this identity.
        #[arg(long)]
        identity: Option<String>,
        /// Only this target.
        #[arg(long)]
        target: Option<String>,
        /// csv or json [default: csv].
        #[arg(long, default_value = "csv")]
        format: String,
        /// Write to this file instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Retention status: how far back the audit log reaches against `[retention] audit` (it is
    /// never rewritten), recordings kept, past retention and deleted. With --apply, delete the
    /// recordings past `[retention] recordings` now (what `serve` does every hour).
    Retention {
        #[arg(long)]
        apply: bool,
    },
    /// Generate the `[[reports]]` that are due now (what `serve` does every minute).
    Tick,
}

#[derive(Debug, Subcommand)]
pub enum SodCommand {
    /// List existing violations: identities whose roles (standing, eligible or granted) break an
    /// SoD rule, and whether an exception covers them. Exits 1 when an uncovered one exists.
    Scan,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address of the web UI and API [default: 127.0.0.1:8080].
    #[arg(long, env = "GATEHOUSE_WEB_LISTEN", value_name = "ADDR")]
    pub web_listen: Option<SocketAddr>,
    /// Address of the SSH gateway [default: 127.0.0.1:2222].
    #[arg(long, env = "GATEHOUSE_SSH_LISTEN", value_name = "ADDR")]
    pub ssh_listen: Option<SocketAddr>,
    /// HTTPS for the web listener: `auto` (a configured certificate, else one generated in the
    /// data directory on first start) or `off` (plain HTTP, refused unless the web listener is
    /// on loopback) [default: auto].
    #[arg(long, env = "GATEHOUSE_WEB_TLS", value_name = "auto|off")]
    pub web_tls: Option<WebTls>,
    /// Address of the app gateway (internal web apps at NAME.DOMAIN), or `off`
    /// [default: 127.0.0.1:8443].
    #[arg(long, env = "GATEHOUSE_APP_LISTEN", value_name = "ADDR|off")]
    pub app_listen: Option<String>,
}

/// Whether the web listener speaks HTTPS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebTls {
    Auto,
    Off,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk the whole chain and check every hash, the chain head and signed checkpoints.
    ///
    /// Exits 0 when the log is intact and 1 naming the first bad sequence number when a row was
    /// edited, deleted or inserted, or the log was truncated below a checkpoint. Exits 2 when
    /// it could not check (database unreachable, no public key for stored checkpoints, ...).
    Verify {
        /// A checkpoint saved earlier by `gatehouse audit checkpoint`: the log must still
        /// contain exactly the events it covers.
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<PathBuf>,

        /// The trusted public key (`ed25519:...`, or a file holding it) that checkpoints must
        /// be signed with [default: the key in the data directory].
        #[arg(long, value_name = "KEY|FILE")]
        public_key: Option<String>,
    },

    /// Sign a checkpoint of the current head (unless the newest one covers it) and print it:
    /// text an auditor keeps and later checks with `verify --checkpoint`.
    Checkpoint {
        /// Write to FILE instead of standard output.
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },

    /// Write events as JSON lines (one object per event) for a SIEM.
    Export {
        /// Only events at or after TIME: RFC 3339 (2026-11-25T08:00:00Z), a date (2026-11-25,
        /// UTC), or an age such as 24h or 7d.
        #[arg(long, value_name = "TIME")]
        since: Option<String>,

        /// Write to FILE instead of standard output.
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum RecordingsCommand {
    /// Check a recording offline: its manifest's Ed25519 signature, then the cast's size and
    /// SHA-256 against the manifest. Needs only the public key.
    ///
    /// PATH is the `.cast`, the `.manifest.json` or the `.manifest.sig` of one recording (the
    /// three sit side by side). Exits 0 when intact, 1 naming what does not match, 2 when it
    /// could not check.
    Verify {
        path: PathBuf,
        /// The trusted public key (`ed25519:...`, or a file holding it) [default: the key in
        /// the data directory].
        #[arg(long, value_name = "KEY|FILE")]
        public_key: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum SshCommand {
    /// Print the public key of Gatehouse's SSH user CA (created if missing), the line targets
    /// trust with sshd's TrustedUserCAKeys. Also served at GET /api/v1/ssh/user-ca.
    Ca,

    /// Sign an engineer's SSH public key with Gatehouse's client CA: the certificate logs
    /// IDENTITY in to the gateway (never to a target directly: targets trust another CA).
    ///
    /// Writes FILE's certificate beside it as NAME-cert.pub, where OpenSSH finds it. Audited.
    /// Vault a private key Gatehouse logs in with as LOGIN on TARGET, for targets that cannot
    /// trust the user CA. Stored sealed (AES-256-GCM, key in DATA_DIR/keys/secrets.key); it never
    /// reaches an engineer. Audited with the public key. `--remove` goes back to the CA.
    VaultKey {
        /// The OpenSSH private key file (unencrypted) LOGIN uses on TARGET.
        file: Option<PathBuf>,
        #[arg(long)]
        target: String,
        #[arg(long)]
        login: String,
        /// Remove the vaulted key instead (back to the user CA).
        #[arg(long, conflicts_with = "file")]
        remove: bool,
    },

    SignUserKey {
        /// The public key file (e.g. ~/.ssh/id_ed25519.pub).
        file: PathBuf,
        /// The identity it logs in as (must be active).
        #[arg(long)]
        identity: String,
        /// How long it is valid, e.g. 8h or 7d (at most 30d).
        #[arg(long, default_value = "8h")]
        valid: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AppsCommand {
    /// Vault the credential the app gateway adds to every request it forwards to an app
    /// (credential injection): HTTP basic (`--basic USER`, the password read from standard
    /// input) or a bearer token (`--bearer`, read from standard input). Per role (`--role`) or
    /// for any role. It replaces the Authorization header the browser sent; nobody needs the
    /// app's shared account. Stored sealed (AES-256-GCM); audited without the secret.
    ///
    /// Example: `printf '%s\n' "$GRAFANA_ADMIN_PASSWORD" | gatehouse apps vault-credential --target grafana --role grafana-admins --basic admin`
    VaultCredential {
        /// The app (a target of kind http).
        #[arg(long)]
        target: String,
        /// The role it is for [default: any role].
        #[arg(long, default_value = "*")]
        role: String,
        /// HTTP basic authentication as USER.
        #[arg(long, value_name = "USER", conflicts_with = "bearer")]
        basic: Option<String>,
        /// A bearer token.
        #[arg(long)]
        bearer: bool,
        /// Remove the vaulted credential instead.
        #[arg(long, conflicts_with_all = ["basic", "bearer"])]
        remove: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum MfaCommand {
    /// Enroll (or replace) an identity's TOTP factor and print, once, the otpauth:// URL and the
    /// base32 secret for an authenticator app. The seed is stored sealed (AES-256-GCM, key in
    /// DATA_DIR/keys/secrets.key). Roles with `session_mfa = true` then ask for a code at SSH
    /// login. Audited, without the secret.
    EnrollTotp {
        /// The username.
        #[arg(long)]
        identity: String,
    },
    /// Set an identity's web sign-in password, read from standard input (one line; at least
    /// 12 characters). Stored as an argon2id hash; the identity's browser sessions end. Audited.
    ///
    /// Example: `printf '%s\n' 'a long passphrase' | gatehouse mfa set-password --identity alice`
    SetPassword {
        /// The username.
        #[arg(long)]
        identity: String,
    },
    /// Link an identity to its account at the OpenID provider of `[oidc]` (the ID token's
    /// `sub`), so "Sign in with SSO" signs in as it. Needed for identities single sign-on never
    /// links by e-mail: local ones (bootstrap, API, `apply`), those holding a privilege, and
    /// sources not in `[oidc] link_by_email`. The identity's own second factor still applies.
    /// Audited as `identity.link`.
    ///
    /// Example: `gatehouse --config gatehouse.toml mfa link-sso --identity alice --subject 00u1abcd`
    LinkSso {
        /// The username.
        #[arg(long)]
        identity: String,
        /// The provider's subject identifier for this person (the `sub` claim).
        #[arg(long)]
        subject: String,
    },
}
