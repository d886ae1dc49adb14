//! Starts the real `whisk standalone` server on a free port and runs the `wsk` binary against it,
//! so the CLI is tested only through HTTP, the way it meets Apache OpenWhisk.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const GUEST_AUTH: &str = "23bc46b1-71f6-4ed5-8c54-816aa4f8c502:123zO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP";

/// The server binary lives next to `wsk` in the same target directory. A bin of another crate
/// cannot be a dev-dependency, so when it is missing it is built once with the same target dir.
pub fn server_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let wsk = PathBuf::from(env!("CARGO_BIN_EXE_wsk"));
        let profile_dir = wsk.parent().expect("wsk has a parent dir");
        let binary = profile_dir.join(format!("whisk{}", std::env::consts::EXE_SUFFIX));
        if !binary.exists() {
            let target_dir = profile_dir.parent().expect("profile dir has a parent");
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
            let status = Command::new(cargo)
                .args(["build", "-p", "whisk", "--bin", "whisk"])
                .env("CARGO_TARGET_DIR", target_dir)
                .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
                .status()
                .expect("run cargo build for the whisk server");
            assert!(status.success(), "building whisk failed");
        }
        binary
    })
}

/// One running server plus a private properties file. An API-only server is killed when
/// dropped; one with an invoker is stopped with SIGTERM, so it removes its containers, cgroups,
/// network namespaces and nft table from the host before it exits.
pub struct Platform {
    child: Child,
    invoker: bool,
    pub url: String,
    dir: tempfile::TempDir,
}

/// Counts the invoker platforms of this process, so each gets its own host resource names.
static NEXT_INVOKER: AtomicU32 = AtomicU32::new(0);

/// Whether this process runs as root, which real containers need (namespaces, cgroups, nftables).
pub fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find(|line| line.starts_with("Uid:"))
            .and_then(|line| line.split_whitespace().nth(2))
            == Some("0")
    })
}

/// A random /26 of 10.192.0.0/11 for one platform's containers. The invoker refuses a subnet
/// already on the host, so platforms started by parallel test processes must not share one;
/// std's randomly keyed hasher gives the randomness without another dependency.
fn random_subnet(seed: u32) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_u32(seed);
    let slot = u32::try_from(hasher.finish() % 32_768).expect("below 32768");
    let base = u32::from(std::net::Ipv4Addr::new(10, 192, 0, 0)) + slot * 64;
    format!("{}/26", std::net::Ipv4Addr::from(base))
}

impl Platform {
    /// A platform for API tests: no invoker, so no containers or host network setup.
    pub fn start() -> Self {
        Self::spawn(None)
    }

    /// A platform whose invoker runs actions in real containers; `None` (with the reason
    /// printed) when this process is not root. The instance name (which names the host's
    /// cgroups, network namespaces and nft table) and the subnet are this platform's own, so
    /// tests running in parallel processes never meet on the host.
    pub fn start_with_invoker(name: &str) -> Option<Self> {
        if !running_as_root() {
            eprintln!("SKIPPED: containers need root, and this test runs as another user");
            return None;
        }
        let n = NEXT_INVOKER.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let config = format!(
            "[invoker]\ninstance = \"cli-{name}-{pid}-{n}\"\nsubnet = \"{}\"\n\
             stem-cells = false\nnetwork = \"none\"\n",
            random_subnet(n)
        );
        Some(Self::spawn(Some(&config)))
    }

    /// Starts `whisk standalone`; with `invoker_config` (a TOML `[invoker]` section) the invoker
    /// runs, otherwise it is disabled.
    fn spawn(invoker_config: Option<&str>) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut command = Command::new(server_binary());
        command
            .args(["standalone", "--port", "0", "--data-dir"])
            .arg(dir.path().join("data"))
            .env("WHISK_LOG", "warn");
        match invoker_config {
            Some(config) => {
                let path = dir.path().join("whisk.toml");
                std::fs::write(&path, config).expect("write whisk.toml");
                command.arg("--config").arg(path);
            }
            // No containers: these tests drive the API only.
            None => {
                command.env("WHISK_INVOKER_ENABLED", "false");
            }
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start whisk standalone");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let first = lines
            .next()
            .expect("whisk printed nothing before exiting")
            .expect("readable stdout");
        let url = first
            .strip_prefix("whisk-rs standalone listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {first}"))
            .to_string();
        std::thread::spawn(move || for _ in lines {});
        Self {
            child,
            invoker: invoker_config.is_some(),
            url,
            dir,
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn props_file(&self) -> PathBuf {
        self.dir.path().join("wskprops")
    }

    /// Writes `name` in the temp dir and returns its path.
    pub fn file(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).expect("write file");
        path
    }

    /// Runs `wsk` with only the private props file configured (no host, no key).
    pub fn wsk_bare(&self, args: &[&str]) -> Run {
        let output = Command::new(env!("CARGO_BIN_EXE_wsk"))
            .args(args)
            .env("WSK_CONFIG_FILE", self.props_file())
            .env_remove("WHISK_APIHOST")
            .env_remove("WHISK_AUTH")
            .env_remove("WHISK_APIVERSION")
            .output()
            .expect("run wsk");
        Run::from(output)
    }

    /// Runs `wsk --apihost URL -u GUEST …`.
    pub fn wsk(&self, args: &[&str]) -> Run {
        let mut all = vec!["--apihost", self.url.as_str(), "-u", GUEST_AUTH];
        all.extend_from_slice(args);
        self.wsk_bare(&all)
    }
}

impl Drop for Platform {
    /// Kills an API-only server at once; asks one with an invoker to stop (SIGTERM) and kills it
    /// only when it has not exited within 30 s.
    fn drop(&mut self) {
        if self.invoker {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(output: Output) -> Self {
        Self {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Asserts success with exactly these stdout lines.
    #[track_caller]
    pub fn assert_ok(&self, lines: &[&str]) {
        assert_eq!(self.code, 0, "stderr: {}", self.stderr);
        assert_eq!(self.stdout.lines().collect::<Vec<_>>(), lines);
    }

    /// Asserts failure with `exit`, nothing on stdout and one stderr line `prefix (code <id>)`.
    #[track_caller]
    pub fn assert_api_error(&self, exit: i32, prefix: &str) {
        assert_eq!(
            self.code, exit,
            "stdout: {} stderr: {}",
            self.stdout, self.stderr
        );
        assert_eq!(self.stdout, "");
        let line = self.stderr.trim_end();
        assert!(!line.contains('\n'), "one line expected: {line}");
        let rest = line
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix(" (code "))
            .and_then(|rest| rest.strip_suffix(')'))
            .unwrap_or_else(|| panic!("unexpected stderr: {line}"));
        assert!(
            !rest.is_empty() && rest.chars().all(|c| c.is_ascii_alphanumeric()),
            "transaction id: {rest}"
        );
    }
}
