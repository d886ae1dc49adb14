//! End-to-end tests of `wsk` against the real whisk-rs server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::Value;
use support::{GUEST_AUTH, Platform};

fn pad(name: &str) -> String {
    format!("{name:<70}")
}

#[test]
fn property_set_get_unset_round_trip_through_the_props_file() {
    let platform = Platform::start();
    platform
        .wsk_bare(&[
            "property",
            "set",
            "--apihost",
            &platform.url,
            "--auth",
            GUEST_AUTH,
        ])
        .assert_ok(&[
            "ok: whisk auth set. Run 'wsk property get --auth' to see the new value.",
            &format!("ok: whisk API host set to {}", platform.url),
        ]);
    let text = std::fs::read_to_string(platform.props_file()).unwrap();
    assert_eq!(
        text,
        format!("APIHOST={}\nAUTH={GUEST_AUTH}\n", platform.url)
    );
    platform
        .wsk_bare(&["property", "get", "--apihost"])
        .assert_ok(&[&format!("whisk API host      {}", platform.url)]);
    platform
        .wsk_bare(&["property", "set", "--namespace", "guest"])
        .assert_ok(&["ok: whisk namespace set to guest"]);
    platform
        .wsk_bare(&["property", "set", "--cert", "c.pem", "--key", "k.pem"])
        .assert_ok(&[
            "ok: client cert set to c.pem",
            "ok: client key set to k.pem",
        ]);
    platform
        .wsk_bare(&["property", "get", "--cert", "--key"])
        .assert_ok(&["client cert         c.pem", "client key          k.pem"]);
    platform
        .wsk_bare(&["property", "unset", "--cert", "--key"])
        .assert_ok(&["ok: client cert unset.", "ok: client key unset."]);
    platform.wsk_bare(&["property", "get"]).assert_ok(&[
        "client cert         ",
        "client key          ",
        &format!("whisk auth          {GUEST_AUTH}"),
        &format!("whisk API host      {}", platform.url),
        "whisk API version   v1",
        "whisk namespace     guest",
    ]);
    // The props file alone is enough to talk to the server.
    platform
        .wsk_bare(&["action", "list"])
        .assert_ok(&["actions"]);
    platform
        .wsk_bare(&["property", "unset", "--auth", "--namespace"])
        .assert_ok(&["ok: whisk auth unset.", "ok: whisk namespace unset."]);
    let text = std::fs::read_to_string(platform.props_file()).unwrap();
    assert_eq!(text, format!("APIHOST={}\n", platform.url));
    // Without a key the server refuses: 401 becomes exit 145 like `wsk`.
    platform.wsk_bare(&["action", "list"]).assert_api_error(
        145,
        "error: Unable to obtain the list of actions: The resource requires authentication, which was not supplied with the request",
    );
}

#[test]
fn environment_overrides_the_props_file_and_flags_override_both() {
    let platform = Platform::start();
    std::fs::write(
        platform.props_file(),
        "APIHOST=http://127.0.0.1:9\nAUTH=nobody:nothing\n",
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_wsk"))
        .args(["action", "list"])
        .env("WSK_CONFIG_FILE", platform.props_file())
        .env("WHISK_APIHOST", &platform.url)
        .env("WHISK_AUTH", GUEST_AUTH)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "actions\n");
    // Flags beat the props file (which points at a closed port).
    platform.wsk(&["action", "list"]).assert_ok(&["actions"]);
    // And the unreachable host from the props file is a network error, exit 3.
    let run = platform.wsk_bare(&["action", "list"]);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(
        run.stderr
            .starts_with("error: Unable to obtain the list of actions: cannot reach the API"),
        "{run:?}"
    );
}

