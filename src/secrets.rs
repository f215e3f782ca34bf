//! Secrets at rest: the master key, the sealing of records that hold secrets
//! (ChaCha20-Poly1305 with a random nonce per record), the admin token, and the
//! owner-only files they live in. Never logs or prints a secret value.

use std::io::Write;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use sha2::{Digest, Sha256};

use crate::model::Secret;

const NONCE_LEN: usize = 12;

/// Why a sealed record could not be opened or a key file used.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("sealed record is too short")]
    Short,
    #[error("sealed record does not authenticate (wrong master key or corrupt bytes)")]
    Authentication,
    #[error("the master key must be base64 of exactly 32 bytes")]
    BadKey,
    #[error("cannot read or write {path}")]
    File {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Seals and opens records with the master key. Debug never shows the key.
#[derive(Clone)]
pub struct Cipher {
    aead: ChaCha20Poly1305,
}

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cipher(****)")
    }
}

impl Cipher {
    /// A cipher for a 32-byte key.
    pub fn new(key: &[u8; 32]) -> Self {
        Cipher {
            aead: ChaCha20Poly1305::new(Key::from_slice(key)),
        }
    }

    /// A cipher from the base64 text of a 32-byte key (config or key file).
    pub fn from_base64(text: &str) -> Result<Self, SealError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| SealError::BadKey)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| SealError::BadKey)?;
        Ok(Cipher::new(&key))
    }

    /// Encrypts `plain`: a random nonce followed by the ciphertext and its tag.
    pub fn seal(&self, plain: &[u8]) -> Vec<u8> {
        let nonce: [u8; NONCE_LEN] = rand::random();
        // Encryption with ChaCha20-Poly1305 fails only for inputs over 256 GiB.
        let sealed = self
            .aead
            .encrypt(Nonce::from_slice(&nonce), plain)
            .expect("records are far below the AEAD size limit");
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Decrypts a record made by [`Cipher::seal`].
    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < NONCE_LEN {
            return Err(SealError::Short);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        self.aead
            .decrypt(Nonce::from_slice(nonce), body)
            .map_err(|_| SealError::Authentication)
    }
}

/// The master key: from config when given, else `<data_dir>/master.key`, which is
/// created with 32 random bytes (mode 0600) on first start.
pub fn load_or_create_master_key(
    configured: Option<&Secret>,
    data_dir: &Path,
) -> Result<Cipher, SealError> {
    if let Some(key) = configured {
        return Cipher::from_base64(key.expose());
    }
    let path = data_dir.join("master.key");
    match std::fs::read_to_string(&path) {
        Ok(text) => Cipher::from_base64(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key: [u8; 32] = rand::random();
            write_private_file(&path, STANDARD.encode(key).as_bytes())?;
            Ok(Cipher::new(&key))
        }
        Err(source) => Err(SealError::File {
            path: path.display().to_string(),
            source,
        }),
    }
}

/// The master key a data dir's records are sealed with, for offline tools (`hookbox
/// store copy`): from config when given, else `<data_dir>/master.key`. Unlike
/// [`load_or_create_master_key`] it never creates a key: a missing file is an error.
pub fn load_master_key(configured: Option<&Secret>, data_dir: &Path) -> Result<Cipher, SealError> {
    if let Some(key) = configured {
        return Cipher::from_base64(key.expose());
    }
    let path = data_dir.join("master.key");
    match std::fs::read_to_string(&path) {
        Ok(text) => Cipher::from_base64(&text),
        Err(source) => Err(SealError::File {
            path: path.display().to_string(),
            source,
        }),
    }
}

/// The admin token: from config when given, else `<data_dir>/admin-token`, generated
/// on first start. Returns the token and whether it was generated just now (so the
/// caller can print it once).
pub fn load_or_create_admin_token(
    configured: Option<&Secret>,
    data_dir: &Path,
) -> Result<(Secret, bool), SealError> {
    if let Some(token) = configured {
        return Ok((token.clone(), false));
    }
    let path = data_dir.join("admin-token");
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok((Secret::new(text.trim()), false)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let token = random_token("hbadm_");
            write_private_file(&path, token.as_bytes())?;
            Ok((Secret::new(token), true))
        }
        Err(source) => Err(SealError::File {
            path: path.display().to_string(),
            source,
        }),
    }
}

/// A random token: `prefix` + 32 bytes of URL-safe base64 (no padding).
pub fn random_token(prefix: &str) -> String {
    let bytes: [u8; 32] = rand::random();
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// SHA-256 of an API key; the only form in which keys are stored.
pub fn hash_key(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// Compares two byte strings in constant time (admin tokens).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Creates `path` readable and writable by its owner only (0600), failing if it exists.
fn write_private_file(path: &Path, contents: &[u8]) -> Result<(), SealError> {
    let err = |source| SealError::File {
        path: path.display().to_string(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(err)?;
    file.write_all(contents).map_err(err)?;
    file.sync_all().map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trip_and_tamper() {
        let c = Cipher::new(&[7; 32]);
        let sealed = c.seal(b"whsec_secret");
        assert!(!sealed.windows(6).any(|w| w == b"whsec_"));
        assert_eq!(c.open(&sealed).unwrap(), b"whsec_secret");
        let mut bad = sealed.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(matches!(c.open(&bad), Err(SealError::Authentication)));
        assert!(matches!(c.open(&[1, 2]), Err(SealError::Short)));
        assert!(Cipher::new(&[8; 32]).open(&sealed).is_err());
    }

    #[test]
    fn key_files_are_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create_master_key(None, dir.path()).unwrap();
        let b = load_or_create_master_key(None, dir.path()).unwrap();
        assert_eq!(b.open(&a.seal(b"x")).unwrap(), b"x");
        let (t1, fresh1) = load_or_create_admin_token(None, dir.path()).unwrap();
        let (t2, fresh2) = load_or_create_admin_token(None, dir.path()).unwrap();
        assert!(fresh1 && !fresh2);
        assert_eq!(t1.expose(), t2.expose());
        #[cfg(unix)]
        for name in ["master.key", "admin-token"] {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(name))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{name}");
        }
    }

    #[test]
    fn bad_master_keys() {
        assert!(Cipher::from_base64("short").is_err());
        assert!(Cipher::from_base64(&STANDARD.encode([1u8; 31])).is_err());
        assert!(Cipher::from_base64(&STANDARD.encode([1u8; 32])).is_ok());
    }
}
