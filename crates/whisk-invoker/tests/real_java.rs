//! `java:8` actions through the whole invoker (bus message in, stored record and completion out)
//! in real sandboxed containers (as root): jars compiled with `javac` at test time against
//! Debian's Gson, run by the JVM the containers see under the host's `/usr`. Needs a JDK and
//! `libgoogle-gson-java` (both installed by `.ci/run`).
#![allow(clippy::unwrap_used)] // a panic is the right way for a test to fail

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Harness;
use serde_json::{Value, json};
use whisk_invoker::{ActionCode, ActionContainer, ContainerFactory, ContainerSpec, StemCellConfig};
use whisk_model::{ActionLimits, Exec, WhiskActivation};

/// Generous: CI runs many tests in parallel on two cores, and a JVM starts slowly there.
const DEADLINE: Duration = Duration::from_secs(90);

/// A `java:8` action from a jar.
fn jar_action(jar: &[u8], main: &str) -> Exec {
    Exec::Code {
        kind: "java:8".into(),
        code: base64(jar),
        main: Some(main.into()),
        binary: true,
    }
}

fn memory(memory: u64) -> ActionLimits {
    ActionLimits {
        memory,
        timeout: 60_000,
        ..ActionLimits::default()
    }
}

fn result(record: &WhiskActivation) -> &Value {
    record.response.result.as_ref().unwrap()
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn jdk_tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let javac = std::env::split_paths(&path)
        .map(|dir| dir.join("javac"))
        .find(|candidate| candidate.is_file())
        .expect("a JDK (javac) must be installed");
    std::fs::canonicalize(javac)
        .unwrap()
        .parent()
        .unwrap()
        .join(name)
}

/// Compiles `(file name, source)` pairs against Gson and jars the classes.
fn java_jar(sources: &[(&str, &str)]) -> Vec<u8> {
    let gson = whisk_runtime::HostTools::detect()
        .gson
        .expect("Gson must be installed (libgoogle-gson-java)");
    let dir = tempfile::tempdir().unwrap();
    let classes = dir.path().join("classes");
    std::fs::create_dir_all(&classes).unwrap();
    let mut files = Vec::new();
    for (name, text) in sources {
        let file = dir.path().join(name);
        std::fs::write(&file, text).unwrap();
        files.push(file);
    }
    let status = Command::new(jdk_tool("javac"))
        .args(["--release", "11", "-encoding", "UTF-8", "-cp"])
        .arg(&gson)
        .arg("-d")
        .arg(&classes)
        .args(&files)
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "javac failed");
    let jar = dir.path().join("action.jar");
    let status = Command::new(jdk_tool("jar"))
        .args(["--create", "--file"])
        .arg(&jar)
        .arg("-C")
        .arg(&classes)
        .arg(".")
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "jar failed");
    std::fs::read(jar).unwrap()
}

/// A Scala or Kotlin action jar: `source` (file `name`) compiled by `compiler` against Gson, with
/// the classes of the language's runtime `library` packed in, as an assembly or shadow build
/// does. The library is found beside the compiler (`<home>/bin/<compiler>`,
/// `<home>/lib/<library>`, as Debian and the upstream distributions lay them out). `None`, with
/// the reason printed, only when the compiler is not on `PATH`.
fn jvm_language_jar(compiler: &str, library: &str, name: &str, source: &str) -> Option<Vec<u8>> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let Some(found) = std::env::split_paths(&path)
        .map(|dir| dir.join(compiler))
        .find(|candidate| candidate.is_file())
    else {
        eprintln!("SKIPPED: no {compiler} on PATH (Debian: scala, kotlin; installed by .ci/run)");
        return None;
    };
    let home = std::fs::canonicalize(&found).unwrap();
    let library = home
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("lib")
        .join(library);
    assert!(
        library.is_file(),
        "{compiler} without {}",
        library.display()
    );
    let gson = whisk_runtime::HostTools::detect()
        .gson
        .expect("Gson must be installed (libgoogle-gson-java)");
    let dir = tempfile::tempdir().unwrap();
    let classes = dir.path().join("classes");
    std::fs::create_dir_all(&classes).unwrap();
    let file = dir.path().join(name);
    std::fs::write(&file, source).unwrap();
    let output = Command::new(&found)
        .arg("-cp")
        .arg(&gson)
        .arg("-d")
        .arg(&classes)
        .arg(&file)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{compiler} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let status = Command::new(jdk_tool("jar"))
        .args(["--extract", "--file"])
        .arg(&library)
        .current_dir(&classes)
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "cannot unpack {}", library.display());
    // `jar --create` writes its own manifest.
    std::fs::remove_file(classes.join("META-INF/MANIFEST.MF")).unwrap();
    let jar = dir.path().join("action.jar");
    let status = Command::new(jdk_tool("jar"))
        .args(["--create", "--file"])
        .arg(&jar)
        .arg("-C")
        .arg(&classes)
        .arg(".")
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "jar failed");
    Some(std::fs::read(jar).unwrap())
}

