//! Web sign-in through a real directory: OpenLDAP's slapd (Debian), started on a loopback port
//! with a generated configuration; a person with no local password signs in with the directory
//! password in chromium, gets an identity and the group the mapping gives, loses the group when
//! the directory drops it, and a wrong directory password is refused like any other.

use super::Browser;
use crate::harness::Server;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ADMIN_PW: &str = "directory-admin-secret";
const LEA_PW: &str = "lea-directory-password";
const BOOTSTRAP: &str = "ldap-bootstrap-token-0123456789";

/// slapd on a free loopback port with an mdb database in `dir`.
pub struct Slapd {
    child: Child,
    pub url: String,
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Slapd {
    pub fn start(dir: &Path, ldif: &str) -> Slapd {
        let db = dir.join("ldap-db");
        std::fs::create_dir_all(&db).unwrap();
        let conf = format!(
            "include /etc/ldap/schema/core.schema\ninclude /etc/ldap/schema/cosine.schema\n\
             include /etc/ldap/schema/inetorgperson.schema\ninclude /etc/ldap/schema/nis.schema\n\
             modulepath /usr/lib/ldap\nmoduleload back_mdb\npidfile {d}/slapd.pid\nargsfile {d}/slapd.args\n\
             database mdb\nmaxsize 10485760\nsuffix \"dc=example,dc=org\"\n\
             rootdn \"cn=admin,dc=example,dc=org\"\nrootpw {ADMIN_PW}\ndirectory {db}\n\
             access to attrs=userPassword by self write by anonymous auth by * none\n\
             access to * by * read\n",
            d = dir.display(),
            db = db.display()
        );
        std::fs::write(dir.join("slapd.conf"), conf).unwrap();
        // The port is free when chosen but another test may take it before slapd binds it:
        // then slapd exits (or the load reaches the wrong server) and we start again.
        let mut failures = Vec::new();
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let url = format!("ldap://127.0.0.1:{port}");
            let child = Command::new("/usr/sbin/slapd")
                .arg("-f")
                .arg(dir.join("slapd.conf"))
                .args(["-h", &format!("{url}/"), "-d", "0"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("slapd (Debian package slapd)");
            let mut slapd = Slapd { child, url };
            let deadline = Instant::now() + Duration::from_secs(20);
            let mut exited = false;
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                if slapd.child.try_wait().unwrap().is_some() {
                    exited = true;
                    break;
                }
                assert!(Instant::now() < deadline, "slapd did not start");
                std::thread::sleep(Duration::from_millis(50));
            }
            if exited {
                failures.push(format!("port {port}: slapd exited"));
                continue;
            }
            match slapd.try_modify("ldapadd", ldif) {
                Ok(()) => return slapd,
                Err(e) => failures.push(format!("port {port}: {e}")),
            }
        }
        panic!("slapd: {failures:?}");
    }

    /// Runs `ldapadd` / `ldapmodify` as the directory admin with `ldif` on stdin.
    pub fn modify(&self, tool: &str, ldif: &str) {
        if let Err(e) = self.try_modify(tool, ldif) {
            panic!("{e}");
        }
    }

    fn try_modify(&self, tool: &str, ldif: &str) -> Result<(), String> {
        use std::io::Write;
        let mut c = Command::new(tool)
            .args([
                "-x",
                "-H",
                &self.url,
                "-D",
                "cn=admin,dc=example,dc=org",
                "-w",
                ADMIN_PW,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // A tool that fails early closes its input: its exit status says why.
        let _ = c.stdin.take().unwrap().write_all(ldif.as_bytes());
        let out = c.wait_with_output().unwrap();
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("{tool}: {}", String::from_utf8_lossy(&out.stderr)))
        }
    }
}

const DIRECTORY: &str = "dn: dc=example,dc=org
objectClass: dcObject
objectClass: organization
o: Example
dc: example

dn: ou=people,dc=example,dc=org
objectClass: organizationalUnit
ou: people

dn: ou=groups,dc=example,dc=org
objectClass: organizationalUnit
ou: groups

dn: uid=lea,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: lea
cn: Lea Ldap
sn: Ldap
mail: lea@example.org
userPassword: lea-directory-password

dn: uid=admin,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: admin
cn: Not The Admin
sn: Impostor
userPassword: lea-directory-password

dn: cn=dbas,ou=groups,dc=example,dc=org
objectClass: groupOfNames
cn: dbas
member: uid=lea,ou=people,dc=example,dc=org
";

/// Audit events of one action, read from the database by `gatehouse audit export`.
pub fn audit(data: &Path, action: &str) -> Vec<serde_json::Value> {
    let out = crate::harness::run(crate::harness::gatehouse(data).args(["audit", "export"]));
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["action"] == action)
        .collect()
}

