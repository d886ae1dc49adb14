//! How to start the proxy of each runtime kind we support inside a container.
//!
//! Containers see the host's `/usr` and `/lib*` read-only, so `node` and `python3` come from the
//! host; our own assets are bound at [`LaunchLayout::assets_dir`] and the `whisk` binary at
//! [`LaunchLayout::whisk_binary`]. A tool installed elsewhere (say under `/root/.pyenv`) is only
//! usable if its prefix is bound too: [`LaunchSpec::needs`] lists such host paths.

use std::path::{Path, PathBuf};

use crate::assets::{NODE_PROXY_PATH, PYTHON_PROXY_PATH};

/// The kinds [`launch_spec`] knows how to start.
pub fn supported_kinds() -> &'static [&'static str] {
    &[
        "nodejs:20",
        "python:3.11",
        "python:3",
        "go:1.20",
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
/// interpreter is missing on the host).
pub fn launch_spec(kind: &str, layout: &LaunchLayout) -> Option<LaunchSpec> {
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
        })
    }

    #[test]
    fn every_supported_kind_has_a_spec() {
        for kind in supported_kinds() {
            assert!(launch_spec(kind, &layout()).is_some(), "{kind}");
        }
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
        assert!(launch_spec("java:8", &layout()).is_none());
        let mut without_node = layout();
        without_node.tools.node = None;
        assert!(launch_spec("nodejs:20", &without_node).is_none());
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
