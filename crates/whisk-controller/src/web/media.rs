//! Just enough media-type handling for web actions: which types are binary, which are JSON.

/// A parsed `type/subtype` (parameters dropped, lower-cased).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaType {
    pub main: String,
    pub sub: String,
}

impl MediaType {
    /// Parses a `Content-Type` value; anything without a `/` yields an empty type that is
    /// neither JSON nor binary.
    pub fn parse(value: &str) -> MediaType {
        let essence = value.split(';').next().unwrap_or_default().trim();
        let (main, sub) = essence.split_once('/').unwrap_or((essence, ""));
        MediaType {
            main: main.trim().to_ascii_lowercase(),
            sub: sub.trim().to_ascii_lowercase(),
        }
    }

    /// A well-formed `type/subtype` with no spaces or empty parts.
    pub fn is_valid(&self) -> bool {
        let token = |part: &str| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+*".contains(&b))
        };
        token(&self.main) && token(&self.sub)
    }

    /// `application/json` and the `+json` family.
    pub fn is_json(&self) -> bool {
        self.main == "application" && (self.sub == "json" || self.sub.ends_with("+json"))
    }

    pub fn is_form(&self) -> bool {
        self.main == "application" && self.sub == "x-www-form-urlencoded"
    }

    /// The `type/subtype` text.
    pub fn essence(&self) -> String {
        format!("{}/{}", self.main, self.sub)
    }
}

/// Whether bodies of this type are bytes rather than text (and so travel base64 encoded).
pub fn is_binary(media: &MediaType) -> bool {
    match media.main.as_str() {
        "text" => false,
        "image" => media.sub != "svg+xml",
        "audio" | "video" | "font" => true,
        "application" => {
            let textual = media.is_json()
                || media.is_form()
                || media.sub.ends_with("+xml")
                || matches!(
                    media.sub.as_str(),
                    "xml" | "javascript" | "ecmascript" | "x-javascript" | "graphql" | "yaml"
                );
            !textual
        }
        "multipart" => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_common_types() {
        for binary in [
            "image/png",
            "application/octet-stream",
            "application/zip",
            "application/pdf",
            "audio/mpeg",
        ] {
            assert!(is_binary(&MediaType::parse(binary)), "{binary}");
        }
        for text in [
            "text/html; charset=UTF-8",
            "application/json",
            "application/problem+json",
            "image/svg+xml",
            "application/xml",
            "application/x-www-form-urlencoded",
        ] {
            assert!(!is_binary(&MediaType::parse(text)), "{text}");
        }
    }

    #[test]
    fn parses_case_and_parameters_away() {
        let media = MediaType::parse(" Application/JSON ; charset=utf-8");
        assert!(media.is_json());
        assert_eq!(media.essence(), "application/json");
        assert!(media.is_valid());
        assert!(!MediaType::parse("nonsense").is_valid());
        assert!(!MediaType::parse("text/").is_valid());
    }
}
