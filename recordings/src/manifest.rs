//! The manifest written when a session closes — who, what, when, why it ended, and the SHA-256
//! and size of its cast — signed with the Gatehouse Ed25519 key, and its offline check. Files
//! beside the cast: `ID.cast`, `ID.manifest.json` (the exact bytes signed) and `ID.manifest.sig`
//! (the base64 signature), so nothing has to be re-serialised to check it. An app session's
//! request log (`ID.requests.jsonl`, [`crate::requests`]) takes the cast's place: the manifest
//! names its file, and the check reads the file it names.

use crate::cast::Summary;
use crate::{Error, Result};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};

pub const FORMAT: &str = "gatehouse-recording-manifest/1";

/// The session a recording belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    pub id: String,
    pub identity: String,
    pub target: String,
    pub login: String,
    /// What carried the access (`standing:ID`, `request:ID`, `break_glass:ID`).
    pub grant: String,
    /// `shell`, `exec`, `sftp` or `subsystem`; `app` for an app session.
    pub kind: String,
    pub source: String,
    /// RFC 3339.
    pub started_at: String,
    pub ended_at: String,
}

/// The cast (or request log) the manifest vouches for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CastInfo {
    /// The file name, beside the manifest.
    pub file: String,
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub session: SessionInfo,
    pub cast: CastInfo,
    pub end_reason: String,
    /// The public key that signed, `ed25519:BASE64`.
    pub signed_by: String,
}

/// The three files of a recording, from the path of any of them (or of the cast without its
/// extension).
pub fn paths(any: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let name = any.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let stem = [
        ".manifest.json",
        ".manifest.sig",
        ".cast",
        crate::requests::EXTENSION,
    ]
    .iter()
    .find_map(|ext| name.strip_suffix(ext))
    .unwrap_or(name);
    let dir = any.parent().unwrap_or(Path::new(""));
    (
        dir.join(format!("{stem}.cast")),
        dir.join(format!("{stem}.manifest.json")),
        dir.join(format!("{stem}.manifest.sig")),
    )
}

/// Writes and signs the manifest of a finished cast. `sign` returns an Ed25519 signature.
pub fn write(
    cast: &Summary,
    session: SessionInfo,
    end_reason: &str,
    signed_by: &str,
    sign: impl FnOnce(&[u8]) -> [u8; 64],
) -> Result<Manifest> {
    let (_, manifest_path, sig_path) = paths(&cast.path);
    let manifest = Manifest {
        format: FORMAT.into(),
        session,
        cast: CastInfo {
            file: cast
                .path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .into(),
            size: cast.size,
            sha256: cast.sha256.clone(),
        },
        end_reason: end_reason.into(),
        signed_by: signed_by.into(),
    };
    let mut bytes =
        serde_json::to_vec_pretty(&manifest).map_err(|e| Error::Encode(e.to_string()))?;
    bytes.push(b'\n');
    let signature = sign(&bytes);
    let put = |p: &Path, b: &[u8]| {
        std::fs::write(p, b).map_err(|source| Error::Io {
            path: p.display().to_string(),
            source,
        })
    };
    put(&manifest_path, &bytes)?;
    put(&sig_path, format!("{}\n", B64.encode(signature)).as_bytes())?;
    Ok(manifest)
}

/// Why a recording does not verify.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("{0} is missing")]
    Missing(String),
    #[error("cannot read {0}")]
    Unreadable(String),
    #[error("the manifest signature does not verify with the given public key")]
    BadSignature,
    #[error("the manifest is malformed: {0}")]
    Malformed(String),
    #[error("the cast was changed: {0}")]
    CastChanged(String),
}

/// A recording whose signature, digest and size all check out.
#[derive(Debug, Clone)]
pub struct Verified {
    pub manifest: Manifest,
    pub cast: PathBuf,
}

fn read(p: &Path) -> std::result::Result<Vec<u8>, VerifyError> {
    std::fs::read(p).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => VerifyError::Missing(p.display().to_string()),
        _ => VerifyError::Unreadable(p.display().to_string()),
    })
}

