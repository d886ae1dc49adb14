//! OpenWhisk's getting-started workflow, done only with the built `wsk` binary against a
//! `whisk standalone` whose invoker runs the actions in real containers: the properties set
//! with `wsk property set`, a Node.js and a Python action created from files and invoked every
//! way, their activations read back, a sequence, a trigger with a rule, a web action fetched at
//! its URL, everything listed and then deleted again. It needs root (containers) and skips with
//! a printed notice otherwise.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{GUEST_AUTH, Platform, Run};

const HELLO_JS: &str = r"function main(params) {
    const name = params.name || 'World';
    console.log('hello ' + name);
    return {greeting: 'Hello, ' + name + '!'};
}
";

const SHOUT_PY: &str = r"def main(args):
    greeting = args.get('greeting', '')
    print('shouting ' + greeting)
    return {'greeting': greeting.upper()}
";

const WEB_JS: &str = r"function main(params) {
    return {headers: {'content-type': 'text/plain'}, body: 'hi ' + (params.name || 'web')};
}
";

/// Every read of a record polls: records are stored after the answer to the invoke, and the
/// machine running the tests may be loaded.
const PATIENCE: Duration = Duration::from_secs(60);

fn pad(name: &str) -> String {
    format!("{name:<70}")
}

/// Runs `wsk` (configured only by the private props file) until `done` accepts the run, and
/// returns that run; panics with the last run after [`PATIENCE`].
fn wsk_until(platform: &Platform, args: &[&str], done: impl Fn(&Run) -> bool) -> Run {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let run = platform.wsk_bare(args);
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

/// The id in `ok: <what> with id <id>`, checked to be an activation id.
fn id_after<'a>(run: &'a Run, prefix: &str) -> &'a str {
    assert_eq!(run.code, 0, "{run:?}");
    let first = run.stdout.lines().next().unwrap_or_default();
    let id = first
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix(" with id "))
        .unwrap_or_else(|| panic!("unexpected first line: {first}"));
    assert!(
        id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit()),
        "activation id: {id}"
    );
    id
}

/// What `wsk` prints for JSON: four-space indents, the keys as the server sent them.
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

trait AssertJson {
    /// Asserts success with exactly `value` printed the way wsk prints JSON.
    fn assert_json(&self, value: &Value);
}

impl AssertJson for Run {
    #[track_caller]
    fn assert_json(&self, value: &Value) {
        let expected = pretty(value);
        self.assert_ok(&expected.iter().map(String::as_str).collect::<Vec<_>>());
    }
}

fn lines(run: &Run) -> Vec<&str> {
    run.stdout.lines().collect()
}

/// Waits until the activation's record is stored and returns `activation get`'s JSON.
fn stored_record(platform: &Platform, id: &str) -> Value {
    let run = wsk_until(platform, &["activation", "get", id], |run| run.code == 0);
    let header = format!("ok: got activation {id}");
    let (first, json) = run.stdout.split_once('\n').expect("two parts");
    assert_eq!(first, header);
    serde_json::from_str(json).expect("activation get prints JSON")
}

