//! The gateway's SSH keys, kept in the data directory: the host key clients pin, and the user CA
//! whose short-lived certificates Gatehouse presents to targets (targets trust its public key with
//! sshd's `TrustedUserCAKeys`). Both Ed25519, created on first start with mode 0600.

use crate::error::{Error, Result};
use russh::keys::ssh_key::certificate::{Builder, CertType};
use russh::keys::ssh_key::private::{Ed25519Keypair, KeypairData};
use russh::keys::ssh_key::{Certificate, HashAlg, LineEnding, PrivateKey};
use std::path::Path;

pub use russh::keys::PublicKey;

/// Reads a public key line (`ssh-ed25519 AAAA… comment`).
pub fn parse_public(line: &str) -> Result<PublicKey> {
    PublicKey::from_openssh(line.trim())
        .map_err(|e| Error::Key(format!("not an OpenSSH public key: {e}")))
}

/// Reads an OpenSSH private key (unencrypted).
pub fn parse_private(text: &str) -> Result<PrivateKey> {
    PrivateKey::from_openssh(text.trim())
        .map_err(|e| Error::Key(format!("not an unencrypted OpenSSH private key: {e}")))
}

/// A fresh Ed25519 key from the operating system's random generator.
pub fn new_ed25519(comment: &str) -> Result<PrivateKey> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| Error::Key(format!("random generator: {e}")))?;
    let pair = Ed25519Keypair::from_seed(&seed);
    PrivateKey::new(KeypairData::Ed25519(pair), comment)
        .map_err(|e| Error::Key(format!("new key: {e}")))
}

/// Reads the OpenSSH private key at `path`, or creates one there (mode 0600, parent directories
/// too). Returns the key and whether it was created.
pub fn load_or_create(path: &Path, comment: &str) -> Result<(PrivateKey, bool)> {
    if path.exists() {
        let key = PrivateKey::read_openssh_file(path)
            .map_err(|e| Error::Key(format!("cannot read {}: {e}", path.display())))?;
        return Ok((key, false));
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Key(format!("cannot create {}: {e}", dir.display())))?;
    }
    let key = new_ed25519(comment)?;
    key.write_openssh_file(path, LineEnding::LF)
        .map_err(|e| Error::Key(format!("cannot write {}: {e}", path.display())))?;
    let public = public_line(&key)?;
    let pub_path = path.with_extension("pub");
    std::fs::write(&pub_path, format!("{public}\n"))
        .map_err(|e| Error::Key(format!("cannot write {}: {e}", pub_path.display())))?;
    Ok((key, true))
}

/// The `ssh-ed25519 AAAA… comment` line of a key's public half.
pub fn public_line(key: &PrivateKey) -> Result<String> {
    key.public_key()
        .to_openssh()
        .map_err(|e| Error::Key(format!("encoding a public key: {e}")))
}

/// `SHA256:…`, as `ssh-keygen -l` prints it.
pub fn fingerprint(key: &russh::keys::PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// What a session certificate says.
#[derive(Debug, Clone)]
pub struct CertRequest<'a> {
    /// The login on the target: the certificate's only principal.
    pub login: &'a str,
    pub identity: &'a str,
    pub session_id: &'a str,
    pub now_unix: u64,
    /// The grant's end (Unix seconds); the certificate is never valid longer than 24 h.
    pub not_after_unix: Option<u64>,
    pub port_forwarding: bool,
}

/// How long before "now" a certificate is already valid (clock skew between hosts).
const SKEW_SECONDS: u64 = 60;
const LONGEST_SECONDS: u64 = 24 * 3600;

