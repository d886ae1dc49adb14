//! Sequences, conductor actions, triggers fanned out by rules and a fast alarm, through the real
//! `whisk` binary with real Node.js and Python containers (root only: without it each test
//! prints why it skipped).
//!
//! The controller tests cover the same behaviour against a stand-in invoker; these prove the
//! pieces hold together when every component is a real action whose result really flows on.

mod support;

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::Platform;

const DEADLINE: Duration = Duration::from_secs(60);

/// Adds one to `n` (Node.js).
const INC_JS: &str = "function main(p) { return { n: (p.n || 0) + 1 } }";
/// Multiplies `n` by `factor`, 2 unless a parameter says otherwise (Python).
const DOUBLE_PY: &str =
    "def main(args):\n    return {\"n\": args.get(\"n\", 0) * args.get(\"factor\", 2)}\n";
/// Answers its input (Node.js).
const ECHO_JS: &str = "function main(p) { return p }";
/// Answers its input (Python).
const ECHO_PY: &str = "def main(args):\n    return args\n";
/// An application error (Node.js).
const FAIL_JS: &str = "function main(p) { return { error: 'stop here at ' + p.n } }";

async fn put(platform: &Platform, path: &str, body: Value) {
    platform
        .guest(
            Method::PUT,
            &format!("/namespaces/_/{path}?overwrite=true"),
            Some(body),
        )
        .await
        .assert_ok();
}

async fn action(platform: &Platform, name: &str, kind: &str, code: &str) {
    put(
        platform,
        &format!("actions/{name}"),
        json!({"exec": {"kind": kind, "code": code}}),
    )
    .await;
}

async fn sequence(platform: &Platform, name: &str, components: &[&str]) {
    put(
        platform,
        &format!("actions/{name}"),
        json!({"exec": {"kind": "sequence", "components": components}}),
    )
    .await;
}

async fn invoke(platform: &Platform, name: &str, query: &str, params: Value) -> support::Reply {
    platform
        .guest(
            Method::POST,
            &format!("/namespaces/_/actions/{name}?{query}"),
            Some(params),
        )
        .await
}

/// The value of annotation `key` in a record, if any.
fn annotation(record: &Value, key: &str) -> Option<Value> {
    record["annotations"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| a["value"].clone())
}

/// A record's `logs` as strings.
fn logs(record: &Value) -> Vec<String> {
    record["logs"]
        .as_array()
        .unwrap_or_else(|| panic!("logs in {record}"))
        .iter()
        .map(|line| line.as_str().expect("string log line").to_owned())
        .collect()
}

/// A trigger record's logs: one JSON object per rule fired.
fn rule_lines(record: &Value) -> Vec<Value> {
    logs(record)
        .iter()
        .map(|line| serde_json::from_str(line).expect("JSON log line"))
        .collect()
}

/// The activation records named `name` (newest first).
async fn records(platform: &Platform, name: &str) -> Vec<Value> {
    let reply = platform
        .guest(
            Method::GET,
            &format!("/namespaces/_/activations?name={name}&limit=200&docs=true"),
            None,
        )
        .await;
    reply.assert_ok().as_array().cloned().unwrap_or_default()
}

