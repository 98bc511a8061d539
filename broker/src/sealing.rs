//! Secrets Gatehouse must read back (TOTP seeds) are sealed with AES-256-GCM under a key kept
//! in the data directory (mode 0600, `DATA_DIR/keys/secrets.key`), never stored in clear. A
//! database copy alone reveals none of them.

use crate::error::{Error, Result};
use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use std::path::Path;

const PREFIX: &str = "v1:";

/// The sealing key. `Debug` shows nothing of it.
pub struct SealingKey([u8; 32]);

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingKey(..)")
    }
}

impl SealingKey {
    /// Reads the key at `path`, or creates it there (0600).
    pub fn load_or_create(path: &Path) -> Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let bytes = B64
                    .decode(text.trim())
                    .map_err(|_| Error::Key(format!("{} is not a sealing key", path.display())))?;
                let key: [u8; 32] = bytes
                    .try_into()
                    .map_err(|_| Error::Key(format!("{} is not a 32-byte key", path.display())))?;
                Ok(SealingKey(key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                getrandom::fill(&mut key)
                    .map_err(|e| Error::Key(format!("random generator: {e}")))?;
                crate::keys::write_private(path, format!("{}\n", B64.encode(key)).as_bytes())?;
                Ok(SealingKey(key))
            }
            Err(e) => Err(Error::Key(format!("cannot read {}: {e}", path.display()))),
        }
    }

    /// A key for tests.
    pub fn from_bytes(key: [u8; 32]) -> Self {
        SealingKey(key)
    }

    fn cipher(&self) -> Result<Aes256Gcm> {
        Aes256Gcm::new_from_slice(&self.0).map_err(|_| Error::Key("sealing key".into()))
    }

    /// `v1:` + base64(nonce ‖ ciphertext ‖ tag).
    pub fn seal(&self, plain: &[u8]) -> Result<String> {
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).map_err(|e| Error::Key(format!("random generator: {e}")))?;
        let sealed = self
            .cipher()?
            .encrypt(&Nonce::from(nonce), plain)
            .map_err(|_| Error::Key("sealing failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(format!("{PREFIX}{}", B64.encode(out)))
    }

    /// The plaintext of [`seal`](Self::seal)'s output; an error when it was sealed under another
    /// key or altered.
    pub fn open(&self, sealed: &str) -> Result<Vec<u8>> {
        let bad = || Error::Key("a sealed secret does not open with this key".into());
        let bytes = B64
            .decode(sealed.strip_prefix(PREFIX).ok_or_else(bad)?)
            .map_err(|_| bad())?;
        if bytes.len() < 12 + 16 {
            return Err(bad());
        }
        let (nonce, body) = bytes.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().map_err(|_| bad())?;
        self.cipher()?
            .decrypt(&Nonce::from(nonce), body)
            .map_err(|_| bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_their_key_and_unaltered() {
        let k = SealingKey::from_bytes([7; 32]);
        let s = k.seal(b"seed").unwrap();
        assert!(!s.contains("seed"));
        assert_eq!(k.open(&s).unwrap(), b"seed");
        assert_ne!(k.seal(b"seed").unwrap(), s, "fresh nonce each time");
        assert!(SealingKey::from_bytes([8; 32]).open(&s).is_err());
        let mut altered = s.clone();
        altered.pop();
        altered.push(if s.ends_with('A') { 'B' } else { 'A' });
        assert!(k.open(&altered).is_err());
    }
}
