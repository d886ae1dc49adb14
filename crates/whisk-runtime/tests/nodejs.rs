//! The Node.js proxy run as a plain `node` process on loopback, driven through `RuntimeClient`.
#![allow(clippy::unwrap_used)] // a panic is the right way for a test to fail

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use whisk_runtime::{CallError, LOG_SENTINEL, init_verdict, run_verdict};

const ECHO: &str = "function main(params) { return params; }";

#[tokio::test]
async fn json_round_trips() {
    let proxy = Proxy::node();
    let client = proxy.client();
    let reply = init(
        &client,
        json!({"name":"echo","main":"main","code":ECHO,"binary":false}),
    )
    .await;
    assert_eq!((reply.status, body(&reply)), (200, json!({"OK":true})));

    let nested = json!({"a":{"b":[1,2,{"c":null}],"d":true},"ünï":"çødé ☃ 😀","n":-1.5});
    let reply = run(&client, nested.clone()).await;
    assert_eq!((reply.status, body(&reply)), (200, nested));

    let arrays = json!({"list":[[1],[2,[3]],[]],"empty":{}});
    assert_eq!(body(&run(&client, arrays.clone()).await), arrays);

    let big = json!({"data": "x".repeat(1_000_000)});
    let reply = run(&client, big.clone()).await;
    assert!(!reply.truncated);
    assert_eq!(body(&reply), big);
}

#[tokio::test]
async fn a_result_over_the_cap_is_truncated_and_reported() {
    let proxy = Proxy::node();
    let client = proxy.client();
    let code = "function main() { return {data: 'y'.repeat(1100000)}; }";
    init(&client, json!({"main":"main","code":code})).await;
    let outcome = client.run(&run_payload(json!({})), CALL_TIMEOUT).await;
    let reply = outcome.as_ref().unwrap();
    assert!(reply.truncated);
    assert_eq!(reply.length, 1_100_011);
    assert_eq!(reply.body.len(), 1024 * 1024);
    let verdict = run_verdict(&outcome, CALL_TIMEOUT, client.max_response());
    let result = verdict.response.unwrap().to_api_json();
    assert_eq!(result["status"], "application error");
    let message = result["result"]["error"].as_str().unwrap();
    assert!(message.starts_with(
        "The action produced a response that exceeded the allowed length: 1100011 > 1048576 bytes. The truncated response was: {\"data\":\"yyy"
    ), "{}", &message[..200]);
}

#[tokio::test]
async fn run_fields_become_ow_env_and_init_env_is_set() {
    let proxy = Proxy::node();
    let client = proxy.client();
    let code = r#"function main() { return {
        aid: process.env.__OW_ACTIVATION_ID, ns: process.env.__OW_NAMESPACE,
        name: process.env.__OW_ACTION_NAME, deadline: process.env.__OW_DEADLINE,
        key: process.env.__OW_API_KEY, tid: process.env.__OW_TRANSACTION_ID,
        param: process.env.MY_PARAM, obj: process.env.OBJ, api: process.env.__OW_API_HOST }; }"#;
    init(
        &client,
        json!({"main":"main","code":code,"env":{"MY_PARAM":"v1","OBJ":{"a":1}}}),
    )
    .await;
    let reply = run(&client, json!({})).await;
    assert_eq!(
        body(&reply),
        json!({"aid":"0123456789abcdef0123456789abcdef","ns":"guest","name":"/guest/pkg/hello",
               "deadline":"1717000060123","key":"uuid:key","tid":"tid-1","param":"v1",
               "obj":"{\"a\":1}","api":"http://api.invalid"})
    );
}

