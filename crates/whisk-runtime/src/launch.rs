//! How to start the proxy of each runtime kind we support inside a container.
//!
//! Containers see the host's `/usr` and `/lib*` read-only, so `node` and `python3` come from the
//! host; our own assets are bound at [`LaunchLayout::assets_dir`] and the `whisk` binary at
//! [`LaunchLayout::whisk_binary`]. A tool installed elsewhere (say under `/root/.pyenv`) is only
//! usable if its prefix is bound too: [`LaunchSpec::needs`] lists such host paths.

use std::path::{Path, PathBuf};

use crate::assets::{JAVA_PROXY_JAR, JAVA_PROXY_PATH, NODE_PROXY_PATH, PYTHON_PROXY_PATH};

/// Memory assumed by [`launch_spec`], which is not told the container's (OpenWhisk's default
/// action memory).
const DEFAULT_MEMORY_MB: u64 = 256;

/// Where Debian's `libgoogle-gson-java` puts Gson, the JSON type of Java actions' signature.
const DEBIAN_GSON: &str = "/usr/share/java/gson.jar";

/// The kinds [`launch_spec`] knows how to start.
pub fn supported_kinds() -> &'static [&'static str] {
    &[
        "nodejs:20",
        "python:3.11",
        "python:3",
        "go:1.20",
        "java:8",
        "blackbox",
    ]
}

/// The command that starts one runtime's proxy in a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchSpec {
    /// Program and arguments, as paths seen inside the container.
    pub argv: Vec<String>,
    /// Environment the proxy starts with (the invoker adds `__OW_API_HOST` and its own).
    pub env: Vec<(String, String)>,
    /// Host paths outside `/usr` and `/lib*` that must be bound (read-only, same path) into the
    /// container for `argv[0]` to work.
    pub needs: Vec<PathBuf>,
}

/// The interpreters found on the host, detected once at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostTools {
    pub node: Option<Tool>,
    pub python: Option<Tool>,
    /// The `java` launcher (11 or newer) for `java:8` actions.
    pub java: Option<Tool>,
    /// Gson's jar (`$WHISK_GSON_JAR`, else Debian's), on the Java proxy's classpath.
    pub gson: Option<PathBuf>,
}

/// One interpreter: the path to run and the host prefix to bind when it lies outside `/usr`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tool {
    pub path: PathBuf,
    pub needs: Vec<PathBuf>,
}

impl HostTools {
    /// Looks for `node` and `python3`, preferring the copies under `/usr/bin` because containers
    /// see `/usr` anyway; otherwise the first one on `PATH`, with its installation prefix as a need.
    pub fn detect() -> HostTools {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
        HostTools {
            node: find_tool(&["/usr/bin/node", "/usr/local/bin/node"], "node", &dirs),
            python: find_tool(
                &["/usr/bin/python3.11", "/usr/bin/python3"],
                "python3",
                &dirs,
            ),
            java: find_tool(&["/usr/bin/java"], "java", &dirs).map(with_jdk_config),
            gson: std::env::var_os("WHISK_GSON_JAR")
                .map(PathBuf::from)
                .or_else(|| Some(PathBuf::from(DEBIAN_GSON)))
                .filter(|path| path.is_file()),
        }
    }
}

fn find_tool(preferred: &[&str], name: &str, path: &[PathBuf]) -> Option<Tool> {
    for candidate in preferred {
        let candidate = Path::new(candidate);
        if candidate.is_file() {
            return Some(tool_at(candidate));
        }
    }
    path.iter()
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .map(|candidate| tool_at(&candidate))
}

/// Resolves links (pyenv shims are scripts, but their real binaries are links away) and names the
/// prefix (`<prefix>/bin/<tool>`) to bind when the tool is outside the directories containers see.
fn tool_at(path: &Path) -> Tool {
    let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let visible = ["/usr/", "/lib/", "/lib64/", "/lib32/"]
        .iter()
        .any(|prefix| real.starts_with(prefix));
    let needs = if visible {
        Vec::new()
    } else {
        let prefix = real
            .parent()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_else(|| real.clone());
        vec![prefix]
    };
    Tool { path: real, needs }
}