/// `Hello#greet` greets, logs on both streams, reads its context from the environment and
/// calls a class bundled in the same jar; `Hello#boom` throws, `Hello#list` returns an array,
/// `Hello#hog` fills the heap, `Hello#heap` tells the heap's size.
fn hello_jar() -> Vec<u8> {
    let hello = r#"package demo;
import com.google.gson.*;
public class Hello {
  public static JsonObject greet(JsonObject args) {
    System.out.println("hello from java");
    System.err.println("and from stderr");
    JsonObject r = new JsonObject();
    r.addProperty("greeting", "Hello " + args.get("name").getAsString() + "!");
    r.addProperty("twice", demo.lib.Twice.of(21));
    r.addProperty("namespace", System.getenv("__OW_NAMESPACE"));
    r.addProperty("seen", Boolean.getBoolean("demo.seen"));
    System.setProperty("demo.seen", "true");
    return r;
  }
  public static JsonObject boom(JsonObject args) { throw new IllegalStateException("boom"); }
  public static JsonElement list(JsonObject args) { JsonArray a = new JsonArray(); a.add(1); return a; }
  public static JsonObject hog(JsonObject args) {
    java.util.List<byte[]> keep = new java.util.ArrayList<>();
    for (;;) { keep.add(new byte[4 * 1024 * 1024]); }
  }
  public static JsonObject heap(JsonObject args) {
    JsonObject r = new JsonObject();
    r.addProperty("max", Runtime.getRuntime().maxMemory() / (1024 * 1024));
    return r;
  }
}
"#;
    let twice =
        "package demo.lib;\npublic class Twice { public static int of(int x) { return 2 * x; } }\n";
    java_jar(&[("Hello.java", hello), ("Twice.java", twice)])
}

#[tokio::test]
async fn java_round_trip_with_a_bundled_class_logs_and_warm_reuse() {
    let Some(mut h) = Harness::start("java", DEADLINE, |_| {}).await else {
        return;
    };
    let action = h
        .put(
            "hello",
            jar_action(&hello_jar(), "demo.Hello#greet"),
            memory(256),
        )
        .await;
    let started = Instant::now();
    let first = h.invoke(&action, json!({"name": "Duke"})).await;
    let cold = started.elapsed();
    assert!(first.response.is_success(), "{first:?}");
    assert_eq!(
        result(&first),
        &json!({"greeting": "Hello Duke!", "twice": 42, "namespace": "guest", "seen": false})
    );
    assert!(first.annotations.get("initTime").is_some());
    assert_eq!(first.logs.len(), 2, "{:?}", first.logs);
    assert!(
        first.logs[0].ends_with(" stdout: hello from java")
            || first.logs[1].ends_with(" stdout: hello from java"),
        "{:?}",
        first.logs
    );
    assert!(
        first
            .logs
            .iter()
            .any(|l| l.ends_with(" stderr: and from stderr")),
        "{:?}",
        first.logs
    );

    let mut warm = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        let again = h.invoke(&action, json!({"name": "Ada"})).await;
        warm.push(started.elapsed());
        assert_eq!(result(&again)["seen"], true, "the same JVM ran it");
        assert!(again.annotations.get("initTime").is_none());
        assert_eq!(
            again.logs.len(),
            2,
            "only this activation's lines: {:?}",
            again.logs
        );
    }
    warm.sort();
    eprintln!(
        "MEASURED java:8 in a container: cold start without stem cell {cold:?} (initTime {} ms), warm activation p50 {:?} max {:?}",
        first.annotations.get("initTime").unwrap(),
        warm[warm.len() / 2],
        warm[warm.len() - 1]
    );
    h.stop().await;
}

