//! End-to-end tests of `wsk action invoke` and `wsk trigger fire` against the real server,
//! started without an invoker: the server answers 503 wherever an action would run, and these
//! tests pin what `wsk` shows then, the fire of a trigger without active rules, and the fire of
//! one whose rule's action cannot run (accepted with a trigger activation all the same).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::Platform;

#[test]
fn fire_without_active_rules_runs_nothing_and_invoke_reports_the_server_error() {
    let platform = Platform::start();
    platform
        .wsk(&["trigger", "create", "tick"])
        .assert_ok(&["ok: created trigger tick"]);
    let payload = platform.file("p.json", r#"{"n": 1}"#);
    platform
        .wsk(&[
            "trigger",
            "fire",
            "tick",
            "-p",
            "a",
            "b",
            "-P",
            payload.to_str().unwrap(),
        ])
        .assert_ok(&["ok: triggered /_/tick"]);
    platform.wsk(&["trigger", "fire", "nope"]).assert_api_error(
        148,
        "error: Unable to fire trigger 'nope': The requested resource does not exist.",
    );

    let js = platform.file("a.js", "function main(p) { return p }");
    platform
        .wsk(&["action", "create", "echo", js.to_str().unwrap()])
        .assert_ok(&["ok: created action echo"]);
    for flags in [&[][..], &["-b"][..], &["--result", "-p", "x", "1"][..]] {
        let mut args = vec!["action", "invoke", "echo"];
        args.extend_from_slice(flags);
        platform.wsk(&args).assert_api_error(
            503 % 256,
            "error: Unable to invoke action 'echo': The server is currently unavailable (because it is overloaded or down for maintenance).",
        );
    }
    platform
        .wsk(&["action", "invoke", "nope"])
        .assert_api_error(
            148,
            "error: Unable to invoke action 'nope': The requested resource does not exist.",
        );

    platform
        .wsk(&["rule", "create", "r", "tick", "echo"])
        .assert_ok(&["ok: created rule r"]);
    // The fire is accepted with a trigger activation even though the rule's action cannot run.
    let fired = platform.wsk(&["trigger", "fire", "tick"]);
    assert_eq!(fired.code, 0, "stderr: {}", fired.stderr);
    let id = fired
        .stdout
        .trim_end()
        .strip_prefix("ok: triggered /_/tick with id ")
        .unwrap_or_else(|| panic!("unexpected stdout: {}", fired.stdout));
    assert!(
        id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit()),
        "activation id: {id}"
    );
}

#[test]
fn activation_reads_before_anything_ran() {
    let platform = Platform::start();
    platform.wsk(&["activation", "list"]).assert_ok(&[""]);
    platform
        .wsk(&[
            "activation",
            "list",
            "echo",
            "--since",
            "0",
            "--upto",
            "1",
            "-l",
            "5",
        ])
        .assert_ok(&[""]);
    platform
        .wsk(&["activation", "list", "--full"])
        .assert_ok(&["activations"]);
    for (command, what) in [
        ("get", "activation"),
        ("logs", "logs for activation"),
        ("result", "result for activation"),
    ] {
        let run = platform.wsk(&["activation", command, "--last"]);
        assert_eq!(run.code, 1, "{run:?}");
        assert_eq!(run.stdout, "");
        assert_eq!(
            run.stderr,
            format!(
                "error: Unable to get {what}: Activation list does not contain any activations.\n"
            )
        );
        platform
            .wsk(&["activation", command, "0123456789abcdef0123456789abcdef"])
            .assert_api_error(
                148,
                &format!(
                    "error: Unable to get {what} '0123456789abcdef0123456789abcdef': The requested resource does not exist."
                ),
            );
    }
}

/// The feed lifecycle needs invocation, which answers 503 today: a failed CREATE must leave no
/// trigger behind, and a failed DELETE must not keep the trigger alive.
#[test]
fn feed_triggers_are_rolled_back_when_the_feed_refuses() {
    let platform = Platform::start();
    let js = platform.file("feed.js", "function main(p) { return {} }");
    platform
        .wsk(&["action", "create", "feed", js.to_str().unwrap()])
        .assert_ok(&["ok: created action feed"]);
    platform
        .wsk(&[
            "trigger",
            "create",
            "tick",
            "--feed",
            "feed",
            "-p",
            "cron",
            "* * * * *",
            "-F",
            "x",
            "1",
            "-T",
            "kept",
            "2",
        ])
        .assert_api_error(
            503 % 256,
            "error: Unable to create trigger 'tick': The server is currently unavailable (because it is overloaded or down for maintenance).",
        );
    platform.wsk(&["trigger", "get", "tick"]).assert_api_error(
        148,
        "error: Unable to get trigger 'tick': The requested resource does not exist.",
    );
    platform
        .wsk(&["trigger", "create", "tock", "-f", "/guest/missing"])
        .assert_api_error(
            148,
            "error: Unable to create trigger 'tock': The requested resource does not exist.",
        );
    platform.wsk(&["trigger", "list"]).assert_ok(&["triggers"]);

    platform
        .wsk(&["trigger", "create", "fed", "-a", "feed", "/guest/feed"])
        .assert_ok(&["ok: created trigger fed"]);
    platform
        .wsk(&["trigger", "delete", "fed"])
        .assert_ok(&["ok: deleted trigger fed"]);
    platform.wsk(&["trigger", "list"]).assert_ok(&["triggers"]);
}

#[test]
fn poll_exits_after_the_given_seconds() {
    let platform = Platform::start();
    let started = std::time::Instant::now();
    platform
        .wsk(&["activation", "poll", "--exit", "1", "--since-minutes", "5"])
        .assert_ok(&["Enter Ctrl-c to exit.", "Polling for activation logs"]);
    let took = started.elapsed();
    assert!(
        took >= std::time::Duration::from_secs(1) && took < std::time::Duration::from_secs(5),
        "{took:?}"
    );
}