/// Signs a user certificate for `subject` (the session's own fresh key) with the user CA: one
/// principal (the login), valid until the grant ends, key id naming identity and session, and
/// only the `permit-pty` extension (plus `permit-port-forwarding` when the role allows it).
pub fn mint_user_cert(
    ca: &PrivateKey,
    subject: &russh::keys::PublicKey,
    req: &CertRequest<'_>,
) -> Result<Certificate> {
    let mut nonce = [0u8; 32];
    getrandom::fill(&mut nonce).map_err(|e| Error::Key(format!("random generator: {e}")))?;
    let mut serial = [0u8; 8];
    getrandom::fill(&mut serial).map_err(|e| Error::Key(format!("random generator: {e}")))?;
    let longest = req.now_unix + LONGEST_SECONDS;
    let before = req.not_after_unix.map_or(longest, |t| t.min(longest));
    let after = req.now_unix.saturating_sub(SKEW_SECONDS);
    let bad = |e: russh::keys::ssh_key::Error| Error::Key(format!("session certificate: {e}"));
    let mut b = Builder::new(
        nonce.to_vec(),
        subject.key_data().clone(),
        after,
        before.max(after),
    )
    .map_err(bad)?;
    b.serial(u64::from_be_bytes(serial)).map_err(bad)?;
    b.cert_type(CertType::User).map_err(bad)?;
    b.key_id(format!(
        "gatehouse identity={} session={}",
        req.identity, req.session_id
    ))
    .map_err(bad)?;
    b.valid_principal(req.login).map_err(bad)?;
    b.extension("permit-pty", "").map_err(bad)?;
    if req.port_forwarding {
        b.extension("permit-port-forwarding", "").map_err(bad)?;
    }
    b.sign(ca).map_err(bad)
}

/// Key ids of engineers' certificates start with this (session certificates never do).
pub const CLIENT_KEY_ID_PREFIX: &str = "gatehouse-user ";

/// Signs an engineer's public key with the client CA: type user, one principal (the username),
/// valid from a minute ago for `valid_seconds`, no critical options.
pub fn sign_client_cert(
    ca: &PrivateKey,
    subject: &russh::keys::PublicKey,
    username: &str,
    now_unix: u64,
    valid_seconds: u64,
) -> Result<Certificate> {
    let mut nonce = [0u8; 32];
    getrandom::fill(&mut nonce).map_err(|e| Error::Key(format!("random generator: {e}")))?;
    let mut serial = [0u8; 8];
    getrandom::fill(&mut serial).map_err(|e| Error::Key(format!("random generator: {e}")))?;
    let bad = |e: russh::keys::ssh_key::Error| Error::Key(format!("certificate: {e}"));
    let serial = u64::from_be_bytes(serial);
    let mut b = Builder::new(
        nonce.to_vec(),
        subject.key_data().clone(),
        now_unix.saturating_sub(SKEW_SECONDS),
        now_unix + valid_seconds,
    )
    .map_err(bad)?;
    b.serial(serial).map_err(bad)?;
    b.cert_type(CertType::User).map_err(bad)?;
    b.key_id(format!(
        "{CLIENT_KEY_ID_PREFIX}identity={username} serial={serial}"
    ))
    .map_err(bad)?;
    b.valid_principal(username).map_err(bad)?;
    b.extension("permit-pty", "").map_err(bad)?;
    b.sign(ca).map_err(bad)
}

