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
