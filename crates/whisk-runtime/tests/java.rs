//! The Java proxy run as a plain `java` process on loopback (started with the arguments of its
//! launch spec), driven through `RuntimeClient`, with actions compiled by `javac` at test time
//! against Debian's Gson. Needs a JDK and `libgoogle-gson-java` (both installed by `.ci/run`).
#![allow(clippy::unwrap_used)] // a panic is the right way for a test to fail

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};
use whisk_runtime::{
    HostTools, JAVA_PROXY_JAR, LOG_SENTINEL, LaunchLayout, RuntimeReply, init_verdict,
    launch_spec_with_memory, run_verdict,
};

const ECHO: &str = "import com.google.gson.JsonObject;
public class Echo { public static JsonObject main(JsonObject args) { return args; } }";

fn gson() -> PathBuf {
    HostTools::detect()
        .gson
        .expect("Gson must be installed (libgoogle-gson-java)")
}

/// Starts the Java proxy exactly as its launch spec says, for a container of `memory_mb`.
fn java_proxy(memory_mb: u64) -> Proxy {
    assert!(
        JAVA_PROXY_JAR.is_some(),
        "this build has no Java proxy: was a JDK there when whisk-runtime was compiled?"
    );
    let assets = PathBuf::from(proxy_asset("java/proxy.jar"))
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .to_path_buf();
    let layout = LaunchLayout {
        assets_dir: assets,
        whisk_binary: PathBuf::from("/nonexistent"),
        tools: HostTools::detect(),
    };
    let spec = launch_spec_with_memory("java:8", &layout, memory_mb)
        .expect("java and Gson must be installed");
    let args: Vec<&str> = spec.argv[1..].iter().map(String::as_str).collect();
    Proxy::start(Path::new(&spec.argv[0]), &args, &[])
}

fn jdk_tool(name: &str) -> PathBuf {
    let javac = which("javac").expect("a JDK (javac) must be installed");
    std::fs::canonicalize(javac)
        .unwrap()
        .parent()
        .unwrap()
        .join(name)
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Compiles `(file name, source)` pairs against Gson and `classpath`, and jars the classes.
fn java_jar(sources: &[(&str, &str)], classpath: &[&Path]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let classes = dir.path().join("classes");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::create_dir_all(&classes).unwrap();
    let mut files = Vec::new();
    for (name, text) in sources {
        let file = src.join(name);
        std::fs::write(&file, text).unwrap();
        files.push(file);
    }
    let mut cp = vec![gson()];
    cp.extend(classpath.iter().map(|p| p.to_path_buf()));
    let cp = std::env::join_paths(cp).unwrap();
    let status = Command::new(jdk_tool("javac"))
        .args(["--release", "11", "-encoding", "UTF-8", "-cp"])
        .arg(&cp)
        .arg("-d")
        .arg(&classes)
        .args(&files)
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "javac failed");
    jar_directory(&classes)
}

/// Jars everything under `classes`.
fn jar_directory(classes: &Path) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let jar = dir.path().join("action.jar");
    let status = Command::new(jdk_tool("jar"))
        .arg("--create")
        .arg("--file")
        .arg(&jar)
        .arg("-C")
        .arg(classes)
        .arg(".")
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "jar failed");
    std::fs::read(jar).unwrap()
}

/// A JVM language's compiler on `PATH` and the runtime library its jars must carry, found where
/// Debian's packages and the upstream distributions both put it (`<home>/bin/<compiler>`,
/// `<home>/lib/<library>`). `None`, with the reason printed, only when the compiler is missing:
/// a compiler without its library is a broken install and fails the test.
fn jvm_language(compiler: &str, library: &str) -> Option<(PathBuf, PathBuf)> {
    let Some(found) = which(compiler) else {
        eprintln!("SKIPPED: no {compiler} on PATH (Debian: scala, kotlin; installed by .ci/run)");
        return None;
    };
    let home = std::fs::canonicalize(&found)
        .unwrap()
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .to_path_buf();
    let library = home.join("lib").join(library);
    assert!(
        library.is_file(),
        "{compiler} without {}",
        library.display()
    );
    Some((found, library))
}

