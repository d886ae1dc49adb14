//! Checks of the signatures webhook senders put on their requests, so that a webhook URL that
//! leaked still fires nothing for a sender that does not know the secret.

use axum::http::HeaderMap;
use ring::hmac;

/// How far a Slack request's timestamp may be from now before it counts as a replay
/// (Slack's own recommendation).
pub const SLACK_MAX_SKEW_SECONDS: u64 = 5 * 60;

/// Who signs a webhook's requests, and with what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verifier {
    /// Unsigned: anyone who knows the URL may fire.
    None,
    /// GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>`.
    GitHub { secret: String },
    /// Slack v0: `X-Slack-Signature: v0=<hex HMAC-SHA256(secret, "v0:<ts>:<body>")>` with
    /// `X-Slack-Request-Timestamp: <ts>` close to now.
    Slack { secret: String },
}

/// Why a request was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("the {0} header is missing")]
    Missing(&'static str),
    #[error("the {0} header is malformed")]
    Malformed(&'static str),
    #[error("the request timestamp is too far from now")]
    Stale,
    #[error("the signature does not match")]
    Mismatch,
}

impl Verifier {
    /// The provider's name as stored and reported.
    pub fn provider(&self) -> &'static str {
        match self {
            Verifier::None => "none",
            Verifier::GitHub { .. } => "github",
            Verifier::Slack { .. } => "slack",
        }
    }

    /// Rebuilds a verifier from its stored provider name and secret.
    pub fn from_stored(provider: &str, secret: Option<String>) -> Option<Self> {
        match (provider, secret) {
            ("none", _) => Some(Verifier::None),
            ("github", Some(secret)) => Some(Verifier::GitHub { secret }),
            ("slack", Some(secret)) => Some(Verifier::Slack { secret }),
            _ => None,
        }
    }

    /// The secret, for storing.
    pub fn secret(&self) -> Option<&str> {
        match self {
            Verifier::None => None,
            Verifier::GitHub { secret } | Verifier::Slack { secret } => Some(secret),
        }
    }

    /// Checks `body` as received with `headers`; `now_seconds` is the current Unix time.
    pub fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now_seconds: u64,
    ) -> Result<(), SignatureError> {
        match self {
            Verifier::None => Ok(()),
            Verifier::GitHub { secret } => {
                const HEADER: &str = "X-Hub-Signature-256";
                let signature = header(headers, HEADER)?
                    .strip_prefix("sha256=")
                    .ok_or(SignatureError::Malformed(HEADER))?;
                let signature =
                    hex::decode(signature).map_err(|_| SignatureError::Malformed(HEADER))?;
                check(secret, &[body], &signature)
            }
            Verifier::Slack { secret } => {
                const SIGNATURE: &str = "X-Slack-Signature";
                const TIMESTAMP: &str = "X-Slack-Request-Timestamp";
                let timestamp = header(headers, TIMESTAMP)?;
                let seconds: u64 = timestamp
                    .parse()
                    .map_err(|_| SignatureError::Malformed(TIMESTAMP))?;
                if seconds.abs_diff(now_seconds) > SLACK_MAX_SKEW_SECONDS {
                    return Err(SignatureError::Stale);
                }
                let signature = header(headers, SIGNATURE)?
                    .strip_prefix("v0=")
                    .ok_or(SignatureError::Malformed(SIGNATURE))?;
                let signature =
                    hex::decode(signature).map_err(|_| SignatureError::Malformed(SIGNATURE))?;
                let prefix = format!("v0:{timestamp}:");
                check(secret, &[prefix.as_bytes(), body], &signature)
            }
        }
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<&'a str, SignatureError> {
    headers
        .get(name)
        .ok_or(SignatureError::Missing(name))?
        .to_str()
        .map(str::trim)
        .map_err(|_| SignatureError::Malformed(name))
}

/// Constant-time comparison of HMAC-SHA256(secret, parts…) with `signature`.
fn check(secret: &str, parts: &[&[u8]], signature: &[u8]) -> Result<(), SignatureError> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let message: Vec<u8> = parts.concat();
    hmac::verify(&key, &message, signature).map_err(|_| SignatureError::Mismatch)
}

/// `hex(HMAC-SHA256(secret, message))`: what a sender puts in its signature header (used by
/// tests and by clients that want to sign their own calls).
pub fn sign_hex(secret: &str, message: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    hex::encode(hmac::sign(&key, message).as_ref())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn github_signature_matches_githubs_documented_example() {
        // The example in GitHub's "Validating webhook deliveries" documentation.
        let verifier = Verifier::GitHub {
            secret: "It's a Secret to Everybody".into(),
        };
        let good = headers(&[(
            "x-hub-signature-256",
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17".into(),
        )]);
        assert_eq!(verifier.verify(&good, b"Hello, World!", 0), Ok(()));
        assert_eq!(
            verifier.verify(&good, b"Hello, World?", 0),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn github_signature_errors_are_told_apart() {
        let verifier = Verifier::GitHub { secret: "s".into() };
        assert_eq!(
            verifier.verify(&HeaderMap::new(), b"{}", 0),
            Err(SignatureError::Missing("X-Hub-Signature-256"))
        );
        for bad in ["sha1=00", "sha256=zz"] {
            assert_eq!(
                verifier.verify(&headers(&[("x-hub-signature-256", bad.into())]), b"{}", 0),
                Err(SignatureError::Malformed("X-Hub-Signature-256"))
            );
        }
        let signed = format!("sha256={}", sign_hex("s", b"{}"));
        assert_eq!(
            verifier.verify(&headers(&[("x-hub-signature-256", signed)]), b"{}", 0),
            Ok(())
        );
    }

    #[test]
    fn slack_signature_covers_timestamp_and_body_and_refuses_stale_requests() {
        let verifier = Verifier::Slack {
            secret: "shh".into(),
        };
        let body = b"token=x&text=hi";
        let now = 1_700_000_000;
        let signed = |ts: u64| {
            let base = format!("v0:{ts}:{}", std::str::from_utf8(body).unwrap());
            headers(&[
                ("x-slack-request-timestamp", ts.to_string()),
                (
                    "x-slack-signature",
                    format!("v0={}", sign_hex("shh", base.as_bytes())),
                ),
            ])
        };
        assert_eq!(verifier.verify(&signed(now), body, now + 10), Ok(()));
        assert_eq!(
            verifier.verify(&signed(now), body, now + SLACK_MAX_SKEW_SECONDS + 1),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verifier.verify(&signed(now), b"token=x&text=bye", now),
            Err(SignatureError::Mismatch)
        );
        let mut swapped = signed(now);
        swapped.insert(
            "x-slack-request-timestamp",
            (now + 1).to_string().parse().unwrap(),
        );
        assert_eq!(
            verifier.verify(&swapped, body, now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verifier.verify(&HeaderMap::new(), body, now),
            Err(SignatureError::Missing("X-Slack-Request-Timestamp"))
        );
    }

    #[test]
    fn stored_verifiers_round_trip() {
        for verifier in [
            Verifier::None,
            Verifier::GitHub { secret: "a".into() },
            Verifier::Slack { secret: "b".into() },
        ] {
            let back =
                Verifier::from_stored(verifier.provider(), verifier.secret().map(str::to_owned));
            assert_eq!(back, Some(verifier));
        }
        assert_eq!(Verifier::from_stored("github", None), None);
        assert_eq!(Verifier::from_stored("gitlab", Some("x".into())), None);
    }
}
