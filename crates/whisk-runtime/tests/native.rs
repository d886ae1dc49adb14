//! The Rust proxy (`whisk proxy actionloop|skeleton`) run as a plain process on loopback, with
//! native actions compiled by the machine's gcc.
#![allow(clippy::unwrap_used)] // a panic is the right way for a test to fail

mod common;

use common::*;
use serde_json::json;
use whisk_runtime::{LOG_SENTINEL, init_verdict, run_verdict};

/// An ActionLoop executable: for each request line on stdin it logs on both streams and answers
/// on fd 3 with the request it got and one init variable; `"crash"` in the request makes it exit,
/// `"garbage"` makes it answer something that is not JSON.
const LOOP_C: &str = r#"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(void) {
    FILE *out = fdopen(3, "w");
    static char line[4 * 1024 * 1024];
    int n = 0;
    if (!out) return 9;
    while (fgets(line, sizeof line, stdin)) {
        size_t len = strlen(line);
        if (len && line[len - 1] == '\n') line[len - 1] = 0;
        n++;
        printf("stdout line %d\n", n);
        fprintf(stderr, "stderr line %d\n", n);
        fflush(stdout); fflush(stderr);
        if (strstr(line, "\"crash\"")) exit(3);
        if (strstr(line, "\"garbage\"")) { fprintf(out, "not json\n"); fflush(out); continue; }
        const char *p = getenv("MY_PARAM");
        const char *api = getenv("__OW_API_HOST");
        const char *path = getenv("PATH");
        fprintf(out, "{\"request\":%s,\"param\":\"%s\",\"api\":\"%s\",\"path\":%s}\n", line,
            p ? p : "", api ? api : "", path ? "true" : "false");
        fflush(out);
    }
    return 0;
}
"#;

/// A dockerskeleton executable: logs two lines, then prints the result as its last line.
const SKELETON_C: &str = r#"
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
    const char *aid = getenv("__OW_ACTIVATION_ID");
    const char *p = getenv("MY_PARAM");
    printf("log one\nlog two\n");
    fprintf(stderr, "an error line\n");
    printf("{\"args\":%s,\"aid\":\"%s\",\"param\":\"%s\"}\n", argc > 1 ? argv[1] : "null",
        aid ? aid : "", p ? p : "");
    return 0;
}
"#;

fn loop_binary(dir: &std::path::Path) -> Vec<u8> {
    gcc(dir, "loop", LOOP_C)
}

#[tokio::test]
async fn actionloop_zip_round_trips_with_env_and_sentinels() {
    let build = tempfile::tempdir().unwrap();
    let exec = loop_binary(build.path());
    let archive = zip(&[("exec", &exec, 0o755)], true);
    let proxy = Proxy::native("actionloop");
    let client = proxy.client();
    let reply = init(
        &client,
        json!({"main":"main","code":base64(&archive),"binary":true,"env":{"MY_PARAM":"p1"}}),
    )
    .await;
    assert_eq!((reply.status, body(&reply)), (200, json!({"ok":true})));

    let value = json!({"nested":{"a":[1,{"b":"ünï ☃"}]},"list":[[]]});
    let reply = run(&client, value.clone()).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let got = body(&reply);
    assert_eq!(got["request"], run_payload(value));
    assert_eq!(got["param"], "p1");
    assert_eq!(got["api"], "http://api.invalid");
    // ActionLoop gives the executable only the init env and the proxy's __OW_* variables.
    assert_eq!(got["path"], false);

    let big = json!({"data":"z".repeat(1_000_000)});
    let reply = run(&client, big.clone()).await;
    assert!(!reply.truncated);
    assert_eq!(body(&reply)["request"]["value"], big);

    let (out, err) = proxy.logs_after_sentinels(2);
    assert_eq!(
        out,
        format!("stdout line 1\n{LOG_SENTINEL}\nstdout line 2\n{LOG_SENTINEL}\n")
    );
    assert_eq!(
        err,
        format!("stderr line 1\n{LOG_SENTINEL}\nstderr line 2\n{LOG_SENTINEL}\n")
    );
}