/// Compiles `(file name, source)` pairs with a JVM language's `compiler` against Gson and jars
/// the classes, with the classes of `bundle` (the language's runtime library) packed in, as an
/// assembly or shadow build does.
fn jvm_language_jar(compiler: &Path, sources: &[(&str, &str)], bundle: Option<&Path>) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let classes = dir.path().join("classes");
    std::fs::create_dir_all(&classes).unwrap();
    let mut files = Vec::new();
    for (name, text) in sources {
        let file = dir.path().join(name);
        std::fs::write(&file, text).unwrap();
        files.push(file);
    }
    let output = Command::new(compiler)
        .arg("-cp")
        .arg(gson())
        .arg("-d")
        .arg(&classes)
        .args(&files)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{} failed: {}",
        compiler.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    if let Some(library) = bundle {
        let status = Command::new(jdk_tool("jar"))
            .arg("--extract")
            .arg("--file")
            .arg(library)
            .current_dir(&classes)
            .stdin(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "cannot unpack {}", library.display());
        // `jar --create` writes its own manifest.
        std::fs::remove_file(classes.join("META-INF/MANIFEST.MF")).unwrap();
    }
    jar_directory(&classes)
}

fn jar_init(jar: &[u8], main: &str) -> Value {
    json!({"name":"action","main":main,"code":base64(jar),"binary":true})
}

#[tokio::test]
async fn json_round_trips() {
    let jar = java_jar(&[("Echo.java", ECHO)], &[]);
    let proxy = java_proxy(256);
    let client = proxy.client();
    let reply = init(&client, jar_init(&jar, "Echo")).await;
    assert_eq!((reply.status, body(&reply)), (200, json!({"ok":true})));

    let nested = json!({"a":{"b":[1,2,{"c":null}],"d":true},"ünï":"çødé ☃ 😀","n":-1.5});
    let reply = run(&client, nested.clone()).await;
    assert_eq!((reply.status, body(&reply)), (200, nested));

    let big = json!({"data": "x".repeat(1_000_000)});
    let reply = run(&client, big.clone()).await;
    assert_eq!(body(&reply), big);

    let outcome = client.run(&run_payload(json!({"k":1})), CALL_TIMEOUT).await;
    let verdict = run_verdict(&outcome, CALL_TIMEOUT, client.max_response());
    assert_eq!(verdict.response.unwrap().to_api_json()["status"], "success");
}

