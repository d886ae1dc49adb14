//! The runtime proxies written in the runtimes' own languages, embedded in the binary so that a
//! deployment is one file; the invoker writes them to a directory once ([`write_assets`]) and
//! binds that directory read-only into every container.

use std::io;
use std::path::Path;

/// The Node.js proxy (plain `node`, no npm packages).
pub const NODE_PROXY: &str = include_str!("../runtimes/nodejs/proxy.js");
/// The Python proxy (standard library only).
pub const PYTHON_PROXY: &str = include_str!("../runtimes/python/proxy.py");

include!(concat!(env!("OUT_DIR"), "/java_proxy.rs"));

/// Where [`write_assets`] puts the Java proxy's jar (when this build has one).
pub const JAVA_PROXY_PATH: &str = "java/proxy.jar";

/// Where [`write_assets`] puts the Node.js proxy, relative to the assets directory.
pub const NODE_PROXY_PATH: &str = "nodejs/proxy.js";
/// Where [`write_assets`] puts the Python proxy, relative to the assets directory.
pub const PYTHON_PROXY_PATH: &str = "python/proxy.py";

/// Writes every embedded asset under `dir` (created if missing), replacing older copies, so a
/// new binary never runs an old proxy.
pub fn write_assets(dir: &Path) -> io::Result<()> {
    let mut assets = vec![
        (NODE_PROXY_PATH, NODE_PROXY.as_bytes()),
        (PYTHON_PROXY_PATH, PYTHON_PROXY.as_bytes()),
    ];
    assets.extend(JAVA_PROXY_JAR.map(|jar| (JAVA_PROXY_PATH, jar)));
    for (relative, text) in assets {
        let path = dir.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        // Write aside and rename, so a container starting meanwhile never sees half a file.
        let partial = path.with_extension("partial");
        std::fs::write(&partial, text)?;
        std::fs::rename(&partial, &path)?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is the right way for a test to fail
mod tests {
    use super::*;

    #[test]
    fn assets_are_written_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("nodejs")).unwrap();
        std::fs::write(dir.path().join(NODE_PROXY_PATH), "old").unwrap();
        write_assets(dir.path()).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join(NODE_PROXY_PATH)).unwrap(),
            NODE_PROXY
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join(PYTHON_PROXY_PATH)).unwrap(),
            PYTHON_PROXY
        );
        if let Some(jar) = JAVA_PROXY_JAR {
            assert_eq!(
                std::fs::read(dir.path().join(JAVA_PROXY_PATH)).unwrap(),
                jar
            );
        }
    }

    #[test]
    fn an_unwritable_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a-file");
        std::fs::write(&file, "x").unwrap();
        assert!(write_assets(&file).is_err());
    }
}