/// The username an engineer's certificate names, if it is one Gatehouse issued: signed by the
/// client CA, type user, a Gatehouse key id, exactly one principal, no critical options.
/// (russh has checked the signature and the validity window.)
pub fn client_cert_identity(
    cert: &Certificate,
    client_ca: &russh::keys::PublicKey,
) -> Option<String> {
    let ok = cert.signature_key() == client_ca.key_data()
        && cert.cert_type().is_user()
        && cert.key_id().starts_with(CLIENT_KEY_ID_PREFIX)
        && cert.critical_options().is_empty();
    match (ok, cert.valid_principals()) {
        (true, [one]) if !one.is_empty() && !one.contains(',') => Some(one.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_created_once_with_private_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/ssh_host_ed25519_key");
        let (a, created) = load_or_create(&path, "gatehouse host").unwrap();
        assert!(created);
        let (b, created) = load_or_create(&path, "gatehouse host").unwrap();
        assert!(!created);
        assert_eq!(a.public_key(), b.public_key());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(
            std::fs::read_to_string(path.with_extension("pub"))
                .unwrap()
                .starts_with("ssh-ed25519 ")
        );
    }

    #[test]
    fn security_only_gatehouse_client_certificates_name_an_identity() {
        let client_ca = new_ed25519("client ca").unwrap();
        let user_ca = new_ed25519("user ca").unwrap();
        let key = new_ed25519("k").unwrap();
        let ours = sign_client_cert(&client_ca, key.public_key(), "alice", 1_000, 3_600).unwrap();
        assert_eq!(
            client_cert_identity(&ours, client_ca.public_key()).as_deref(),
            Some("alice")
        );
        // Signed by the target-facing CA (a session certificate, say): not an identity.
        let session = mint_user_cert(
            &user_ca,
            key.public_key(),
            &CertRequest {
                login: "alice",
                identity: "alice",
                session_id: "s",
                now_unix: 1_000,
                not_after_unix: None,
                port_forwarding: false,
            },
        )
        .unwrap();
        assert!(client_cert_identity(&session, client_ca.public_key()).is_none());
        // Right CA, but a key id Gatehouse never writes, several principals, or a critical option.
        let custom = |f: &dyn Fn(&mut Builder)| {
            let mut b =
                Builder::new(vec![1; 32], key.public_key().key_data().clone(), 0, 9_999).unwrap();
            b.cert_type(CertType::User).unwrap();
            f(&mut b);
            b.sign(&client_ca).unwrap()
        };
        let c = custom(&|b| {
            b.key_id("someone else").unwrap();
            b.valid_principal("alice").unwrap();
        });
        assert!(client_cert_identity(&c, client_ca.public_key()).is_none());
        let c = custom(&|b| {
            b.key_id(format!("{CLIENT_KEY_ID_PREFIX}x")).unwrap();
            b.valid_principal("alice").unwrap();
            b.valid_principal("bob").unwrap();
        });
        assert!(client_cert_identity(&c, client_ca.public_key()).is_none());
        let c = custom(&|b| {
            b.key_id(format!("{CLIENT_KEY_ID_PREFIX}x")).unwrap();
            b.valid_principal("alice").unwrap();
            b.critical_option("force-command", "true").unwrap();
        });
        assert!(client_cert_identity(&c, client_ca.public_key()).is_none());
        // One principal that is a comma-separated list (OpenSSH CVE-2026-35414): never split.
        let c = custom(&|b| {
            b.key_id(format!("{CLIENT_KEY_ID_PREFIX}x")).unwrap();
            b.valid_principal("alice,bob").unwrap();
        });
        assert!(client_cert_identity(&c, client_ca.public_key()).is_none());
        // The same fields on a control certificate are accepted, so each refusal above is for
        // the one thing that differs.
        let c = custom(&|b| {
            b.key_id(format!("{CLIENT_KEY_ID_PREFIX}x")).unwrap();
            b.valid_principal("alice").unwrap();
        });
        assert_eq!(
            client_cert_identity(&c, client_ca.public_key()).as_deref(),
            Some("alice")
        );
        // A host certificate from the right CA with the right fields: not a user.
        let mut b =
            Builder::new(vec![1; 32], key.public_key().key_data().clone(), 0, 9_999).unwrap();
        b.cert_type(CertType::Host).unwrap();
        b.key_id(format!("{CLIENT_KEY_ID_PREFIX}x")).unwrap();
        b.valid_principal("alice").unwrap();
        let host = b.sign(&client_ca).unwrap();
        assert!(client_cert_identity(&host, client_ca.public_key()).is_none());
    }

    #[test]
    fn a_session_certificate_has_one_principal_and_ends_with_the_grant() {
        let ca = new_ed25519("ca").unwrap();
        let session = new_ed25519("s").unwrap();
        let cert = mint_user_cert(
            &ca,
            session.public_key(),
            &CertRequest {
                login: "postgres",
                identity: "alice",
                session_id: "s-1",
                now_unix: 1_000_000,
                not_after_unix: Some(1_003_600),
                port_forwarding: false,
            },
        )
        .unwrap();
        assert_eq!(cert.valid_principals(), ["postgres".to_string()]);
        assert_eq!(cert.valid_before(), 1_003_600);
        assert_eq!(cert.valid_after(), 1_000_000 - 60);
        assert_eq!(cert.cert_type(), CertType::User);
        assert!(cert.key_id().contains("identity=alice session=s-1"));
        assert!(cert.extensions().contains_key("permit-pty"));
        assert!(!cert.extensions().contains_key("permit-port-forwarding"));
        assert_eq!(cert.signature_key(), ca.public_key().key_data());
        // Without an end, at most a day.
        let cert = mint_user_cert(
            &ca,
            session.public_key(),
            &CertRequest {
                not_after_unix: None,
                port_forwarding: true,
                ..CertRequest {
                    login: "root",
                    identity: "a",
                    session_id: "s",
                    now_unix: 10,
                    not_after_unix: None,
                    port_forwarding: false,
                }
            },
        )
        .unwrap();
        assert_eq!(cert.valid_before(), 10 + 24 * 3600);
        assert!(cert.extensions().contains_key("permit-port-forwarding"));
    }
}
