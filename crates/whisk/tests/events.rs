//! The whisk.system packages, the alarm scheduler and webhooks through the real binary.
//!
//! The feed provider's routes are driven directly with the user's key (what the feed actions
//! do) in the tests without an invoker; the tests with an invoker (root) run the shipped feed
//! and utils actions themselves.

mod support;

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{GUEST_AUTH, Platform};

const DEADLINE: Duration = Duration::from_secs(60);

async fn put(platform: &Platform, path: &str, body: Value) {
    platform
        .guest(Method::PUT, &format!("{path}?overwrite=true"), Some(body))
        .await
        .assert_ok();
}

/// Trigger `t` with rule `r` to action `hello` (which need not run: without an invoker the
/// trigger record still notes the rule it started).
async fn trigger_with_rule(platform: &Platform, trigger: &str) {
    put(
        platform,
        "/namespaces/_/actions/hello",
        json!({"exec": {"kind": "nodejs:20", "code": "function main(p) { return p }"}}),
    )
    .await;
    put(
        platform,
        &format!("/namespaces/_/triggers/{trigger}"),
        json!({}),
    )
    .await;
    put(
        platform,
        &format!("/namespaces/_/rules/{trigger}-rule"),
        json!({"trigger": format!("/_/{trigger}"), "action": "/_/hello"}),
    )
    .await;
}

async fn feed(platform: &Platform, route: &str, body: Value) -> support::Reply {
    platform
        .call(
            Method::POST,
            &format!("/feeds/{route}"),
            Some(GUEST_AUTH),
            Some(body),
        )
        .await
}

/// The activation records named `name`.
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

/// The sorted names in a package's `actions` or `feeds`.
fn names(package: &Value, list: &str) -> Vec<String> {
    let mut names: Vec<String> = package[list]
        .as_array()
        .unwrap_or_else(|| panic!("{list} in {package}"))
        .iter()
        .filter_map(|action| action["name"].as_str().map(str::to_owned))
        .collect();
    names.sort_unstable();
    names
}

#[tokio::test]
async fn shipped_packages_are_public_and_rewritten_only_when_they_change() {
    let mut platform = Platform::start_with_config("[invoker]\nenabled = false\n");
    let alarms = platform
        .guest(
            Method::GET,
            "/namespaces/whisk.system/packages/alarms",
            None,
        )
        .await;
    let alarms = alarms.assert_ok().clone();
    assert_eq!(alarms["publish"], true);
    // Feed actions are listed as the package's feeds.
    assert_eq!(names(&alarms, "feeds"), ["alarm", "interval", "once"]);
    let webhooks = platform
        .guest(
            Method::GET,
            "/namespaces/whisk.system/packages/webhooks",
            None,
        )
        .await;
    assert_eq!(names(webhooks.assert_ok(), "feeds"), ["webhook"]);
    let utils = platform
        .guest(Method::GET, "/namespaces/whisk.system/packages/utils", None)
        .await;
    assert_eq!(
        names(utils.assert_ok(), "actions"),
        [
            "cat",
            "date",
            "echo",
            "head",
            "hosturl",
            "namespace",
            "sort",
            "split"
        ]
    );
    let feed = platform
        .guest(
            Method::GET,
            "/namespaces/whisk.system/actions/alarms/alarm",
            None,
        )
        .await;
    let feed = feed.assert_ok();
    assert!(
        feed["annotations"]
            .as_array()
            .expect("annotations")
            .contains(&json!({"key": "feed", "value": true})),
        "{feed}"
    );

    platform.restart();
    let again = platform
        .guest(
            Method::GET,
            "/namespaces/whisk.system/packages/alarms",
            None,
        )
        .await;
    assert_eq!(
        again.assert_ok()["updated"],
        alarms["updated"],
        "rewritten on restart"
    );
}