#[tokio::test]
async fn security_browser_ldap_sign_in_creates_the_identity_follows_groups_and_never_takes_a_local_account()
 {
    let dir = tempfile::tempdir().unwrap();
    let slapd = Slapd::start(dir.path(), DIRECTORY);
    std::fs::write(dir.path().join("ldap.pw"), ADMIN_PW).unwrap();
    let config = format!(
        "[ldap]\nurl = \"{}\"\nbind_dn = \"cn=admin,dc=example,dc=org\"\nbind_password_file = \"ldap.pw\"\n\
         base_dn = \"ou=people,dc=example,dc=org\"\ngroup_base_dn = \"ou=groups,dc=example,dc=org\"\n\
         group_mapping = {{ dbas = \"db-admins\" }}\n",
        slapd.url
    );
    std::fs::write(dir.path().join("gatehouse.toml"), config).unwrap();
    let cfg = dir.path().join("gatehouse.toml").display().to_string();
    let data = dir.path().join("data");
    let server = Server::start_https(
        &data,
        &["--config", &cfg],
        &[("GATEHOUSE_BOOTSTRAP_TOKEN", BOOTSTRAP)],
    )
    .await;
    let b = Browser::start(&server.base).await;

    // A wrong directory password: the same answer as any wrong password.
    b.goto("/login").await;
    b.fill("#username", "lea").await;
    b.fill("#password", "not her password").await;
    b.click("#sign-in").await;
    assert_eq!(b.text("#form-error").await, "Wrong username or password.");
    // Someone the directory does not know.
    b.fill("#username", "nobody").await;
    b.fill("#password", LEA_PW).await;
    b.click("#sign-in").await;
    assert_eq!(b.text("#form-error").await, "Wrong username or password.");

    // A directory entry named like the local bootstrap admin does not sign in as that admin.
    b.fill("#username", "admin").await;
    b.fill("#password", LEA_PW).await;
    b.click("#sign-in").await;
    assert_eq!(b.text("#form-error").await, "Wrong username or password.");

    // The directory password: signed in as lea (created at first sign-in), in db-admins.
    b.sign_in("lea", LEA_PW, None).await;
    b.shot("ldap-signed-in").await;
    let events = audit(&data, "directory.sign_in");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        events[0]["actor"],
        "ldap:uid=lea,ou=people,dc=example,dc=org"
    );
    assert_eq!(
        events[0]["details"]["groups_added"],
        serde_json::json!(["db-admins"])
    );
    let created = audit(&data, "identity.create");
    assert!(
        created.iter().any(|e| e["object"] == "identity:lea"),
        "{created:?}"
    );

    // The directory drops her from dbas: the next sign-in drops her from db-admins.
    b.sign_out().await;
    slapd.modify(
        "ldapmodify",
        "dn: cn=dbas,ou=groups,dc=example,dc=org\nchangetype: modify\nreplace: member\nmember: cn=admin,dc=example,dc=org\n",
    );
    b.sign_in("lea", LEA_PW, None).await;
    let events = audit(&data, "directory.sign_in");
    assert_eq!(events.len(), 2, "{events:?}");
    let last = events
        .iter()
        .find(|e| e["details"]["groups_removed"] == serde_json::json!(["db-admins"]));
    assert!(last.is_some(), "{events:?}");
}

const SYNC_DIRECTORY: &str = "dn: dc=example,dc=org
objectClass: dcObject
objectClass: organization
o: Example
dc: example

dn: ou=people,dc=example,dc=org
objectClass: organizationalUnit
ou: people

dn: ou=groups,dc=example,dc=org
objectClass: organizationalUnit
ou: groups

dn: uid=lea,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: lea
cn: Lea Ldap
sn: Ldap
mail: lea@example.org

dn: uid=max,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: max
cn: Max Ldap
sn: Ldap

dn: uid=ned,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: ned
cn: Ned Ldap
sn: Ldap

dn: uid=ola,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: ola
cn: Ola Ldap
sn: Ldap

dn: cn=dbas,ou=groups,dc=example,dc=org
objectClass: groupOfNames
cn: dbas
member: uid=lea,ou=people,dc=example,dc=org
member: uid=max,ou=people,dc=example,dc=org
";

