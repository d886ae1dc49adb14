//! Issue 9's runtimes driven through `wsk` against a real platform with containers: a Java
//! jar, a Kotlin jar with its stdlib bundled, an imported OCI image and an image pulled from a
//! registry (the test registry of `.ci/registry`, `WHISK_TEST_REGISTRY`) as blackbox actions.
//! The actions are built at test time (`javac`/`kotlinc` against Debian's Gson, the image from
//! our own `whisk` binary), so nothing binary lives in the repository. Needs root.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is the right way for a test to fail

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use support::{Platform, Run};
use whisk_image::testing::SkeletonImage;

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

/// A `docker save` archive of the test image (`whisk_image::testing`: our own `whisk` binary as
/// the dockerskeleton proxy, with `/bin/sh` for the action's script) tagged `tag`.
fn image_archive(dir: &Path, tag: &str) -> PathBuf {
    let archive = dir.join("image.tar");
    SkeletonImage::build(support::server_binary(), dir)
        .unwrap()
        .write_docker_archive(&archive, tag)
        .unwrap();
    archive
}

#[test]
fn an_imported_image_runs_through_wsk() {
    let Some(platform) = Platform::start_with_invoker("image") else {
        return;
    };
    let tag = format!("whisk-test/cli-skeleton-{}:1", std::process::id());
    let archive = image_archive(platform.dir(), &tag);
    // The platform's own data directory holds the image store `whisk admin` writes to.
    let imported = Command::new(support::server_binary())
        .args(["admin", "image", "import"])
        .arg(&archive)
        .env("WHISK_DATA_DIR", platform.dir().join("data"))
        .stdin(Stdio::null())
        .output()
        .expect("run whisk admin image import");
    let printed = String::from_utf8_lossy(&imported.stdout);
    assert!(
        imported.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    assert!(printed.contains(&tag), "{printed}");

    // The action's code is the image's `exec`: it echoes its parameters inside a marker.
    let script = platform.file(
        "exec",
        "#!/bin/sh\necho \"{\\\"from\\\":\\\"image\\\",\\\"args\\\":$1}\"\n",
    );
    platform
        .wsk(&[
            "action",
            "create",
            "img",
            script.to_str().unwrap(),
            "--docker",
            &tag,
        ])
        .assert_ok(&["ok: created action img"]);
    assert_eq!(
        invoke_result(&platform, "img", &["-p", "name", "X"]),
        json!({"from": "image", "args": {"name": "X"}})
    );
}

#[test]
fn an_image_never_imported_is_reported_by_wsk() {
    let Some(platform) = Platform::start_with_invoker("noimage") else {
        return;
    };
    // Not in the store, and its registry is a loopback port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .unwrap()
        .port();
    let image = format!("127.0.0.1:{port}/whisk-test/absent:1");
    let script = platform.file("exec", "#!/bin/sh\necho '{}'\n");
    platform
        .wsk(&[
            "action",
            "create",
            "absent",
            script.to_str().unwrap(),
            "--docker",
            &image,
        ])
        .assert_ok(&["ok: created action absent"]);
    let run = platform.wsk(&["action", "invoke", "absent", "-r"]);
    assert_eq!(
        (run.code, run.stdout.as_str(), run.stderr),
        (
            246,
            "",
            format!(
                "error: Unable to invoke action 'absent': Failed to pull container image '{image}'.\n"
            )
        )
    );
}

/// Runs `wsk ARGS` until `done` holds for its outcome, for at most a minute (a blocking invoke
/// answers before its record is stored).
#[track_caller]
fn wsk_until(platform: &Platform, args: &[&str], done: impl Fn(&Run) -> bool) -> Run {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let run = platform.wsk(args);
        if done(&run) || std::time::Instant::now() > deadline {
            return run;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn an_image_pulled_from_a_registry_runs_through_wsk() {
    let Ok(registry) = std::env::var("WHISK_TEST_REGISTRY") else {
        eprintln!("SKIPPED: WHISK_TEST_REGISTRY is not set (.ci/registry start DIR sets it)");
        return;
    };
    let Some(platform) = Platform::start_with_invoker("pull") else {
        return;
    };
    // A repository of this process's own, so parallel runs never see each other's image.
    let image = format!("{registry}/whisk-test/cli-pulled-{}:1", std::process::id());
    let skeleton = SkeletonImage::build(support::server_binary(), platform.dir()).unwrap();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(skeleton.push(&image))
        .unwrap();

    let script = platform.file(
        "exec",
        "#!/bin/sh\necho \"pulled and running\" >&2\n\
         echo \"{\\\"from\\\":\\\"registry\\\",\\\"args\\\":$1}\"\n",
    );
    platform
        .wsk(&[
            "action",
            "create",
            "pulled",
            script.to_str().unwrap(),
            "--docker",
            &image,
        ])
        .assert_ok(&["ok: created action pulled"]);
    let action = platform.wsk(&["action", "get", "pulled"]);
    assert_eq!(action.code, 0, "{action:?}");
    assert!(action.stdout.contains(&image), "{action:?}");

    // The first invoke pulls the image; -r prints the result only.
    assert_eq!(
        invoke_result(&platform, "pulled", &["-p", "name", "X"]),
        json!({"from": "registry", "args": {"name": "X"}})
    );

    // -b: the id line, then the whole activation record.
    let blocking = platform.wsk(&["action", "invoke", "pulled", "-b", "-p", "n", "two"]);
    assert_eq!(blocking.code, 0, "{blocking:?}");
    let (first, record) = blocking.stdout.split_once('\n').unwrap();
    let id = first
        .strip_prefix("ok: invoked /_/pulled with id ")
        .unwrap_or_else(|| panic!("unexpected first line: {first}"))
        .to_owned();
    let record: Value = serde_json::from_str(record).expect("a JSON record after the id line");
    assert_eq!(record["activationId"], id.as_str());
    assert_eq!(record["name"], "pulled");
    assert_eq!(record["response"]["status"], "success", "{record}");
    assert_eq!(
        record["response"]["result"],
        json!({"from": "registry", "args": {"n": "two"}})
    );
    let kind = record["annotations"]
        .as_array()
        .and_then(|annotations| annotations.iter().find(|a| a["key"] == "kind"))
        .map(|a| a["value"].clone());
    assert_eq!(kind, Some(json!("blackbox")), "{record}");

    // The stored record, and its logs (the script's stderr).
    let stored = wsk_until(&platform, &["activation", "get", &id], |run| run.code == 0);
    assert_eq!(stored.code, 0, "{stored:?}");
    let (header, stored_json) = stored.stdout.split_once('\n').unwrap();
    assert_eq!(header, format!("ok: got activation {id}"));
    let stored_json: Value = serde_json::from_str(stored_json).unwrap();
    assert_eq!(stored_json["response"], record["response"]);
    let logs = wsk_until(&platform, &["activation", "logs", &id, "--strip"], |run| {
        run.code == 0 && !run.stdout.is_empty()
    });
    logs.assert_ok(&["pulled and running"]);
}
