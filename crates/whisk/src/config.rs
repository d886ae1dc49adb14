//! The one configuration of a whisk-rs process, loaded once at start.
//!
//! Values come, lowest precedence first, from built-in defaults (OpenWhisk's), a TOML file, the
//! environment and command-line flags. Clap merges flags and environment variables into the same
//! `Option`s, so this module only has to lay those over the file and the defaults.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;

/// Where the standalone platform listens when nothing else is said: OpenWhisk's standalone port.
pub const DEFAULT_PORT: u16 = 3233;
/// Loopback only by default, so a fresh install is not reachable from the network.
pub const DEFAULT_HOST: &str = "127.0.0.1";
/// Environment variable (`true`/`false`) that overrides `[invoker] enabled`, so scripts and
/// tests that only need the API can run without containers, root or host network setup.
pub const INVOKER_ENABLED_ENV: &str = "WHISK_INVOKER_ENABLED";

/// The contents of a configuration file; every field is optional so a file can say only what it changes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileConfig {
    pub host: Option<IpAddr>,
    pub port: Option<u16>,
    pub data_dir: Option<PathBuf>,
    #[serde(default)]
    pub limits: LimitOverrides,
    #[serde(default)]
    pub invoker: InvokerFile,
    #[serde(default)]
    pub tls: TlsFile,
    #[serde(default)]
    pub cluster: ClusterFile,
    #[serde(default)]
    pub retention: RetentionFile,
}

/// The `[retention]` section: how long activation records are kept. Without `activation-ttl-hours`
/// they are kept until deleted by hand (OpenWhisk leaves this to its database's own policies).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RetentionFile {
    pub activation_ttl_hours: Option<u64>,
    pub purge_interval_minutes: Option<u64>,
}

/// How often expired records are purged when nothing else is said.
pub const DEFAULT_PURGE_INTERVAL_MINUTES: u64 = 60;

impl RetentionFile {
    /// The time-to-live and purge interval, when a time-to-live is configured.
    pub fn schedule(&self) -> anyhow::Result<Option<(std::time::Duration, std::time::Duration)>> {
        let Some(hours) = self.activation_ttl_hours else {
            return Ok(None);
        };
        anyhow::ensure!(
            hours > 0,
            "[retention] activation-ttl-hours must be at least 1"
        );
        let minutes = self
            .purge_interval_minutes
            .unwrap_or(DEFAULT_PURGE_INTERVAL_MINUTES);
        anyhow::ensure!(
            minutes > 0,
            "[retention] purge-interval-minutes must be at least 1"
        );
        Ok(Some((
            std::time::Duration::from_secs(hours.saturating_mul(3600)),
            std::time::Duration::from_secs(minutes.saturating_mul(60)),
        )))
    }
}

/// Starts the background purge of expired activation records, when `[retention]` asks for one.
pub fn start_retention(
    retention: &RetentionFile,
    activations: std::sync::Arc<dyn whisk_store::ActivationStore>,
) -> anyhow::Result<Option<whisk_store::RetentionTask>> {
    Ok(retention.schedule()?.map(|(ttl, every)| {
        tracing::info!(
            ttl_hours = ttl.as_secs() / 3600,
            every_minutes = every.as_secs() / 60,
            "activation retention on"
        );
        whisk_store::spawn_retention(activations, ttl, every)
    }))
}

/// The `[tls]` section: serve the API and web actions over HTTPS.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TlsFile {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub self_signed: Option<bool>,
}

/// How the edge speaks to clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSettings {
    /// Plain HTTP (the default: loopback development needs nothing else).
    Off,
    /// HTTPS with a PEM certificate chain and key from files.
    Files { cert: PathBuf, key: PathBuf },
    /// HTTPS with a development certificate generated at start (kept in `<data-dir>/tls/`).
    SelfSigned,
}