/// Polls `check` every 100 ms for up to 15 s; panics with `what` if it never holds.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(15);
    while !check().await {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn directory_sync_on_a_schedule_makes_leavers_and_group_removals_end_access() {
    let dir = tempfile::tempdir().unwrap();
    let slapd = Slapd::start(dir.path(), SYNC_DIRECTORY);
    std::fs::write(dir.path().join("ldap.pw"), ADMIN_PW).unwrap();
    let policy = r#"
[[targets]]
name = "db-01"
address = "127.0.0.1:1"

[[roles]]
name = "db-root"
targets = { names = ["db-01"] }
logins = ["root"]

[[groups]]
name = "db-admins"

[[assignments]]
role = "db-root"
to = "group:db-admins"
kind = "standing"
"#;
    std::fs::write(dir.path().join("policy.toml"), policy).unwrap();
    let data = dir.path().join("data");
    let out = crate::harness::run(
        crate::harness::gatehouse(&data)
            .arg("apply")
            .arg(dir.path().join("policy.toml")),
    );
    assert!(out.status.success(), "{}", crate::harness::stderr(&out));
    let config = format!(
        "[ldap]\nurl = \"{}\"\nbind_dn = \"cn=admin,dc=example,dc=org\"\nbind_password_file = \"ldap.pw\"\n\
         base_dn = \"ou=people,dc=example,dc=org\"\ngroup_base_dn = \"ou=groups,dc=example,dc=org\"\n\
         group_mapping = {{ dbas = \"db-admins\" }}\nsync_interval = \"1s\"\n\
         disabled_filter = \"(employeeType=disabled)\"\n",
        slapd.url
    );
    std::fs::write(dir.path().join("gatehouse.toml"), config).unwrap();
    let cfg = dir.path().join("gatehouse.toml").display().to_string();
    let server = Server::start(
        &data,
        &["--config", &cfg],
        &[("GATEHOUSE_BOOTSTRAP_TOKEN", BOOTSTRAP)],
    )
    .await;
    let http = crate::harness::http();
    let identity = |who: &'static str| {
        let (http, url) = (
            http.clone(),
            server.url(&format!("/api/v1/identities/{who}")),
        );
        async move {
            let r = http.get(url).bearer_auth(BOOTSTRAP).send().await.unwrap();
            if r.status() != 200 {
                return serde_json::Value::Null;
            }
            r.json::<serde_json::Value>().await.unwrap()
        }
    };
    let allowed = |who: &'static str| {
        let (http, url) = (http.clone(), server.url("/api/v1/authorize"));
        async move {
            let r = http
                .post(url)
                .bearer_auth(BOOTSTRAP)
                .json(&serde_json::json!({ "identity": who, "target": "db-01", "login": "root" }))
                .send()
                .await
                .unwrap();
            r.json::<serde_json::Value>().await.unwrap()["allow"] == true
        }
    };

    // The first sync (at start): the directory's people get identities, dbas members the
    // mapped group, and with it db-root, before anyone has signed in.
    eventually("lea and max are identities in db-admins", || async {
        allowed("lea").await && allowed("max").await
    })
    .await;
    assert_eq!(
        identity("lea").await["identity"]["source"],
        "ldap",
        "{}",
        identity("lea").await
    );
    assert!(!allowed("ned").await);

    // The directory drops lea from dbas: the next sync ends her access.
    let t = Instant::now();
    slapd.modify(
        "ldapmodify",
        "dn: cn=dbas,ou=groups,dc=example,dc=org\nchangetype: modify\ndelete: member\nmember: uid=lea,ou=people,dc=example,dc=org\n",
    );
    eventually("lea loses db-root", || async { !allowed("lea").await }).await;
    println!(
        "directory sync: a group removal ended access {:?} after the directory changed",
        t.elapsed()
    );
    assert!(allowed("max").await);

    // max is deleted from the directory, ned disabled there: both are leavers.
    slapd.modify("ldapdelete", "uid=max,ou=people,dc=example,dc=org\n");
    slapd.modify(
        "ldapmodify",
        "dn: uid=ned,ou=people,dc=example,dc=org\nchangetype: modify\nadd: employeeType\nemployeeType: disabled\n",
    );
    eventually("max and ned are terminated", || async {
        identity("max").await["identity"]["status"] == "terminated"
            && identity("ned").await["identity"]["status"] == "terminated"
    })
    .await;
    assert!(!allowed("max").await);
    assert_eq!(identity("ola").await["identity"]["status"], "active");
    let leavers = audit(&data, "directory.leaver");
    let why: Vec<(String, String)> = leavers
        .iter()
        .map(|e| {
            (
                e["object"].as_str().unwrap().to_string(),
                e["details"]["why"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        why.contains(&("identity:max".into(), "removed from the directory".into())),
        "{why:?}"
    );
    assert!(
        why.contains(&("identity:ned".into(), "disabled in the directory".into())),
        "{why:?}"
    );
    assert!(!audit(&data, "directory.sync").is_empty());

    // A directory answer with nobody in it (a wrong filter, a broken server) changes nothing.
    for who in ["lea", "ola", "ned"] {
        slapd.modify(
            "ldapdelete",
            &format!("uid={who},ou=people,dc=example,dc=org\n"),
        );
    }
    let out = crate::harness::run(crate::harness::gatehouse(&data).args([
        "--config",
        &cfg,
        "directory",
        "sync",
        "--dry-run",
    ]));
    let said = format!(
        "{}{}",
        crate::harness::stdout(&out),
        crate::harness::stderr(&out)
    );
    let left = Command::new("ldapsearch")
        .args([
            "-x",
            "-LLL",
            "-H",
            &slapd.url,
            "-b",
            "ou=people,dc=example,dc=org",
            "uid",
        ])
        .output()
        .unwrap();
    assert!(
        said.contains("listed no users"),
        "{said}\nthe directory still has:\n{}",
        String::from_utf8_lossy(&left.stdout)
    );
    assert_eq!(identity("lea").await["identity"]["status"], "active");
    server.stop();
}
