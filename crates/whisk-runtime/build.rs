//! Compiles the Java proxy (`runtimes/java/src`) into a jar embedded in the crate, when the
//! build machine has a JDK and Gson.
//!
//! Why at build time: the platform then needs only a Java *runtime* and Gson where actions run,
//! and no start pays for `javac`. Why optional: `cargo build` must keep working on a machine
//! without a JDK; such a build embeds no jar, and `java:8` is reported unavailable at run time
//! (`whisk_runtime::launch::unavailable`). A JDK installed later needs a rebuild of this crate
//! (`touch crates/whisk-runtime/build.rs`) to be picked up.
//!
//! Inputs: `javac` and `jar` from `$JAVA_HOME/bin` or `PATH`; Gson from `$WHISK_GSON_JAR` or
//! Debian's `/usr/share/java/gson.jar` (package `libgoogle-gson-java`).

use std::path::{Path, PathBuf};
use std::process::Command;

const SOURCES: &str = "runtimes/java/src";
const DEFAULT_GSON: &str = "/usr/share/java/gson.jar";

fn main() {
    println!("cargo:rerun-if-changed={SOURCES}");
    println!("cargo:rerun-if-env-changed=JAVA_HOME");
    println!("cargo:rerun-if-env-changed=WHISK_GSON_JAR");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let generated = match build_jar(&out) {
        Ok(jar) => format!(
            "/// The Java proxy, compiled by the build script.\npub const JAVA_PROXY_JAR: Option<&[u8]> = Some(include_bytes!({:?}));\n",
            jar.display().to_string()
        ),
        Err(reason) => {
            println!("cargo:warning=Java actions are disabled in this build: {reason}");
            "/// No JDK or Gson at build time: no Java proxy.\npub const JAVA_PROXY_JAR: Option<&[u8]> = None;\n".to_string()
        }
    };
    std::fs::write(out.join("java_proxy.rs"), generated).expect("write java_proxy.rs");
}

/// Builds `OUT_DIR/proxy.jar`; `Err` says why there is none. A JDK that fails to compile our
/// own source is a bug and stops the build.
fn build_jar(out: &Path) -> Result<PathBuf, String> {
    let javac = find_tool("javac").ok_or("no javac ($JAVA_HOME/bin or PATH)")?;
    // `jar` ships next to `javac`; following links finds the JDK's own bin directory.
    let jdk_bin = std::fs::canonicalize(&javac)
        .ok()
        .and_then(|real| real.parent().map(Path::to_path_buf))
        .ok_or("cannot resolve javac")?;
    let jar_tool = jdk_bin.join("jar");
    if !jar_tool.is_file() {
        return Err(format!("no jar tool next to {}", javac.display()));
    }
    let gson = std::env::var_os("WHISK_GSON_JAR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_GSON));
    if !gson.is_file() {
        return Err(format!(
            "no Gson at {} (Debian: libgoogle-gson-java)",
            gson.display()
        ));
    }
    let mut sources = Vec::new();
    collect_java(Path::new(SOURCES), &mut sources);
    sources.sort();
    let classes = out.join("java-classes");
    let _ = std::fs::remove_dir_all(&classes);
    std::fs::create_dir_all(&classes).expect("create the classes directory");
    let status = Command::new(&javac)
        .args(["--release", "11", "-encoding", "UTF-8", "-nowarn", "-cp"])
        .arg(&gson)
        .arg("-d")
        .arg(&classes)
        .args(&sources)
        .status()
        .map_err(|e| format!("cannot run {}: {e}", javac.display()))?;
    assert!(status.success(), "javac failed on the Java proxy");
    let jar = out.join("proxy.jar");
    let _ = std::fs::remove_file(&jar);
    let status = Command::new(&jar_tool)
        .arg("--create")
        .arg("--file")
        .arg(&jar)
        .arg("-C")
        .arg(&classes)
        .arg(".")
        .status()
        .map_err(|e| format!("cannot run {}: {e}", jar_tool.display()))?;
    assert!(status.success(), "jar failed on the Java proxy");
    Ok(jar)
}

fn find_tool(name: &str) -> Option<PathBuf> {
    if let Some(home) = std::env::var_os("JAVA_HOME") {
        let candidate = PathBuf::from(home).join("bin").join(name);
        if candidate.is_file() {
            return Some(candidate);
        }
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

fn collect_java(dir: &Path, into: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_java(&path, into);
        } else if path.extension().is_some_and(|ext| ext == "java") {
            into.push(path);
        }
    }
}