impl TlsSettings {
    fn resolve(flags: &ServerFlags, file: TlsFile) -> anyhow::Result<Self> {
        let cert = flags.tls_cert.clone().or(file.cert);
        let key = flags.tls_key.clone().or(file.key);
        let self_signed = flags.tls_self_signed || file.self_signed.unwrap_or(false);
        match (cert, key, self_signed) {
            (Some(_), _, true) | (_, Some(_), true) => {
                anyhow::bail!("--tls-self-signed cannot be combined with --tls-cert/--tls-key")
            }
            (Some(cert), Some(key), false) => Ok(Self::Files { cert, key }),
            (Some(_), None, false) => anyhow::bail!("--tls-cert needs --tls-key"),
            (None, Some(_), false) => anyhow::bail!("--tls-key needs --tls-cert"),
            (None, None, true) => Ok(Self::SelfSigned),
            (None, None, false) => Ok(Self::Off),
        }
    }
}

/// The `[invoker]` section: the invoker a standalone platform runs in-process.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct InvokerFile {
    pub enabled: Option<bool>,
    pub instance: Option<String>,
    pub user_memory_mb: Option<u64>,
    pub pause_grace_ms: Option<u64>,
    pub idle_timeout_ms: Option<u64>,
    pub stem_cells: Option<bool>,
    pub network: Option<NetworkMode>,
    pub subnet: Option<String>,
}

/// What network an action container gets. Either way each container has its own network
/// namespace that the invoker reaches over a veth pair, and the platform's API is relayed in.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkMode {
    /// Outbound access to the world through the host's address (OpenWhisk's actions have it).
    #[default]
    Nat,
    /// Nothing leaves the host except calls to the platform's API.
    None,
}

/// Memory for action containers when nothing else is said (OpenWhisk's deployed default).
pub const DEFAULT_USER_MEMORY_MB: u64 = 2048;
/// Idle time before a warm container is paused (OpenWhisk: 10 s).
pub const DEFAULT_PAUSE_GRACE_MS: u64 = 10_000;
/// Paused time before a container is destroyed (OpenWhisk: 10 min).
pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 600_000;

/// The resolved `[invoker]` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvokerSettings {
    /// Whether this process runs an invoker at all (without one, invocations answer 503).
    pub enabled: bool,
    /// Names the platform's parent cgroup and other host resources, so that two platforms on
    /// one host never touch each other's containers. Defaults to `whisk-<pid>`.
    pub instance: String,
    pub user_memory_mb: u64,
    pub pause_grace_ms: u64,
    pub idle_timeout_ms: u64,
    /// Whether prewarmed stem cells of the manifest's kinds are kept.
    pub stem_cells: bool,
    pub network: NetworkMode,
    /// Container addresses (`a.b.c.d/len`); must not overlap anything on the host, so two
    /// platforms on one host need different ones. `None`: the sandbox's default.
    pub subnet: Option<String>,
}

impl InvokerSettings {
    fn from_file(file: InvokerFile, enabled_override: Option<bool>) -> Self {
        Self {
            enabled: enabled_override.or(file.enabled).unwrap_or(true),
            instance: file
                .instance
                .unwrap_or_else(|| format!("whisk-{}", std::process::id())),
            user_memory_mb: file.user_memory_mb.unwrap_or(DEFAULT_USER_MEMORY_MB),
            pause_grace_ms: file.pause_grace_ms.unwrap_or(DEFAULT_PAUSE_GRACE_MS),
            idle_timeout_ms: file.idle_timeout_ms.unwrap_or(DEFAULT_IDLE_TIMEOUT_MS),
            stem_cells: file.stem_cells.unwrap_or(true),
            network: file.network.unwrap_or_default(),
            subnet: file.subnet,
        }
    }
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
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls_self_signed: bool,
}

/// The resolved configuration a server runs with.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub host: IpAddr,
    pub port: u16,
    pub data_dir: PathBuf,
    pub limits: LimitOverrides,
    pub invoker: InvokerSettings,
    pub tls: TlsSettings,
    /// The `[cluster]` section as written; the cluster roles lay their flags over it.
    pub cluster: ClusterFile,
    pub retention: RetentionFile,
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
            invoker: InvokerSettings::from_file(file.invoker, invoker_enabled_from_env()?),
            tls: TlsSettings::resolve(flags, file.tls)?,
            cluster: file.cluster,
            retention: file.retention,
        })
    }
}