#[tokio::test]
async fn class_hash_method_names_the_entry_point_in_a_package() {
    let source = "package com.example;
import com.google.gson.JsonObject;
public class Greeter {
  public static JsonObject main(JsonObject a) { throw new IllegalStateException(\"not this one\"); }
  public static JsonObject greet(JsonObject a) {
    JsonObject r = new JsonObject();
    r.addProperty(\"greeting\", \"Hello \" + a.get(\"name\").getAsString() + \"!\");
    return r;
  }
}";
    let jar = java_jar(&[("Greeter.java", source)], &[]);
    let proxy = java_proxy(256);
    let client = proxy.client();
    let reply = init(&client, jar_init(&jar, "com.example.Greeter#greet")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        body(&run(&client, json!({"name":"Duke"})).await),
        json!({"greeting":"Hello Duke!"})
    );
}

#[tokio::test]
async fn run_fields_and_init_env_are_in_the_environment_and_properties() {
    let source = "import com.google.gson.JsonObject;
public class Env {
  public static JsonObject main(JsonObject a) {
    JsonObject r = new JsonObject();
    for (String k : new String[] {\"__OW_ACTIVATION_ID\", \"__OW_NAMESPACE\", \"__OW_ACTION_NAME\",
        \"__OW_DEADLINE\", \"__OW_API_KEY\", \"MY_PARAM\", \"OBJ\"}) {
      r.addProperty(k, System.getenv(k));
      r.addProperty(\"property \" + k, System.getProperty(k));
    }
    r.addProperty(\"in map\", System.getenv().get(\"__OW_NAMESPACE\"));
    return r;
  }
}";
    let jar = java_jar(&[("Env.java", source)], &[]);
    let proxy = java_proxy(256);
    let client = proxy.client();
    let mut value = jar_init(&jar, "Env");
    value["env"] = json!({"MY_PARAM":"v1","OBJ":{"a":1}});
    assert_eq!(init(&client, value).await.status, 200);
    let result = body(&run(&client, json!({})).await);
    let expected = [
        ("__OW_ACTIVATION_ID", "0123456789abcdef0123456789abcdef"),
        ("__OW_NAMESPACE", "guest"),
        ("__OW_ACTION_NAME", "/guest/pkg/hello"),
        ("__OW_DEADLINE", "1717000060123"),
        ("__OW_API_KEY", "uuid:key"),
        ("MY_PARAM", "v1"),
        ("OBJ", "{\"a\":1}"),
    ];
    for (key, value) in expected {
        assert_eq!(result[key], value, "getenv {key}: {result}");
        assert_eq!(
            result[format!("property {key}")],
            value,
            "property {key}: {result}"
        );
    }
    assert_eq!(result["in map"], "guest");
}

#[tokio::test]
async fn an_exception_is_a_developer_error_with_the_stack_in_the_logs() {
    let source = "import com.google.gson.JsonObject;
public class Boom { public static JsonObject main(JsonObject a) { throw new RuntimeException(\"boom\"); } }";
    let jar = java_jar(&[("Boom.java", source)], &[]);
    let proxy = java_proxy(256);
    let client = proxy.client();
    assert_eq!(init(&client, jar_init(&jar, "Boom")).await.status, 200);
    let outcome = client.run(&run_payload(json!({})), CALL_TIMEOUT).await;
    let reply = outcome.as_ref().unwrap();
    let message = "An error has occurred while invoking the action (see logs for details): java.lang.RuntimeException: boom";
    assert_eq!(
        (reply.status, body(reply)),
        (502, json!({ "error": message }))
    );
    let verdict = run_verdict(&outcome, CALL_TIMEOUT, client.max_response());
    assert!(verdict.destroy_container);
    let response = verdict.response.unwrap().to_api_json();
    assert_eq!(response["status"], "action developer error");
    assert_eq!(response["result"], json!({ "error": message }));
    let (_, err) = proxy.logs_after_sentinels(1);
    assert!(err.contains("at Boom.main(Boom.java"), "{err}");
}

#[tokio::test]
async fn null_and_non_object_results_are_refused() {
    let source = "import com.google.gson.*;
public class Odd {
  public static JsonObject nothing(JsonObject a) { return null; }
  public static JsonElement array(JsonObject a) { JsonArray r = new JsonArray(); r.add(1); return r; }
  public static Object text(JsonObject a) { return \"text\"; }
}";
    let jar = java_jar(&[("Odd.java", source)], &[]);
    let cases = [
        (
            "Odd#nothing",
            "An error has occurred (see logs for details): java.lang.NullPointerException: The action returned null",
        ),
        ("Odd#array", "The action did not return a dictionary."),
        ("Odd#text", "The action did not return a dictionary."),
    ];
    for (main, message) in cases {
        let proxy = java_proxy(256);
        let client = proxy.client();
        assert_eq!(init(&client, jar_init(&jar, main)).await.status, 200);
        let reply = run(&client, json!({})).await;
        assert_eq!(
            (reply.status, body(&reply)),
            (502, json!({ "error": message })),
            "{main}"
        );
        proxy.logs_after_sentinels(1);
    }
}

#[tokio::test]
async fn a_jar_bundling_its_dependency_runs() {
    let dep_source = "package lib.dep;
public class Twice { public static int of(int x) { return 2 * x; } }";
    let dep_dir = tempfile::tempdir().unwrap();
    let dep_jar = dep_dir.path().join("dep.jar");
    std::fs::write(&dep_jar, java_jar(&[("Twice.java", dep_source)], &[])).unwrap();
    let main_source = "import com.google.gson.JsonObject;
public class Uses {
  public static JsonObject main(JsonObject a) {
    JsonObject r = new JsonObject();
    r.addProperty(\"twice\", lib.dep.Twice.of(a.get(\"v\").getAsInt()));
    return r;
  }
}";
    // As a shading build does: the dependency's classes packed into the action's jar.
    let jar = java_jar(
        &[("Uses.java", main_source), ("Twice.java", dep_source)],
        &[&dep_jar],
    );
    let proxy = java_proxy(256);
    let client = proxy.client();
    assert_eq!(init(&client, jar_init(&jar, "Uses")).await.status, 200);
    assert_eq!(
        body(&run(&client, json!({"v":21})).await),
        json!({"twice":42})
    );

    // Without its dependency, the same class cannot run.
    let thin = java_jar(&[("Uses.java", main_source)], &[&dep_jar]);
    let proxy = java_proxy(256);
    let client = proxy.client();
    assert_eq!(init(&client, jar_init(&thin, "Uses")).await.status, 200);
    let reply = run(&client, json!({"v":21})).await;
    assert_eq!(reply.status, 502);
    assert!(
        body(&reply)["error"]
            .as_str()
            .unwrap()
            .contains("NoClassDefFoundError: lib/dep/Twice"),
        "{}",
        reply.body
    );
}

#[tokio::test]
async fn a_bad_jar_fails_init_with_sentinels() {
    let proxy = java_proxy(256);
    let client = proxy.client();
    let outcome = client
        .init(
            &json!({"value": jar_init(b"this is not a jar", "Echo")}),
            CALL_TIMEOUT,
        )
        .await;
    let reply = outcome.as_ref().unwrap();
    assert_eq!(reply.status, 502);
    let error = body(reply)["error"].as_str().unwrap().to_string();
    assert!(
        error.starts_with(
            "An error has occurred (see logs for details): java.util.zip.ZipException"
        ),
        "{error}"
    );
    let verdict = init_verdict(&outcome, CALL_TIMEOUT);
    assert_eq!(
        verdict.response.unwrap().to_api_json()["status"],
        "action developer error"
    );
    let (_, err) = proxy.logs_after_sentinels(1);
    assert!(err.contains("ZipException"), "{err}");
    // The container is not initialized: a run is refused.
    let reply = run(&client, json!({})).await;
    assert_eq!(
        (reply.status, body(&reply)),
        (
            502,
            json!({"error":"Cannot invoke an uninitialized action."})
        )
    );
}

#[tokio::test]
async fn a_missing_class_or_method_fails_init() {
    let source = "import com.google.gson.JsonObject;
public class Inst { public JsonObject main(JsonObject a) { return a; } }";
    let jar = java_jar(&[("Inst.java", source), ("Echo.java", ECHO)], &[]);
    let cases = [
        (
            "NoSuchClass",
            "java.lang.ClassNotFoundException: NoSuchClass",
        ),
        ("Echo#other", "java.lang.NoSuchMethodException: Echo.other"),
        ("Inst", "Method main is not static in class Inst"),
    ];
    for (main, expected) in cases {
        let proxy = java_proxy(256);
        let reply = init(&proxy.client(), jar_init(&jar, main)).await;
        assert_eq!(reply.status, 502, "{main}");
        let error = body(&reply)["error"].as_str().unwrap().to_string();
        assert!(
            error.starts_with("An error has occurred (see logs for details): ")
                && error.contains(expected),
            "{main}: {error}"
        );
        proxy.logs_after_sentinels(1);
    }
}

#[tokio::test]
async fn second_init_missing_code_and_bad_requests_are_refused() {
    let jar = java_jar(&[("Echo.java", ECHO)], &[]);
    let proxy = java_proxy(256);
    let client = proxy.client();
    let reply = init(&client, json!({"main":"Echo"})).await;
    assert_eq!(
        (reply.status, body(&reply)),
        (403, json!({"error":"Missing main/no code to execute."}))
    );
    let reply = init(&client, json!({"code":base64(&jar)})).await;
    assert_eq!(reply.status, 403);
    assert_eq!(init(&client, jar_init(&jar, "Echo")).await.status, 200);
    let reply = init(&client, jar_init(&jar, "Echo")).await;
    assert_eq!(
        (reply.status, body(&reply)),
        (
            403,
            json!({"error":"Cannot initialize the action more than once."})
        )
    );
    let reply = client
        .run(&json!({"value":[1, 2]}), CALL_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(reply.status, 403, "{}", reply.body);
    let reply = client.run(&json!([1]), CALL_TIMEOUT).await.unwrap();
    assert_eq!(reply.status, 400, "{}", reply.body);
    // A missing value is an empty argument.
    let reply = client
        .run(&json!({"activation_id":"x"}), CALL_TIMEOUT)
        .await
        .unwrap();
    assert_eq!((reply.status, body(&reply)), (200, json!({})));
}

#[tokio::test]
async fn logs_come_before_the_sentinels_on_both_streams() {
    let source = "import com.google.gson.JsonObject;
public class Logs {
  public static JsonObject main(JsonObject a) {
    System.out.println(\"out \" + a.get(\"n\"));
    System.err.print(\"err \" + a.get(\"n\") + \"\\n\");
    return new JsonObject();
  }
}";
    let jar = java_jar(&[("Logs.java", source)], &[]);
    let proxy = java_proxy(256);
    let client = proxy.client();
    assert_eq!(init(&client, jar_init(&jar, "Logs")).await.status, 200);
    run(&client, json!({"n":1})).await;
    run(&client, json!({"n":2})).await;
    let (out, err) = proxy.logs_after_sentinels(2);
    assert_eq!(
        out,
        format!("out 1\n{LOG_SENTINEL}\nout 2\n{LOG_SENTINEL}\n")
    );
    assert_eq!(
        err,
        format!("err 1\n{LOG_SENTINEL}\nerr 2\n{LOG_SENTINEL}\n")
    );
}

#[tokio::test]
async fn the_heap_follows_the_container_memory() {
    let source = "import com.google.gson.JsonObject;
public class Heap {
  public static JsonObject main(JsonObject a) {
    JsonObject r = new JsonObject();
    r.addProperty(\"max\", Runtime.getRuntime().maxMemory() / (1024 * 1024));
    return r;
  }
}";
    let jar = java_jar(&[("Heap.java", source)], &[]);
    for (memory, heap) in [(128, 64), (512, 384)] {
        let proxy = java_proxy(memory);
        let client = proxy.client();
        assert_eq!(init(&client, jar_init(&jar, "Heap")).await.status, 200);
        let max = body(&run(&client, json!({})).await)["max"]
            .as_u64()
            .unwrap();
        // The JVM reports the heap less one survivor space.
        assert!(max <= heap && max >= heap * 8 / 10, "{memory} MB: {max}");
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

/// Timings as plain processes (no container): a cold start without a stem cell (JVM start,
/// `/init`, first `/run`), one with a JVM already listening (`/init` and first `/run`), and warm
/// runs. Prints them; asserts only that the calls succeed, never a time.
#[tokio::test]
async fn timings_as_a_plain_process() {
    let jar = java_jar(&[("Echo.java", ECHO)], &[]);
    let started = Instant::now();
    let proxy = java_proxy(256);
    let listening = started.elapsed();
    let client = proxy.client();
    let init_started = Instant::now();
    assert_eq!(init(&client, jar_init(&jar, "Echo")).await.status, 200);
    let init_time = init_started.elapsed();
    let first = Instant::now();
    assert_eq!(run(&client, json!({"hello":"world"})).await.status, 200);
    let first_run = first.elapsed();
    let mut warm = Vec::new();
    for _ in 0..50 {
        let begun = Instant::now();
        assert_eq!(run(&client, json!({"hello":"world"})).await.status, 200);
        warm.push(begun.elapsed());
    }
    warm.sort();
    println!(
        "java:8 plain process: start→listening {} ms, /init {} ms, first /run {} ms; \
         cold start without stem cell {} ms, with stem cell {} ms; warm /run p50 {} ms p99 {} ms",
        ms(listening),
        ms(init_time),
        ms(first_run),
        ms(listening + init_time + first_run),
        ms(init_time + first_run),
        ms(warm[warm.len() / 2]),
        ms(warm[warm.len() * 99 / 100]),
    );
}

/// A Scala `object` in a package: its `main` and `shout` get static forwarders on the class of
/// the same name, which is what `main` names; both use the Scala library.
const SCALA_GREETER: &str = r#"package demo
import com.google.gson.JsonObject
object Greeter {
  private def names(args: JsonObject): List[String] = {
    val array = args.getAsJsonArray("names")
    (0 until array.size).map(i => array.get(i).getAsString).toList
  }
  def main(args: JsonObject): JsonObject = {
    val result = new JsonObject()
    result.addProperty("greeting", s"Hello ${names(args).mkString(" and ")}!")
    result
  }
  def shout(args: JsonObject): JsonObject = {
    val result = new JsonObject()
    result.addProperty("greeting", names(args).map(_.toUpperCase).mkString("", "! ", "!"))
    result
  }
}
"#;

/// A Kotlin top-level function in `Greeter.kt`: it lives in the class `demo.GreeterKt`, and its
/// parameter check and `joinToString` need the Kotlin standard library.
const KOTLIN_GREETER: &str = r#"package demo
import com.google.gson.JsonObject
fun main(args: JsonObject): JsonObject {
    val names = args.getAsJsonArray("names").map { it.asString }
    val result = JsonObject()
    result.addProperty("greeting", "Hello ${names.joinToString(" and ")}!")
    return result
}
"#;

/// Inits a fresh proxy with `jar` and `main`, and runs it with two names.
async fn greet(jar: &[u8], main: &str) -> RuntimeReply {
    let proxy = java_proxy(256);
    let client = proxy.client();
    let reply = init(&client, jar_init(jar, main)).await;
    assert_eq!(reply.status, 200, "{main}: {}", reply.body);
    let reply = run(&client, json!({"names": ["Ada", "Duke"]})).await;
    proxy.logs_after_sentinels(1);
    reply
}

#[tokio::test]
async fn a_scala_object_with_its_library_bundled_runs_as_java() {
    let Some((scalac, library)) = jvm_language("scalac", "scala-library.jar") else {
        return;
    };
    let jar = jvm_language_jar(&scalac, &[("Greeter.scala", SCALA_GREETER)], Some(&library));
    let reply = greet(&jar, "demo.Greeter").await;
    assert_eq!(
        (reply.status, body(&reply)),
        (200, json!({"greeting": "Hello Ada and Duke!"}))
    );
    let reply = greet(&jar, "demo.Greeter#shout").await;
    assert_eq!(
        (reply.status, body(&reply)),
        (200, json!({"greeting": "ADA! DUKE!"}))
    );

    // Without the Scala library in the jar the class loads but cannot run.
    let thin = jvm_language_jar(&scalac, &[("Greeter.scala", SCALA_GREETER)], None);
    let reply = greet(&thin, "demo.Greeter").await;
    assert_eq!(reply.status, 502);
    let error = body(&reply)["error"].as_str().unwrap().to_string();
    assert!(
        error.starts_with("An error has occurred while invoking the action (see logs for details): java.lang.NoClassDefFoundError: scala/"),
        "{error}"
    );
}

#[tokio::test]
async fn a_kotlin_top_level_function_with_its_stdlib_bundled_runs_as_java() {
    let Some((kotlinc, library)) = jvm_language("kotlinc", "kotlin-stdlib.jar") else {
        return;
    };
    let jar = jvm_language_jar(&kotlinc, &[("Greeter.kt", KOTLIN_GREETER)], Some(&library));
    let reply = greet(&jar, "demo.GreeterKt").await;
    assert_eq!(
        (reply.status, body(&reply)),
        (200, json!({"greeting": "Hello Ada and Duke!"}))
    );

    // The function is not a member of a class named after the file without `Kt`.
    let proxy = java_proxy(256);
    let reply = init(&proxy.client(), jar_init(&jar, "demo.Greeter")).await;
    assert_eq!(reply.status, 502);
    let error = body(&reply)["error"].as_str().unwrap().to_string();
    assert!(
        error.contains("java.lang.ClassNotFoundException: demo.Greeter"),
        "{error}"
    );
    proxy.logs_after_sentinels(1);

    // Without the standard library in the jar the class loads but cannot run.
    let thin = jvm_language_jar(&kotlinc, &[("Greeter.kt", KOTLIN_GREETER)], None);
    let reply = greet(&thin, "demo.GreeterKt").await;
    assert_eq!(reply.status, 502);
    let error = body(&reply)["error"].as_str().unwrap().to_string();
    assert!(
        error.starts_with("An error has occurred while invoking the action (see logs for details): java.lang.NoClassDefFoundError: kotlin/"),
        "{error}"
    );
}