#[tokio::test]
async fn alarm_registrations_are_validated_with_clear_errors() {
    let platform = Platform::start_with_config("[invoker]\nenabled = false\n");
    put(&platform, "/namespaces/_/triggers/t", json!({})).await;
    let cases = [
        (
            "alarms/alarm",
            json!({"lifecycleEvent": "CREATE", "triggerName": "/_/t", "cron": "61 * * * *"}),
            400,
            "cron pattern '61 * * * *' is not valid",
        ),
        (
            "alarms/alarm",
            json!({"lifecycleEvent": "CREATE", "triggerName": "/_/missing", "cron": "* * * * *"}),
            400,
            "trigger /guest/missing does not exist",
        ),
        (
            "alarms/once",
            json!({"lifecycleEvent": "CREATE", "triggerName": "/_/t", "date": "2001-01-01T00:00:00Z"}),
            400,
            "date must be in the future",
        ),
        (
            "alarms/interval",
            json!({"lifecycleEvent": "CREATE", "triggerName": "/_/t", "minutes": 0}),
            400,
            "the minutes parameter must be an integer greater than 0",
        ),
        (
            "alarms/alarm",
            json!({"lifecycleEvent": "FROB", "triggerName": "/_/t", "cron": "* * * * *"}),
            400,
            "unsupported lifecycleEvent FROB",
        ),
        (
            "alarms/alarm",
            json!({"lifecycleEvent": "CREATE", "triggerName": "/other/t", "cron": "* * * * *"}),
            403,
            "the trigger /other/t is not in your namespace",
        ),
        (
            "alarms/alarm",
            json!({"lifecycleEvent": "READ", "triggerName": "/_/t"}),
            404,
            "no feed is registered for trigger /guest/t",
        ),
    ];
    for (route, body, status, message) in cases {
        let reply = feed(&platform, route, body.clone()).await;
        assert_eq!(reply.status.as_u16(), status, "{body}: {}", reply.text);
        let error = reply.body["error"].as_str().unwrap_or_default();
        assert!(error.starts_with(message), "{body}: {error}");
    }
    let anonymous = platform
        .call(
            Method::POST,
            "/feeds/alarms/alarm",
            None,
            Some(json!({"lifecycleEvent": "CREATE", "triggerName": "/_/t", "cron": "* * * * *"})),
        )
        .await;
    assert_eq!(
        anonymous.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        anonymous.text
    );
}

#[tokio::test]
async fn a_cron_alarm_fires_its_trigger_every_second_survives_a_restart_and_stops_on_delete() {
    let mut platform = Platform::start_with_config("[invoker]\nenabled = false\n");
    trigger_with_rule(&platform, "tick").await;
    let created = feed(
        &platform,
        "alarms/alarm",
        json!({"lifecycleEvent": "CREATE", "triggerName": "/_/tick", "cron": "* * * * * *",
               "trigger_payload": {"source": "alarm"}}),
    )
    .await;
    assert_eq!(created.assert_ok(), &json!({"status": "success"}));

    let fired = wait_for_records(&platform, "tick", 2).await;
    // The trigger record's result is the fire body: the alarm's payload.
    assert_eq!(fired[0]["response"]["result"], json!({"source": "alarm"}));
    let read = feed(
        &platform,
        "alarms/alarm",
        json!({"lifecycleEvent": "READ", "triggerName": "/_/tick"}),
    )
    .await;
    let read = read.assert_ok();
    assert_eq!(read["config"]["cron"], "* * * * * *");
    assert_eq!(read["status"]["active"], true);

    // The schedule is kept across a restart.
    platform.restart();
    let before = records(&platform, "tick").await.len();
    wait_for_records(&platform, "tick", before + 2).await;

    let deleted = feed(
        &platform,
        "alarms/alarm",
        json!({"lifecycleEvent": "DELETE", "triggerName": "/_/tick"}),
    )
    .await;
    deleted.assert_ok();
    // A fire that began before the delete may still land; none after it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let settled = records(&platform, "tick").await.len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(records(&platform, "tick").await.len(), settled);
}

#[tokio::test]
async fn a_paused_alarm_does_not_fire_until_unpaused() {
    let platform = Platform::start_with_config("[invoker]\nenabled = false\n");
    trigger_with_rule(&platform, "paused").await;
    let event = |event: &str| json!({"lifecycleEvent": event, "triggerName": "paused", "cron": "* * * * * *"});
    feed(&platform, "alarms/alarm", event("CREATE"))
        .await
        .assert_ok();
    wait_for_records(&platform, "paused", 1).await;
    feed(&platform, "alarms/alarm", event("PAUSE"))
        .await
        .assert_ok();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let settled = records(&platform, "paused").await.len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(records(&platform, "paused").await.len(), settled);
    feed(&platform, "alarms/alarm", event("UNPAUSE"))
        .await
        .assert_ok();
    wait_for_records(&platform, "paused", settled + 1).await;
}

fn now_millis() -> u64 {
    u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis(),
    )
    .expect("millis")
}