/// Adds to a `java` tool what its JDK links to outside the directories containers see:
/// Debian keeps the JDK's configuration (`conf/security/java.security`, `lib/jvm.cfg`, ...) in
/// `/etc/java-<N>-openjdk` behind links, and a JVM without `java.security` cannot load a class
/// from a jar. Links into `/etc` bring their `/etc/<name>` directory, others their target.
fn with_jdk_config(mut java: Tool) -> Tool {
    let Some(home) = java.path.parent().and_then(Path::parent) else {
        return java;
    };
    let mut found = Vec::new();
    for sub in ["conf", "lib"] {
        links_outside(&home.join(sub), 4, &mut found);
    }
    for target in found {
        let need = match target.strip_prefix("/etc") {
            Ok(rest) => match rest.components().next() {
                Some(first) => Path::new("/etc").join(first),
                None => continue,
            },
            Err(_) => target,
        };
        if !java.needs.contains(&need) {
            java.needs.push(need);
        }
    }
    java
}

/// Targets of the links under `dir` (to `depth` levels) that containers do not see.
fn links_outside(dir: &Path, depth: u32, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_symlink() {
            if let Ok(target) = std::fs::canonicalize(&path)
                && !tool_at(&target).needs.is_empty()
                && !found.contains(&target)
            {
                found.push(target);
            }
        } else if kind.is_dir() && depth > 0 {
            links_outside(&path, depth - 1, found);
        }
    }
}

/// Where things are inside the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchLayout {
    /// Where the directory filled by [`crate::write_assets`] is bound.
    pub assets_dir: PathBuf,
    /// Where the `whisk` binary is bound (it serves `whisk proxy actionloop|skeleton`).
    pub whisk_binary: PathBuf,
    /// The host's interpreters.
    pub tools: HostTools,
}

impl LaunchLayout {
    /// The fixed in-container paths `/whisk/runtime` and `/whisk/bin/whisk`, with the host's tools.
    pub fn standard(tools: HostTools) -> LaunchLayout {
        LaunchLayout {
            assets_dir: PathBuf::from("/whisk/runtime"),
            whisk_binary: PathBuf::from("/whisk/bin/whisk"),
            tools,
        }
    }
}

/// How to start the proxy for `kind`, or `None` when the kind is not supported here (or its
/// interpreter is missing on the host). Runtimes that size themselves to the container's memory
/// assume OpenWhisk's default 256 MB: use [`launch_spec_with_memory`] where it is known.
pub fn launch_spec(kind: &str, layout: &LaunchLayout) -> Option<LaunchSpec> {
    launch_spec_with_memory(kind, layout, DEFAULT_MEMORY_MB)
}

/// Why `kind` cannot start here, in words for an operator; `None` when it can.
pub fn unavailable(kind: &str, layout: &LaunchLayout) -> Option<String> {
    if !supported_kinds().contains(&kind) {
        return Some(format!("kind {kind} is not supported by this invoker"));
    }
    match kind {
        "nodejs:20" if layout.tools.node.is_none() => Some("no node on this host".into()),
        "python:3.11" | "python:3" if layout.tools.python.is_none() => {
            Some("no python3 on this host".into())
        }
        "java:8" if JAVA_PROXY_JAR.is_none() => Some(
            "this build has no Java proxy (no JDK or Gson when it was compiled; see build.rs)"
                .into(),
        ),
        "java:8" if layout.tools.java.is_none() => Some("no java on this host".into()),
        "java:8" if layout.tools.gson.is_none() => Some(format!(
            "no Gson on this host ({DEBIAN_GSON}, package libgoogle-gson-java)"
        )),
        _ => None,
    }
}

/// The heap (`-Xmx`) of a JVM in a container of `memory_mb`: the rest is left for what the JVM
/// needs besides its heap (metaspace, code cache, thread stacks, its own libraries), a quarter
/// of the memory and at least 64 MB, so the kernel's OOM killer is not what ends a big heap;
/// at least 16 MB whatever the memory.
pub fn java_heap_mb(memory_mb: u64) -> u64 {
    let reserve = (memory_mb / 4).max(64);
    memory_mb.saturating_sub(reserve).max(16)
}