#[test]
fn getting_started_from_an_empty_namespace_to_an_empty_namespace() {
    let Some(platform) = Platform::start_with_invoker("workflow") else {
        return;
    };
    let wsk = |args: &[&str]| platform.wsk_bare(args);

    wsk(&[
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
    let empty = [
        "Entities in namespace: default",
        "packages",
        "actions",
        "triggers",
        "rules",
    ];
    wsk(&["list"]).assert_ok(&empty);

    let hello = platform.file("hello.js", HELLO_JS);
    let shout = platform.file("shout.py", SHOUT_PY);
    wsk(&["action", "create", "hello", hello.to_str().unwrap()])
        .assert_ok(&["ok: created action hello"]);
    wsk(&["action", "create", "shout", shout.to_str().unwrap()])
        .assert_ok(&["ok: created action shout"]);

    // -r: just the result, as wsk prints JSON.
    wsk(&["action", "invoke", "hello", "-r", "-p", "name", "Ann"])
        .assert_json(&json!({"greeting": "Hello, Ann!"}));
    wsk(&[
        "action", "invoke", "shout", "--result", "-p", "greeting", "hi",
    ])
    .assert_json(&json!({"greeting": "HI"}));

    // -b: the id line, then the whole activation record.
    let blocking = wsk(&[
        "action",
        "invoke",
        "hello",
        "--blocking",
        "-p",
        "name",
        "Bob",
    ]);
    let hello_id = id_after(&blocking, "ok: invoked /_/hello").to_string();
    let (_, record) = blocking.stdout.split_once('\n').unwrap();
    let record: Value = serde_json::from_str(record).expect("a JSON record after the id line");
    assert_eq!(record["activationId"], hello_id.as_str());
    assert_eq!(record["namespace"], "guest");
    assert_eq!(record["name"], "hello");
    assert_eq!(record["response"]["status"], "success");
    assert_eq!(record["response"]["success"], true);
    assert_eq!(
        record["response"]["result"],
        json!({"greeting": "Hello, Bob!"})
    );
    // Exactly the server's record, pretty-printed with wsk's four-space indent, keys in order.
    let expected = std::iter::once(format!("ok: invoked /_/hello with id {hello_id}"))
        .chain(pretty(&record))
        .collect::<Vec<_>>();
    blocking.assert_ok(&expected.iter().map(String::as_str).collect::<Vec<_>>());

    // Without -b: only the id; the record is read back once stored.
    let started = wsk(&["action", "invoke", "shout", "-p", "greeting", "later"]);
    let shout_id = id_after(&started, "ok: invoked /_/shout").to_string();
    assert_eq!(lines(&started).len(), 1, "{started:?}");
    let record = stored_record(&platform, &shout_id);
    assert_eq!(record["name"], "shout");
    assert_eq!(record["response"]["result"], json!({"greeting": "LATER"}));

    wsk(&["activation", "result", &shout_id]).assert_json(&json!({"greeting": "LATER"}));
    let logs = wsk(&["activation", "logs", &shout_id]);
    assert_eq!(logs.code, 0, "{logs:?}");
    let logged = lines(&logs);
    assert_eq!(logged.len(), 1, "{logs:?}");
    let (stamp, rest) = logged[0].split_once(' ').unwrap();
    assert!(
        stamp.len() > 20 && stamp.ends_with('Z') && stamp.contains('T'),
        "an ISO timestamp first: {}",
        logged[0]
    );
    assert_eq!(rest, "stdout: shouting later");
    wsk(&["activation", "logs", &shout_id, "--strip"]).assert_ok(&["shouting later"]);
    // A blocking invoke answers before its record is stored.
    stored_record(&platform, &hello_id);
    wsk(&["activation", "logs", &hello_id, "-r"]).assert_ok(&["hello Bob"]);
    // The newest activation is the non-blocking one.
    wsk(&["activation", "result", "--last"]).assert_json(&json!({"greeting": "LATER"}));

    // A sequence: hello's result becomes shout's parameters.
    wsk(&["action", "create", "greet", "--sequence", "hello,shout"])
        .assert_ok(&["ok: created action greet"]);
    wsk(&["action", "invoke", "greet", "-r", "-p", "name", "Cy"])
        .assert_json(&json!({"greeting": "HELLO, CY!"}));

    // A trigger with a rule: firing it runs hello, whose activation then shows in the list.
    wsk(&["trigger", "create", "tick", "-p", "name", "Tick"])
        .assert_ok(&["ok: created trigger tick"]);
    wsk(&["rule", "create", "ticking", "tick", "hello"]).assert_ok(&["ok: created rule ticking"]);
    let fired = wsk(&["trigger", "fire", "tick"]);
    let trigger_id = id_after(&fired, "ok: triggered /_/tick").to_string();
    // The trigger's record logs one JSON line per rule, naming the action's activation.
    let trigger_logs = wsk_until(&platform, &["activation", "logs", &trigger_id], |run| {
        run.code == 0 && !run.stdout.is_empty()
    });
    let rule_line: Value = serde_json::from_str(lines(&trigger_logs)[0])
        .unwrap_or_else(|e| panic!("a JSON log line: {e}: {trigger_logs:?}"));
    assert_eq!(rule_line["rule"], "guest/ticking", "{rule_line}");
    assert_eq!(rule_line["action"], "guest/hello", "{rule_line}");
    let ruled_id = rule_line["activationId"]
        .as_str()
        .expect("the rule's activation id")
        .to_string();
    let listed = wsk_until(&platform, &["activation", "list"], |run| {
        run.stdout
            .lines()
            .any(|line| line.contains(ruled_id.as_str()))
    });
    // wsk's table: local start time, id, kind, cold or warm, duration, status, entity; the kind
    // column is as wide as the widest kind listed (python:3.11 here).
    assert_eq!(
        lines(&listed)[0],
        format!(
            "{:<19} {:<32} {:<11} {:<6}{:<10} {:<7} Entity",
            "Datetime", "Activation ID", "Kind", "Start", "Duration", "Status"
        )
    );
    let row = listed
        .stdout
        .lines()
        .find(|line| line.contains(ruled_id.as_str()))
        .unwrap();
    let columns: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(columns.len(), 8, "{row}");
    assert_eq!(columns[2], ruled_id, "{row}");
    assert_eq!(columns[3], "nodejs:20", "{row}");
    assert!(["cold", "warm"].contains(&columns[4]), "{row}");
    assert!(columns[5].ends_with('s'), "a Go duration: {row}");
    assert_eq!(columns[6..], ["success", "guest/hello:0.0.1"], "{row}");
    let trigger_row = listed
        .stdout
        .lines()
        .find(|line| line.contains(trigger_id.as_str()))
        .expect("the trigger's activation is listed too");
    assert!(
        trigger_row.ends_with(" unknown     warm  0s         success guest/tick:0.0.1"),
        "{trigger_row}"
    );
    let record = stored_record(&platform, &ruled_id);
    assert_eq!(
        record["response"]["result"],
        json!({"greeting": "Hello, Tick!"})
    );
    wsk(&["activation", "logs", &ruled_id, "--strip"]).assert_ok(&["hello Tick"]);
    // Listed by name: only hello's activations (Ann, Bob, the sequence's step and the rule's).
    let hellos = wsk_until(&platform, &["activation", "list", "hello"], |run| {
        run.stdout.lines().count() == 5
    });
    for line in lines(&hellos).iter().skip(1) {
        assert!(line.ends_with(" success guest/hello:0.0.1"), "{hellos:?}");
    }
    for id in [&hello_id, &ruled_id] {
        assert!(
            hellos.stdout.lines().any(|line| line.contains(id.as_str())),
            "{hellos:?}"
        );
    }

    // Poll, bounded by --exit, shows what already ran for hello, each with its logs as a JSON
    // array.
    let polled = wsk(&[
        "activation",
        "poll",
        "hello",
        "--exit",
        "1",
        "--since-minutes",
        "60",
    ]);
    assert_eq!(polled.code, 0, "{polled:?}");
    assert_eq!(
        lines(&polled)[..2],
        ["Enter Ctrl-c to exit.", "Polling for activation logs"]
    );
    for id in [&hello_id, &ruled_id] {
        assert!(
            polled
                .stdout
                .contains(&format!("\nActivation: 'hello' ({id})\n[\n    \"")),
            "{polled:?}"
        );
    }
    assert!(
        polled.stdout.contains(" stdout: hello Tick\"\n]\n"),
        "{polled:?}"
    );

    // A web action, fetched at the URL wsk gives for it.
    let web = platform.file("web.js", WEB_JS);
    wsk(&[
        "action",
        "create",
        "page",
        web.to_str().unwrap(),
        "--web",
        "true",
    ])
    .assert_ok(&["ok: created action page"]);
    let url = wsk(&["action", "get", "page", "--url"]);
    assert_eq!(url.code, 0, "{url:?}");
    let url_lines = lines(&url);
    assert_eq!(url_lines.len(), 2, "{url:?}");
    assert_eq!(url_lines[0], "ok: got action page");
    assert_eq!(
        url_lines[1],
        format!("{}/api/v1/web/guest/default/page", platform.url)
    );
    let (status, body) = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let response = reqwest::get(format!("{}?name=Dee", url_lines[1]))
            .await
            .expect("the web action answers");
        let status = response.status().as_u16();
        (status, response.text().await.expect("a body"))
    });
    assert_eq!((status, body.as_str()), (200, "hi Dee"));

    // Everything, by name.
    let actions = wsk(&["list", "-n"]);
    actions.assert_ok(&[
        "Entities in namespace: default",
        "packages",
        "actions",
        &format!("{} private sequence", pad("/guest/greet")),
        &format!("{} private nodejs:20", pad("/guest/hello")),
        &format!("{} private nodejs:20", pad("/guest/page")),
        &format!("{} private python:3.11", pad("/guest/shout")),
        "triggers",
        &format!("{} private", pad("/guest/tick")),
        "rules",
        &format!("{} private active", pad("/guest/ticking")),
    ]);

    // And nothing again.
    wsk(&["rule", "delete", "ticking", "--disable"]).assert_ok(&["ok: deleted rule ticking"]);
    wsk(&["trigger", "delete", "tick"]).assert_ok(&["ok: deleted trigger tick"]);
    for action in ["greet", "hello", "shout", "page"] {
        wsk(&["action", "delete", action]).assert_ok(&[&format!("ok: deleted action {action}")]);
    }
    wsk(&["list"]).assert_ok(&empty);
    // Activations outlive their actions.
    let record = stored_record(&platform, &hello_id);
    assert_eq!(
        record["response"]["result"],
        json!({"greeting": "Hello, Bob!"})
    );
}