#[test]
fn action_lifecycle_prints_like_wsk() {
    let platform = Platform::start();
    let js = platform.file("hello.js", "function main() { return {hello: 'world'} }\n");
    let js = js.to_str().unwrap();
    platform
        .wsk(&["action", "create", "hello", js])
        .assert_ok(&["ok: created action hello"]);
    platform
        .wsk(&["action", "create", "hello", js])
        .assert_api_error(
            153,
            "error: Unable to create action 'hello': resource already exists",
        );
    platform
        .wsk(&[
            "action",
            "update",
            "hello",
            "-p",
            "count",
            "3",
            "-p",
            "who",
            "me",
            "-a",
            "meta",
            r#"{"a":[1]}"#,
            "--web",
            "true",
            "--timeout",
            "1000",
            "--memory",
            "128",
            "--logsize",
            "5",
        ])
        .assert_ok(&["ok: updated action hello"]);

    let run = platform.wsk(&["action", "get", "hello"]);
    assert_eq!(run.code, 0, "{run:?}");
    let (first, json) = run.stdout.split_once('\n').unwrap();
    assert_eq!(first, "ok: got action hello");
    assert!(
        json.starts_with("{\n    \"namespace\": \"guest\",\n"),
        "{json}"
    );
    let action: Value = serde_json::from_str(json).unwrap();
    assert_eq!(action["name"], "hello");
    assert_eq!(action["exec"]["kind"], "nodejs:20");
    assert_eq!(
        action["exec"]["code"],
        "function main() { return {hello: 'world'} }\n"
    );
    assert_eq!(
        action["parameters"],
        serde_json::json!([{"key": "count", "value": 3}, {"key": "who", "value": "me"}])
    );
    assert_eq!(
        action["limits"],
        serde_json::json!({"timeout": 1000, "memory": 128, "logs": 5, "concurrency": 1})
    );
    let annotations = action["annotations"].as_array().unwrap();
    let annotation = |key: &str| {
        annotations
            .iter()
            .find(|a| a["key"] == key)
            .map(|a| a["value"].clone())
    };
    assert_eq!(annotation("meta"), Some(serde_json::json!({"a": [1]})));
    assert_eq!(annotation("web-export"), Some(Value::Bool(true)));
    assert_eq!(annotation("raw-http"), Some(Value::Bool(false)));
    assert_eq!(annotation("final"), Some(Value::Bool(true)));

    platform
        .wsk(&[
            "action",
            "create",
            "both",
            "--sequence",
            "hello,/guest/hello",
        ])
        .assert_ok(&["ok: created action both"]);
    platform.wsk(&["action", "list"]).assert_ok(&[
        "actions",
        &format!("{} private sequence", pad("/guest/both")),
        &format!("{} private nodejs:20", pad("/guest/hello")),
    ]);
    let run = platform.wsk(&["action", "get", "both"]);
    let sequence: Value = serde_json::from_str(run.stdout.split_once('\n').unwrap().1).unwrap();
    assert_eq!(
        sequence["exec"]["components"],
        serde_json::json!(["/guest/hello", "/guest/hello"])
    );

    platform
        .wsk(&["action", "delete", "hello"])
        .assert_ok(&["ok: deleted action hello"]);
    platform.wsk(&["action", "get", "hello"]).assert_api_error(
        148,
        "error: Unable to get action 'hello': The requested resource does not exist.",
    );
    platform
        .wsk(&["action", "delete", "hello"])
        .assert_api_error(
            148,
            "error: Unable to delete action 'hello': The requested resource does not exist.",
        );
}

