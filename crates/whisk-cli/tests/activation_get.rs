//! `wsk activation get` with a field, `--summary` and `--logs`, `activation poll` starting after
//! the newest record, `package refresh`, `sdk install` and `rule status`, against the real
//! whisk-rs server.
//! The trigger records need no containers; the action's logs do (root, skipped otherwise).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{GUEST_AUTH, Platform, Run};

/// Records are stored after the answer that names them, on a machine that may be loaded.
const PATIENCE: Duration = Duration::from_secs(60);

fn wsk_until(platform: &Platform, args: &[&str], done: impl Fn(&Run) -> bool) -> Run {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let run = platform.wsk(args);
        if done(&run) {
            return run;
        }
        assert!(
            Instant::now() < deadline,
            "wsk {args:?} did not get there within {PATIENCE:?}: {run:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// JSON the way wsk prints it: four-space indents.
fn pretty(value: &Value) -> Vec<String> {
    use serde::Serialize;
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    value
        .serialize(&mut serde_json::Serializer::with_formatter(
            &mut out, formatter,
        ))
        .unwrap();
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Asserts success with `first` and then `value` printed as wsk prints JSON.
#[track_caller]
fn assert_titled_json(run: &Run, first: &str, value: &Value) {
    let mut expected = vec![first.to_string()];
    expected.extend(pretty(value));
    run.assert_ok(&expected.iter().map(String::as_str).collect::<Vec<_>>());
}

/// Fires `tick` (which has a rule) and waits until its trigger record is stored.
fn fire_and_store(platform: &Platform) -> (String, Value) {
    let fired = platform.wsk(&["trigger", "fire", "tick"]);
    assert_eq!(fired.code, 0, "{fired:?}");
    let id = fired
        .stdout
        .trim_end()
        .strip_prefix("ok: triggered /_/tick with id ")
        .unwrap_or_else(|| panic!("unexpected stdout: {}", fired.stdout))
        .to_string();
    let run = wsk_until(platform, &["activation", "get", &id], |run| run.code == 0);
    let (first, json) = run.stdout.split_once('\n').expect("two parts");
    assert_eq!(first, format!("ok: got activation {id}"));
    (id, serde_json::from_str(json).expect("JSON record"))
}

/// Go's `Time.String` of the record's end, in this process's local zone (UTC in CI).
fn go_end(record: &Value) -> String {
    let end = record["end"].as_i64().unwrap_or(0) / 1000;
    let local = chrono::DateTime::from_timestamp(end, 0)
        .unwrap()
        .with_timezone(&chrono::Local);
    let offset = local.format("%z").to_string();
    let zone = if offset == "+0000" {
        "UTC".to_string()
    } else {
        offset.clone()
    };
    format!("{} {offset} {zone}", local.format("%Y-%m-%d %H:%M:%S"))
}

#[test]
fn activation_get_prints_a_field_a_summary_or_the_logs() {
    let platform = Platform::start();
    let js = platform.file("a.js", "function main(p) { return p }");
    platform
        .wsk(&["action", "create", "echo", js.to_str().unwrap()])
        .assert_ok(&["ok: created action echo"]);
    platform
        .wsk(&["trigger", "create", "tick"])
        .assert_ok(&["ok: created trigger tick"]);
    platform
        .wsk(&["rule", "create", "r", "tick", "echo"])
        .assert_ok(&["ok: created rule r"]);
    let (id, record) = fire_and_store(&platform);

    // A field, by its name in any case, with the id or with --last (the word is then the field).
    assert_titled_json(
        &platform.wsk(&["activation", "get", &id, "response"]),
        &format!("ok: got activation {id}, displaying field response"),
        &record["response"],
    );
    assert_titled_json(
        &platform.wsk(&["activation", "get", "--last", "activationid"]),
        &format!("ok: got activation {id}, displaying field activationid"),
        &json!(id),
    );
    // A field the record lacks prints its type's empty value; trigger records have no cause.
    assert_titled_json(
        &platform.wsk(&["activation", "get", &id, "cause"]),
        &format!("ok: got activation {id}, displaying field cause"),
        &json!(""),
    );
    let bad = platform.wsk(&["activation", "get", &id, "colour"]);
    assert_eq!((bad.code, bad.stdout.as_str()), (1, ""), "{bad:?}");
    assert_eq!(bad.stderr, "error: Invalid field filter 'colour'.\n");
    let extra = platform.wsk(&["activation", "get", "--last", &id, "name"]);
    assert_eq!((extra.code, extra.stdout.as_str()), (1, ""), "{extra:?}");
    assert_eq!(
        extra.stderr,
        format!("error: Invalid argument(s): name. An activation ID is required.\n")
    );

    // The summary: who ran, how it ended and when (Go's time format), then the result.
    let mut summary = vec![format!(
        "activation result for '/guest/tick' (success at {})",
        go_end(&record)
    )];
    summary.extend(pretty(&record["response"]["result"]));
    let summary: Vec<&str> = summary.iter().map(String::as_str).collect();
    platform
        .wsk(&["activation", "get", &id, "--summary"])
        .assert_ok(&summary);
    platform
        .wsk(&["activation", "get", "-l", "-s"])
        .assert_ok(&summary);

    // --logs: the log lines only; a trigger's are JSON lines without a timestamp, kept whole.
    let logs: Vec<String> = record["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|line| line.as_str().unwrap().to_string())
        .collect();
    assert_eq!(logs.len(), 1, "{record}");
    platform
        .wsk(&["activation", "get", &id, "-g"])
        .assert_ok(&[logs[0].as_str()]);

    // Unknown ids still fail the way the plain get does.
    platform
        .wsk(&["activation", "get", "0123456789abcdef0123456789abcdef", "-s"])
        .assert_api_error(
            148,
            "error: Unable to get activation '0123456789abcdef0123456789abcdef': The requested resource does not exist.",
        );
}

/// A `wsk activation poll` running in the background; its stdout lines arrive on a channel.
struct Poller {
    child: std::process::Child,
    lines: mpsc::Receiver<String>,
}

impl Poller {
    fn start(platform: &Platform, args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wsk"))
            .args([
                "--apihost",
                &platform.url,
                "-u",
                GUEST_AUTH,
                "activation",
                "poll",
            ])
            .args(args)
            .env("WSK_CONFIG_FILE", platform.props_file())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run wsk activation poll");
        let stdout = child.stdout.take().expect("piped stdout");
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if send.send(line).is_err() {
                    return;
                }
            }
        });
        Self { child, lines }
    }

    /// Lines until one equals `wanted` (included); panics after [`PATIENCE`].
    fn until(&self, wanted: &str) -> Vec<String> {
        let deadline = Instant::now() + PATIENCE;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let done = line == wanted;
                    seen.push(line);
                    if done {
                        return seen;
                    }
                }
                Err(_) => panic!("no line {wanted:?} within {PATIENCE:?}; saw {seen:?}"),
            }
        }
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn poll_without_since_starts_after_the_newest_activation() {
    let platform = Platform::start();
    let js = platform.file("a.js", "function main(p) { return p }");
    platform
        .wsk(&["action", "create", "echo", js.to_str().unwrap()])
        .assert_ok(&["ok: created action echo"]);
    platform
        .wsk(&["trigger", "create", "tick"])
        .assert_ok(&["ok: created trigger tick"]);
    platform
        .wsk(&["rule", "create", "r", "tick", "echo"])
        .assert_ok(&["ok: created rule r"]);
    // In an empty namespace everything that comes is new: the poll asks from the epoch.
    let empty = platform.wsk(&["-v", "activation", "poll", "--exit", "1"]);
    assert_eq!(empty.code, 0, "{empty:?}");
    assert!(empty.stderr.contains("&since=0&"), "{empty:?}");
    let (old, old_record) = fire_and_store(&platform);
    // Otherwise it asks from just after the newest record's start, not from this clock's now.
    let after = old_record["start"].as_u64().unwrap() + 1;
    let later = platform.wsk(&["-v", "activation", "poll", "--exit", "1"]);
    assert_eq!(later.code, 0, "{later:?}");
    assert!(
        later.stderr.contains("activations?limit=1&docs=true")
            && later.stderr.contains(&format!("&since={after}&")),
        "{later:?}"
    );

    let poller = Poller::start(&platform, &["--exit", "120"]);
    // Once the poll has started (its second line), a new record shows and the old one never.
    assert_eq!(
        poller.until("Polling for activation logs"),
        ["Enter Ctrl-c to exit.", "Polling for activation logs"]
    );
    let (new, record) = fire_and_store(&platform);
    let title = format!("Activation: 'tick' ({new})");
    let seen = poller.until(&title);
    assert_eq!(seen, ["", title.as_str()], "old record {old} shown?");
    let logs = pretty(&record["logs"]);
    for line in &logs {
        assert_eq!(&poller.until(line).concat(), line);
    }
}