#[tokio::test]
async fn scala_and_kotlin_jars_run_as_java_actions() {
    let Some(mut h) = Harness::start("javalangs", DEADLINE, |_| {}).await else {
        return;
    };
    let scala = r#"package demo
import com.google.gson.JsonObject
object Greeter {
  def main(args: JsonObject): JsonObject = {
    val names = args.getAsJsonArray("names")
    val list = (0 until names.size).map(i => names.get(i).getAsString).toList
    println(s"scala greets ${list.size}")
    val result = new JsonObject()
    result.addProperty("greeting", s"Hello ${list.mkString(" and ")}!")
    result.addProperty("namespace", sys.env("__OW_NAMESPACE"))
    result
  }
}
"#;
    let kotlin = r#"package demo
import com.google.gson.JsonObject
fun main(args: JsonObject): JsonObject {
    val names = args.getAsJsonArray("names").map { it.asString }
    println("kotlin greets ${names.size}")
    val result = JsonObject()
    result.addProperty("greeting", "Hello ${names.joinToString(" and ")}!")
    result.addProperty("namespace", System.getenv("__OW_NAMESPACE"))
    return result
}
"#;
    let languages = [
        (
            "scalac",
            "scala-library.jar",
            "Greeter.scala",
            scala,
            "demo.Greeter",
            "scala",
        ),
        (
            "kotlinc",
            "kotlin-stdlib.jar",
            "Greeter.kt",
            kotlin,
            "demo.GreeterKt",
            "kotlin",
        ),
    ];
    for (compiler, library, file, source, main, language) in languages {
        let Some(jar) = jvm_language_jar(compiler, library, file, source) else {
            continue;
        };
        let action = h.put(language, jar_action(&jar, main), memory(256)).await;
        for _ in 0..2 {
            let record = h.invoke(&action, json!({"names": ["Ada", "Duke"]})).await;
            assert!(record.response.is_success(), "{language}: {record:?}");
            assert_eq!(
                result(&record),
                &json!({"greeting": "Hello Ada and Duke!", "namespace": "guest"}),
                "{language}"
            );
            assert!(
                record
                    .logs
                    .iter()
                    .any(|l| l.ends_with(&format!(" stdout: {language} greets 2"))),
                "{language}: {:?}",
                record.logs
            );
        }
    }
    h.stop().await;
}

#[tokio::test]
async fn exceptions_non_objects_and_bad_jars_are_developer_errors() {
    let Some(mut h) = Harness::start("javaerr", DEADLINE, |_| {}).await else {
        return;
    };
    let jar = hello_jar();
    let boom = h
        .put("boom", jar_action(&jar, "demo.Hello#boom"), memory(256))
        .await;
    let record = h.invoke(&boom, json!({})).await;
    assert_eq!(record.response.status_code, 2, "{record:?}");
    assert_eq!(
        result(&record),
        &json!({"error": "An error has occurred while invoking the action (see logs for details): java.lang.IllegalStateException: boom"})
    );
    assert!(
        record
            .logs
            .iter()
            .any(|l| l.contains("stderr: \tat demo.Hello.boom(Hello.java")),
        "{:?}",
        record.logs
    );

    let list = h
        .put("list", jar_action(&jar, "demo.Hello#list"), memory(256))
        .await;
    let record = h.invoke(&list, json!({})).await;
    assert_eq!(record.response.status_code, 2, "{record:?}");
    assert_eq!(
        result(&record),
        &json!({"error": "The action did not return a dictionary."})
    );

    let bad = h
        .put(
            "bad",
            jar_action(b"PK but not a jar at all", "demo.Hello"),
            memory(256),
        )
        .await;
    let record = h.invoke(&bad, json!({})).await;
    assert_eq!(record.response.status_code, 2, "{record:?}");
    let error = result(&record)["error"].as_str().unwrap();
    assert!(
        error.starts_with(
            "An error has occurred (see logs for details): java.util.zip.ZipException"
        ),
        "{error}"
    );

    let missing = h
        .put("missing", jar_action(&jar, "demo.Nope"), memory(256))
        .await;
    let record = h.invoke(&missing, json!({})).await;
    assert_eq!(record.response.status_code, 2, "{record:?}");
    assert_eq!(
        result(&record),
        &json!({"error": "An error has occurred (see logs for details): java.lang.ClassNotFoundException: demo.Nope"})
    );
    h.stop().await;
}

#[tokio::test]
async fn the_heap_is_sized_to_the_action_memory_so_a_hog_gets_a_java_error() {
    let Some(mut h) = Harness::start("javamem", DEADLINE, |_| {}).await else {
        return;
    };
    let jar = hello_jar();
    let heap = h
        .put("heap", jar_action(&jar, "demo.Hello#heap"), memory(128))
        .await;
    let record = h.invoke(&heap, json!({})).await;
    assert!(record.response.is_success(), "{record:?}");
    let max = result(&record)["max"].as_u64().unwrap();
    assert!(
        (48..=64).contains(&max),
        "heap of a 128 MB container: {max} MB"
    );

    // The heap fills before the container's memory: the JVM throws, the kernel kills nothing.
    let hog = h
        .put("hog", jar_action(&jar, "demo.Hello#hog"), memory(128))
        .await;
    let record = h.invoke(&hog, json!({})).await;
    assert_eq!(record.response.status_code, 2, "{record:?}");
    assert_eq!(
        result(&record),
        &json!({"error": "An error has occurred while invoking the action (see logs for details): java.lang.OutOfMemoryError: Java heap space"})
    );
    h.stop().await;
}