#[tokio::test]
async fn zip_actions_with_package_json_and_node_modules() {
    let proxy = Proxy::node();
    let client = proxy.client();
    let archive = zip(
        &[
            (
                "package.json",
                br#"{"name":"a","main":"lib/entry.js"}"#,
                0o644,
            ),
            (
                "lib/entry.js",
                b"const pad = require('padder'); const fs = require('fs');\n\
                  exports.main = (p) => ({padded: pad(p.s), file: fs.readFileSync('data/word.txt', 'utf8')});",
                0o644,
            ),
            ("data/word.txt", b"from a file", 0o644),
            (
                "node_modules/padder/index.js",
                b"module.exports = (s) => '[' + s + ']';",
                0o644,
            ),
        ],
        true,
    );
    let reply = init(
        &client,
        json!({"main":"main","code":base64(&archive),"binary":true}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        body(&run(&client, json!({"s":"x"})).await),
        json!({"padded":"[x]","file":"from a file"})
    );
}

#[tokio::test]
async fn zip_with_index_js_and_file_dot_function_main() {
    let proxy = Proxy::node();
    let client = proxy.client();
    let archive = zip(
        &[
            (
                "index.js",
                b"exports.main = () => ({from: 'index'});",
                0o644,
            ),
            (
                "other.js",
                b"exports.hello = () => ({from: 'other'});",
                0o644,
            ),
        ],
        false,
    );
    let reply = init(
        &client,
        json!({"main":"other.hello","code":base64(&archive),"binary":true}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        body(&run(&client, json!({})).await),
        json!({"from":"other"})
    );

    let proxy = Proxy::node();
    let client = proxy.client();
    init(
        &client,
        json!({"main":"main","code":base64(&archive),"binary":true}),
    )
    .await;
    assert_eq!(
        body(&run(&client, json!({})).await),
        json!({"from":"index"})
    );
}

#[tokio::test]
async fn tar_gz_actions() {
    let proxy = Proxy::node();
    let client = proxy.client();
    let archive = tar_gz(&[("index.js", b"exports.main = (p) => ({tar: p.v});", 0o644)]);
    let reply = init(
        &client,
        json!({"main":"main","code":base64(&archive),"binary":true}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(body(&run(&client, json!({"v":3})).await), json!({"tar":3}));
}

#[tokio::test]
async fn a_zip_without_entry_point_fails_init() {
    let proxy = Proxy::node();
    let client = proxy.client();
    let archive = zip(&[("readme.txt", b"nothing", 0o644)], false);
    let reply = init(
        &client,
        json!({"main":"main","code":base64(&archive),"binary":true}),
    )
    .await;
    assert_eq!(reply.status, 502);
    assert!(body(&reply)["error"].as_str().unwrap().starts_with(
        "Initialization has failed due to: Zipped actions must contain either package.json or index.js at the root."
    ));
    proxy.logs_after_sentinels(1);
}

#[tokio::test]
async fn sync_promise_and_async_results() {
    for code in [
        "function main(p) { return {v: p.v}; }",
        "function main(p) { return new Promise((ok) => setTimeout(() => ok({v: p.v}), 1)); }",
        "async function main(p) { await null; return {v: p.v}; }",
        "const main = (p) => Promise.resolve({v: p.v});",
    ] {
        let proxy = Proxy::node();
        let client = proxy.client();
        init(&client, json!({"main":"main","code":code})).await;
        let reply = run(&client, json!({"v":"ok"})).await;
        assert_eq!(
            (reply.status, body(&reply)),
            (200, json!({"v":"ok"})),
            "{code}"
        );
    }
}

#[tokio::test]
async fn undefined_result_is_an_empty_object() {
    let proxy = Proxy::node();
    let client = proxy.client();
    init(&client, json!({"main":"main","code":"function main() {}"})).await;
    let reply = run(&client, json!({})).await;
    assert_eq!((reply.status, body(&reply)), (200, json!({})));
}

#[tokio::test]
async fn rejected_promises_are_application_errors() {
    let proxy = Proxy::node();
    let client = proxy.client();
    let code =
        "function main(p) { return p.empty ? Promise.reject() : Promise.reject({reason: 'no'}); }";
    init(&client, json!({"main":"main","code":code})).await;
    let outcome = client.run(&run_payload(json!({})), CALL_TIMEOUT).await;
    assert_eq!(
        body(outcome.as_ref().unwrap()),
        json!({"error":{"reason":"no"}})
    );
    let verdict = run_verdict(&outcome, CALL_TIMEOUT, client.max_response());
    assert_eq!(
        verdict.response.unwrap().to_api_json()["status"],
        "application error"
    );
    assert!(!verdict.destroy_container);

    let reply = run(&client, json!({"empty":true})).await;
    assert_eq!((reply.status, body(&reply)), (200, json!({"error":{}})));
}

#[tokio::test]
async fn a_thrown_error_is_502_and_the_proxy_is_unusable_after() {
    let proxy = Proxy::node();
    let client = proxy.client();
    init(
        &client,
        json!({"main":"main","code":"function main() { throw new Error('boom'); }"}),
    )
    .await;
    let outcome = client.run(&run_payload(json!({})), CALL_TIMEOUT).await;
    let reply = outcome.as_ref().unwrap();
    assert_eq!(reply.status, 502);
    assert_eq!(
        body(reply),
        json!({"error":"An error has occurred: Error: boom"})
    );
    let verdict = run_verdict(&outcome, CALL_TIMEOUT, client.max_response());
    assert_eq!(
        verdict.response.unwrap().to_api_json(),
        json!({"status":"action developer error","success":false,
               "result":{"error":"An error has occurred: Error: boom"},"size":46})
    );
    let (_, err) = proxy.logs_after_sentinels(1);
    assert!(err.contains("Error: boom"), "{err}");
    assert_eq!(run(&client, json!({})).await.status, 403);
}

#[tokio::test]
async fn an_array_result_passes() {
    let proxy = Proxy::node();
    let client = proxy.client();
    init(
        &client,
        json!({"main":"main","code":"function main() { return [1, {a: 2}]; }"}),
    )
    .await;
    let reply = run(&client, json!({})).await;
    assert_eq!((reply.status, body(&reply)), (200, json!([1, {"a": 2}])));
}

#[tokio::test]
async fn a_rejected_error_keeps_name_message_and_stack() {
    let proxy = Proxy::node();
    let client = proxy.client();
    let code = "async function main() { const e = new TypeError('nope'); e.code = 7; throw e; }";
    init(&client, json!({"main":"main","code":code})).await;
    let reply = run(&client, json!({})).await;
    assert_eq!(reply.status, 200);
    let error = &body(&reply)["error"];
    assert_eq!(error["name"], "TypeError");
    assert_eq!(error["message"], "nope");
    assert_eq!(error["code"], 7);
    assert!(
        error["stack"]
            .as_str()
            .unwrap()
            .starts_with("TypeError: nope")
    );
}

#[tokio::test]
async fn a_dotted_main_walks_the_exports() {
    let proxy = Proxy::node();
    let client = proxy.client();
    let archive = zip(
        &[(
            "index.js",
            b"exports.handlers = { go: () => ({nested: true}) };",
            0o644,
        )],
        false,
    );
    let reply = init(
        &client,
        json!({"main":"handlers.go","code":base64(&archive),"binary":true}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(body(&run(&client, json!({})).await), json!({"nested":true}));
}

#[tokio::test]
async fn a_non_object_result_is_not_a_dictionary() {
    for code in [
        "function main() { return 42; }",
        "function main() { return null; }",
    ] {
        let proxy = Proxy::node();
        let client = proxy.client();
        init(&client, json!({"main":"main","code":code})).await;
        let reply = run(&client, json!({})).await;
        assert_eq!(
            (reply.status, body(&reply)),
            (
                502,
                json!({"error":"The action did not return a dictionary."})
            ),
            "{code}"
        );
    }
}

#[tokio::test]
async fn second_init_is_refused() {
    let proxy = Proxy::node();
    let client = proxy.client();
    init(&client, json!({"main":"main","code":ECHO})).await;
    let reply = init(&client, json!({"main":"main","code":ECHO})).await;
    assert_eq!(
        (reply.status, body(&reply)),
        (
            403,
            json!({"error":"Cannot initialize the action more than once."})
        )
    );
}

#[tokio::test]
async fn init_without_main_or_code_is_refused() {
    let proxy = Proxy::node();
    let client = proxy.client();
    let reply = init(&client, json!({"main":"main"})).await;
    assert_eq!(
        (reply.status, body(&reply)),
        (403, json!({"error":"Missing main/no code to execute."}))
    );
}

#[tokio::test]
async fn a_syntax_error_fails_init_with_sentinels() {
    let proxy = Proxy::node();
    let client = proxy.client();
    let outcome = client
        .init(
            &json!({"value":{"main":"main","code":"function main( {"}}),
            CALL_TIMEOUT,
        )
        .await;
    let reply = outcome.as_ref().unwrap();
    assert_eq!(reply.status, 502);
    let error = body(reply)["error"].as_str().unwrap().to_string();
    assert!(
        error.starts_with("Initialization has failed due to: "),
        "{error}"
    );
    assert!(error.contains("SyntaxError"), "{error}");
    let verdict = init_verdict(&outcome, CALL_TIMEOUT);
    assert_eq!(
        verdict.response.unwrap().to_api_json()["result"],
        json!({ "error": error })
    );
    proxy.logs_after_sentinels(1);
}

#[tokio::test]
async fn a_missing_main_function_fails_init() {
    let proxy = Proxy::node();
    let client = proxy.client();
    let reply = init(&client, json!({"main":"nope","code":ECHO})).await;
    assert_eq!(
        (reply.status, body(&reply)),
        (
            502,
            json!({"error":"Initialization has failed due to: Action entrypoint 'nope' is not a function."})
        )
    );
}

#[tokio::test]
async fn logs_come_before_the_sentinels_on_both_streams() {
    let proxy = Proxy::node();
    let client = proxy.client();
    let code =
        "function main(p) { console.log('out ' + p.n); console.error('err ' + p.n); return {}; }";
    init(&client, json!({"main":"main","code":code})).await;
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
async fn a_log_flood_that_fills_the_pipe_still_ends_before_the_sentinels() {
    let proxy = Proxy::node();
    let client = proxy.client();
    // Far more than a pipe holds (64 KiB): console.log queues behind the full pipe, and the
    // sentinel must queue behind it rather than overtake it.
    let code = "function main(p) { for (let i = 0; i < 20000; i++) { console.log('line ' + i + ' ' + 'x'.repeat(40)); } return {}; }";
    init(&client, json!({"main":"main","code":code})).await;
    run(&client, json!({})).await;
    let (out, _) = proxy.logs_after_sentinels(1);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 20_001, "every line, then the sentinel");
    assert!(lines[19_999].starts_with("line 19999 "));
    assert_eq!(lines[20_000], LOG_SENTINEL);
}

#[tokio::test]
async fn a_process_exit_during_run_is_an_abnormal_run() {
    let mut proxy = Proxy::node();
    let client = proxy.client();
    init(
        &client,
        json!({"main":"main","code":"function main() { process.exit(3); }"}),
    )
    .await;
    let outcome = client.run(&run_payload(json!({})), CALL_TIMEOUT).await;
    assert!(
        matches!(outcome, Err(CallError::Connection(_))),
        "{outcome:?}"
    );
    let verdict = run_verdict(&outcome, CALL_TIMEOUT, client.max_response());
    assert_eq!(
        verdict.response.unwrap().to_api_json()["result"],
        json!({"error":"The action did not produce a valid response and exited unexpectedly."})
    );
    let started = std::time::Instant::now();
    while !proxy.exited() {
        assert!(started.elapsed() < DEADLINE);
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[tokio::test]
async fn a_run_that_never_answers_times_out() {
    let proxy = Proxy::node();
    let client = proxy.client();
    init(
        &client,
        json!({"main":"main","code":"function main() { return new Promise(() => {}); }"}),
    )
    .await;
    let limit = Duration::from_millis(300);
    let outcome = client.run(&run_payload(json!({})), limit).await;
    assert!(matches!(outcome, Err(CallError::Timeout(_))), "{outcome:?}");
    let verdict = run_verdict(&outcome, limit, client.max_response());
    assert!(verdict.timed_out);
    assert_eq!(
        verdict.response.unwrap().to_api_json()["result"],
        json!({"error":"The action exceeded its time limits of 300 milliseconds."})
    );
}

#[tokio::test]
async fn plain_source_needs_no_writable_action_directory() {
    let scratch = tempfile::tempdir().unwrap();
    let file = scratch.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let unusable = file.join("action").to_string_lossy().into_owned();
    let proxy = Proxy::start(
        &node_path(),
        &[&proxy_asset("nodejs/proxy.js")],
        &[("__OW_ACTION_DIR", &unusable)],
    );
    let client = proxy.client();
    let reply = init(
        &client,
        json!({"main":"main","code":"function main() { return {fine: true}; }"}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(body(&run(&client, json!({})).await), json!({"fine":true}));
}

/// An action with `limits.concurrency` above 1 gets overlapping `/run` calls: the first
/// activation here only ends once the second one has arrived, so serialised calls would hang.
#[tokio::test]
async fn overlapping_runs_use_separate_connections() {
    let proxy = Proxy::node();
    let client = proxy.client();
    let code = "let release = null;\n\
        function main() {\n\
          if (release) { release(); release = null; return {second: true}; }\n\
          return new Promise((ok) => { release = () => ok({first: true}); });\n\
        }";
    init(&client, json!({"main":"main","code":code})).await;
    let payload = run_payload(json!({}));
    let first = client.run(&payload, CALL_TIMEOUT);
    let second = async {
        // Start the second call once the first is in flight (its connection is taken).
        tokio::task::yield_now().await;
        client.run(&payload, CALL_TIMEOUT).await
    };
    let (first, second) = tokio::join!(first, second);
    let mut bodies = vec![body(&first.unwrap()), body(&second.unwrap())];
    bodies.sort_by_key(|b| b.to_string());
    assert_eq!(bodies, [json!({"first":true}), json!({"second":true})]);
}