#[tokio::test]
async fn actionloop_takes_a_bare_binary_and_a_tar_gz() {
    let build = tempfile::tempdir().unwrap();
    let exec = loop_binary(build.path());
    for code in [exec.clone(), tar_gz(&[("bin/exec", &exec, 0o755)])] {
        let proxy = Proxy::native("actionloop");
        let client = proxy.client();
        let reply = init(
            &client,
            json!({"main":"main","code":base64(&code),"binary":true}),
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let reply = run(&client, json!({"x":1})).await;
        assert_eq!(body(&reply)["request"]["value"], json!({"x":1}));
    }
}

#[tokio::test]
async fn actionloop_exit_during_run_is_command_exited() {
    let build = tempfile::tempdir().unwrap();
    let archive = zip(&[("exec", &loop_binary(build.path()), 0o755)], false);
    let proxy = Proxy::native("actionloop");
    let client = proxy.client();
    init(
        &client,
        json!({"main":"main","code":base64(&archive),"binary":true}),
    )
    .await;
    let outcome = client
        .run(&run_payload(json!({"crash":true})), CALL_TIMEOUT)
        .await;
    let reply = outcome.as_ref().unwrap();
    assert_eq!(
        (reply.status, body(reply)),
        (400, json!({"error":"command exited"}))
    );
    let verdict = run_verdict(&outcome, CALL_TIMEOUT, client.max_response());
    assert_eq!(
        verdict.response.unwrap().to_api_json(),
        json!({"status":"action developer error","success":false,
               "result":{"error":"command exited"},"size":26})
    );
    proxy.logs_after_sentinels(1);
    // The executable is gone, and with it the action.
    let reply = run(&client, json!({})).await;
    assert_eq!(
        (reply.status, body(&reply)),
        (500, json!({"error":"no action defined yet"}))
    );
}

#[tokio::test]
async fn actionloop_executable_gone_before_the_run_is_command_exited() {
    let proxy = Proxy::native("actionloop");
    let client = proxy.client();
    // Exits right after starting, while /init already succeeded (no ack asked).
    assert_eq!(
        init(&client, json!({"main":"main","code":"#!/bin/sh\nexit 0\n"}))
            .await
            .status,
        200
    );
    // Whether the proxy sees the exit before writing the request (500) or while waiting for the
    // answer (400), the reply says the command exited, and the action is gone afterwards.
    let reply = run(&client, json!({})).await;
    assert!(matches!(reply.status, 400 | 500), "{}", reply.body);
    assert_eq!(body(&reply), json!({"error":"command exited"}));
    let reply = run(&client, json!({})).await;
    assert_eq!(
        (reply.status, body(&reply)),
        (500, json!({"error":"no action defined yet"}))
    );
}

#[tokio::test]
async fn actionloop_bad_base64_is_a_decode_error() {
    let proxy = Proxy::native("actionloop");
    let reply = init(
        &proxy.client(),
        json!({"main":"main","code":"@@@@","binary":true}),
    )
    .await;
    assert_eq!(reply.status, 400);
    assert!(
        body(&reply)["error"]
            .as_str()
            .unwrap()
            .starts_with("cannot decode the request: "),
        "{}",
        reply.body
    );
}

#[tokio::test]
async fn actionloop_non_json_answer_is_not_a_dictionary() {
    let build = tempfile::tempdir().unwrap();
    let archive = zip(&[("exec", &loop_binary(build.path()), 0o755)], false);
    let proxy = Proxy::native("actionloop");
    let client = proxy.client();
    init(
        &client,
        json!({"main":"main","code":base64(&archive),"binary":true}),
    )
    .await;
    let reply = run(&client, json!({"garbage":1})).await;
    assert_eq!(
        (reply.status, body(&reply)),
        (
            502,
            json!({"error":"The action did not return a dictionary or array."})
        )
    );
    // The executable is still there for the next activation.
    assert_eq!(run(&client, json!({"ok":1})).await.status, 200);
}

#[tokio::test]
async fn actionloop_init_failures() {
    // Source code would need a compiler this runtime does not have.
    let proxy = Proxy::native("actionloop");
    let client = proxy.client();
    let outcome = client
        .init(
            &json!({"value":{"main":"main","code":"package main\nfunc main() {}\n"}}),
            CALL_TIMEOUT,
        )
        .await;
    let reply = outcome.as_ref().unwrap();
    assert_eq!(
        (reply.status, body(reply)),
        (
            502,
            json!({"error":"The action failed to generate or locate a binary. See logs for details."})
        )
    );
    let verdict = init_verdict(&outcome, CALL_TIMEOUT);
    assert_eq!(
        verdict.response.unwrap().to_api_json()["status"],
        "action developer error"
    );
    let (_, err) = proxy.logs_after_sentinels(1);
    assert!(err.contains("no executable"), "{err}");

    // A zip without `exec`.
    let proxy = Proxy::native("actionloop");
    let archive = zip(&[("readme", b"hi", 0o644)], false);
    let reply = init(
        &proxy.client(),
        json!({"main":"main","code":base64(&archive),"binary":true}),
    )
    .await;
    assert_eq!(reply.status, 502);
    assert_eq!(
        body(&reply)["error"],
        "The action failed to generate or locate a binary. See logs for details."
    );

    // An executable that exits before acknowledging its start.
    let proxy = Proxy::start(
        std::path::Path::new(env!("CARGO_BIN_EXE_whisk-runtime-proxy")),
        &["actionloop"],
        &[("OW_WAIT_FOR_ACK", "1")],
    );
    let reply = init(
        &proxy.client(),
        json!({"main":"main","code":"#!/bin/sh\nexit 1\n"}),
    )
    .await;
    assert_eq!(
        (reply.status, body(&reply)),
        (
            502,
            json!({"error":"Cannot start action. Check logs for details."})
        )
    );
    proxy.logs_after_sentinels(1);
}

#[tokio::test]
async fn actionloop_waits_for_the_ack_when_asked() {
    let script =
        "#!/bin/sh\necho '{\"ok\":true}' >&3\nwhile read line; do echo '{\"echo\":1}' >&3; done\n";
    let proxy = Proxy::start(
        std::path::Path::new(env!("CARGO_BIN_EXE_whisk-runtime-proxy")),
        &["actionloop"],
        &[("OW_WAIT_FOR_ACK", "1")],
    );
    let client = proxy.client();
    let reply = init(&client, json!({"main":"main","code":script})).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(body(&run(&client, json!({})).await), json!({"echo":1}));
}

#[tokio::test]
async fn skeleton_without_code_has_no_binary() {
    let proxy = Proxy::native("skeleton");
    let reply = init(&proxy.client(), json!({"main":"main"})).await;
    assert_eq!(
        (reply.status, body(&reply)),
        (
            502,
            json!({"error":"The action failed to generate or locate a binary. See logs for details."})
        )
    );
    proxy.logs_after_sentinels(1);
}

#[tokio::test]
async fn second_init_is_refused_in_both_modes() {
    for mode in ["actionloop", "skeleton"] {
        let proxy = Proxy::native(mode);
        let client = proxy.client();
        if mode == "actionloop" {
            let reply = init(&client, json!({"main":"main"})).await;
            assert_eq!(
                (reply.status, body(&reply)),
                (403, json!({"error":"Missing main/no code to execute."}))
            );
        }
        let script = "#!/bin/sh\nwhile read l; do echo '{}' >&3; done\n";
        assert_eq!(
            init(&client, json!({"main":"main","code":script}))
                .await
                .status,
            200
        );
        let reply = init(&client, json!({"main":"main","code":script})).await;
        assert_eq!(
            (reply.status, body(&reply)),
            (
                403,
                json!({"error":"Cannot initialize the action more than once."})
            ),
            "{mode}"
        );
    }
}

#[tokio::test]
async fn run_before_init_is_refused() {
    for mode in ["actionloop", "skeleton"] {
        let proxy = Proxy::native(mode);
        let reply = run(&proxy.client(), json!({})).await;
        assert_eq!(reply.status, 500, "{mode}");
    }
}

#[tokio::test]
async fn skeleton_runs_a_native_zip_per_activation() {
    let build = tempfile::tempdir().unwrap();
    let exec = gcc(build.path(), "skeleton", SKELETON_C);
    // Mode 0644 on purpose: the skeleton makes `exec` executable itself.
    let archive = zip(&[("exec", &exec, 0o644)], true);
    let proxy = Proxy::native("skeleton");
    let client = proxy.client();
    let reply = init(
        &client,
        json!({"main":"main","code":base64(&archive),"binary":true,"env":{"MY_PARAM":"p2"}}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    for n in 1..=2 {
        let value = json!({"n":n,"text":"ünï ☃","deep":{"a":[1,2]}});
        let reply = run(&client, value.clone()).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(
            body(&reply),
            json!({"args":value,"aid":"0123456789abcdef0123456789abcdef","param":"p2"})
        );
    }
    let (out, err) = proxy.logs_after_sentinels(2);
    assert_eq!(
        out,
        format!("log one\nlog two\n{LOG_SENTINEL}\nlog one\nlog two\n{LOG_SENTINEL}\n")
    );
    assert_eq!(
        err,
        format!("an error line\n{LOG_SENTINEL}\nan error line\n{LOG_SENTINEL}\n")
    );
}

#[tokio::test]
async fn skeleton_script_and_bad_results() {
    let proxy = Proxy::native("skeleton");
    let client = proxy.client();
    let script = "#!/bin/sh\necho \"logged $1\"\nif [ \"$1\" = '{\"bad\":true}' ]; then echo not-json; else echo '{\"fine\":true}'; fi\n";
    assert_eq!(
        init(&client, json!({"main":"main","code":script}))
            .await
            .status,
        200
    );
    assert_eq!(body(&run(&client, json!({})).await), json!({"fine":true}));
    let reply = run(&client, json!({"bad":true})).await;
    assert_eq!(
        (reply.status, body(&reply)),
        (
            502,
            json!({"error":"The action did not return a dictionary or array."})
        )
    );
    let (out, _) = proxy.logs_after_sentinels(2);
    assert!(
        out.ends_with(&format!(
            "logged {{\"bad\":true}}\nnot-json\n{LOG_SENTINEL}\n"
        )),
        "{out}"
    );
}

#[tokio::test]
async fn skeleton_zip_without_exec_fails_init() {
    let proxy = Proxy::native("skeleton");
    let archive = zip(&[("other", b"x", 0o755)], false);
    let reply = init(
        &proxy.client(),
        json!({"main":"main","code":base64(&archive),"binary":true}),
    )
    .await;
    assert_eq!(
        (reply.status, body(&reply)),
        (
            502,
            json!({"error":"The action failed to generate or locate a binary. See logs for details."})
        )
    );
    proxy.logs_after_sentinels(1);
}

#[tokio::test]
async fn unknown_paths_and_bad_json_are_refused() {
    let proxy = Proxy::native("actionloop");
    let client = reqwest_free_post(&proxy, "/nope", "{}").await;
    assert_eq!(client.0, 404);
    let bad = reqwest_free_post(&proxy, "/init", "{not json").await;
    assert_eq!(bad.0, 400);
}

/// A raw HTTP/1.1 POST over a TCP socket, for requests `RuntimeClient` never sends.
async fn reqwest_free_post(proxy: &Proxy, path: &str, body: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response[9..12].parse().unwrap();
    (status, response)
}

#[test]
fn bad_arguments_exit_with_usage() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_whisk-runtime-proxy"))
        .arg("sideways")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        err.contains("usage: whisk proxy actionloop|skeleton"),
        "{err}"
    );
}

#[test]
fn a_port_in_use_is_reported() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_whisk-runtime-proxy"))
        .args(["skeleton", "--host", "127.0.0.1", "--port", &port])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("cannot listen on 127.0.0.1:"), "{err}");
}

#[tokio::test]
async fn skeleton_large_arguments_come_on_stdin_and_arrays_pass() {
    let proxy = Proxy::native("skeleton");
    let client = proxy.client();
    // Echoes stdin as the result: what the executable gets whatever the argument's size.
    let script = "#!/bin/sh\necho \"args: $#\"\ncat\necho\n";
    assert_eq!(
        init(&client, json!({"main":"main","code":script}))
            .await
            .status,
        200
    );
    let big = json!({"data":"q".repeat(1_000_000)});
    let reply = run(&client, big.clone()).await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        &reply.body[..200.min(reply.body.len())]
    );
    assert_eq!(body(&reply), big);
    let reply = run(&client, json!([1, 2])).await;
    assert_eq!((reply.status, body(&reply)), (200, json!([1, 2])));
    let (out, _) = proxy.logs_after_sentinels(2);
    assert_eq!(
        out,
        format!("args: 0\n{LOG_SENTINEL}\nargs: 1\n{LOG_SENTINEL}\n")
    );
    let reply = run(&client, json!("text")).await;
    assert_eq!(
        (reply.status, body(&reply)),
        (
            404,
            json!({"error":"The action did not receive a dictionary or array as an argument."})
        )
    );
}