/// An invoker silent this long (on top of the balancer's few seconds before it counts as down)
/// is taken for dead: long enough to ride out a restart or a network blip, short enough that
/// a caller waiting on a blocking call still gets its answer.
pub const DEFAULT_LOST_GRACE_MS: u64 = 15_000;
/// See [`ClusterFile::overdue_margin_ms`].
pub const DEFAULT_OVERDUE_MARGIN_MS: u64 = 60_000;

/// The NATS subject and stream prefix when nothing else is said.
pub const DEFAULT_CLUSTER_NAME: &str = "whisk";

/// The `[cluster]` section: where the shared store and bus are and who this process is among
/// the controllers and invokers. Only `whisk controller` and `whisk invoker` read it.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ClusterFile {
    /// `postgres://user:password@host:port/dbname`.
    pub store: Option<String>,
    /// The PostgreSQL schema holding the tables (created if missing); default: the search path.
    pub store_schema: Option<String>,
    /// A PEM CA file: connect to PostgreSQL over TLS and trust this CA.
    pub store_ca: Option<PathBuf>,
    /// `nats://host:port` (several comma-separated).
    pub bus: Option<String>,
    /// Prefix of the NATS subjects and streams: clusters with different names share a server
    /// without meeting.
    pub name: Option<String>,
    pub controller_id: Option<u32>,
    /// How many controllers share the invokers (each balances over its share of their memory).
    pub controllers: Option<u32>,
    pub invoker_id: Option<u32>,
    /// The controller address containers reach the API through (relayed into their network
    /// namespace); without it actions cannot call the API.
    pub api: Option<SocketAddr>,
    /// How long an invoker must have been silent before a controller writes `whisk internal
    /// error` records for the activations it sent there and saw no completion of.
    pub lost_grace_ms: Option<u64>,
    /// The margin of the rule that says when an activation whose controller stopped is surely
    /// lost: twice its time limit (at least the margin) plus the margin after it started.
    /// Default a minute; tests shorten it.
    pub overdue_margin_ms: Option<u64>,
}

/// What the command line (and the environment, through clap) said about the cluster.
#[derive(Debug, Default, Clone)]
pub struct ClusterFlags {
    pub store: Option<String>,
    pub store_schema: Option<String>,
    pub store_ca: Option<PathBuf>,
    pub bus: Option<String>,
    pub name: Option<String>,
    pub controller_id: Option<u32>,
    pub controllers: Option<u32>,
    pub invoker_id: Option<u32>,
    pub api: Option<SocketAddr>,
    pub lost_grace_ms: Option<u64>,
    /// `--user-memory`: overrides `[invoker] user-memory-mb`.
    pub user_memory_mb: Option<u64>,
}

/// The resolved cluster settings of one controller or invoker process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSettings {
    pub store: String,
    pub store_schema: Option<String>,
    pub store_ca: Option<PathBuf>,
    pub bus: String,
    pub name: String,
    /// This process's number in its role (controllers and invokers count separately).
    pub id: u32,
    pub controllers: u32,
    pub api: Option<SocketAddr>,
    pub lost_grace: Duration,
    /// See [`ClusterFile::overdue_margin_ms`].
    pub overdue_margin: Duration,
}

/// Which cluster role is being configured: each needs its own id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterRole {
    Controller,
    Invoker,
}

