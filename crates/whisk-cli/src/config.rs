//! The `wsk` properties file (`~/.wskprops` or `$WSK_CONFIG_FILE`) and how its values combine with
//! environment variables and command-line flags.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Failures reading or writing the properties file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot locate the properties file: set WSK_CONFIG_FILE or HOME")]
    NoLocation,
    #[error("cannot read properties file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write properties file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no API host is configured; run `wsk property set --apihost HOST`")]
    NoApiHost,
    #[error("invalid API host '{0}'")]
    BadApiHost(String),
}

/// The key/value pairs of a properties file, kept sorted so rewriting the file is deterministic.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Props {
    values: BTreeMap<String, String>,
}

impl Props {
    /// Where the properties live: `WSK_CONFIG_FILE` wins so tests and multiple setups never touch
    /// the user's home file.
    pub fn location() -> Result<PathBuf, ConfigError> {
        if let Some(path) = std::env::var_os("WSK_CONFIG_FILE").filter(|p| !p.is_empty()) {
            return Ok(PathBuf::from(path));
        }
        std::env::var_os("HOME")
            .filter(|p| !p.is_empty())
            .map(|home| PathBuf::from(home).join(".wskprops"))
            .ok_or(ConfigError::NoLocation)
    }

    /// Reads `path`; a missing file is an empty configuration, as for a first-time user.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(Self::parse(&text)),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(ConfigError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Parses `KEY=VALUE` lines; blank lines, `#` comments and lines without `=` are ignored.
    pub fn parse(text: &str) -> Self {
        let values = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .filter_map(|line| line.split_once('='))
            .map(|(key, value)| (key.trim().to_string(), value.trim().to_string()))
            .collect();
        Self { values }
    }

    pub fn save(&self, path: &Path) -> Result<(), ConfigError> {
        let text: String = self
            .values
            .iter()
            .map(|(key, value)| format!("{key}={value}\n"))
            .collect();
        std::fs::write(path, text).map_err(|source| ConfigError::Write {
            path: path.to_path_buf(),
            source,
        })
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    pub fn set(&mut self, key: &str, value: &str) {
        self.values.insert(key.to_string(), value.to_string());
    }

    pub fn unset(&mut self, key: &str) {
        self.values.remove(key);
    }
}

/// Turns an `APIHOST` value into the base URL of the REST API. A bare host means HTTPS, as
/// deployed OpenWhisk expects; an explicit `http://` is kept for local platforms.
pub fn api_base(apihost: &str, apiversion: &str) -> Result<reqwest::Url, ConfigError> {
    let host = apihost.trim().trim_end_matches('/');
    if host.is_empty() {
        return Err(ConfigError::NoApiHost);
    }
    let with_scheme = if host.starts_with("http://") || host.starts_with("https://") {
        host.to_string()
    } else {
        format!("https://{host}")
    };
    reqwest::Url::parse(&format!("{with_scheme}/api/{apiversion}/"))
        .map_err(|_| ConfigError::BadApiHost(apihost.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_ignores_noise() {
        let props = Props::parse("# c\nAPIHOST = example.com\n\nAUTH=a:b=c\nbogus\n");
        assert_eq!(props.get("APIHOST"), Some("example.com"));
        assert_eq!(props.get("AUTH"), Some("a:b=c"));
        assert_eq!(props.get("bogus"), None);
    }

    #[test]
    fn bare_host_means_https() {
        let url = api_base("example.com:8443", "v1").map(|u| u.to_string());
        assert_eq!(
            url.ok().as_deref(),
            Some("https://example.com:8443/api/v1/")
        );
        let url = api_base("http://127.0.0.1:3233/", "v1").map(|u| u.to_string());
        assert_eq!(url.ok().as_deref(), Some("http://127.0.0.1:3233/api/v1/"));
        assert!(matches!(api_base("", "v1"), Err(ConfigError::NoApiHost)));
    }
}