#[test]
fn package_refresh_sends_what_wsk_sends_and_reports_the_refusal() {
    let platform = Platform::start();
    for args in [
        &["package", "refresh"][..],
        &["package", "refresh", "/guest"][..],
    ] {
        let run = platform.wsk(args);
        assert_eq!(run.code, 405 % 256, "{run:?}");
        assert_eq!(run.stdout, "");
        let line = run.stderr.trim_end();
        assert!(
            line.starts_with("error: Package refresh for namespace '")
                && line.contains("' failed: "),
            "{line}"
        );
    }
    let verbose = platform.wsk(&["-v", "package", "refresh", "guest"]);
    assert!(
        verbose.stderr.contains("REQUEST: [POST] ")
            && verbose
                .stderr
                .contains("/api/v1/namespaces/guest/packages/refresh\n"),
        "{verbose:?}"
    );
    let entity = platform.wsk(&["package", "refresh", "/guest/pkg"]);
    assert_eq!((entity.code, entity.stdout.as_str()), (1, ""), "{entity:?}");
    assert_eq!(
        entity.stderr,
        "error: An entity name, 'pkg', was provided instead of a namespace. Valid namespaces are of the following format: /NAMESPACE.\n"
    );
}

/// Runs `wsk` in `dir` with a props file that does not exist (sdk needs no configuration).
fn wsk_in(dir: &std::path::Path, args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_wsk"))
        .args(args)
        .current_dir(dir)
        .env("WSK_CONFIG_FILE", dir.join("no-such-wskprops"))
        .env_remove("WHISK_APIHOST")
        .env_remove("WHISK_AUTH")
        .stdin(Stdio::null())
        .output()
        .expect("run wsk");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[test]
fn sdk_install_bashauto_writes_the_completion_script() {
    let dir = tempfile::tempdir().unwrap();
    wsk_in(dir.path(), &["sdk", "install", "bashauto"]).assert_ok(&[
        "The bash auto-completion script (wsk_cli_bash_completion.sh) is installed in the current directory.",
        "To enable command line completion of wsk commands, source the auto completion script into your bash environment",
    ]);
    let script = std::fs::read_to_string(dir.path().join("wsk_cli_bash_completion.sh")).unwrap();
    let printed = wsk_in(dir.path(), &["completion", "bash"]);
    assert_eq!(script, printed.stdout);
    assert!(script.contains("complete -F _wsk"), "{script}");
    let to_stdout = wsk_in(dir.path(), &["sdk", "install", "BashAuto", "--stdout"]);
    assert_eq!(
        (to_stdout.code, to_stdout.stdout.as_str()),
        (0, script.as_str())
    );

    for (args, message) in [
        (
            &["sdk", "install"][..],
            "error: The SDK component argument is missing. One component (docker, ios, or bashauto) must be specified\n",
        ),
        (
            &["sdk", "install", "swift"][..],
            "error: The SDK component argument 'swift' is invalid. Valid components are docker, ios and bashauto\n",
        ),
        (
            &["sdk", "install", "docker"][..],
            "error: The docker SDK is not supported: this wsk installs only bashauto, the bash completion script\n",
        ),
    ] {
        let run = wsk_in(dir.path(), args);
        assert_eq!((run.code, run.stdout.as_str()), (1, ""), "{run:?}");
        assert_eq!(run.stderr, message);
    }
    // A directory the script cannot be written to.
    let blocked = dir.path().join("wsk_cli_bash_completion.sh");
    std::fs::remove_file(&blocked).unwrap();
    std::fs::create_dir(&blocked).unwrap();
    let run = wsk_in(dir.path(), &["sdk", "install", "bashauto"]);
    assert_eq!((run.code, run.stdout.as_str()), (1, ""), "{run:?}");
    assert!(
        run.stderr
            .starts_with("error: Unable to generate 'wsk_cli_bash_completion.sh': "),
        "{run:?}"
    );
}

const HELLO_JS: &str = r"function main(params) {
    console.log('hello ' + params.name);
    console.error('oops');
    return {greeting: 'Hello, ' + params.name + '!'};
}
";