/// Polls until at least `count` records named `name` exist.
async fn wait_for_records(platform: &Platform, name: &str, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let found = records(platform, name).await;
        if found.len() >= count {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "{} records of {name} after {DEADLINE:?}, expected {count}",
            found.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn id_of(reply: &support::Reply) -> String {
    reply.body["activationId"]
        .as_str()
        .unwrap_or_else(|| panic!("activationId in {}", reply.text))
        .to_owned()
}

// ---- sequences ---------------------------------------------------------------------------------

/// `inc` (Node.js), `math/double` (Python, in a package) and the binding `mb` of `math`, whose
/// `factor` parameter (3) reaches `double` only when called through it.
async fn math_actions(platform: &Platform) {
    action(platform, "inc", "nodejs:20", INC_JS).await;
    put(platform, "packages/math", json!({})).await;
    action(platform, "math/double", "python:3.11", DOUBLE_PY).await;
    put(
        platform,
        "packages/mb",
        json!({"binding": {"namespace": "guest", "name": "math"},
               "parameters": [{"key": "factor", "value": 3}]}),
    )
    .await;
}

#[tokio::test]
async fn a_sequence_passes_results_along_through_packages_and_bindings() {
    let Some(platform) = support::platform_with_invoker("seq", "", &[]) else {
        return;
    };
    math_actions(&platform).await;
    // A component from another namespace's public package, with a parameter of its own.
    let other = platform.create_user("shared");
    for (path, body) in [
        ("packages/pub", json!({"publish": true})),
        (
            "actions/pub/quint",
            json!({"exec": {"kind": "python:3.11", "code": DOUBLE_PY},
                   "parameters": [{"key": "factor", "value": 5}]}),
        ),
    ] {
        platform
            .call(
                Method::PUT,
                &format!("/namespaces/_/{path}"),
                Some(&other),
                Some(body),
            )
            .await
            .assert_ok();
    }
    sequence(
        &platform,
        "chain",
        &[
            "/_/inc",
            "/_/math/double",
            "/_/mb/double",
            "/shared/pub/quint",
        ],
    )
    .await;

    // (1 + 1) * 2 * 3 * 5
    let reply = invoke(&platform, "chain", "blocking=true", json!({"n": 1})).await;
    let body = reply.assert_ok().clone();
    assert_eq!(body["response"]["result"], json!({"n": 60}), "{body}");
    assert_eq!(body["response"]["status"], "success");
    assert_eq!(body["name"], "chain");
    assert_eq!(annotation(&body, "kind"), Some(json!("sequence")));
    assert_eq!(annotation(&body, "topmost"), Some(json!(true)));
    let id = id_of(&reply);
    let components = logs(&body);
    assert_eq!(components.len(), 4, "{body}");
    let mut durations = 0;
    let mut ran = Vec::new();
    for (component, expected) in components.iter().zip(["inc", "double", "double", "quint"]) {
        let record = platform.wait_for_record(component).await;
        assert_eq!(record["name"], expected, "{record}");
        assert_eq!(record["cause"], id, "{record}");
        assert_eq!(record["response"]["status"], "success", "{record}");
        durations += record["duration"].as_u64().expect("component duration");
        ran.push(record);
    }
    assert_eq!(body["duration"].as_u64(), Some(durations), "{body}");
    // The packaged component ran from its package, also when reached through the binding, and
    // the other namespace's action ran as the caller.
    assert_eq!(
        annotation(&ran[2], "path"),
        Some(json!("guest/math/double"))
    );
    assert_eq!(annotation(&ran[2], "kind"), Some(json!("python:3.11")));
    assert_eq!(annotation(&ran[3], "path"), Some(json!("shared/pub/quint")));
    assert_eq!(ran[3]["namespace"], "guest", "{}", ran[3]);
}

#[tokio::test]
async fn nested_sequences_errors_and_non_blocking_sequences() {
    let Some(platform) = support::platform_with_invoker("nest", "", &[]) else {
        return;
    };
    math_actions(&platform).await;
    action(&platform, "fail", "nodejs:20", FAIL_JS).await;
    sequence(&platform, "inner", &["/_/math/double", "/_/inc"]).await;
    sequence(&platform, "outer", &["/_/inc", "/_/inner", "/_/inc"]).await;

    // ((0 + 1) * 2 + 1) + 1
    let reply = invoke(&platform, "outer", "blocking=true", json!({"n": 0})).await;
    let body = reply.assert_ok().clone();
    assert_eq!(body["response"]["result"], json!({"n": 4}), "{body}");
    let outer_id = id_of(&reply);
    let steps = logs(&body);
    assert_eq!(steps.len(), 3, "the inner sequence is one step: {body}");
    let inner = platform.wait_for_record(&steps[1]).await;
    assert_eq!(inner["name"], "inner");
    assert_eq!(inner["cause"], outer_id);
    assert_eq!(annotation(&inner, "topmost"), Some(json!(false)));
    assert_eq!(annotation(&inner, "kind"), Some(json!("sequence")));
    assert_eq!(inner["response"]["result"], json!({"n": 3}));
    let inner_steps = logs(&inner);
    assert_eq!(inner_steps.len(), 2, "{inner}");
    // The inner sequence's components are caused by the inner sequence, not the outer one.
    for step in &inner_steps {
        let record = platform.wait_for_record(step).await;
        assert_eq!(record["cause"], inner["activationId"], "{record}");
    }

    // An application error in the middle stops the chain: the last `inc` never runs.
    sequence(&platform, "broken", &["/_/inc", "/_/fail", "/_/inc"]).await;
    let failed = invoke(
        &platform,
        "broken",
        "blocking=true&result=true",
        json!({"n": 5}),
    )
    .await;
    assert_eq!(failed.status, StatusCode::BAD_GATEWAY, "{}", failed.text);
    assert_eq!(failed.body, json!({"error": "stop here at 6"}));
    let failed = invoke(&platform, "broken", "blocking=true", json!({"n": 5})).await;
    assert_eq!(failed.status, StatusCode::BAD_GATEWAY, "{}", failed.text);
    assert_eq!(failed.body["response"]["status"], "application error");
    assert_eq!(failed.body["response"]["success"], false);
    let ran = logs(&failed.body);
    assert_eq!(
        ran.len(),
        2,
        "stopped after the failing component: {}",
        failed.text
    );
    let second = platform.wait_for_record(&ran[1]).await;
    assert_eq!(second["name"], "fail");
    assert_eq!(second["response"]["status"], "application error");

    // Non-blocking: 202 with the sequence's id; its record follows.
    let accepted = invoke(&platform, "outer", "", json!({"n": 10})).await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.text);
    let record = platform.wait_for_record(&id_of(&accepted)).await;
    // ((10 + 1) * 2 + 1) + 1
    assert_eq!(record["response"]["result"], json!({"n": 24}), "{record}");
    assert_eq!(logs(&record).len(), 3);
}

#[tokio::test]
async fn a_sequence_of_the_utils_actions_works_as_openwhisk_documents() {
    let Some(platform) = support::platform_with_invoker("utilsseq", "", &[]) else {
        return;
    };
    // As `wsk action create sortSequence --sequence /whisk.system/utils/split,/whisk.system/utils/sort`.
    sequence(
        &platform,
        "sortSequence",
        &["/whisk.system/utils/split", "/whisk.system/utils/sort"],
    )
    .await;
    let payload = "Over-ripe sushi,\nThe Master\nIs full of regret.";
    let sorted = invoke(
        &platform,
        "sortSequence",
        "blocking=true&result=true",
        json!({"payload": payload}),
    )
    .await;
    assert_eq!(
        sorted.assert_ok(),
        &json!({"length": 3, "lines": ["Is full of regret.", "Over-ripe sushi,", "The Master"]})
    );

    sequence(
        &platform,
        "firstSorted",
        &[
            "/whisk.system/utils/split",
            "/whisk.system/utils/sort",
            "/whisk.system/utils/head",
        ],
    )
    .await;
    let first = invoke(
        &platform,
        "firstSorted",
        "blocking=true",
        json!({"payload": "zebra\napple\nmango"}),
    )
    .await;
    let body = first.assert_ok();
    assert_eq!(
        body["response"]["result"],
        json!({"lines": ["apple"], "num": 1}),
        "{body}"
    );
    let steps = logs(body);
    assert_eq!(steps.len(), 3);
    let head = platform.wait_for_record(&steps[2]).await;
    assert_eq!(head["name"], "head");
    assert_eq!(head["namespace"], "guest", "runs as the caller: {head}");
    assert_eq!(
        annotation(&head, "path"),
        Some(json!("whisk.system/utils/head"))
    );
}

// ---- conductor actions -------------------------------------------------------------------------

/// Runs `inc`, then `math/double`, then ends with the result (the step is kept in `state`).
const CONDUCTOR_JS: &str = r"
function main(p) {
  switch (p.$step || 0) {
    case 0: return { action: 'inc', params: { n: p.n }, state: { $step: 1 } };
    case 1: return { action: 'math/double', params: { n: p.n }, state: { $step: 2 } };
    default: return { params: { n: p.n, done: true } };
  }
}";

/// Names an action that does not exist, then answers the error it is given back.
const LOST_CONDUCTOR_JS: &str = r"
function main(p) {
  if (p.error !== undefined) return { params: { seen: p.error } };
  return { action: 'nowhere', params: {} };
}";

#[tokio::test]
async fn a_conductor_action_drives_two_components_and_records_the_composition() {
    let Some(platform) = support::platform_with_invoker("conductor", "", &[]) else {
        return;
    };
    math_actions(&platform).await;
    put(
        &platform,
        "actions/drive",
        json!({"exec": {"kind": "nodejs:20", "code": CONDUCTOR_JS},
               "annotations": [{"key": "conductor", "value": true}]}),
    )
    .await;

    // (3 + 1) * 2
    let reply = invoke(&platform, "drive", "blocking=true", json!({"n": 3})).await;
    let body = reply.assert_ok().clone();
    assert_eq!(
        body["response"]["result"],
        json!({"n": 8, "done": true}),
        "{body}"
    );
    assert_eq!(body["name"], "drive");
    assert_eq!(annotation(&body, "conductor"), Some(json!(true)));
    assert_eq!(annotation(&body, "kind"), Some(json!("sequence")));
    assert_eq!(annotation(&body, "topmost"), Some(json!(true)));
    let id = id_of(&reply);
    let steps = logs(&body);
    let mut names = Vec::new();
    for step in &steps {
        let record = platform.wait_for_record(step).await;
        assert_eq!(record["cause"], id, "{record}");
        assert_eq!(record["response"]["status"], "success", "{record}");
        names.push(record["name"].as_str().expect("name").to_owned());
    }
    assert_eq!(names, ["drive", "inc", "drive", "double", "drive"]);

    // Non-blocking: the composition's id, then its record.
    let accepted = invoke(&platform, "drive", "", json!({"n": 0})).await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.text);
    let record = platform.wait_for_record(&id_of(&accepted)).await;
    assert_eq!(record["response"]["result"], json!({"n": 2, "done": true}));

    // A component that cannot be resolved does not end the composition: the conductor is run
    // again with the error, and decides.
    put(
        &platform,
        "actions/lost",
        json!({"exec": {"kind": "nodejs:20", "code": LOST_CONDUCTOR_JS},
               "annotations": [{"key": "conductor", "value": true}]}),
    )
    .await;
    let reply = invoke(&platform, "lost", "blocking=true", json!({})).await;
    let body = reply.assert_ok();
    assert_eq!(
        body["response"]["result"],
        json!({"seen": "Failed to resolve action with name 'nowhere' during composition."}),
        "{body}"
    );
    assert_eq!(
        logs(body).len(),
        2,
        "two conductor runs, no component: {body}"
    );
}

