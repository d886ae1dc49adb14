//! End-to-end tests of the `wsk action` flags beyond the basics: parameter and annotation files,
//! blackbox (`--docker`, `--native`), `--copy`, `--web-secure`, `--del-annotation`, and the ways
//! `action get` can print or save an action.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{Value, json};
use support::Platform;

/// Runs a `get` and returns the JSON printed after the expected first line.
fn got(platform: &Platform, args: &[&str], first: &str) -> Value {
    let run = platform.wsk(args);
    assert_eq!(run.code, 0, "{run:?}");
    let (line, json) = run.stdout.split_once('\n').unwrap();
    assert_eq!(line, first);
    serde_json::from_str(json).unwrap()
}

fn annotation(entity: &Value, key: &str) -> Option<Value> {
    entity["annotations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| a["value"].clone())
}

#[test]
fn parameter_and_annotation_files_with_flags_laid_over_them() {
    let platform = Platform::start();
    let js = platform.file("a.js", "function main(p) { return p }");
    let params = platform.file("p.json", r#"{"name": "file", "count": 2}"#);
    let notes = platform.file("a.json", r#"{"description": "from a file"}"#);
    platform
        .wsk(&[
            "action",
            "create",
            "a",
            js.to_str().unwrap(),
            "-P",
            params.to_str().unwrap(),
            "-p",
            "name",
            "flag",
            "--annotation-file",
            notes.to_str().unwrap(),
        ])
        .assert_ok(&["ok: created action a"]);
    let action = got(
        &platform,
        &["action", "get", "a", "parameters"],
        "ok: got action a, displaying field parameters",
    );
    assert_eq!(
        action,
        json!([{"key": "name", "value": "flag"}, {"key": "count", "value": 2}])
    );
    platform
        .wsk(&["action", "get", "a", "--summary"])
        .assert_ok(&[
            "action /guest/a: from a file",
            "   (parameters: name, count)",
        ]);

    for (kind, name) in [("package", "xp"), ("trigger", "xt")] {
        platform
            .wsk(&[
                kind,
                "create",
                name,
                "-P",
                params.to_str().unwrap(),
                "-A",
                notes.to_str().unwrap(),
            ])
            .assert_ok(&[&format!("ok: created {kind} {name}")]);
        platform
            .wsk(&[
                kind,
                "update",
                name,
                "--param-file",
                notes.to_str().unwrap(),
            ])
            .assert_ok(&[&format!("ok: updated {kind} {name}")]);
        let entity = got(
            &platform,
            &[kind, "get", name],
            &format!("ok: got {kind} {name}"),
        );
        assert_eq!(
            entity["parameters"],
            json!([{"key": "description", "value": "from a file"}])
        );
        assert_eq!(
            annotation(&entity, "description"),
            Some(json!("from a file"))
        );
    }

    let list = platform.file("list.json", "[1, 2]");
    let run = platform.wsk(&["trigger", "create", "t", "-P", list.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(
        run.stderr,
        format!(
            "error: Unable to create trigger 't': '{}' must contain a JSON object\n",
            list.display()
        )
    );
}

#[test]
fn docker_native_and_copy() {
    let platform = Platform::start();
    platform
        .wsk(&["action", "create", "img", "--docker", "me/image:1"])
        .assert_ok(&["ok: created action img"]);
    let exec = got(
        &platform,
        &["action", "get", "img", "exec"],
        "ok: got action img, displaying field exec",
    );
    assert_eq!(
        exec,
        json!({"kind": "blackbox", "image": "me/image:1", "binary": false})
    );

    let script = platform.file("exec", "#!/bin/sh\necho '{}'\n");
    platform
        .wsk(&[
            "action",
            "create",
            "native",
            script.to_str().unwrap(),
            "--native",
        ])
        .assert_ok(&["ok: created action native"]);
    let exec = got(
        &platform,
        &["action", "get", "native", "exec"],
        "ok: got action native, displaying field exec",
    );
    assert_eq!(
        exec,
        json!({"kind": "blackbox", "image": "openwhisk/dockerskeleton:latest", "code": "#!/bin/sh\necho '{}'\n", "binary": false})
    );

    let zip = platform.file("bundle.zip", "PK-not-really-a-zip");
    platform
        .wsk(&[
            "action",
            "update",
            "native",
            zip.to_str().unwrap(),
            "--native",
        ])
        .assert_ok(&["ok: updated action native"]);
    let exec = got(
        &platform,
        &["action", "get", "native", "exec"],
        "ok: got action native, displaying field exec",
    );
    assert_eq!(exec["code"], "UEstbm90LXJlYWxseS1hLXppcA==");
    assert_eq!(exec["binary"], true);

    let js = platform.file("a.js", "function main() { return {} }");
    platform
        .wsk(&[
            "action",
            "create",
            "src",
            js.to_str().unwrap(),
            "-p",
            "x",
            "1",
            "-a",
            "note",
            "n",
            "-m",
            "128",
        ])
        .assert_ok(&["ok: created action src"]);
    platform
        .wsk(&["action", "create", "dup", "src", "--copy", "-p", "y", "2"])
        .assert_ok(&["ok: created action dup"]);
    let dup = got(&platform, &["action", "get", "dup"], "ok: got action dup");
    assert_eq!(dup["exec"]["code"], "function main() { return {} }");
    assert_eq!(
        dup["parameters"],
        json!([{"key": "x", "value": 1}, {"key": "y", "value": 2}])
    );
    assert_eq!(annotation(&dup, "note"), Some(json!("n")));
    assert_eq!(dup["limits"]["memory"], 128);
    platform
        .wsk(&["action", "create", "dup2", "missing", "--copy"])
        .assert_api_error(
            148,
            "error: Unable to create action 'dup2': The requested resource does not exist.",
        );
}

#[test]
fn web_secure_del_annotation_url_and_save() {
    let platform = Platform::start();
    let js = platform.file("w.js", "function main() { return {body: 'hi'} }\n");
    platform
        .wsk(&[
            "action",
            "create",
            "w",
            js.to_str().unwrap(),
            "--web",
            "true",
            "--web-secure",
            "s3cret",
            "-a",
            "drop",
            "me",
        ])
        .assert_ok(&["ok: created action w"]);
    let action = got(&platform, &["action", "get", "w"], "ok: got action w");
    assert_eq!(
        annotation(&action, "require-whisk-auth"),
        Some(json!("s3cret"))
    );
    assert_eq!(annotation(&action, "drop"), Some(json!("me")));

    platform
        .wsk(&["action", "update", "w", "--web-secure", "true"])
        .assert_ok(&["ok: updated action w"]);
    let action = got(&platform, &["action", "get", "w"], "ok: got action w");
    let secret = annotation(&action, "require-whisk-auth").unwrap();
    assert!(secret.as_u64().is_some_and(|n| n < 1 << 53), "{secret}");

    platform
        .wsk(&[
            "action",
            "update",
            "w",
            "--web-secure",
            "false",
            "--del-annotation",
            "drop",
        ])
        .assert_ok(&["ok: updated action w"]);
    let action = got(&platform, &["action", "get", "w"], "ok: got action w");
    assert_eq!(annotation(&action, "require-whisk-auth"), None);
    assert_eq!(annotation(&action, "drop"), None);
    assert_eq!(annotation(&action, "web-export"), Some(json!(true)));

    platform.wsk(&["action", "get", "w", "--url"]).assert_ok(&[
        "ok: got action w",
        &format!("{}/api/v1/web/guest/default/w", platform.url),
    ]);
    platform
        .wsk(&["package", "create", "p"])
        .assert_ok(&["ok: created package p"]);
    platform
        .wsk(&["action", "create", "p/in", js.to_str().unwrap()])
        .assert_ok(&["ok: created action p/in"]);
    platform.wsk(&["action", "get", "p/in", "-r"]).assert_ok(&[
        "ok: got action p/in",
        &format!("{}/api/v1/web/guest/p/in", platform.url),
    ]);

    let target = platform.dir().join("saved.js");
    platform
        .wsk(&["action", "get", "w", "--save-as", target.to_str().unwrap()])
        .assert_ok(&[&format!("ok: saved action code to {}", target.display())]);
    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        "function main() { return {body: 'hi'} }\n"
    );
    let run = platform.wsk(&["action", "get", "w", "--save-as", target.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(
        run.stderr,
        format!(
            "error: Unable to save action 'w': the file '{}' already exists\n",
            target.display()
        )
    );
}
