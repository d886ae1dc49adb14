//! Failover in a cluster of separate processes over a real PostgreSQL and NATS (see
//! `support/cluster.rs`): activations waiting on an invoker that dies run on another one, those
//! it had started end in a `whisk internal error` record, and a controller that dies for good
//! leaves nothing open (the others close what it cannot).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Instant;

use reqwest::Method;
use serde_json::{Value, json};
use support::GUEST_AUTH;
use support::cluster::{Cluster, DEADLINE, Role, SLEEPY, plain_log, put_action};

/// Sends `signal` (a name such as `STOP`) to a cluster process.
fn signal(role: &Role, signal: &str) {
    let pid = role.child.as_ref().expect("running").id();
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{signal} {pid}");
}

/// The lines of `role`'s log that contain every one of `needles`.
fn lines_with(role: &Role, needles: &[&str]) -> Vec<String> {
    plain_log(&role.log)
        .lines()
        .filter(|line| needles.iter().all(|needle| line.contains(needle)))
        .map(str::to_owned)
        .collect()
}

/// Waits until `role`'s log has at least `count` lines with every one of `needles`.
async fn wait_for_lines(cluster: &Cluster, role: &Role, needles: &[&str], count: usize) {
    let deadline = Instant::now() + DEADLINE;
    while lines_with(role, needles).len() < count {
        assert!(
            Instant::now() < deadline,
            "never logged {count} of {needles:?}\n{}",
            cluster.logs()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// A non-blocking invocation through `controller`; its activation id.
async fn accept(cluster: &Cluster, controller: usize, action: &str, params: Value) -> String {
    let accepted = cluster
        .guest(
            controller,
            Method::POST,
            &format!("/namespaces/_/actions/{action}"),
            Some(params),
        )
        .await;
    assert_eq!(accepted.status.as_u16(), 202, "{}", accepted.text);
    accepted.body["activationId"]
        .as_str()
        .expect("activation id")
        .to_owned()
}

/// A blocking invocation through `controller`, in a task of its own.
fn blocking(
    cluster: &Cluster,
    controller: usize,
    action: &str,
    params: Value,
) -> tokio::task::JoinHandle<reqwest::Result<(u16, Value)>> {
    let (user, key) = GUEST_AUTH.split_once(':').expect("uuid:key");
    let request = cluster
        .client
        .post(format!(
            "{}/api/v1/namespaces/_/actions/{action}?blocking=true",
            cluster.url(controller)
        ))
        .basic_auth(user, Some(key))
        .json(&params)
        .timeout(DEADLINE);
    tokio::spawn(async move {
        let response = request.send().await?;
        let status = response.status().as_u16();
        Ok((status, response.json().await?))
    })
}

fn status_of(record: &Value) -> &str {
    record["response"]["status"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activations_waiting_on_a_killed_invoker_run_on_the_other_one() {
    let Some(mut cluster) = Cluster::start("requeue", "[cluster]\nlost-grace-ms = 1000\n") else {
        return;
    };
    // 512 MB each: invoker 0 (1024 MB) runs two at a time and holds the rest unstarted.
    put_action(
        &cluster,
        "sleepy",
        SLEEPY,
        json!({"memory": 512, "timeout": 300_000}),
    )
    .await;
    cluster.wait_for_invokers("sleepy").await;

    // Invoker 1 frozen: once both controllers count it down, everything goes to invoker 0.
    signal(&cluster.invokers[1], "STOP");
    for role in &cluster.controllers {
        wait_for_lines(&cluster, role, &["invoker down", "invoker=1"], 1).await;
    }
    let mut started = Vec::new();
    for n in 0..2 {
        let id = accept(&cluster, n, "sleepy", json!({"n": n, "ms": 280_000})).await;
        wait_for_lines(
            &cluster,
            &cluster.invokers[0],
            &["activation claimed", &id],
            1,
        )
        .await;
        started.push(id);
    }
    // These wait on invoker 0 behind the two that fill it.
    let mut waiting = BTreeSet::new();
    for n in 2..6 {
        waiting.insert(accept(&cluster, n % 2, "sleepy", json!({"n": n, "ms": 1000})).await);
    }
    let caller = blocking(&cluster, 1, "sleepy", json!({"n": 99, "ms": 1000}));

    // Invoker 1 back in rotation, then invoker 0 killed.
    signal(&cluster.invokers[1], "CONT");
    for role in &cluster.controllers {
        wait_for_lines(
            &cluster,
            role,
            &["invoker back in rotation", "invoker=1"],
            1,
        )
        .await;
    }
    cluster.invokers[0].kill();

    let (status, body) = caller.await.expect("task").expect("blocking call answered");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["response"]["status"], "success", "{body}");
    assert_eq!(body["response"]["result"]["n"], 99, "{body}");
    for id in &waiting {
        let record = cluster.record(0, id).await;
        assert_eq!(status_of(&record), "success", "{record}");
        // Run by invoker 1 (which logs it just after storing the record), never started by
        // invoker 0.
        wait_for_lines(&cluster, &cluster.invokers[1], &["activation done", id], 1).await;
        assert!(
            lines_with(&cluster.invokers[0], &["activation claimed", id]).is_empty(),
            "{id} started on invoker 0"
        );
    }
    // What invoker 0 had started is lost with it, and says so.
    for id in &started {
        let record = cluster.record(1, id).await;
        assert_eq!(status_of(&record), "whisk internal error", "{record}");
    }
    // Each controller moved its own.
    for role in &cluster.controllers {
        wait_for_lines(
            &cluster,
            role,
            &["activation moved off a down invoker", "to=1"],
            1,
        )
        .await;
    }

    // Back with the same instance name, so the host resources the killed one left are swept.
    cluster.restart_invoker(0);
    cluster.stop_all();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_killed_for_good_loses_nothing_and_its_lost_notes_are_closed() {
    // Controllers count a silent one dead after the balancer's 5 s plus 1 s, and an activation
    // of a 30 s action is overdue 2 * 30 s + 1 s after it started.
    let extra = "[cluster]\nlost-grace-ms = 1000\noverdue-margin-ms = 1000\n";
    let Some(mut cluster) = Cluster::start("ctlgone", extra) else {
        return;
    };
    put_action(&cluster, "sleepy", SLEEPY, json!({"memory": 128})).await;
    put_action(
        &cluster,
        "stuck",
        SLEEPY,
        json!({"memory": 128, "timeout": 30_000}),
    )
    .await;
    cluster.wait_for_invokers("sleepy").await;

    // One that will be lost: running on an invoker killed after its controller.
    let stuck = accept(&cluster, 0, "stuck", json!({"ms": 29_000})).await;
    let deadline = Instant::now() + DEADLINE;
    let host = loop {
        if let Some(host) = (0..2).find(|&i| {
            !lines_with(&cluster.invokers[i], &["activation claimed", &stuck]).is_empty()
        }) {
            break host;
        }
        assert!(
            Instant::now() < deadline,
            "stuck never started\n{}",
            cluster.logs()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };

    // Others accepted by controller 0 and running when it is killed.
    let claimed = |cluster: &Cluster| {
        (0..2)
            .map(|i| lines_with(&cluster.invokers[i], &["activation claimed", "sleepy"]).len())
            .sum::<usize>()
    };
    let before = claimed(&cluster);
    let mut accepted = BTreeSet::new();
    for n in 0..4 {
        accepted.insert(accept(&cluster, 0, "sleepy", json!({"n": n, "ms": 2000})).await);
    }
    let caller = blocking(&cluster, 0, "sleepy", json!({"n": 99, "ms": 2000}));
    let deadline = Instant::now() + DEADLINE;
    while claimed(&cluster) < before + 5 {
        assert!(
            Instant::now() < deadline,
            "not all started\n{}",
            cluster.logs()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    cluster.controllers[0].kill();
    // Only its waiting connection is lost.
    assert!(
        caller.await.expect("task").is_err(),
        "a killed controller answered"
    );
    for id in &accepted {
        let record = cluster.record(1, id).await;
        assert_eq!(status_of(&record), "success", "{record}");
    }
    // The blocking one completed and was stored too (found by its parameter).
    let deadline = Instant::now() + DEADLINE;
    loop {
        let list = cluster
            .guest(
                1,
                Method::GET,
                "/namespaces/_/activations?name=sleepy&docs=true&limit=200",
                None,
            )
            .await;
        let records = list.body.as_array().cloned().unwrap_or_default();
        if let Some(record) = records
            .iter()
            .find(|record| record["response"]["result"]["n"] == 99)
        {
            assert_eq!(status_of(record), "success", "{record}");
            break;
        }
        assert!(Instant::now() < deadline, "no record of the blocking call");
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }

    // Now its invoker dies too: nobody will complete `stuck`, and its controller is gone.
    cluster.invokers[host].kill();
    let deadline = Instant::now() + DEADLINE;
    let record = loop {
        let reply = cluster
            .guest(
                1,
                Method::GET,
                &format!("/namespaces/_/activations/{stuck}"),
                None,
            )
            .await;
        if reply.status.is_success() {
            break reply.body;
        }
        assert!(
            Instant::now() < deadline,
            "the lost activation was never closed\n{}",
            cluster.logs()
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    };
    assert_eq!(status_of(&record), "whisk internal error", "{record}");
    // Closed by the other controller (which logs it just after writing the record).
    wait_for_lines(
        &cluster,
        &cluster.controllers[1],
        &["closed an activation lost with its controller", &stuck],
        1,
    )
    .await;

    cluster.restart_invoker(u32::try_from(host).expect("id"));
    cluster.stop_all();
}