impl ClusterSettings {
    /// Lays the flags over the file; the store, the bus and this process's id are required,
    /// since a cluster process guessing any of them could join the wrong cluster or take
    /// another process's completions.
    pub fn resolve(
        role: ClusterRole,
        flags: &ClusterFlags,
        file: &ClusterFile,
    ) -> anyhow::Result<Self> {
        let store =
            flags.store.clone().or_else(|| file.store.clone()).context(
                "no store: pass --store postgres://... (or WHISK_STORE, [cluster] store)",
            )?;
        let bus = flags
            .bus
            .clone()
            .or_else(|| file.bus.clone())
            .context("no bus: pass --bus nats://... (or WHISK_BUS, [cluster] bus)")?;
        let id = match role {
            ClusterRole::Controller => flags
                .controller_id
                .or(file.controller_id)
                .context("no controller id: pass --controller-id N (or [cluster] controller-id)")?,
            ClusterRole::Invoker => flags
                .invoker_id
                .or(file.invoker_id)
                .context("no invoker id: pass --invoker-id N (or [cluster] invoker-id)")?,
        };
        let controllers = flags.controllers.or(file.controllers).unwrap_or(1);
        if controllers == 0 {
            anyhow::bail!("--controllers must be at least 1");
        }
        Ok(Self {
            store,
            store_schema: flags
                .store_schema
                .clone()
                .or_else(|| file.store_schema.clone()),
            store_ca: flags.store_ca.clone().or_else(|| file.store_ca.clone()),
            bus,
            name: flags
                .name
                .clone()
                .or_else(|| file.name.clone())
                .unwrap_or_else(|| DEFAULT_CLUSTER_NAME.to_owned()),
            id,
            controllers,
            api: flags.api.or(file.api),
            lost_grace: Duration::from_millis(
                flags
                    .lost_grace_ms
                    .or(file.lost_grace_ms)
                    .unwrap_or(DEFAULT_LOST_GRACE_MS),
            ),
            overdue_margin: Duration::from_millis(
                file.overdue_margin_ms.unwrap_or(DEFAULT_OVERDUE_MARGIN_MS),
            ),
        })
    }
}

/// `WHISK_INVOKER_ENABLED`, when set.
fn invoker_enabled_from_env() -> anyhow::Result<Option<bool>> {
    match std::env::var(INVOKER_ENABLED_ENV) {
        Ok(value) => parse_enabled(&value).map(Some),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => {
            anyhow::bail!("{INVOKER_ENABLED_ENV} is not valid UTF-8")
        }
    }
}