#[tokio::test]
async fn a_java_stem_cell_serves_the_first_activation() {
    let Some(mut h) = Harness::start("javastem", DEADLINE, |config| {
        config.pool.stem_cells = vec![StemCellConfig {
            kind: "java:8".into(),
            memory_mb: 256,
            count: 1,
        }];
    })
    .await
    else {
        return;
    };
    let pool = h.pool().clone();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while pool.snapshot().stem_cells() < 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no stem cell in time"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stem = pool.snapshot().slots[0].container.clone();
    let action = h
        .put(
            "hello",
            jar_action(&hello_jar(), "demo.Hello#greet"),
            memory(256),
        )
        .await;
    let started = Instant::now();
    let first = h.invoke(&action, json!({"name": "Duke"})).await;
    let with_stem = started.elapsed();
    assert!(first.response.is_success(), "{first:?}");
    assert!(
        first.annotations.get("initTime").is_some(),
        "a stem cell still gets /init"
    );
    pool.settle().await;
    let snapshot = pool.snapshot();
    let warm = snapshot.slots.iter().find(|s| s.key.is_some()).unwrap();
    assert_eq!(
        warm.container, stem,
        "the stem cell became the action's container"
    );
    eprintln!(
        "MEASURED java:8 through the pool: first activation on a stem cell {with_stem:?} (initTime {} ms)",
        first.annotations.get("initTime").unwrap()
    );
    h.stop().await;
}

fn init_value(jar: &[u8], main: &str) -> Value {
    json!({"value": {"name": "hello", "main": main, "code": base64(jar), "binary": true}})
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

/// Polls a fresh container's proxy with a `/run` (refused before `/init`) until it answers.
async fn wait_until_listening(container: &dyn ActionContainer) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let outcome = container
            .run(&json!({"value": {}}), Duration::from_secs(10))
            .await;
        let answer = outcome.response.and_then(|r| r.result);
        if answer == Some(json!({"error": "Cannot invoke an uninitialized action."})) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the JVM never listened: {answer:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Cold start without a stem cell (create, JVM start, `/init`, first `/run`), with one (a JVM
/// already listening: `/init` and first `/run`), and warm runs, measured on containers made by
/// the factory directly. Prints them; asserts only that the calls succeed, never a time.
#[tokio::test]
async fn cold_and_warm_timings_in_containers() {
    let Some(real) = common::real("javatime").await else {
        return;
    };
    let jar = hello_jar();
    let spec = |action: Option<ActionCode>| ContainerSpec {
        kind: "java:8".into(),
        image: None,
        memory_mb: 256,
        action,
        namespace: None,
        env: Default::default(),
    };
    let code = ActionCode {
        name: "hello".into(),
        code: Some(base64(&jar)),
        main: "demo.Hello#heap".into(),
        binary: true,
    };
    let run = json!({"value": {}});
    let timeout = Duration::from_secs(60);

    let started = Instant::now();
    let cold = real
        .factory
        .create(&spec(Some(code.clone())))
        .await
        .unwrap();
    let created = started.elapsed();
    let init = cold.init(&init_value(&jar, &code.main), timeout).await;
    assert!(init.response.is_none(), "{init:?}");
    let first = cold.run(&run, timeout).await;
    let cold_total = started.elapsed();
    assert!(first.response.unwrap().is_success());

    let stem = real.factory.create(&spec(None)).await.unwrap();
    wait_until_listening(stem.as_ref()).await;
    let started = Instant::now();
    let init = stem.init(&init_value(&jar, &code.main), timeout).await;
    assert!(init.response.is_none(), "{init:?}");
    let stem_init = started.elapsed();
    let first = stem.run(&run, timeout).await;
    let stem_total = started.elapsed();
    assert!(first.response.unwrap().is_success());

    let mut warm = Vec::new();
    for _ in 0..50 {
        let started = Instant::now();
        let outcome = stem.run(&run, timeout).await;
        warm.push(started.elapsed());
        assert!(outcome.response.unwrap().is_success());
    }
    warm.sort();
    eprintln!(
        "MEASURED java:8 containers: cold start without stem cell {} ms (create {} ms), \
         with stem cell {} ms (/init {} ms); warm /run p50 {} ms p99 {} ms",
        ms(cold_total),
        ms(created),
        ms(stem_total),
        ms(stem_init),
        ms(warm[warm.len() / 2]),
        ms(warm[warm.len() * 99 / 100]),
    );
    cold.destroy().await.unwrap();
    stem.destroy().await.unwrap();
    real.shutdown().await;
}
