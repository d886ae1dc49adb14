//! The Python proxy run as a plain `python3` process on loopback, driven through `RuntimeClient`.
#![allow(clippy::unwrap_used)] // a panic is the right way for a test to fail

mod common;

use common::*;
use serde_json::json;
use whisk_runtime::{LOG_SENTINEL, init_verdict, run_verdict};

const ECHO: &str = "def main(args):\n    return args\n";

#[tokio::test]
async fn json_round_trips() {
    let proxy = Proxy::python();
    let client = proxy.client();
    let reply = init(
        &client,
        json!({"name":"echo","main":"main","code":ECHO,"binary":false}),
    )
    .await;
    assert_eq!((reply.status, body(&reply)), (200, json!({"ok":true})));

    let nested = json!({"a":{"b":[1,2,{"c":null}],"d":true},"ünï":"çødé ☃ 😀","n":-1.5});
    let reply = run(&client, nested.clone()).await;
    assert_eq!((reply.status, body(&reply)), (200, nested));

    let big = json!({"data": "x".repeat(1_000_000)});
    let reply = run(&client, big.clone()).await;
    assert_eq!(body(&reply), big);
}

#[tokio::test]
async fn arrays_are_results_too() {
    let proxy = Proxy::python();
    let client = proxy.client();
    init(
        &client,
        json!({"main":"main","code":"def main(a):\n    return [a, [1, 2]]\n"}),
    )
    .await;
    let outcome = client.run(&run_payload(json!({"x":1})), CALL_TIMEOUT).await;
    assert_eq!(body(outcome.as_ref().unwrap()), json!([{"x":1},[1,2]]));
    let verdict = run_verdict(&outcome, CALL_TIMEOUT, client.max_response());
    assert_eq!(verdict.response.unwrap().to_api_json()["status"], "success");
}

#[tokio::test]
async fn run_fields_become_ow_env_and_init_env_is_set() {
    let proxy = Proxy::python();
    let client = proxy.client();
    let code = "import os\ndef main(a):\n    return {k: os.environ.get(k) for k in \
        ['__OW_ACTIVATION_ID', '__OW_NAMESPACE', '__OW_ACTION_NAME', '__OW_DEADLINE', \
        '__OW_API_KEY', 'MY_PARAM', 'OBJ']}\n";
    init(
        &client,
        json!({"main":"main","code":code,"env":{"MY_PARAM":"v1","OBJ":{"a":1}}}),
    )
    .await;
    assert_eq!(
        body(&run(&client, json!({})).await),
        json!({"__OW_ACTIVATION_ID":"0123456789abcdef0123456789abcdef","__OW_NAMESPACE":"guest",
               "__OW_ACTION_NAME":"/guest/pkg/hello","__OW_DEADLINE":"1717000060123",
               "__OW_API_KEY":"uuid:key","MY_PARAM":"v1","OBJ":"{\"a\":1}"})
    );
}

#[tokio::test]
async fn zip_with_main_py_and_a_virtualenv() {
    let proxy = Proxy::python();
    let client = proxy.client();
    let archive = zip(
        &[
            (
                "__main__.py",
                b"import helper\nimport venvmod\ndef go(a):\n    return {'h': helper.twice(a['v']), 'venv': venvmod.NAME, 'file': open('word.txt').read()}\n",
                0o644,
            ),
            ("helper.py", b"def twice(x):\n    return x * 2\n", 0o644),
            ("word.txt", b"from a file", 0o644),
            (
                "virtualenv/lib/python3.11/site-packages/venvmod.py",
                b"NAME = 'from the virtualenv'\n",
                0o644,
            ),
        ],
        true,
    );
    let reply = init(
        &client,
        json!({"main":"go","code":base64(&archive),"binary":true}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        body(&run(&client, json!({"v":21})).await),
        json!({"h":42,"venv":"from the virtualenv","file":"from a file"})
    );
}

#[tokio::test]
async fn a_zip_without_main_py_fails_init() {
    let proxy = Proxy::python();
    let archive = zip(&[("other.py", b"x = 1\n", 0o644)], false);
    let reply = init(
        &proxy.client(),
        json!({"main":"main","code":base64(&archive),"binary":true}),
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
async fn an_exception_is_an_application_error() {
    let proxy = Proxy::python();
    let client = proxy.client();
    init(
        &client,
        json!({"main":"main","code":"def main(a):\n    raise ValueError('bad value')\n"}),
    )
    .await;
    let outcome = client.run(&run_payload(json!({})), CALL_TIMEOUT).await;
    let reply = outcome.as_ref().unwrap();
    assert_eq!(
        (reply.status, body(reply)),
        (200, json!({"error":"bad value"}))
    );
    let verdict = run_verdict(&outcome, CALL_TIMEOUT, client.max_response());
    assert_eq!(
        verdict.response.unwrap().to_api_json(),
        json!({"status":"application error","success":false,"result":{"error":"bad value"},"size":21})
    );
    let (_, err) = proxy.logs_after_sentinels(1);
    assert!(err.contains("ValueError: bad value"), "{err}");
    // The container stays usable.
    assert_eq!(run(&client, json!({})).await.status, 200);
}

#[tokio::test]
async fn a_syntax_error_fails_init_with_sentinels() {
    let proxy = Proxy::python();
    let client = proxy.client();
    let outcome = client
        .init(
            &json!({"value":{"main":"main","code":"def main(:\n"}}),
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
    assert!(err.contains("SyntaxError"), "{err}");
}

#[tokio::test]
async fn a_missing_main_or_failing_import_cannot_start() {
    for code in [
        "def other(a):\n    return a\n",
        "import no_such_module_here\n",
    ] {
        let proxy = Proxy::python();
        let reply = init(&proxy.client(), json!({"main":"main","code":code})).await;
        assert_eq!(
            (reply.status, body(&reply)),
            (
                502,
                json!({"error":"Cannot start action. Check logs for details."})
            ),
            "{code}"
        );
    }
}

#[tokio::test]
async fn a_non_dictionary_result_is_refused() {
    let proxy = Proxy::python();
    let client = proxy.client();
    init(
        &client,
        json!({"main":"main","code":"def main(a):\n    return 42\n"}),
    )
    .await;
    let reply = run(&client, json!({})).await;
    assert_eq!(
        (reply.status, body(&reply)),
        (
            502,
            json!({"error":"The action did not return a dictionary or array."})
        )
    );
}

#[tokio::test]
async fn second_init_and_missing_code_are_refused() {
    let proxy = Proxy::python();
    let client = proxy.client();
    let reply = init(&client, json!({"main":"main"})).await;
    assert_eq!(
        (reply.status, body(&reply)),
        (403, json!({"error":"Missing main/no code to execute."}))
    );
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
async fn logs_come_before_the_sentinels_on_both_streams() {
    let proxy = Proxy::python();
    let client = proxy.client();
    let code = "import sys\ndef main(a):\n    print('out', a['n'])\n    print('err', a['n'], file=sys.stderr)\n    return {}\n";
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
async fn plain_source_needs_no_writable_action_directory() {
    let scratch = tempfile::tempdir().unwrap();
    let file = scratch.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let unusable = file.join("action").to_string_lossy().into_owned();
    let proxy = Proxy::start(
        &python_path(),
        &["-B", &proxy_asset("python/proxy.py")],
        &[("__OW_ACTION_DIR", &unusable)],
    );
    let client = proxy.client();
    let reply = init(
        &client,
        json!({"main":"main","code":"def main(a):\n    return {\"fine\": True}\n"}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(body(&run(&client, json!({})).await), json!({"fine":true}));
}
