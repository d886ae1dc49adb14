//! End-to-end tests of `wsk package|trigger|rule|namespace` against the real whisk-rs server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{Value, json};
use support::Platform;

fn row(name: &str, rest: &str) -> String {
    format!("{name:<70} {rest}")
}

/// Runs a `get` and returns the JSON printed after the `ok: got …` line.
fn got(platform: &Platform, args: &[&str], first: &str) -> Value {
    let run = platform.wsk(args);
    assert_eq!(run.code, 0, "{run:?}");
    let (line, json) = run.stdout.split_once('\n').unwrap();
    assert_eq!(line, first);
    serde_json::from_str(json).unwrap()
}

#[test]
fn packages_create_update_bind_list_get_delete() {
    let platform = Platform::start();
    platform
        .wsk(&[
            "package", "create", "tools", "-p", "region", "eu", "--shared", "yes",
        ])
        .assert_ok(&["ok: created package tools"]);
    platform
        .wsk(&["package", "update", "tools", "-a", "owner", r#"{"team":1}"#])
        .assert_ok(&["ok: updated package tools"]);
    platform
        .wsk(&["package", "bind", "tools", "mytools", "-p", "limit", "5"])
        .assert_ok(&["ok: created binding mytools"]);
    platform.wsk(&["package", "list"]).assert_ok(&[
        "packages",
        &row("/guest/mytools", "private"),
        &row("/guest/tools", "shared"),
    ]);
    let binding = got(
        &platform,
        &["package", "get", "mytools"],
        "ok: got package mytools",
    );
    assert_eq!(
        binding["binding"],
        json!({"namespace": "guest", "name": "tools"})
    );
    assert_eq!(
        binding["parameters"][1],
        json!({"key": "limit", "value": 5})
    );
    let tools = got(
        &platform,
        &["package", "get", "tools"],
        "ok: got package tools",
    );
    assert_eq!(tools["publish"], true);
    assert_eq!(
        tools["parameters"],
        json!([{"key": "region", "value": "eu"}])
    );

    let js = platform.file("a.js", "function main() { return {} }");
    platform
        .wsk(&["action", "create", "tools/a", js.to_str().unwrap()])
        .assert_ok(&["ok: created action tools/a"]);
    platform
        .wsk(&["action", "list", "tools"])
        .assert_ok(&["actions", &row("/guest/tools/a", "private nodejs:20")]);

    let run = platform.wsk(&["package", "create", "bad", "--shared", "maybe"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(
        run.stderr,
        "error: Unable to create package 'bad': invalid --shared value 'maybe': use yes or no\n"
    );
    platform
        .wsk(&["package", "delete", "mytools"])
        .assert_ok(&["ok: deleted package mytools"]);
    platform.wsk(&["package", "get", "mytools"]).assert_api_error(
        148,
        "error: Unable to get package 'mytools': The requested resource 'guest/mytools' does not exist.",
    );
}

#[test]
fn triggers_and_rules_round_trip() {
    let platform = Platform::start();
    let js = platform.file("a.js", "function main() { return {} }");
    platform
        .wsk(&["action", "create", "act", js.to_str().unwrap()])
        .assert_ok(&["ok: created action act"]);
    platform
        .wsk(&["trigger", "create", "tick", "-p", "every", "60"])
        .assert_ok(&["ok: created trigger tick"]);
    platform
        .wsk(&["trigger", "update", "tick", "-a", "note", "hourly"])
        .assert_ok(&["ok: updated trigger tick"]);
    let trigger = got(
        &platform,
        &["trigger", "get", "tick"],
        "ok: got trigger tick",
    );
    assert_eq!(
        trigger["parameters"],
        json!([{"key": "every", "value": 60}])
    );
    assert_eq!(
        trigger["annotations"],
        json!([{"key": "note", "value": "hourly"}])
    );
    platform
        .wsk(&["trigger", "list"])
        .assert_ok(&["triggers", &row("/guest/tick", "private")]);

    platform
        .wsk(&["rule", "create", "on-tick", "tick", "act"])
        .assert_ok(&["ok: created rule on-tick"]);
    let rule = got(
        &platform,
        &["rule", "get", "on-tick"],
        "ok: got rule on-tick",
    );
    assert_eq!(rule["status"], "active");
    assert_eq!(rule["trigger"], json!({"path": "guest", "name": "tick"}));
    assert_eq!(rule["action"], json!({"path": "guest", "name": "act"}));
    platform
        .wsk(&["rule", "disable", "on-tick"])
        .assert_ok(&["ok: disabled rule on-tick"]);
    let rule = got(
        &platform,
        &["rule", "get", "on-tick"],
        "ok: got rule on-tick",
    );
    assert_eq!(rule["status"], "inactive");
    platform
        .wsk(&["rule", "enable", "on-tick"])
        .assert_ok(&["ok: enabled rule on-tick"]);
    platform
        .wsk(&["rule", "list"])
        .assert_ok(&["rules", &row("/guest/on-tick", "private active")]);
    platform
        .wsk(&["rule", "create", "r2", "nope", "act"])
        .assert_api_error(
            144,
            "error: Unable to create rule 'r2': trigger /guest/nope does not exist",
        );

    platform
        .wsk(&["rule", "delete", "on-tick"])
        .assert_ok(&["ok: deleted rule on-tick"]);
    platform
        .wsk(&["trigger", "delete", "tick"])
        .assert_ok(&["ok: deleted trigger tick"]);
    platform.wsk(&["rule", "list"]).assert_ok(&["rules"]);
    platform.wsk(&["trigger", "list"]).assert_ok(&["triggers"]);
}

#[test]
fn namespace_list_names_the_callers_namespace() {
    let platform = Platform::start();
    platform
        .wsk(&["namespace", "list"])
        .assert_ok(&["namespaces", "guest"]);
}

#[test]
fn list_and_namespace_get_show_every_collection_and_rule_delete_can_disable_first() {
    let platform = Platform::start();
    platform.wsk(&["list"]).assert_ok(&[
        "Entities in namespace: default",
        "packages",
        "actions",
        "triggers",
        "rules",
    ]);
    let js = platform.file("a.js", "function main() { return {} }");
    platform
        .wsk(&["package", "create", "pk"])
        .assert_ok(&["ok: created package pk"]);
    platform
        .wsk(&["action", "create", "act", js.to_str().unwrap()])
        .assert_ok(&["ok: created action act"]);
    platform
        .wsk(&["trigger", "create", "tick"])
        .assert_ok(&["ok: created trigger tick"]);
    platform
        .wsk(&["rule", "create", "r", "tick", "act"])
        .assert_ok(&["ok: created rule r"]);
    let everything = |namespace: &str| {
        vec![
            format!("Entities in namespace: {namespace}"),
            "packages".to_string(),
            row("/guest/pk", "private"),
            "actions".to_string(),
            row("/guest/act", "private nodejs:20"),
            "triggers".to_string(),
            row("/guest/tick", "private"),
            "rules".to_string(),
            row("/guest/r", "private active"),
        ]
    };
    let lines = everything("default");
    platform
        .wsk(&["list"])
        .assert_ok(&lines.iter().map(String::as_str).collect::<Vec<_>>());
    let lines = everything("guest");
    platform
        .wsk(&["namespace", "get", "/guest"])
        .assert_ok(&lines.iter().map(String::as_str).collect::<Vec<_>>());
    platform
        .wsk(&["list", "guest"])
        .assert_ok(&lines.iter().map(String::as_str).collect::<Vec<_>>());
    platform.wsk(&["list", "someone-else"]).assert_api_error(
        147,
        "error: Unable to obtain the list of entities for namespace 'someone-else': The supplied authentication is not authorized to access 'someone-else'.",
    );

    platform
        .wsk(&["rule", "delete", "r", "--disable"])
        .assert_ok(&["ok: deleted rule r"]);
    platform.wsk(&["rule", "list"]).assert_ok(&["rules"]);
}

#[test]
fn name_sort_orders_every_list_by_name() {
    let platform = Platform::start();
    let js = platform.file("a.js", "function main() { return {} }");
    for name in ["zeta", "alpha", "mid"] {
        platform
            .wsk(&["action", "create", name, js.to_str().unwrap()])
            .assert_ok(&[&format!("ok: created action {name}")]);
        platform
            .wsk(&["trigger", "create", &format!("t-{name}")])
            .assert_ok(&[&format!("ok: created trigger t-{name}")]);
    }
    platform.wsk(&["action", "list", "-n"]).assert_ok(&[
        "actions",
        &row("/guest/alpha", "private nodejs:20"),
        &row("/guest/mid", "private nodejs:20"),
        &row("/guest/zeta", "private nodejs:20"),
    ]);
    platform
        .wsk(&["trigger", "list", "--name-sort"])
        .assert_ok(&[
            "triggers",
            &row("/guest/t-alpha", "private"),
            &row("/guest/t-mid", "private"),
            &row("/guest/t-zeta", "private"),
        ]);
    platform.wsk(&["list", "-n"]).assert_ok(&[
        "Entities in namespace: default",
        "packages",
        "actions",
        &row("/guest/alpha", "private nodejs:20"),
        &row("/guest/mid", "private nodejs:20"),
        &row("/guest/zeta", "private nodejs:20"),
        "triggers",
        &row("/guest/t-alpha", "private"),
        &row("/guest/t-mid", "private"),
        &row("/guest/t-zeta", "private"),
        "rules",
    ]);
}

#[test]
fn summaries_of_packages_triggers_and_rules() {
    let platform = Platform::start();
    platform
        .wsk(&[
            "package",
            "create",
            "tools",
            "-p",
            "region",
            "eu",
            "-a",
            "description",
            "Handy tools",
        ])
        .assert_ok(&["ok: created package tools"]);
    let js = platform.file("a.js", "function main() { return {} }");
    platform
        .wsk(&[
            "action",
            "create",
            "tools/fmt",
            js.to_str().unwrap(),
            "-p",
            "width",
            "80",
        ])
        .assert_ok(&["ok: created action tools/fmt"]);
    platform
        .wsk(&["package", "get", "tools", "-s"])
        .assert_ok(&[
            "package /guest/tools: Handy tools",
            "   (parameters: region)",
            " action /guest/tools/fmt",
            "    (parameters: none defined)",
        ]);
    platform
        .wsk(&["trigger", "create", "tick", "-p", "every", "60"])
        .assert_ok(&["ok: created trigger tick"]);
    platform
        .wsk(&["trigger", "get", "tick", "--summary"])
        .assert_ok(&["trigger /guest/tick", "   (parameters: every)"]);
    platform
        .wsk(&["rule", "create", "r", "tick", "tools/fmt"])
        .assert_ok(&["ok: created rule r"]);
    platform
        .wsk(&["rule", "get", "r", "-s"])
        .assert_ok(&["rule /guest/r", "   (status: active)"]);
}