// ---- triggers and rules ------------------------------------------------------------------------

async fn rule(platform: &Platform, name: &str, trigger: &str, action: &str) {
    put(
        platform,
        &format!("rules/{name}"),
        json!({"trigger": format!("/_/{trigger}"), "action": format!("/_/{action}")}),
    )
    .await;
}

async fn fire(platform: &Platform, trigger: &str, payload: Value) -> support::Reply {
    platform
        .guest(
            Method::POST,
            &format!("/namespaces/_/triggers/{trigger}"),
            Some(payload),
        )
        .await
}

/// Fires and expects 202; returns the trigger's record (polled for).
async fn fire_accepted(platform: &Platform, trigger: &str, payload: Value) -> Value {
    let reply = fire(platform, trigger, payload).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
    platform.wait_for_record(&id_of(&reply)).await
}

async fn set_rule_status(platform: &Platform, name: &str, status: &str) {
    platform
        .guest(
            Method::POST,
            &format!("/namespaces/_/rules/{name}"),
            Some(json!({"status": status})),
        )
        .await
        .assert_ok();
    let rule = platform
        .guest(Method::GET, &format!("/namespaces/_/rules/{name}"), None)
        .await;
    assert_eq!(rule.assert_ok()["status"], status, "{}", rule.text);
}

