//! The Gatehouse Ed25519 signing key (audit checkpoints, recording manifests): created in the data
//! directory on first start with mode 0600, or read from a configured file. Its public half is
//! what auditors pin.

use crate::error::{Error, Result};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The private signing key. Never printed: `Debug` shows only the public half.
pub struct SigningKeyPair {
    key: SigningKey,
    path: PathBuf,
}

impl std::fmt::Debug for SigningKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SigningKeyPair({}, {})",
            self.public(),
            self.path.display()
        )
    }
}

/// The public half, written `ed25519:<base64 of the 32 key bytes>`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl std::fmt::Display for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ed25519:{}", B64.encode(self.0.as_bytes()))
    }
}

impl std::str::FromStr for PublicKey {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let b64 = s
            .trim()
            .strip_prefix("ed25519:")
            .ok_or_else(|| Error::Key("a public key looks like ed25519:BASE64".into()))?;
        let bytes = B64
            .decode(b64)
            .map_err(|e| Error::Key(format!("public key is not valid base64: {e}")))?;
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| Error::Key("an Ed25519 public key has 32 bytes".into()))?;
        VerifyingKey::from_bytes(&arr)
            .map(PublicKey)
            .map_err(|e| Error::Key(format!("not an Ed25519 public key: {e}")))
    }
}

impl PublicKey {
    /// The 32 key bytes (a JWK's `x`).
    pub fn bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// Checks `signature` (64 bytes) over `message`; strict verification (no malleability).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(sig) = Signature::from_slice(signature) else {
            return false;
        };
        self.0.verify_strict(message, &sig).is_ok()
    }
}

impl SigningKeyPair {
    /// Reads the key at `path`, or creates it (mode 0600, parent directories too) when missing.
    /// Returns the key and whether it was created.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool)> {
        match std::fs::read_to_string(path) {
            Ok(pem) => Ok((Self::from_pem(&pem, path)?, false)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((Self::create(path)?, true)),
            Err(e) => Err(Error::Key(format!("cannot read {}: {e}", path.display()))),
        }
    }

    /// Reads an existing key.
    pub fn load(path: &Path) -> Result<Self> {
        let pem = std::fs::read_to_string(path)
            .map_err(|e| Error::Key(format!("cannot read {}: {e}", path.display())))?;
        Self::from_pem(&pem, path)
    }

    fn from_pem(pem: &str, path: &Path) -> Result<Self> {
        let key = SigningKey::from_pkcs8_pem(pem).map_err(|e| {
            Error::Key(format!(
                "{} is not a PKCS#8 Ed25519 private key: {e}",
                path.display()
            ))
        })?;
        Ok(Self {
            key,
            path: path.to_path_buf(),
        })
    }

    fn create(path: &Path) -> Result<Self> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| Error::Key(format!("random generator: {e}")))?;
        let key = SigningKey::from_bytes(&seed);
        let pem = key
            .to_pkcs8_pem(Default::default())
            .map_err(|e| Error::Key(format!("encoding the key: {e}")))?;
        write_private(path, pem.as_bytes())?;
        let public = PublicKey(key.verifying_key());
        let pub_path = path.with_extension("pub");
        std::fs::write(&pub_path, format!("{public}\n"))
            .map_err(|e| Error::Key(format!("cannot write {}: {e}", pub_path.display())))?;
        Ok(Self {
            key,
            path: path.to_path_buf(),
        })
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.key.verifying_key())
    }

    /// Signs `message`; returns the 64-byte signature.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }

    /// Where the key was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Writes a secret file: created with mode 0600 under a temporary name, then renamed into place,
/// so a crash never leaves a half-written key and the key is never world-readable.
pub(crate) fn write_private(path: &Path, contents: &[u8]) -> Result<()> {
    let err = |e: std::io::Error| Error::Key(format!("cannot write {}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let _ = std::fs::remove_file(&tmp);
    let mut f = opts.open(&tmp).map_err(err)?;
    f.write_all(contents).map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_created_once_private_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/signing-key.pem");
        let (k1, created) = SigningKeyPair::load_or_create(&path).unwrap();
        assert!(created);
        let (k2, created) = SigningKeyPair::load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(k1.public(), k2.public());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(
                mode & 0o077,
                0,
                "private key must not be readable by others"
            );
        }
        let pub_text = std::fs::read_to_string(path.with_extension("pub")).unwrap();
        assert_eq!(pub_text.trim().parse::<PublicKey>().unwrap(), k1.public());
        assert!(!format!("{k1:?}").contains("PRIVATE"));
    }

    #[test]
    fn signatures_verify_only_for_the_signed_message_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let (k, _) = SigningKeyPair::load_or_create(&dir.path().join("a.pem")).unwrap();
        let (other, _) = SigningKeyPair::load_or_create(&dir.path().join("b.pem")).unwrap();
        let sig = k.sign(b"hello");
        assert!(k.public().verify(b"hello", &sig));
        assert!(!k.public().verify(b"hellO", &sig));
        assert!(!other.public().verify(b"hello", &sig));
        assert!(!k.public().verify(b"hello", &sig[..63]));
    }

    #[test]
    fn malformed_keys_are_clear_errors() {
        assert!("ssh-ed25519 AAAA".parse::<PublicKey>().is_err());
        assert!("ed25519:!!".parse::<PublicKey>().is_err());
        assert!("ed25519:AAAA".parse::<PublicKey>().is_err());
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.pem");
        std::fs::write(&p, "not a key").unwrap();
        let e = SigningKeyPair::load(&p).unwrap_err().to_string();
        assert!(e.contains("bad.pem") && e.contains("PKCS#8"), "{e}");
    }
}
