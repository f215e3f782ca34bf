//! The record codec: every value hookbox writes to redb goes through here. It owns
//! the byte-level encoding of records (a version byte, then bincode) and must never
//! panic on any input bytes. Which struct a version byte stands for is decided by
//! `store::records`, not here.
//!
//! Format: one version byte, then the record encoded with bincode 2 (serde mode,
//! standard config, a 16 MiB allocation limit). bincode is marked unmaintained
//! (RUSTSEC-2025-0141, informational); keeping it behind this file and our own version
//! byte means moving to postcard is a change to this file plus a new version number
//! that decodes old records with the old codec.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The version byte of records that have only ever had one layout (the 0.1.0 one).
pub const VERSION: u8 = 1;

/// The largest record the decoder will allocate for; bigger claims are corrupt.
const LIMIT: usize = 16 * 1024 * 1024;

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<LIMIT>()
}

/// Why a record could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("empty record")]
    Empty,
    #[error("unknown record version {0}")]
    Version(u8),
    #[error("corrupt record")]
    Decode(#[source] bincode::error::DecodeError),
    #[error("record has {0} trailing bytes")]
    Trailing(usize),
    #[error("record cannot be encoded")]
    Encode(#[source] bincode::error::EncodeError),
    /// The bytes decoded, but a field holds a value no build wrote.
    #[error("corrupt record: {0}")]
    Invalid(String),
}

/// Encodes a record with version byte `version` in front.
pub fn encode_as<T: Serialize + ?Sized>(version: u8, value: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(128);
    out.push(version);
    bincode::serde::encode_into_std_write(value, &mut out, config()).map_err(CodecError::Encode)?;
    Ok(out)
}

/// Splits a record into its version byte and body.
pub fn split(bytes: &[u8]) -> Result<(u8, &[u8]), CodecError> {
    let (&version, body) = bytes.split_first().ok_or(CodecError::Empty)?;
    Ok((version, body))
}

/// Decodes a record body (after [`split`]); the whole body must be used.
pub fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, CodecError> {
    let (value, used) =
        bincode::serde::decode_from_slice(body, config()).map_err(CodecError::Decode)?;
    if used != body.len() {
        return Err(CodecError::Trailing(body.len() - used));
    }
    Ok(value)
}

/// Encodes a single-layout record as [`VERSION`].
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    encode_as(VERSION, value)
}

/// Decodes a single-layout record written by [`encode`]. Fails, never panics, on
/// corrupt bytes or another version.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (version, body) = split(bytes)?;
    if version != VERSION {
        return Err(CodecError::Version(version));
    }
    decode_body(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Rec {
        id: String,
        payload: String,
        channels: Vec<String>,
        key: Option<String>,
        at: i64,
    }

    fn rec() -> Rec {
        Rec {
            id: "evt_1".into(),
            payload: r#"{"a": 1.50}"#.into(),
            channels: vec!["P-1".into()],
            key: Some("k".into()),
            at: 1_700_000_000_000,
        }
    }

    #[test]
    fn round_trip() {
        let bytes = encode(&rec()).unwrap();
        assert_eq!(bytes[0], VERSION);
        assert_eq!(decode::<Rec>(&bytes).unwrap(), rec());
        let v2 = encode_as(2, &rec()).unwrap();
        assert!(matches!(decode::<Rec>(&v2), Err(CodecError::Version(2))));
        let (v, body) = split(&v2).unwrap();
        assert_eq!((v, decode_body::<Rec>(body).unwrap()), (2, rec()));
    }

    #[test]
    fn corrupt_bytes_are_errors_not_panics() {
        let good = encode(&rec()).unwrap();
        assert!(matches!(decode::<Rec>(&[]), Err(CodecError::Empty)));
        assert!(matches!(
            decode::<Rec>(&[9, 1, 2]),
            Err(CodecError::Version(9))
        ));
        // Every truncation and every single-byte corruption must fail cleanly or decode.
        for len in 0..good.len() {
            let _ = decode::<Rec>(&good[..len]);
        }
        for i in 1..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0xff;
            let _ = decode::<Rec>(&bad);
        }
        // A length prefix claiming gigabytes is refused without allocating them.
        let mut huge = vec![VERSION];
        huge.extend_from_slice(&[0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
        assert!(decode::<Rec>(&huge).is_err());
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(matches!(
            decode::<Rec>(&trailing),
            Err(CodecError::Trailing(1))
        ));
    }
}
