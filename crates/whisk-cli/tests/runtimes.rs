//! Issue 9's runtimes driven through `wsk` against a real platform with containers: a Java
//! jar, a Kotlin jar with its stdlib bundled, and an imported OCI image as a blackbox action.
//! The actions are built at test time (`javac`/`kotlinc` against Debian's Gson, the image from
//! our own `whisk` binary), so nothing binary lives in the repository. Needs root.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is the right way for a test to fail

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use support::Platform;

/// Where Debian's `libgoogle-gson-java` puts Gson, the library Java actions are compiled against.
const GSON: &str = "/usr/share/java/gson.jar";

const JAVA_HELLO: &str = "import com.google.gson.JsonObject;
public class Hello {
    public static JsonObject main(JsonObject args) {
        JsonObject result = new JsonObject();
        result.addProperty(\"greeting\", \"Hello, \" + args.get(\"name\").getAsString() + \"!\");
        return result;
    }
}
";

const KOTLIN_HELLO: &str = r#"package demo
import com.google.gson.JsonObject
fun main(args: JsonObject): JsonObject {
    val result = JsonObject()
    result.addProperty("greeting", "Hi ${args.get("name").asString.toUpperCase()}")
    return result
}
"#;

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// A JDK tool (`jar`) from the directory `javac` really lives in, as the alternatives
/// symlinks may not offer every tool on `PATH`.
fn jdk_tool(name: &str) -> PathBuf {
    let javac = which("javac").expect("a JDK (javac) must be installed");
    std::fs::canonicalize(javac)
        .expect("resolve javac")
        .parent()
        .expect("javac's directory")
        .join(name)
}

/// Runs `command` to success, showing its stderr otherwise.
#[track_caller]
fn run_ok(command: &mut Command) {
    let output = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Jars everything under `classes` into `jar`.
fn jar_directory(classes: &Path, jar: &Path) {
    run_ok(
        Command::new(jdk_tool("jar"))
            .arg("--create")
            .arg("--file")
            .arg(jar)
            .arg("-C")
            .arg(classes)
            .arg("."),
    );
}

/// `wsk action invoke NAME -r ARGS…` as JSON, after checking it succeeded.
#[track_caller]
fn invoke_result(platform: &Platform, name: &str, args: &[&str]) -> Value {
    let mut all = vec!["action", "invoke", name, "-r"];
    all.extend_from_slice(args);
    let run = platform.wsk(&all);
    assert_eq!(run.code, 0, "{run:?}");
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {run:?}"))
}

#[test]
fn a_java_jar_runs_through_wsk() {
    let Some(platform) = Platform::start_with_invoker("java") else {
        return;
    };
    let src = platform.dir().join("src");
    let classes = platform.dir().join("classes");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::create_dir_all(&classes).unwrap();
    let source = src.join("Hello.java");
    std::fs::write(&source, JAVA_HELLO).unwrap();
    run_ok(
        Command::new(jdk_tool("javac"))
            .args(["--release", "11", "-encoding", "UTF-8", "-cp", GSON, "-d"])
            .arg(&classes)
            .arg(&source),
    );
    let jar = platform.dir().join("hello.jar");
    jar_directory(&classes, &jar);

    // No --kind: wsk infers java:default from the .jar extension.
    platform
        .wsk(&[
            "action",
            "create",
            "hello",
            jar.to_str().unwrap(),
            "--main",
            "Hello",
        ])
        .assert_ok(&["ok: created action hello"]);
    assert_eq!(
        invoke_result(&platform, "hello", &["-p", "name", "Duke"]),
        json!({"greeting": "Hello, Duke!"})
    );
    // Warm now: the same container answers a second time.
    assert_eq!(
        invoke_result(&platform, "hello", &["-p", "name", "Ada"]),
        json!({"greeting": "Hello, Ada!"})
    );
}

#[test]
fn a_kotlin_jar_with_its_stdlib_runs_through_wsk() {
    let Some(kotlinc) = which("kotlinc") else {
        eprintln!("SKIPPED: no kotlinc on PATH (Debian: kotlin; installed by .ci/run)");
        return;
    };
    let Some(platform) = Platform::start_with_invoker("kotlin") else {
        return;
    };
    // Debian's package and the upstream distribution both keep the stdlib in <home>/lib.
    let stdlib = std::fs::canonicalize(&kotlinc)
        .unwrap()
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("lib/kotlin-stdlib.jar");
    assert!(stdlib.is_file(), "kotlinc without {}", stdlib.display());

    let classes = platform.dir().join("classes");
    std::fs::create_dir_all(&classes).unwrap();
    let source = platform.dir().join("Hello.kt");
    std::fs::write(&source, KOTLIN_HELLO).unwrap();
    run_ok(
        Command::new(&kotlinc)
            .args(["-cp", GSON, "-d"])
            .arg(&classes)
            .arg(&source),
    );
    // Bundle the stdlib's classes as a shadow jar would; `jar --create` writes its own manifest.
    run_ok(
        Command::new(jdk_tool("jar"))
            .arg("--extract")
            .arg("--file")
            .arg(&stdlib)
            .current_dir(&classes),
    );
    std::fs::remove_file(classes.join("META-INF/MANIFEST.MF")).unwrap();
    let jar = platform.dir().join("hello-kt.jar");
    jar_directory(&classes, &jar);

    platform
        .wsk(&[
            "action",
            "create",
            "hello-kt",
            jar.to_str().unwrap(),
            "--main",
            "demo.HelloKt",
        ])
        .assert_ok(&["ok: created action hello-kt"]);
    assert_eq!(
        invoke_result(&platform, "hello-kt", &["-p", "name", "kotlin"]),
        json!({"greeting": "Hi KOTLIN"})
    );
}
