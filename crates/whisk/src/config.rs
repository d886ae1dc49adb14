//! The one configuration of a whisk-rs process, loaded once at start.
//!
//! Values come, lowest precedence first, from built-in defaults (OpenWhisk's), a TOML file, the
//! environment and command-line flags. Clap merges flags and environment variables into the same
//! `Option`s, so this module only has to lay those over the file and the defaults.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

/// Where the standalone platform listens when nothing else is said: OpenWhisk's standalone port.
pub const DEFAULT_PORT: u16 = 3233;
/// Loopback only by default, so a fresh install is not reachable from the network.
pub const DEFAULT_HOST: &str = "127.0.0.1";

/// The contents of a configuration file; every field is optional so a file can say only what it changes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileConfig {
    pub host: Option<IpAddr>,
    pub port: Option<u16>,
    pub data_dir: Option<PathBuf>,
    #[serde(default)]
    pub limits: LimitOverrides,
}

/// System-wide per-namespace throttles an operator may change from OpenWhisk's documented defaults.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LimitOverrides {
    pub invocations_per_minute: Option<u32>,
    pub concurrent_invocations: Option<u32>,
    pub fires_per_minute: Option<u32>,
}

/// What the command line (and the environment, through clap) said about the server.
#[derive(Debug, Default, Clone)]
pub struct ServerFlags {
    pub config: Option<PathBuf>,
    pub host: Option<IpAddr>,
    pub port: Option<u16>,
    pub data_dir: Option<PathBuf>,
}

/// The resolved configuration a server runs with.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub host: IpAddr,
    pub port: u16,
    pub data_dir: PathBuf,
    pub limits: LimitOverrides,
}

impl ServerConfig {
    /// Lays flags (and environment) over the file (if any) over the defaults.
    pub fn load(flags: &ServerFlags) -> anyhow::Result<Self> {
        let file = match &flags.config {
            Some(path) => read_file_config(path)?,
            None => FileConfig::default(),
        };
        let default_host: IpAddr = DEFAULT_HOST
            .parse()
            .context("the built-in default host is not an IP address")?;
        Ok(Self {
            host: flags.host.or(file.host).unwrap_or(default_host),
            port: flags.port.or(file.port).unwrap_or(DEFAULT_PORT),
            data_dir: match flags.data_dir.clone().or(file.data_dir) {
                Some(dir) => dir,
                None => default_data_dir()?,
            },
            limits: file.limits,
        })
    }
}

/// Reads and parses a TOML configuration file, naming the file in any error.
pub fn read_file_config(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read configuration file {}", path.display()))?;
    toml::from_str(&text)
        .with_context(|| format!("configuration file {} is not valid", path.display()))
}

/// `~/.whisk`, where the embedded store keeps its database unless told otherwise.
pub fn default_data_dir() -> anyhow::Result<PathBuf> {
    let home = std::env::var_os("HOME")
        .filter(|home| !home.is_empty())
        .context("HOME is not set; pass --data-dir or set WHISK_DATA_DIR")?;
    Ok(PathBuf::from(home).join(".whisk"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_file_and_file_over_defaults() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("whisk.toml");
        std::fs::write(
            &path,
            "host = \"0.0.0.0\"\nport = 4000\ndata-dir = \"/srv/whisk\"\n[limits]\nfires-per-minute = 7\n",
        )?;
        let from_file = ServerConfig::load(&ServerFlags {
            config: Some(path.clone()),
            ..ServerFlags::default()
        })?;
        assert_eq!(from_file.host.to_string(), "0.0.0.0");
        assert_eq!(from_file.port, 4000);
        assert_eq!(from_file.data_dir, PathBuf::from("/srv/whisk"));
        assert_eq!(from_file.limits.fires_per_minute, Some(7));

        let overridden = ServerConfig::load(&ServerFlags {
            config: Some(path),
            port: Some(5000),
            data_dir: Some(PathBuf::from("/tmp/w")),
            ..ServerFlags::default()
        })?;
        assert_eq!(overridden.port, 5000);
        assert_eq!(overridden.data_dir, PathBuf::from("/tmp/w"));
        assert_eq!(overridden.host.to_string(), "0.0.0.0");
        Ok(())
    }

    #[test]
    fn defaults_are_openwhisk_standalone_ones() -> anyhow::Result<()> {
        let config = ServerConfig::load(&ServerFlags {
            data_dir: Some(PathBuf::from("/x")),
            ..ServerFlags::default()
        })?;
        assert_eq!(config.port, 3233);
        assert_eq!(config.host.to_string(), "127.0.0.1");
        Ok(())
    }

    #[test]
    fn unknown_keys_in_the_file_are_refused() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "prot = 1\n")?;
        let error = read_file_config(&path).err().map(|e| format!("{e:#}"));
        assert!(
            error.as_deref().is_some_and(|e| e.contains("prot")),
            "{error:?}"
        );
        Ok(())
    }
}