#[tokio::test]
async fn an_interval_alarm_fires_at_its_start_date() {
    let platform = Platform::start_with_config("[invoker]\nenabled = false\n");
    trigger_with_rule(&platform, "interval").await;
    feed(
        &platform,
        "alarms/interval",
        json!({"lifecycleEvent": "CREATE", "triggerName": "/_/interval", "minutes": 1,
               "startDate": now_millis() + 5_000, "trigger_payload": "every minute"}),
    )
    .await
    .assert_ok();
    let fired = wait_for_records(&platform, "interval", 1).await;
    assert_eq!(
        fired[0]["response"]["result"],
        json!({"payload": "every minute"})
    );
    let read = feed(
        &platform,
        "alarms/interval",
        json!({"lifecycleEvent": "READ", "triggerName": "/_/interval"}),
    )
    .await;
    let read = read.assert_ok();
    assert_eq!(read["config"]["minutes"], 1);
    assert_eq!(read["status"]["active"], true);
}

#[tokio::test]
async fn a_once_alarm_fires_once_then_deletes_its_trigger_and_rules() {
    let platform = Platform::start_with_config("[invoker]\nenabled = false\n");
    trigger_with_rule(&platform, "once").await;
    feed(
        &platform,
        "alarms/once",
        json!({"lifecycleEvent": "CREATE", "triggerName": "/_/once",
               "date": now_millis() + 5_000, "deleteAfterFire": "rules"}),
    )
    .await
    .assert_ok();
    wait_for_records(&platform, "once", 1).await;
    let deadline = Instant::now() + DEADLINE;
    loop {
        let trigger = platform
            .guest(Method::GET, "/namespaces/_/triggers/once", None)
            .await;
        if trigger.status == StatusCode::NOT_FOUND {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "trigger still there: {}",
            trigger.text
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    platform
        .guest(Method::GET, "/namespaces/_/rules/once-rule", None)
        .await
        .assert_error(404, "The requested resource does not exist.");
    assert_eq!(records(&platform, "once").await.len(), 1);
    // Its registration ended with it.
    let read = feed(
        &platform,
        "alarms/once",
        json!({"lifecycleEvent": "READ", "triggerName": "/_/once"}),
    )
    .await;
    assert_eq!(read.status, StatusCode::NOT_FOUND, "{}", read.text);
}

#[tokio::test]
async fn a_fire_due_while_the_platform_was_down_happens_once_after_the_restart() {
    let mut platform = Platform::start_with_config("[invoker]\nenabled = false\n");
    trigger_with_rule(&platform, "missed").await;
    let date = now_millis() + 5_000;
    feed(
        &platform,
        "alarms/once",
        json!({"lifecycleEvent": "CREATE", "triggerName": "/_/missed", "date": date}),
    )
    .await
    .assert_ok();
    platform.stop();
    // Down past the fire time.
    while now_millis() <= date + 500 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    platform.restart();
    wait_for_records(&platform, "missed", 1).await;
    let deadline = Instant::now() + DEADLINE;
    loop {
        let read = feed(
            &platform,
            "alarms/once",
            json!({"lifecycleEvent": "READ", "triggerName": "/_/missed"}),
        )
        .await;
        if read.assert_ok()["status"]["active"] == false {
            assert_eq!(read.body["status"]["reason"], "schedule finished");
            break;
        }
        assert!(Instant::now() < deadline, "still active: {}", read.text);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Another restart does not fire it again.
    platform.restart();
    feed(
        &platform,
        "alarms/once",
        json!({"lifecycleEvent": "READ", "triggerName": "/_/missed"}),
    )
    .await
    .assert_ok();
    assert_eq!(records(&platform, "missed").await.len(), 1);
}

fn github_signature(secret: &str, body: &[u8]) -> String {
    format!("sha256={}", whisk_events::signature::sign_hex(secret, body))
}

#[tokio::test]
async fn a_github_webhook_fires_only_with_a_valid_signature() {
    let platform = Platform::start_with_config("[invoker]\nenabled = false\n");
    trigger_with_rule(&platform, "push").await;
    let created = feed(
        &platform,
        "webhooks",
        json!({"lifecycleEvent": "CREATE", "triggerName": "/_/push", "github_secret": "hunter2"}),
    )
    .await;
    let url = created.assert_ok()["url"].as_str().expect("url").to_owned();
    assert!(
        url.starts_with(&format!("{}/api/v1/webhooks/", platform.url)),
        "{url}"
    );

    let body = br#"{"ref":"refs/heads/main"}"#;
    let bad = platform
        .raw()
        .post(&url)
        .header("x-hub-signature-256", github_signature("wrong", body))
        .header("content-type", "application/json")
        .body(body.to_vec())
        .send()
        .await
        .expect("send");
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    let unsigned = platform
        .raw()
        .post(&url)
        .body(body.to_vec())
        .send()
        .await
        .expect("send");
    assert_eq!(unsigned.status(), StatusCode::UNAUTHORIZED);
    assert!(records(&platform, "push").await.is_empty());

    let good = platform
        .raw()
        .post(&url)
        .header("x-hub-signature-256", github_signature("hunter2", body))
        .header("x-github-event", "push")
        .header("content-type", "application/json")
        .body(body.to_vec())
        .send()
        .await
        .expect("send");
    assert_eq!(good.status(), StatusCode::ACCEPTED);
    let answer: Value = good.json().await.expect("json");
    let fired = wait_for_records(&platform, "push", 1).await;
    assert_eq!(fired[0]["activationId"], answer["activationId"]);
    let result = &fired[0]["response"]["result"];
    assert_eq!(result["ref"], "refs/heads/main");
    assert_eq!(result["__ow_headers"]["x-github-event"], "push");

    // Deleting the feed retires the URL.
    feed(
        &platform,
        "webhooks",
        json!({"lifecycleEvent": "DELETE", "triggerName": "/_/push"}),
    )
    .await
    .assert_ok();
    let gone = platform
        .raw()
        .post(&url)
        .header("x-hub-signature-256", github_signature("hunter2", body))
        .body(body.to_vec())
        .send()
        .await
        .expect("send");
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_slack_webhook_checks_signature_and_timestamp() {
    let platform = Platform::start_with_config("[invoker]\nenabled = false\n");
    trigger_with_rule(&platform, "slash").await;
    let created = feed(
        &platform,
        "webhooks",
        json!({"lifecycleEvent": "CREATE", "triggerName": "slash", "slack_signing_secret": "s3"}),
    )
    .await;
    let url = created.assert_ok()["url"].as_str().expect("url").to_owned();
    let body = "command=%2Fdeploy&text=now";
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let send = |timestamp: u64, secret: &str| {
        let base = format!("v0:{timestamp}:{body}");
        platform
            .raw()
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-slack-request-timestamp", timestamp.to_string())
            .header(
                "x-slack-signature",
                format!(
                    "v0={}",
                    whisk_events::signature::sign_hex(secret, base.as_bytes())
                ),
            )
            .body(body)
            .send()
    };
    assert_eq!(
        send(now, "wrong").await.expect("send").status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(now - 3600, "s3").await.expect("send").status(),
        StatusCode::UNAUTHORIZED
    );
    assert!(records(&platform, "slash").await.is_empty());
    assert_eq!(
        send(now, "s3").await.expect("send").status(),
        StatusCode::ACCEPTED
    );
    let fired = wait_for_records(&platform, "slash", 1).await;
    assert_eq!(fired[0]["response"]["result"]["command"], "/deploy");
    assert_eq!(fired[0]["response"]["result"]["text"], "now");
}

#[tokio::test]
async fn an_unknown_webhook_token_is_404() {
    let platform = Platform::start_with_config("[invoker]\nenabled = false\n");
    for token in ["0".repeat(64), "short".to_owned()] {
        let reply = platform
            .raw()
            .post(format!("{}/api/v1/webhooks/{token}", platform.url))
            .body("{}")
            .send()
            .await
            .expect("send");
        assert_eq!(reply.status(), StatusCode::NOT_FOUND);
    }
}

// ---- with an invoker: the shipped actions themselves run -------------------------------------

/// Invokes `/whisk.system/<path>` blocking as guest and returns the reply.
async fn invoke_system(platform: &Platform, path: &str, params: Value) -> support::Reply {
    platform
        .guest(
            Method::POST,
            &format!("/namespaces/whisk.system/actions/{path}?blocking=true&result=true"),
            Some(params),
        )
        .await
}

#[tokio::test]
async fn the_alarm_feed_action_registers_a_schedule_that_runs_the_rules_action() {
    let Some(platform) = support::platform_with_invoker("alarm", "", &[]) else {
        return;
    };
    trigger_with_rule(&platform, "every").await;
    // As `wsk trigger create every --feed /whisk.system/alarms/alarm -p cron ...` does.
    let created = invoke_system(
        &platform,
        "alarms/alarm",
        json!({"lifecycleEvent": "CREATE", "triggerName": "/_/every", "authKey": GUEST_AUTH,
               "cron": "* * * * * *", "trigger_payload": {"who": "alarm"}}),
    )
    .await;
    assert_eq!(created.assert_ok(), &json!({"status": "success"}));
    // The rule's action ran with the alarm's payload.
    let ran = wait_for_records(&platform, "hello", 2).await;
    assert_eq!(ran[0]["response"]["result"]["who"], "alarm", "{}", ran[0]);

    // A bad cron is the feed action's application error (so `wsk` rolls the trigger back).
    let refused = invoke_system(
        &platform,
        "alarms/alarm",
        json!({"lifecycleEvent": "CREATE", "triggerName": "/_/every", "authKey": GUEST_AUTH,
               "cron": "every second"}),
    )
    .await;
    assert_eq!(refused.status.as_u16(), 502, "{}", refused.text);
    assert!(
        refused.body["error"]
            .as_str()
            .is_some_and(|error| error.starts_with("cron pattern 'every second'")),
        "{}",
        refused.text
    );

    let deleted = invoke_system(
        &platform,
        "alarms/alarm",
        json!({"lifecycleEvent": "DELETE", "triggerName": "/_/every", "authKey": GUEST_AUTH}),
    )
    .await;
    assert_eq!(deleted.assert_ok(), &json!({"status": "success"}));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let settled = records(&platform, "every").await.len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(records(&platform, "every").await.len(), settled);
}

#[tokio::test]
async fn the_webhook_feed_action_gives_a_url_that_fires_the_rules_action() {
    let Some(platform) = support::platform_with_invoker("webhook", "", &[]) else {
        return;
    };
    trigger_with_rule(&platform, "hook").await;
    let created = invoke_system(
        &platform,
        "webhooks/webhook",
        json!({"lifecycleEvent": "CREATE", "triggerName": "/_/hook", "authKey": GUEST_AUTH,
               "github_secret": "octo"}),
    )
    .await;
    let url = created.assert_ok()["url"].as_str().expect("url").to_owned();
    let body = br#"{"action":"opened"}"#;
    let fired = platform
        .raw()
        .post(&url)
        .header("x-hub-signature-256", github_signature("octo", body))
        .body(body.to_vec())
        .send()
        .await
        .expect("send");
    assert_eq!(fired.status(), StatusCode::ACCEPTED);
    let ran = wait_for_records(&platform, "hello", 1).await;
    assert_eq!(
        ran[0]["response"]["result"]["action"], "opened",
        "{}",
        ran[0]
    );
}

#[tokio::test]
async fn utils_actions_do_what_openwhisk_documents() {
    let Some(platform) = support::platform_with_invoker("utils", "", &[]) else {
        return;
    };
    let cases = [
        ("utils/echo", json!({"a": 1}), json!({"a": 1})),
        (
            "utils/split",
            json!({"payload": "b a\nc"}),
            json!({"lines": ["b a", "c"], "payload": "b a\nc"}),
        ),
        (
            "utils/split",
            json!({"payload": "b,a", "separator": ","}),
            json!({"lines": ["b", "a"], "payload": "b,a"}),
        ),
        (
            "utils/sort",
            json!({"lines": ["b", "c", "a"]}),
            json!({"length": 3, "lines": ["a", "b", "c"]}),
        ),
        (
            "utils/head",
            json!({"lines": ["x", "y", "z"], "num": 2}),
            json!({"lines": ["x", "y"], "num": 2}),
        ),
        (
            "utils/cat",
            json!({"lines": ["x", "y"]}),
            json!({"lines": ["x", "y"], "payload": "x\ny"}),
        ),
        ("utils/namespace", json!({}), json!({"namespace": "guest"})),
    ];
    for (action, params, expected) in cases {
        let reply = invoke_system(&platform, action, params).await;
        assert_eq!(reply.assert_ok(), &expected, "{action}");
    }
    let date = invoke_system(&platform, "utils/date", json!({})).await;
    assert!(
        date.assert_ok()["date"]
            .as_str()
            .is_some_and(|date| date.ends_with('Z')),
        "{}",
        date.text
    );
    let url = invoke_system(&platform, "utils/hosturl", json!({"trigger": "t"})).await;
    assert!(
        url.assert_ok()["url"]
            .as_str()
            .is_some_and(|url| url.ends_with("/api/v1/namespaces/guest/triggers/t")),
        "{}",
        url.text
    );
}