/// [`launch_spec`] for a container of `memory_mb`.
pub fn launch_spec_with_memory(
    kind: &str,
    layout: &LaunchLayout,
    memory_mb: u64,
) -> Option<LaunchSpec> {
    let text = |path: &Path| path.to_string_lossy().into_owned();
    match kind {
        "nodejs:20" => {
            let node = layout.tools.node.as_ref()?;
            Some(LaunchSpec {
                argv: vec![
                    text(&node.path),
                    text(&layout.assets_dir.join(NODE_PROXY_PATH)),
                ],
                env: Vec::new(),
                needs: node.needs.clone(),
            })
        }
        "python:3.11" | "python:3" => {
            let python = layout.tools.python.as_ref()?;
            Some(LaunchSpec {
                // -B: the code directory is read-only for the interpreter's caches.
                argv: vec![
                    text(&python.path),
                    "-B".to_string(),
                    text(&layout.assets_dir.join(PYTHON_PROXY_PATH)),
                ],
                env: vec![("PYTHONIOENCODING".to_string(), "utf-8".to_string())],
                needs: python.needs.clone(),
            })
        }
        "go:1.20" => Some(LaunchSpec {
            argv: vec![
                text(&layout.whisk_binary),
                "proxy".to_string(),
                "actionloop".to_string(),
            ],
            env: Vec::new(),
            needs: Vec::new(),
        }),
        "java:8" => {
            JAVA_PROXY_JAR?;
            let java = layout.tools.java.as_ref()?;
            let gson = layout.tools.gson.as_ref()?;
            let heap = java_heap_mb(memory_mb);
            let classpath = format!(
                "{}:{}",
                text(&layout.assets_dir.join(JAVA_PROXY_PATH)),
                text(gson)
            );
            let mut needs = java.needs.clone();
            if !["/usr/", "/lib/"]
                .iter()
                .any(|prefix| gson.starts_with(prefix))
            {
                needs.push(gson.clone());
            }
            Some(LaunchSpec {
                argv: vec![
                    text(&java.path),
                    format!("-Xmx{heap}m"),
                    format!("-Xms{}m", heap.min(32)),
                    // One small heap on a core or two: the serial collector has the smallest
                    // footprint and start; no perf-data file in the read-only root.
                    "-XX:+UseSerialGC".to_string(),
                    "-XX:-UsePerfData".to_string(),
                    "-Xshare:auto".to_string(),
                    "-Dfile.encoding=UTF-8".to_string(),
                    // The proxy updates System.getenv()'s map for the __OW_* values (see Proxy.java).
                    "--add-opens=java.base/java.util=ALL-UNNAMED".to_string(),
                    "-cp".to_string(),
                    classpath,
                    "whisk.runtime.java.Proxy".to_string(),
                ],
                env: Vec::new(),
                needs,
            })
        }
        "blackbox" => Some(LaunchSpec {
            argv: vec![
                text(&layout.whisk_binary),
                "proxy".to_string(),
                "skeleton".to_string(),
            ],
            env: Vec::new(),
            needs: Vec::new(),
        }),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is the right way for a test to fail
mod tests {
    use super::*;

    fn layout() -> LaunchLayout {
        LaunchLayout::standard(HostTools {
            node: Some(Tool {
                path: PathBuf::from("/usr/bin/node"),
                needs: vec![],
            }),
            python: Some(Tool {
                path: PathBuf::from("/opt/py/bin/python3.11"),
                needs: vec![PathBuf::from("/opt/py")],
            }),
            java: Some(Tool {
                path: PathBuf::from("/usr/lib/jvm/jdk/bin/java"),
                needs: vec![],
            }),
            gson: Some(PathBuf::from("/usr/share/java/gson.jar")),
        })
    }

    #[test]
    fn every_supported_kind_has_a_spec() {
        for kind in supported_kinds() {
            if *kind == "java:8" && JAVA_PROXY_JAR.is_none() {
                continue;
            }
            assert!(launch_spec(kind, &layout()).is_some(), "{kind}");
            assert_eq!(unavailable(kind, &layout()), None, "{kind}");
        }
    }

    #[test]
    fn java_runs_the_proxy_jar_with_a_heap_sized_to_the_memory() {
        let Some(spec) = launch_spec_with_memory("java:8", &layout(), 512) else {
            assert!(JAVA_PROXY_JAR.is_none());
            assert!(
                unavailable("java:8", &layout())
                    .unwrap()
                    .contains("build.rs")
            );
            return;
        };
        assert_eq!(spec.argv[0], "/usr/lib/jvm/jdk/bin/java");
        assert_eq!(spec.argv[1], "-Xmx384m");
        let cp = spec.argv.iter().position(|a| a == "-cp").unwrap();
        assert_eq!(
            spec.argv[cp + 1],
            "/whisk/runtime/java/proxy.jar:/usr/share/java/gson.jar"
        );
        assert_eq!(spec.argv.last().unwrap(), "whisk.runtime.java.Proxy");
        assert!(spec.needs.is_empty());
        assert_eq!(
            launch_spec("java:8", &layout()).unwrap().argv[1],
            "-Xmx192m",
            "256 MB when not told"
        );
    }

    #[test]
    fn java_heaps_leave_room_for_the_jvm() {
        assert_eq!(java_heap_mb(128), 64);
        assert_eq!(java_heap_mb(256), 192);
        assert_eq!(java_heap_mb(2048), 1536);
        assert_eq!(java_heap_mb(50), 16);
    }

    #[test]
    fn java_without_a_jvm_or_gson_is_unavailable_and_says_why() {
        let mut no_java = layout();
        no_java.tools.java = None;
        assert!(launch_spec("java:8", &no_java).is_none());
        let mut no_gson = layout();
        no_gson.tools.gson = None;
        assert!(launch_spec("java:8", &no_gson).is_none());
        if JAVA_PROXY_JAR.is_some() {
            assert_eq!(
                unavailable("java:8", &no_java).unwrap(),
                "no java on this host"
            );
            assert!(unavailable("java:8", &no_gson).unwrap().contains("Gson"));
        }
        assert!(
            unavailable("cobol:1", &layout())
                .unwrap()
                .contains("not supported")
        );
    }

    #[test]
    fn node_runs_the_bound_proxy() {
        let spec = launch_spec("nodejs:20", &layout()).unwrap();
        assert_eq!(
            spec.argv,
            ["/usr/bin/node", "/whisk/runtime/nodejs/proxy.js"]
        );
        assert!(spec.needs.is_empty());
    }

    #[test]
    fn python_outside_usr_needs_its_prefix() {
        let spec = launch_spec("python:3", &layout()).unwrap();
        assert_eq!(
            spec.argv,
            [
                "/opt/py/bin/python3.11",
                "-B",
                "/whisk/runtime/python/proxy.py"
            ]
        );
        assert_eq!(spec.needs, [PathBuf::from("/opt/py")]);
    }

    #[test]
    fn native_kinds_run_the_whisk_binary() {
        let spec = launch_spec("go:1.20", &layout()).unwrap();
        assert_eq!(spec.argv, ["/whisk/bin/whisk", "proxy", "actionloop"]);
        let spec = launch_spec("blackbox", &layout()).unwrap();
        assert_eq!(spec.argv, ["/whisk/bin/whisk", "proxy", "skeleton"]);
    }

    #[test]
    fn unknown_kinds_and_missing_interpreters_have_no_spec() {
        assert!(launch_spec("cobol:1", &layout()).is_none());
        let mut without_node = layout();
        without_node.tools.node = None;
        assert!(launch_spec("nodejs:20", &without_node).is_none());
    }

    #[test]
    fn a_jdk_linking_its_configuration_elsewhere_needs_it_bound() {
        let jdk = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let bin = jdk.path().join("bin");
        let security = jdk.path().join("conf").join("security");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(&security).unwrap();
        std::fs::write(bin.join("java"), "").unwrap();
        let config = elsewhere.path().join("java.security");
        std::fs::write(&config, "x").unwrap();
        std::os::unix::fs::symlink(&config, security.join("java.security")).unwrap();
        std::os::unix::fs::symlink("/usr/bin", jdk.path().join("conf").join("seen")).unwrap();
        let tool = with_jdk_config(tool_at(&bin.join("java")));
        let home = std::fs::canonicalize(jdk.path()).unwrap();
        assert_eq!(
            tool.needs,
            [home, std::fs::canonicalize(&config).unwrap()],
            "the JDK's prefix, then the linked file; nothing for a link into /usr"
        );
    }

    #[test]
    fn tools_under_usr_need_nothing_and_others_need_their_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::write(bin.join("python3"), "").unwrap();
        let tool = find_tool(&[], "python3", std::slice::from_ref(&bin)).unwrap();
        assert_eq!(tool.needs, [std::fs::canonicalize(dir.path()).unwrap()]);
        assert!(find_tool(&[], "no-such-tool", &[bin]).is_none());
    }
}