#[tokio::test]
async fn a_trigger_fans_out_to_a_plain_a_packaged_and_a_sequence_action() {
    let Some(platform) = support::platform_with_invoker("fanout", "", &[]) else {
        return;
    };
    action(&platform, "hello", "nodejs:20", ECHO_JS).await;
    put(&platform, "packages/pkg", json!({})).await;
    action(&platform, "pkg/inner", "python:3.11", ECHO_PY).await;
    sequence(&platform, "chain", &["/_/hello", "/_/pkg/inner"]).await;
    put(
        &platform,
        "triggers/t",
        json!({"parameters": [{"key": "a", "value": 1}, {"key": "b", "value": 2}]}),
    )
    .await;
    rule(&platform, "r1", "t", "hello").await;
    rule(&platform, "r2", "t", "pkg/inner").await;
    rule(&platform, "r3", "t", "chain").await;
    let status = platform
        .guest(Method::GET, "/namespaces/_/rules/r1", None)
        .await;
    assert_eq!(status.assert_ok()["status"], "active");

    let record = fire_accepted(&platform, "t", json!({"b": 20, "c": 30})).await;
    assert_eq!(record["name"], "t");
    assert_eq!(record["response"]["result"], json!({"b": 20, "c": 30}));
    let lines = rule_lines(&record);
    assert_eq!(lines.len(), 3, "one line per rule: {record}");
    for (rule, action) in [
        ("guest/r1", "guest/hello"),
        ("guest/r2", "guest/pkg/inner"),
        ("guest/r3", "guest/chain"),
    ] {
        let line = lines
            .iter()
            .find(|line| line["rule"] == rule)
            .unwrap_or_else(|| panic!("no line for {rule}: {lines:?}"));
        assert_eq!(line["action"], action, "{line}");
        assert_eq!(line["statusCode"], 0, "{line}");
        assert_eq!(line["success"], true, "{line}");
        let started = line["activationId"].as_str().expect("activationId");
        let ran = platform.wait_for_record(started).await;
        // Trigger parameters merged under the fired payload, which wins on `b`.
        let result = &ran["response"]["result"];
        assert_eq!(result["a"], 1, "{rule}: {ran}");
        assert_eq!(result["b"], 20, "{rule}: {ran}");
        assert_eq!(result["c"], 30, "{rule}: {ran}");
        assert_eq!(ran["response"]["status"], "success", "{ran}");
        if rule == "guest/r3" {
            assert_eq!(annotation(&ran, "kind"), Some(json!("sequence")));
            assert_eq!(logs(&ran).len(), 2, "{ran}");
        }
    }

    // An inactive rule is skipped.
    set_rule_status(&platform, "r1", "inactive").await;
    let record = fire_accepted(&platform, "t", json!({})).await;
    let mut fired: Vec<String> = rule_lines(&record)
        .iter()
        .map(|line| line["rule"].as_str().expect("rule").to_owned())
        .collect();
    fired.sort_unstable();
    assert_eq!(fired, ["guest/r2", "guest/r3"]);
    set_rule_status(&platform, "r1", "active").await;
    let record = fire_accepted(&platform, "t", json!({})).await;
    assert_eq!(rule_lines(&record).len(), 3, "{record}");
}

