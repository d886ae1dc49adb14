//! Content digests (`sha256:<64 hex>`), the names of everything an image is made of.

use std::fmt;
use std::io::Read;

use sha2::{Digest as _, Sha256};

/// A `sha256` content digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

impl Digest {
    /// Parses `sha256:<64 lowercase hex>`; other algorithms are not accepted.
    pub fn parse(text: &str) -> Option<Digest> {
        let hex = text.strip_prefix("sha256:")?;
        let valid = hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        valid.then(|| Digest(hex.to_string()))
    }

    /// The digest of a byte stream.
    pub fn of_reader(mut reader: impl Read) -> std::io::Result<Digest> {
        let mut hasher = Sha256::new();
        let mut buffer = vec![0_u8; 64 * 1024];
        loop {
            let read = reader.read(&mut buffer)?;
            if read == 0 {
                break;
            }
            hasher.update(&buffer[..read]);
        }
        Ok(Digest(hex::encode(hasher.finalize())))
    }

    pub fn of_bytes(bytes: &[u8]) -> Digest {
        Digest(hex::encode(Sha256::digest(bytes)))
    }

    /// The hex part, used as a file name.
    pub fn hex(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "sha256:{}", self.0)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_sha256_hex() {
        let text = format!("sha256:{}", "a".repeat(64));
        assert_eq!(Digest::parse(&text).unwrap().to_string(), text);
        for bad in [
            "sha256:abc",
            "sha512:aaaa",
            &format!("sha256:{}", "G".repeat(64)),
            &format!("sha256:../{}", "a".repeat(61)),
        ] {
            assert!(Digest::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn digests_of_bytes_and_readers_agree() {
        let bytes = b"hello";
        assert_eq!(
            Digest::of_bytes(bytes),
            Digest::of_reader(&bytes[..]).unwrap()
        );
        assert_eq!(
            Digest::of_bytes(b"").hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