fn parse_enabled(value: &str) -> anyhow::Result<bool> {
    match value.trim() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        other => anyhow::bail!("{INVOKER_ENABLED_ENV}={other:?} is neither true nor false"),
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
    fn invoker_section_defaults_and_overrides() -> anyhow::Result<()> {
        let defaults = ServerConfig::load(&ServerFlags {
            data_dir: Some(PathBuf::from("/x")),
            ..ServerFlags::default()
        })?
        .invoker;
        assert!(defaults.enabled && defaults.stem_cells);
        assert_eq!(defaults.user_memory_mb, 2048);
        assert_eq!(defaults.pause_grace_ms, 10_000);
        assert_eq!(defaults.idle_timeout_ms, 600_000);
        assert_eq!(defaults.network, NetworkMode::Nat);
        assert_eq!(defaults.instance, format!("whisk-{}", std::process::id()));

        let dir = tempfile::tempdir()?;
        let path = dir.path().join("whisk.toml");
        std::fs::write(
            &path,
            "[invoker]\nenabled = false\ninstance = \"ci-7\"\nuser-memory-mb = 512\n\
             pause-grace-ms = 50\nidle-timeout-ms = 1000\nstem-cells = false\nnetwork = \"none\"\n\
             subnet = \"10.77.0.0/24\"\n",
        )?;
        let invoker = ServerConfig::load(&ServerFlags {
            config: Some(path.clone()),
            data_dir: Some(PathBuf::from("/x")),
            ..ServerFlags::default()
        })?
        .invoker;
        assert_eq!(
            invoker,
            InvokerSettings {
                enabled: false,
                instance: "ci-7".into(),
                user_memory_mb: 512,
                pause_grace_ms: 50,
                idle_timeout_ms: 1000,
                stem_cells: false,
                network: NetworkMode::None,
                subnet: Some("10.77.0.0/24".into()),
            }
        );
        std::fs::write(&path, "[invoker]\nnetwork = \"everywhere\"\n")?;
        assert!(read_file_config(&path).is_err());
        Ok(())
    }

    #[test]
    fn invoker_switch_values() {
        assert!(parse_enabled("true").is_ok_and(|on| on));
        assert!(parse_enabled(" off ").is_ok_and(|on| !on));
        assert!(parse_enabled("0").is_ok_and(|on| !on));
        let refused = parse_enabled("maybe").err().map(|e| e.to_string());
        assert!(
            refused
                .as_deref()
                .is_some_and(|e| e.contains("WHISK_INVOKER_ENABLED")),
            "{refused:?}"
        );
        let file = InvokerFile {
            enabled: Some(true),
            ..InvokerFile::default()
        };
        assert!(!InvokerSettings::from_file(file, Some(false)).enabled);
    }

    #[test]
    fn cluster_flags_win_over_the_file_and_required_settings_are_named() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("whisk.toml");
        std::fs::write(
            &path,
            "[cluster]\nstore = \"postgres://a@db/w\"\nbus = \"nats://bus:4222\"\n\
             controller-id = 3\ncontrollers = 2\nname = \"prod\"\napi = \"10.0.0.1:3233\"\n",
        )?;
        let file = ServerConfig::load(&ServerFlags {
            config: Some(path),
            data_dir: Some(PathBuf::from("/x")),
            ..ServerFlags::default()
        })?
        .cluster;
        let from_file =
            ClusterSettings::resolve(ClusterRole::Controller, &ClusterFlags::default(), &file)?;
        assert_eq!(from_file.store, "postgres://a@db/w");
        assert_eq!(from_file.bus, "nats://bus:4222");
        assert_eq!((from_file.id, from_file.controllers), (3, 2));
        assert_eq!(from_file.name, "prod");
        assert_eq!(from_file.api, Some("10.0.0.1:3233".parse()?));
        assert_eq!(
            from_file.lost_grace,
            Duration::from_millis(DEFAULT_LOST_GRACE_MS)
        );
        assert_eq!(
            from_file.overdue_margin,
            Duration::from_millis(DEFAULT_OVERDUE_MARGIN_MS)
        );
        let margin = ClusterFile {
            overdue_margin_ms: Some(500),
            ..file.clone()
        };
        let shortened =
            ClusterSettings::resolve(ClusterRole::Controller, &ClusterFlags::default(), &margin)?;
        assert_eq!(shortened.overdue_margin, Duration::from_millis(500));

        let flags = ClusterFlags {
            bus: Some("nats://other:4222".into()),
            controller_id: Some(5),
            lost_grace_ms: Some(250),
            ..ClusterFlags::default()
        };
        let overridden = ClusterSettings::resolve(ClusterRole::Controller, &flags, &file)?;
        assert_eq!(overridden.bus, "nats://other:4222");
        assert_eq!(overridden.id, 5);
        assert_eq!(overridden.lost_grace, Duration::from_millis(250));
        assert_eq!(overridden.store, "postgres://a@db/w");

        // An invoker needs its own id; the file only names the controller's.
        let missing = ClusterSettings::resolve(ClusterRole::Invoker, &flags, &file)
            .err()
            .map(|e| e.to_string());
        assert!(
            missing
                .as_deref()
                .is_some_and(|e| e.contains("--invoker-id")),
            "{missing:?}"
        );
        Ok(())
    }

    #[test]
    fn cluster_settings_need_a_store_a_bus_and_controllers() {
        let flags = ClusterFlags {
            bus: Some("nats://b".into()),
            invoker_id: Some(0),
            ..ClusterFlags::default()
        };
        let error = |flags: &ClusterFlags| {
            ClusterSettings::resolve(ClusterRole::Invoker, flags, &ClusterFile::default())
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(error(&flags).contains("--store"), "{}", error(&flags));
        let no_bus = ClusterFlags {
            store: Some("postgres://s".into()),
            bus: None,
            ..flags.clone()
        };
        assert!(error(&no_bus).contains("--bus"), "{}", error(&no_bus));
        let no_controllers = ClusterFlags {
            store: Some("postgres://s".into()),
            controllers: Some(0),
            ..flags.clone()
        };
        assert!(error(&no_controllers).contains("--controllers"));
        let fine = ClusterFlags {
            store: Some("postgres://s".into()),
            ..flags
        };
        let settings =
            ClusterSettings::resolve(ClusterRole::Invoker, &fine, &ClusterFile::default());
        assert!(settings.is_ok_and(|s| s.name == DEFAULT_CLUSTER_NAME && s.controllers == 1));
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