#[tokio::test]
async fn trigger_fires_without_rules_with_a_deleted_action_and_over_the_limit() {
    let Some(platform) = support::platform_with_invoker("fires", "", &[]) else {
        return;
    };
    action(&platform, "hello", "nodejs:20", ECHO_JS).await;
    action(&platform, "gone", "nodejs:20", ECHO_JS).await;
    put(&platform, "triggers/quiet", json!({})).await;
    put(&platform, "triggers/t", json!({})).await;

    // No rule at all, then only an inactive one: 204, and no record.
    let none = fire(&platform, "quiet", json!({"x": 1})).await;
    assert_eq!(none.status, StatusCode::NO_CONTENT, "{}", none.text);
    assert!(none.text.is_empty(), "{}", none.text);
    rule(&platform, "sleeper", "quiet", "hello").await;
    set_rule_status(&platform, "sleeper", "inactive").await;
    let inactive = fire(&platform, "quiet", json!({"x": 1})).await;
    assert_eq!(inactive.status, StatusCode::NO_CONTENT, "{}", inactive.text);

    // The action a rule names is deleted: the fire still answers 202 and the rule's log line
    // says why nothing ran; the other rule's action runs.
    rule(&platform, "a-gone", "t", "gone").await;
    rule(&platform, "b-hello", "t", "hello").await;
    platform
        .guest(Method::DELETE, "/namespaces/_/actions/gone", None)
        .await
        .assert_ok();
    let record = fire_accepted(&platform, "t", json!({"y": 2})).await;
    let lines = rule_lines(&record);
    assert_eq!(lines.len(), 2, "{record}");
    let gone = lines
        .iter()
        .find(|line| line["rule"] == "guest/a-gone")
        .unwrap_or_else(|| panic!("{lines:?}"));
    assert_eq!(
        gone,
        &json!({"statusCode": 1, "success": false, "rule": "guest/a-gone", "action": "guest/gone",
                "error": "The requested resource does not exist."})
    );
    let hello = lines
        .iter()
        .find(|line| line["rule"] == "guest/b-hello")
        .unwrap_or_else(|| panic!("{lines:?}"));
    let ran = platform
        .wait_for_record(hello["activationId"].as_str().expect("activationId"))
        .await;
    assert_eq!(ran["response"]["result"]["y"], 2, "{ran}");
    assert!(records(&platform, "quiet").await.is_empty());
    assert_eq!(records(&platform, "gone").await.len(), 0);

    // Deleting a trigger a rule names: firing it is a 404 (and starts nothing).
    platform
        .guest(Method::DELETE, "/namespaces/_/triggers/quiet", None)
        .await
        .assert_ok();
    fire(&platform, "quiet", json!({}))
        .await
        .assert_error(404, "The requested resource does not exist.");

    // firesPerMinute: a namespace limit of 2 set while running; fires already counted this
    // minute count against it, so the first refusal's count is not known, only its limit.
    let output = platform.admin(&["limits", "set", "guest", "--fires-per-minute", "2"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The server reads limits through its identity cache: wait until it serves the new one.
    platform
        .call_until(
            Method::GET,
            "/namespaces/_/limits",
            Some(support::GUEST_AUTH),
            |reply| reply.body["firesPerMinute"] == 2,
        )
        .await;
    let mut refused = None;
    let mut accepted = 0;
    for _ in 0..4 {
        let reply = fire(&platform, "t", json!({})).await;
        if reply.status == StatusCode::TOO_MANY_REQUESTS {
            refused = Some(reply);
            break;
        }
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
        accepted += 1;
    }
    let refused = refused.expect("a 429 within 4 fires");
    let message = refused.body["error"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("Too many requests in the last minute (count: ")
            && message.ends_with(", allowed: 2)."),
        "{}",
        refused.text
    );
    // The refused fire left no record: only the accepted ones (and the first) are there.
    wait_for_records(&platform, "t", 1 + accepted).await;
    assert_eq!(records(&platform, "t").await.len(), 1 + accepted);
}

// ---- a fast alarm ------------------------------------------------------------------------------

#[tokio::test]
async fn a_two_second_cron_alarm_runs_the_rules_action_again_and_again() {
    let Some(platform) = support::platform_with_invoker("cron2", "", &[]) else {
        return;
    };
    action(&platform, "tock", "nodejs:20", ECHO_JS).await;
    put(&platform, "triggers/every2", json!({})).await;
    rule(&platform, "every2-rule", "every2", "tock").await;
    // As `wsk trigger create every2 --feed /whisk.system/alarms/alarm -p cron '*/2 * * * * *'`.
    let created = platform
        .guest(
            Method::POST,
            "/namespaces/whisk.system/actions/alarms/alarm?blocking=true&result=true",
            Some(
                json!({"lifecycleEvent": "CREATE", "triggerName": "/_/every2",
                        "authKey": support::GUEST_AUTH, "cron": "*/2 * * * * *",
                        "trigger_payload": {"beat": "tock"}}),
            ),
        )
        .await;
    assert_eq!(created.assert_ok(), &json!({"status": "success"}));

    let ran = wait_for_records(&platform, "tock", 3).await;
    for record in &ran {
        assert_eq!(record["response"]["result"]["beat"], "tock", "{record}");
    }
    // Each action run came from a fire of its own (a fire's record may be stored after the
    // action's, so poll).
    let ran: Vec<String> = ran
        .iter()
        .map(|record| {
            record["activationId"]
                .as_str()
                .expect("activationId")
                .to_owned()
        })
        .collect();
    let deadline = Instant::now() + DEADLINE;
    loop {
        let fires = records(&platform, "every2").await;
        let started: Vec<String> = fires
            .iter()
            .flat_map(rule_lines)
            .filter_map(|line| line["activationId"].as_str().map(str::to_owned))
            .collect();
        let unexplained: Vec<&String> = ran.iter().filter(|id| !started.contains(id)).collect();
        if unexplained.is_empty() {
            assert!(fires.len() >= ran.len(), "{} fires", fires.len());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "runs without a fire: {unexplained:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    platform
        .guest(
            Method::POST,
            "/namespaces/whisk.system/actions/alarms/alarm?blocking=true&result=true",
            Some(
                json!({"lifecycleEvent": "DELETE", "triggerName": "/_/every2",
                        "authKey": support::GUEST_AUTH}),
            ),
        )
        .await
        .assert_ok();
}