/// Checks a recording offline: the manifest's signature (with `check(message, signature)`, which
/// holds only the public key), then the size and SHA-256 of the file it names (beside it: a
/// plain file name, else the manifest is malformed) against the manifest.
pub fn verify(
    any: &Path,
    check: impl Fn(&[u8], &[u8]) -> bool,
) -> std::result::Result<Verified, VerifyError> {
    let (_, manifest_path, sig_path) = paths(any);
    let bytes = read(&manifest_path)?;
    let sig_text = read(&sig_path)?;
    let signature = B64
        .decode(String::from_utf8_lossy(&sig_text).trim())
        .map_err(|_| VerifyError::Malformed("the signature file is not base64".into()))?;
    if !check(&bytes, &signature) {
        return Err(VerifyError::BadSignature);
    }
    let manifest: Manifest =
        serde_json::from_slice(&bytes).map_err(|e| VerifyError::Malformed(e.to_string()))?;
    if manifest.format != FORMAT {
        return Err(VerifyError::Malformed(format!(
            "unknown format {}",
            manifest.format
        )));
    }
    let name = manifest.cast.file.as_str();
    if name.is_empty()
        || name == "."
        || name == ".."
        || name.contains(['/', '\\'])
        || !(name.ends_with(".cast") || name.ends_with(crate::requests::EXTENSION))
    {
        return Err(VerifyError::Malformed(format!(
            "the recorded file {name:?} is not a file name beside the manifest"
        )));
    }
    let cast_path = manifest_path.with_file_name(name);
    let mut file = std::fs::File::open(&cast_path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => VerifyError::Missing(cast_path.display().to_string()),
        _ => VerifyError::Unreadable(cast_path.display().to_string()),
    })?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|_| VerifyError::Unreadable(cast_path.display().to_string()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    if size != manifest.cast.size {
        return Err(VerifyError::CastChanged(format!(
            "{size} bytes, the manifest says {}",
            manifest.cast.size
        )));
    }
    let digest = hex::encode(hasher.finalize());
    if digest != manifest.cast.sha256 {
        return Err(VerifyError::CastChanged(format!(
            "SHA-256 {digest}, the manifest says {}",
            manifest.cast.sha256
        )));
    }
    Ok(Verified {
        manifest,
        cast: cast_path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cast::{CastWriter, Header};

    fn session() -> SessionInfo {
        SessionInfo {
            id: "s1".into(),
            identity: "alice".into(),
            target: "db-01".into(),
            login: "root".into(),
            grant: "standing:a1".into(),
            kind: "shell".into(),
            source: "127.0.0.1:5555".into(),
            started_at: "2026-11-25T10:00:00Z".into(),
            ended_at: "2026-11-25T10:05:00Z".into(),
        }
    }

    // A stand-in signature scheme for the unit test (the real one is Ed25519, tested end to end):
    // the "signature" is the SHA-256 of key || message, twice.
    fn toy_sign(key: u8) -> impl Fn(&[u8]) -> [u8; 64] {
        move |m: &[u8]| {
            let h: [u8; 32] = Sha256::new()
                .chain_update([key])
                .chain_update(m)
                .finalize()
                .into();
            let mut s = [0u8; 64];
            s[..32].copy_from_slice(&h);
            s[32..].copy_from_slice(&h);
            s
        }
    }

    #[tokio::test]
    async fn a_signed_recording_verifies_and_any_change_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let cast = dir.path().join("s1.cast");
        let mut w = CastWriter::create(&cast, &Header::new(80, 24, 0, "t".into()))
            .await
            .unwrap();
        w.output(b"hello").await.unwrap();
        let summary = w.finish().await.unwrap();
        write(&summary, session(), "client closed", "toy:1", toy_sign(1)).unwrap();
        let check = |key: u8| move |m: &[u8], s: &[u8]| toy_sign(key)(m).as_slice() == s;

        // From any of the three paths.
        for p in ["s1.cast", "s1.manifest.json", "s1.manifest.sig"] {
            let v = verify(&dir.path().join(p), check(1)).unwrap();
            assert_eq!(v.manifest.end_reason, "client closed");
            assert_eq!(v.manifest.session, session());
        }
        assert_eq!(
            verify(&cast, check(2)).unwrap_err(),
            VerifyError::BadSignature
        );

        // One byte of the cast changed (same size): the digest names it.
        let text = std::fs::read_to_string(&cast).unwrap();
        std::fs::write(&cast, text.replace("hello", "hellO")).unwrap();
        assert!(matches!(
            verify(&cast, check(1)).unwrap_err(),
            VerifyError::CastChanged(m) if m.contains("SHA-256")
        ));
        std::fs::write(&cast, format!("{text}[9.0, \"o\", \"x\"]\n")).unwrap();
        assert!(matches!(
            verify(&cast, check(1)).unwrap_err(),
            VerifyError::CastChanged(m) if m.contains("bytes")
        ));
        std::fs::write(&cast, &text).unwrap();
        verify(&cast, check(1)).unwrap();

        // The manifest edited: the signature no longer holds.
        let (_, m, _) = paths(&cast);
        let edited = std::fs::read_to_string(&m)
            .unwrap()
            .replace("alice", "mallory");
        std::fs::write(&m, edited).unwrap();
        assert_eq!(
            verify(&cast, check(1)).unwrap_err(),
            VerifyError::BadSignature
        );
        std::fs::remove_file(&m).unwrap();
        assert!(matches!(
            verify(&cast, check(1)).unwrap_err(),
            VerifyError::Missing(_)
        ));
    }

    #[tokio::test]
    async fn a_signed_request_log_verifies_like_a_cast() {
        use crate::requests::{self, RequestWriter};
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("a1.requests.jsonl");
        let header = requests::Header {
            format: requests::FORMAT.into(),
            session: "a1".into(),
            identity: "alice".into(),
            app: "grafana".into(),
            timestamp: 0,
        };
        let mut w = RequestWriter::create(&log, &header).await.unwrap();
        let r = requests::Request {
            method: "GET".into(),
            path: "/?token=abc".into(),
            status: 200,
            bytes_in: 0,
            bytes_out: 2,
            duration_ms: 1,
        };
        w.request(std::time::Instant::now(), &r).await.unwrap();
        let summary = w.finish("logout").await.unwrap();
        let info = SessionInfo {
            id: "a1".into(),
            login: String::new(),
            kind: "app".into(),
            ..session()
        };
        write(&summary, info, "logout", "toy:1", toy_sign(1)).unwrap();
        let check = |m: &[u8], s: &[u8]| toy_sign(1)(m).as_slice() == s;
        for p in ["a1.requests.jsonl", "a1.manifest.json", "a1.manifest.sig"] {
            let v = verify(&dir.path().join(p), check).unwrap();
            assert_eq!(v.cast, log);
            assert_eq!(v.manifest.cast.file, "a1.requests.jsonl");
        }
        let text = std::fs::read_to_string(&log).unwrap();
        std::fs::write(&log, text.replacen("GET", "PUT", 1)).unwrap();
        assert!(matches!(
            verify(&log, check).unwrap_err(),
            VerifyError::CastChanged(m) if m.contains("SHA-256")
        ));
    }
}
