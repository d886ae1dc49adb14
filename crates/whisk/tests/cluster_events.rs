//! The `whisk.system` feeds in a cluster of two controllers and two invokers over the real
//! PostgreSQL and NATS: an alarm created through one controller fires through the elected
//! scheduler, keeps firing (each occurrence once) after the leader is SIGKILLed, and a webhook
//! registered through one controller fires when delivered to the other.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::time::Instant;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::GUEST_AUTH;
use support::cluster::{Cluster, DEADLINE, ECHO, plain_log, put_action};

/// A fire every second for a minute or two is more than the default throttles allow.
const LIMITS: &str = "[limits]\ninvocations-per-minute = 10000\nfires-per-minute = 10000\n";

const ELECTED: &str = "elected to run the alarm scheduler";

/// The trigger records named `name`, read through `controller`.
async fn records(cluster: &Cluster, controller: usize, name: &str) -> Vec<Value> {
    let reply = cluster
        .guest(
            controller,
            Method::GET,
            &format!("/namespaces/_/activations?name={name}&limit=200&docs=true"),
            None,
        )
        .await;
    reply.assert_ok().as_array().cloned().unwrap_or_default()
}

/// Polls `controller` until at least `count` records named `name` exist.
async fn wait_for_records(cluster: &Cluster, controller: usize, name: &str, count: usize) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let found = records(cluster, controller, name).await.len();
        if found >= count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{found} records of {name} through controller {controller}, expected {count}\n{}",
            cluster.logs()
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// Runs a `whisk.system` feed action through `controller`, as `wsk trigger create --feed` does.
async fn feed_action(cluster: &Cluster, controller: usize, action: &str, params: Value) -> Value {
    let reply = cluster
        .guest(
            controller,
            Method::POST,
            &format!("/namespaces/whisk.system/actions/{action}?blocking=true&result=true"),
            Some(params),
        )
        .await;
    assert!(
        reply.status.is_success(),
        "{action}: {} {}\n{}",
        reply.status,
        reply.text,
        cluster.logs()
    );
    reply.body
}

/// A trigger with the feed annotation `wsk` writes, and a rule from it to `echo`.
async fn trigger_with_rule(cluster: &Cluster, trigger: &str, feed: &str) {
    cluster
        .guest(
            0,
            Method::PUT,
            &format!("/namespaces/_/triggers/{trigger}?overwrite=true"),
            Some(json!({"annotations": [{"key": "feed", "value": feed}]})),
        )
        .await
        .assert_ok();
    cluster
        .guest(
            0,
            Method::PUT,
            &format!("/namespaces/_/rules/{trigger}-rule?overwrite=true"),
            Some(json!({"trigger": format!("/_/{trigger}"), "action": "/_/echo"})),
        )
        .await
        .assert_ok();
}

/// How many times `controller` has logged winning the scheduler lock.
fn elections(cluster: &Cluster, controller: usize) -> usize {
    plain_log(&cluster.controllers[controller].log)
        .matches(ELECTED)
        .count()
}

/// Which controllers have logged winning the scheduler lock.
fn elected(cluster: &Cluster) -> Vec<usize> {
    cluster
        .controllers
        .iter()
        .enumerate()
        .filter(|(_, role)| plain_log(&role.log).contains(ELECTED))
        .map(|(index, _)| index)
        .collect()
}