#[test]
fn kind_comes_from_the_extension_or_the_flag() {
    let platform = Platform::start();
    let py = platform.file("p.py", "def main(args):\n    return args\n");
    platform
        .wsk(&["action", "create", "p", py.to_str().unwrap()])
        .assert_ok(&["ok: created action p"]);
    let run = platform.wsk(&["action", "get", "p"]);
    let action: Value = serde_json::from_str(run.stdout.split_once('\n').unwrap().1).unwrap();
    assert!(
        action["exec"]["kind"]
            .as_str()
            .unwrap()
            .starts_with("python:"),
        "{action}"
    );

    let txt = platform.file("code.txt", "function main() {}");
    let run = platform.wsk(&["action", "create", "t", txt.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(
        run.stderr,
        format!(
            "error: Unable to create action 't': cannot infer a kind from '{}'; use --kind\n",
            txt.display()
        )
    );
    platform
        .wsk(&[
            "action",
            "create",
            "t",
            txt.to_str().unwrap(),
            "--kind",
            "nodejs:20",
        ])
        .assert_ok(&["ok: created action t"]);

    let run = platform.wsk(&["action", "create", "nofile"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(
        run.stderr,
        "error: Unable to create action 'nofile': an action file or --sequence is required\n"
    );
}

/// A bare host means HTTPS. Against the plain-HTTP platform the TLS handshake fails, which must
/// surface as `wsk`'s unreachable-host exit status 3 and one line naming the URL it tried.
#[test]
fn a_host_without_scheme_means_https() {
    let platform = Platform::start();
    let host = platform.url.trim_start_matches("http://").to_string();
    for insecure in [false, true] {
        let mut args = vec![
            "--apihost",
            host.as_str(),
            "-u",
            GUEST_AUTH,
            "action",
            "list",
        ];
        if insecure {
            args.insert(0, "-i");
        }
        let run = platform.wsk_bare(&args);
        assert_eq!(run.code, 3, "{run:?}");
        assert_eq!(run.stdout, "");
        assert_eq!(
            run.stderr,
            format!(
                "error: Unable to obtain the list of actions: cannot reach the API: error sending request for url (https://{host}/api/v1/namespaces/_/actions?limit=30&skip=0): client error (Connect): received corrupt message of type InvalidContentType\n"
            )
        );
    }
}

#[test]
fn verbose_echoes_the_request_and_response_on_stderr() {
    let platform = Platform::start();
    let run = platform.wsk(&["-v", "namespace", "list"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout, "namespaces\nguest\n");
    assert_eq!(
        run.stderr.lines().collect::<Vec<_>>(),
        [
            format!("REQUEST: [GET] {}/api/v1/namespaces", platform.url).as_str(),
            "RESPONSE: 200 OK",
            r#"Response body: ["guest"]"#,
        ]
    );
}

#[test]
fn completion_scripts_need_no_configuration() {
    let platform = Platform::start();
    let bash = platform.wsk_bare(&["completion", "bash"]);
    assert_eq!(bash.code, 0, "{bash:?}");
    assert_eq!(bash.stdout.lines().next(), Some("_wsk() {"));
    assert!(
        bash.stdout
            .lines()
            .any(|l| l.trim() == "complete -F _wsk -o nosort -o bashdefault -o default wsk"),
        "{}",
        bash.stdout
    );
    assert!(bash.stdout.contains("--param-file"));
    let zsh = platform.wsk_bare(&["completion", "zsh"]);
    assert_eq!(zsh.code, 0, "{zsh:?}");
    assert_eq!(zsh.stdout.lines().next(), Some("#compdef wsk"));
    let fish = platform.wsk_bare(&["completion", "fish"]);
    assert_eq!(fish.code, 0, "{fish:?}");
    assert!(
        fish.stdout
            .contains("complete -c wsk -n \"__fish_wsk_needs_command\" -f -a \"action\""),
        "{}",
        fish.stdout
    );
    let bad = platform.wsk_bare(&["completion", "tcsh"]);
    assert_eq!(bad.code, 2, "{bad:?}");
    assert_eq!(bad.stdout, "");
    assert!(
        bad.stderr
            .starts_with("error: invalid value 'tcsh' for '<SHELL>'")
    );
}

#[test]
fn property_get_shows_cli_version_and_api_build_on_request() {
    let platform = Platform::start();
    platform
        .wsk_bare(&["property", "set", "--apihost", &platform.url])
        .assert_ok(&[&format!("ok: whisk API host set to {}", platform.url)]);
    platform
        .wsk_bare(&["property", "get", "--cliversion"])
        .assert_ok(&[&format!(
            "whisk CLI version   {}",
            env!("CARGO_PKG_VERSION")
        )]);
    let run = platform.wsk_bare(&["property", "get", "--apibuild", "--apibuildno"]);
    assert_eq!(run.code, 0, "{run:?}");
    // whisk-rs reports the workspace version as its build, which this crate shares.
    let build = env!("CARGO_PKG_VERSION");
    let buildno = format!("whisk-rs-{build}");
    assert_eq!(
        run.stdout,
        format!("whisk API build     {build}\nwhisk API build number {buildno}\n")
    );
}

#[test]
fn property_get_raw_prints_the_values_alone() {
    let platform = Platform::start();
    platform
        .wsk_bare(&[
            "property",
            "set",
            "--apihost",
            &platform.url,
            "--namespace",
            "guest",
        ])
        .assert_ok(&[
            &format!("ok: whisk API host set to {}", platform.url),
            "ok: whisk namespace set to guest",
        ]);
    platform
        .wsk_bare(&["property", "get", "--apihost", "--namespace", "-o", "raw"])
        .assert_ok(&[platform.url.as_str(), "guest"]);
    let build = env!("CARGO_PKG_VERSION");
    platform
        .wsk_bare(&[
            "property",
            "get",
            "--cliversion",
            "--apibuildno",
            "--output",
            "raw",
        ])
        .assert_ok(&[build, &format!("whisk-rs-{build}")]);
    platform
        .wsk_bare(&["property", "get", "--namespace", "-o", "std"])
        .assert_ok(&["whisk namespace     guest"]);
    let bad = platform.wsk_bare(&["property", "get", "-o", "json"]);
    assert_eq!((bad.code, bad.stdout.as_str()), (2, ""), "{bad:?}");
    assert!(
        bad.stderr
            .contains("invalid value 'json' for '--output <OUTPUT>'"),
        "{bad:?}"
    );
}