#[test]
fn activation_get_logs_strips_the_invokers_prefix_from_an_actions_logs() {
    let Some(platform) = Platform::start_with_invoker("actget") else {
        return;
    };
    let js = platform.file("hello.js", HELLO_JS);
    platform
        .wsk(&["action", "create", "hello", js.to_str().unwrap()])
        .assert_ok(&["ok: created action hello"]);
    let invoked = platform.wsk(&["action", "invoke", "hello", "-p", "name", "Ann"]);
    assert_eq!(invoked.code, 0, "{invoked:?}");
    let id = invoked
        .stdout
        .trim_end()
        .strip_prefix("ok: invoked /_/hello with id ")
        .unwrap_or_else(|| panic!("unexpected stdout: {}", invoked.stdout))
        .to_string();
    let stored = wsk_until(&platform, &["activation", "get", &id, "logs"], |run| {
        run.code == 0 && run.stdout.matches(" std").count() == 2
    });
    assert!(
        stored.stdout.contains(" stdout: hello Ann\"") && stored.stdout.contains(" stderr: oops\""),
        "{stored:?}"
    );
    platform
        .wsk(&["activation", "get", &id, "--logs"])
        .assert_ok(&["hello Ann", "oops"]);
    let record = wsk_until(&platform, &["activation", "get", &id, "end"], |run| {
        run.code == 0
    });
    let end: Value = serde_json::from_str(record.stdout.split_once('\n').unwrap().1).unwrap();
    let summary = platform.wsk(&["activation", "get", &id, "-s"]);
    summary.assert_ok(&[
        &format!(
            "activation result for '/guest/hello' (success at {})",
            go_end(&json!({ "end": end }))
        ),
        "{",
        "    \"greeting\": \"Hello, Ann!\"",
        "}",
    ]);
}

#[test]
fn rule_status_says_whether_the_rule_is_active() {
    let platform = Platform::start();
    let js = platform.file("a.js", "function main(p) { return p }");
    platform
        .wsk(&["action", "create", "echo", js.to_str().unwrap()])
        .assert_ok(&["ok: created action echo"]);
    platform
        .wsk(&["trigger", "create", "tick"])
        .assert_ok(&["ok: created trigger tick"]);
    platform
        .wsk(&["rule", "create", "r", "tick", "echo"])
        .assert_ok(&["ok: created rule r"]);
    platform
        .wsk(&["rule", "status", "r"])
        .assert_ok(&["ok: rule r is active"]);
    platform
        .wsk(&["rule", "disable", "r"])
        .assert_ok(&["ok: disabled rule r"]);
    platform
        .wsk(&["rule", "status", "/guest/r"])
        .assert_ok(&["ok: rule /guest/r is inactive"]);
    platform.wsk(&["rule", "status", "nope"]).assert_api_error(
        148,
        "error: Unable to get status of rule 'nope': The requested resource does not exist.",
    );
}