/// Every occurrence of `trigger`'s alarm each controller's scheduler fired (the `scheduled`
/// time it claimed), by controller.
fn fired_occurrences(cluster: &Cluster, trigger: &str) -> Vec<(usize, u64)> {
    let mut fired = Vec::new();
    for (index, role) in cluster.controllers.iter().enumerate() {
        for line in plain_log(&role.log).lines() {
            if !line.contains("alarm fired") || !line.contains(&format!("trigger={trigger}")) {
                continue;
            }
            let scheduled = line
                .split_whitespace()
                .find_map(|field| field.strip_prefix("scheduled="))
                .and_then(|value| value.parse().ok())
                .unwrap_or_else(|| panic!("no scheduled time in: {line}"));
            fired.push((index, scheduled));
        }
    }
    fired
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alarms_fire_once_per_occurrence_across_a_leader_kill_and_webhooks_reach_any_controller() {
    let Some(mut cluster) = Cluster::start_with_api("events", LIMITS) else {
        return;
    };
    put_action(&cluster, "echo", ECHO, json!({"memory": 128})).await;
    cluster.wait_for_invokers("echo").await;

    // Both controllers installed (or found) the shipped packages; either serves them.
    for controller in 0..2 {
        let package = cluster
            .guest(
                controller,
                Method::GET,
                "/namespaces/whisk.system/packages/alarms",
                None,
            )
            .await;
        assert_eq!(package.assert_ok()["name"], "alarms");
    }

    // An alarm every second, created through controller 0 as `wsk` does it.
    trigger_with_rule(&cluster, "every", "/whisk.system/alarms/alarm").await;
    let created = feed_action(
        &cluster,
        0,
        "alarms/alarm",
        json!({"lifecycleEvent": "CREATE", "triggerName": "/_/every", "authKey": GUEST_AUTH,
               "cron": "* * * * * *", "trigger_payload": {"n": "alarm"}}),
    )
    .await;
    assert_eq!(created, json!({"status": "success"}));
    // It fires repeatedly, and the records are readable through both controllers.
    wait_for_records(&cluster, 1, "every", 3).await;
    wait_for_records(&cluster, 0, "every", 3).await;
    let ran = records(&cluster, 1, "echo").await;
    assert!(
        ran.iter()
            .any(|record| record["response"]["result"]["echo"] == "alarm"),
        "the rule's action ran with the alarm's payload: {ran:?}"
    );
    // The feed reads back through the other controller.
    let read = feed_action(
        &cluster,
        1,
        "alarms/alarm",
        json!({"lifecycleEvent": "READ", "triggerName": "/_/every", "authKey": GUEST_AUTH}),
    )
    .await;
    assert_eq!(read["config"]["cron"], "* * * * * *", "{read}");
    assert_eq!(read["status"]["active"], true, "{read}");

    // A webhook registered through controller 0 fires when delivered to controller 1.
    trigger_with_rule(&cluster, "hook", "/whisk.system/webhooks/webhook").await;
    let hook = feed_action(
        &cluster,
        0,
        "webhooks/webhook",
        json!({"lifecycleEvent": "CREATE", "triggerName": "/_/hook", "authKey": GUEST_AUTH}),
    )
    .await;
    let url = hook["url"].as_str().expect("webhook url");
    let token = url.rsplit('/').next().expect("token");
    let delivered = cluster
        .client
        .post(format!("{}/api/v1/webhooks/{token}", cluster.url(1)))
        .json(&json!({"n": "hook"}))
        .timeout(DEADLINE)
        .send()
        .await
        .expect("controller 1 answers");
    assert_eq!(delivered.status(), StatusCode::ACCEPTED);
    wait_for_records(&cluster, 0, "hook", 1).await;
    let deadline = Instant::now() + DEADLINE;
    while !records(&cluster, 0, "echo")
        .await
        .iter()
        .any(|record| record["response"]["result"]["echo"] == "hook")
    {
        assert!(
            Instant::now() < deadline,
            "the webhook's rule never ran\n{}",
            cluster.logs()
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }

    // The leader is the controller that fired the latest occurrence (leadership may have
    // moved on a loaded machine, but never with an occurrence fired twice: checked below).
    assert!(
        !elected(&cluster).is_empty(),
        "someone leads\n{}",
        cluster.logs()
    );
    let leader = fired_occurrences(&cluster, "guest/every")
        .into_iter()
        .max_by_key(|(_, scheduled)| *scheduled)
        .map(|(controller, _)| controller)
        .expect("fires were logged");
    let survivor = 1 - leader;

    // The leader dies; the other takes the lock over and the alarm keeps firing.
    let terms = elections(&cluster, survivor);
    let before = records(&cluster, survivor, "every").await.len();
    cluster.controllers[leader].kill();
    let deadline = Instant::now() + DEADLINE;
    while elections(&cluster, survivor) == terms {
        assert!(
            Instant::now() < deadline,
            "controller {survivor} never took over\n{}",
            cluster.logs()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    wait_for_records(&cluster, survivor, "every", before + 3).await;

    // No occurrence fired twice, whichever scheduler fired it. The records are counted first:
    // the logs only grow after that.
    let stored = records(&cluster, survivor, "every").await.len();
    let fired = fired_occurrences(&cluster, "guest/every");
    eprintln!("occurrences fired (controller, scheduled ms): {fired:?}; leader was {leader}");
    let mut by_occurrence: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for (controller, scheduled) in &fired {
        by_occurrence
            .entry(*scheduled)
            .or_default()
            .push(*controller);
    }
    let twice: Vec<_> = by_occurrence
        .iter()
        .filter(|(_, controllers)| controllers.len() > 1)
        .collect();
    assert!(twice.is_empty(), "fired twice: {twice:?}");
    assert!(
        fired.iter().any(|(controller, _)| *controller == survivor),
        "the survivor fired: {fired:?}"
    );
    // Every trigger record is one logged fire; at most two are not logged yet: one the killed
    // leader made but did not live to log, and one in progress when the records were read.
    let logged = by_occurrence.len();
    assert!(
        stored <= logged + 2,
        "{stored} trigger records for {logged} fired occurrences"
    );

    // The survivor serves the feed routes too: the registration is deleted through it (the
    // route the feed action calls; the invokers relay to controller 0, which may be dead).
    let (user, key) = GUEST_AUTH.split_once(':').expect("uuid:key");
    let deleted = cluster
        .client
        .post(format!(
            "{}/api/v1/feeds/alarms/alarm",
            cluster.url(survivor)
        ))
        .basic_auth(user, Some(key))
        .json(&json!({"lifecycleEvent": "DELETE", "triggerName": "/_/every"}))
        .timeout(DEADLINE)
        .send()
        .await
        .expect("the survivor answers");
    assert_eq!(deleted.status(), StatusCode::OK);
    cluster.stop_all();
}
