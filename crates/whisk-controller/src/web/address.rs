//! Where a web action request points: `/api/v1/web/{namespace}/{package}/{action}{ext}{extra}`.

/// The response forms a web action can ask for by the suffix of its name (REFERENCE §11.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extension {
    Http,
    Json,
    Html,
    Svg,
    Text,
}

impl Extension {
    const ALL: [(Extension, &'static str); 5] = [
        (Extension::Http, ".http"),
        (Extension::Json, ".json"),
        (Extension::Html, ".html"),
        (Extension::Svg, ".svg"),
        (Extension::Text, ".text"),
    ];

    /// Splits a trailing extension off an action segment; without one the form is `.http`.
    pub fn split(segment: &str) -> (&str, Extension) {
        for (extension, suffix) in Extension::ALL {
            if let Some(name) = segment.strip_suffix(suffix) {
                return (name, extension);
            }
        }
        (segment, Extension::Http)
    }
}

/// The parts of a web action path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebAddress {
    pub namespace: String,
    /// `None` for the literal `default` (the namespace's default package).
    pub package: Option<String>,
    pub action: String,
    pub extension: Extension,
    /// What follows the action segment, with its leading slash (`""` when nothing does).
    pub extra_path: String,
}

impl WebAddress {
    /// Parses the path after `/api/v1/web/`. `None` when it has fewer than three segments or an
    /// empty one among them: such a path names no web action.
    pub fn parse(path: &str) -> Option<WebAddress> {
        let mut parts = path.splitn(4, '/');
        let namespace = parts.next().filter(|part| !part.is_empty())?;
        let package = parts.next().filter(|part| !part.is_empty())?;
        let action_segment = parts.next().filter(|part| !part.is_empty())?;
        let extra_path = parts
            .next()
            .map(|rest| format!("/{rest}"))
            .unwrap_or_default();
        let (action, extension) = Extension::split(action_segment);
        if action.is_empty() {
            return None;
        }
        Some(WebAddress {
            namespace: namespace.to_string(),
            package: (package != "default").then(|| package.to_string()),
            action: action.to_string(),
            extension,
            extra_path,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_default_package_extension_and_extra_path() {
        let address = WebAddress::parse("guest/default/hello.json/a/b").unwrap();
        assert_eq!(address.namespace, "guest");
        assert_eq!(address.package, None);
        assert_eq!(address.action, "hello");
        assert_eq!(address.extension, Extension::Json);
        assert_eq!(address.extra_path, "/a/b");
    }

    #[test]
    fn no_extension_means_http_and_the_whole_segment_is_the_name() {
        let address = WebAddress::parse("guest/pkg/hello.world").unwrap();
        assert_eq!(address.package.as_deref(), Some("pkg"));
        assert_eq!(address.action, "hello.world");
        assert_eq!(address.extension, Extension::Http);
        assert_eq!(address.extra_path, "");
    }

    #[test]
    fn each_extension_is_recognised() {
        for (suffix, extension) in [
            ("http", Extension::Http),
            ("json", Extension::Json),
            ("html", Extension::Html),
            ("svg", Extension::Svg),
            ("text", Extension::Text),
        ] {
            let address = WebAddress::parse(&format!("ns/default/a.{suffix}")).unwrap();
            assert_eq!(address.extension, extension, "{suffix}");
            assert_eq!(address.action, "a");
        }
    }

    #[test]
    fn incomplete_paths_name_nothing() {
        for path in [
            "",
            "guest",
            "guest/default",
            "guest/default/",
            "guest//a",
            "ns/default/.json",
        ] {
            assert_eq!(WebAddress::parse(path), None, "{path}");
        }
    }

    #[test]
    fn a_trailing_slash_is_an_extra_path() {
        let address = WebAddress::parse("guest/default/hello/").unwrap();
        assert_eq!(address.extra_path, "/");
    }
}
