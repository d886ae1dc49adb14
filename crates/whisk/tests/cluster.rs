//! A cluster of separate `whisk controller` and `whisk invoker` processes over a real
//! PostgreSQL and a real NATS server (started by `.ci/run`, found through
//! `WHISK_TEST_POSTGRES_URL` and `WHISK_TEST_NATS_URL`). Each test gets a schema and a NATS
//! cluster name of its own, so tests running in parallel never meet.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;
use support::GUEST_AUTH;
use support::cluster::{Cluster, DEADLINE, ECHO, SLEEPY, put_action};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_controllers_invoke_and_a_restarted_cluster_keeps_everything() {
    let Some(mut cluster) = Cluster::start("both", "") else {
        return;
    };
    put_action(&cluster, "echo", ECHO, json!({"memory": 128})).await;
    cluster.wait_for_invokers("echo").await;

    // Blocking through either controller is answered by that controller.
    for n in 0..6 {
        let controller = n % 2;
        let reply = cluster
            .guest(
                controller,
                Method::POST,
                "/namespaces/_/actions/echo?blocking=true",
                Some(json!({"n": n})),
            )
            .await;
        let body = reply.assert_ok();
        assert_eq!(body["response"]["result"]["echo"], n, "{body}");
        assert_eq!(body["response"]["status"], "success");
    }
    // Non-blocking through one, read through the other.
    let accepted = cluster
        .guest(
            0,
            Method::POST,
            "/namespaces/_/actions/echo",
            Some(json!({"n": 42})),
        )
        .await;
    assert_eq!(accepted.status.as_u16(), 202, "{}", accepted.text);
    let id = accepted.body["activationId"]
        .as_str()
        .expect("activation id")
        .to_owned();
    let record = cluster.record(1, &id).await;
    assert_eq!(record["response"]["result"]["echo"], 42, "{record}");

    // The whole cluster down and up again: the action and the records are still there.
    cluster.stop_all();
    cluster.start_all();
    let action = cluster
        .guest(1, Method::GET, "/namespaces/_/actions/echo", None)
        .await;
    assert_eq!(action.assert_ok()["name"], "echo");
    let record = cluster.record(0, &id).await;
    assert_eq!(record["response"]["result"]["echo"], 42, "{record}");
    cluster.wait_for_invokers("echo").await;
    let reply = cluster
        .guest(
            1,
            Method::POST,
            "/namespaces/_/actions/echo?blocking=true&result=true",
            Some(json!({"n": 7})),
        )
        .await;
    assert_eq!(reply.assert_ok()["echo"], 7);
    cluster.stop_all();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_controller_loses_none_of_its_accepted_activations() {
    let Some(mut cluster) = Cluster::start("ctlkill", "") else {
        return;
    };
    put_action(&cluster, "sleepy", SLEEPY, json!({"memory": 128})).await;
    cluster.wait_for_invokers("sleepy").await;

    let mut ids = BTreeSet::new();
    for n in 0..8 {
        let accepted = cluster
            .guest(
                0,
                Method::POST,
                "/namespaces/_/actions/sleepy",
                Some(json!({"n": n, "ms": 2000})),
            )
            .await;
        assert_eq!(accepted.status.as_u16(), 202, "{}", accepted.text);
        ids.insert(
            accepted.body["activationId"]
                .as_str()
                .expect("id")
                .to_owned(),
        );
    }
    cluster.controllers[0].kill();
    // Back at once with the same id: the notes its killed run left are for activations still
    // running on live invokers, so they must not be closed as lost.
    cluster.restart_controller(0);
    for (n, id) in ids.iter().enumerate() {
        let record = cluster.record(n % 2, id).await;
        assert_eq!(record["response"]["status"], "success", "{record}");
    }
    cluster.stop_all();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invoker_killed_under_load_leaves_a_record_for_every_accepted_activation() {
    // Invokers count as dead one second after the balancer sees them silent.
    let Some(mut cluster) = Cluster::start("invkill", "[cluster]\nlost-grace-ms = 1000\n") else {
        return;
    };
    put_action(
        &cluster,
        "sleepy",
        SLEEPY,
        json!({"memory": 128, "timeout": 60000}),
    )
    .await;
    cluster.wait_for_invokers("sleepy").await;

    // 1024 MB per invoker, half of it each controller's: 4 slots of 128 MB per controller and
    // invoker, so 8 through each controller fill both invokers whichever is the action's home.
    let mut ids = BTreeSet::new();
    for n in 0..16 {
        let accepted = cluster
            .guest(
                n % 2,
                Method::POST,
                "/namespaces/_/actions/sleepy",
                Some(json!({"n": n, "ms": 15000})),
            )
            .await;
        assert_eq!(accepted.status.as_u16(), 202, "{}", accepted.text);
        ids.insert(
            accepted.body["activationId"]
                .as_str()
                .expect("id")
                .to_owned(),
        );
    }
    // A blocking caller whose activation may be on the dead invoker gets an answer too.
    let (user, key) = GUEST_AUTH.split_once(':').expect("uuid:key");
    let blocking = tokio::spawn(
        cluster
            .client
            .post(format!(
                "{}/api/v1/namespaces/_/actions/sleepy?blocking=true",
                cluster.url(1)
            ))
            .basic_auth(user, Some(key))
            .json(&json!({"n": 99, "ms": 15000}))
            .timeout(DEADLINE)
            .send(),
    );
    cluster.invokers[1].kill();
    let status = blocking
        .await
        .expect("task")
        .expect("blocking call answered")
        .status()
        .as_u16();
    // 200 from the live invoker, 500 with the lost record (a whisk internal error), 202 if the
    // wait ran out.
    assert!([200, 202, 500].contains(&status), "blocking call: {status}");

    let mut lost = 0;
    for id in &ids {
        let record = cluster.record(0, id).await;
        match record["response"]["status"].as_str() {
            Some("success") => {}
            Some("whisk internal error") => lost += 1,
            other => panic!("unexpected status {other:?}: {record}"),
        }
    }
    assert!(
        lost > 0,
        "nothing ran on the killed invoker\n{}",
        cluster.logs()
    );
    assert!(
        lost < ids.len(),
        "nothing ran on the live invoker\n{}",
        cluster.logs()
    );

    // Back with the same instance name, so the host resources the killed one left are swept.
    cluster.restart_invoker(1);
    cluster.stop_all();
}

/// The wall-clock minute the per-minute throttles count in.
fn wall_minute() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970");
    now.as_secs() / 60
}

/// Sleeps until the next wall-clock minute has begun, so its counts start from zero.
async fn next_minute() {
    let start = wall_minute();
    while wall_minute() == start {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_minute_throttles_hold_across_both_controllers() {
    let limits = "[limits]\ninvocations-per-minute = 5\nfires-per-minute = 2\n";
    let Some(mut cluster) = Cluster::start("rate", limits) else {
        return;
    };
    // The throttles count before the action or trigger is looked up, so missing ones need no
    // invoker. The counts are per wall-clock minute: a run that straddles a minute boundary
    // proves nothing, so it starts again at the beginning of the next minute.
    let deadline = Instant::now() + DEADLINE * 2;
    loop {
        let minute = wall_minute();
        let mut statuses = Vec::new();
        for n in 0..6 {
            let reply = cluster
                .guest(
                    n % 2,
                    Method::POST,
                    "/namespaces/_/actions/missing?blocking=true",
                    Some(json!({})),
                )
                .await;
            statuses.push((reply.status.as_u16(), reply));
        }
        let mut fires = Vec::new();
        for n in 0..3 {
            fires.push(
                cluster
                    .guest(n % 2, Method::POST, "/namespaces/_/triggers/missing", None)
                    .await,
            );
        }
        if wall_minute() != minute {
            assert!(Instant::now() < deadline, "never ran within one minute");
            next_minute().await;
            continue;
        }
        for (status, reply) in &statuses[..5] {
            assert_eq!(*status, 404, "within the limit: {}", reply.text);
        }
        // The sixth call of the minute, through whichever controller, is refused.
        statuses[5].1.assert_error(
            429,
            "Too many requests in the last minute (count: 6, allowed: 5).",
        );
        for fire in &fires[..2] {
            assert_eq!(fire.status.as_u16(), 404, "within the limit: {}", fire.text);
        }
        fires[2].assert_error(
            429,
            "Too many requests in the last minute (count: 3, allowed: 2).",
        );
        break;
    }
    cluster.stop_all();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_invocations_are_counted_across_both_controllers() {
    let Some(mut cluster) = Cluster::start("concurrent", "[limits]\nconcurrent-invocations = 1\n")
    else {
        return;
    };
    put_action(
        &cluster,
        "sleepy",
        SLEEPY,
        json!({"memory": 128, "timeout": 300_000}),
    )
    .await;
    cluster.wait_for_invokers("sleepy").await;
    // The warm-up calls' notes close when their records are stored, which may be just after
    // their answers: until then the namespace is still at its limit.
    let deadline = Instant::now() + DEADLINE;
    loop {
        let reply = cluster
            .guest(
                0,
                Method::POST,
                "/namespaces/_/actions/sleepy",
                Some(json!({"ms": 280_000})),
            )
            .await;
        if reply.status.as_u16() == 202 {
            break;
        }
        // Both warm-up notes may still be open, so the count is 1 or 2.
        assert_eq!(reply.status.as_u16(), 429, "{}", reply.text);
        assert!(
            reply.body["error"]
                .as_str()
                .is_some_and(|error| error.starts_with("Too many concurrent requests in flight")),
            "{}",
            reply.text
        );
        assert!(Instant::now() < deadline, "warm-up notes never closed");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The other controller has nothing in flight itself, yet sees the namespace at its limit.
    cluster
        .guest(
            1,
            Method::POST,
            "/namespaces/_/actions/sleepy",
            Some(json!({"ms": 1})),
        )
        .await
        .assert_error(
            429,
            "Too many concurrent requests in flight (count: 1, allowed: 1).",
        );
    cluster.stop_all();
}
