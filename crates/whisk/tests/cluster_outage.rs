//! Outages of the cluster's store and bus: a cluster of two controllers and two invokers runs
//! on a PostgreSQL and a nats-server of the test's own, which the test stops and starts again
//! (same port, same data) while activations are in flight. Meanwhile the API answers `503`
//! promptly in OpenWhisk's `{error, code}` shape; afterwards the same processes serve again,
//! every activation accepted before the outage has its true record, and nothing refused during
//! it runs after all.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;
use support::Reply;
use support::cluster::{Cluster, DEADLINE, PrivateServices, SLEEPY, plain_log, put_action};

/// The longest an answer may take while a service is away: seconds, well under the 60 s a
/// blocking invocation may wait.
const PROMPT: Duration = Duration::from_secs(20);

const UNAVAILABLE: &str =
    "The server is currently unavailable (because it is overloaded or down for maintenance).";

/// Accepts `sleepy` non-blocking through `controller`; its activation id.
async fn accept(cluster: &Cluster, controller: usize, n: u64, ms: u64) -> String {
    let reply = cluster
        .guest(
            controller,
            Method::POST,
            "/namespaces/_/actions/sleepy",
            Some(json!({"n": n, "ms": ms})),
        )
        .await;
    assert_eq!(reply.status.as_u16(), 202, "{}", reply.text);
    reply.body["activationId"]
        .as_str()
        .expect("activation id")
        .to_owned()
}

/// `request` answered within [`PROMPT`].
async fn timed(request: impl std::future::Future<Output = Reply>) -> Reply {
    let started = Instant::now();
    let reply = request.await;
    assert!(
        started.elapsed() < PROMPT,
        "answered after {:?}: {}",
        started.elapsed(),
        reply.text
    );
    reply
}

/// Waits until `controller`'s log has more than `before` lines with all of `needles`.
async fn wait_for_log(cluster: &Cluster, log: &std::path::Path, needles: &[&str], before: usize) {
    let deadline = Instant::now() + DEADLINE;
    while count_lines(log, needles) <= before {
        assert!(
            Instant::now() < deadline,
            "no new line with {needles:?}\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn count_lines(log: &std::path::Path, needles: &[&str]) -> usize {
    plain_log(log)
        .lines()
        .filter(|line| needles.iter().all(|needle| line.contains(needle)))
        .count()
}

/// How many records the invokers have kept so far because the store was away.
fn kept_records(cluster: &Cluster) -> usize {
    cluster
        .invokers
        .iter()
        .map(|role| {
            count_lines(
                &role.log,
                &["store the activation record", "retrying until it is back"],
            )
        })
        .sum()
}

/// Every process of the cluster is still the one started first.
fn assert_all_running(cluster: &mut Cluster) {
    for role in cluster
        .controllers
        .iter_mut()
        .chain(cluster.invokers.iter_mut())
    {
        let child = role.child.as_mut().expect("process");
        assert!(
            child.try_wait().expect("wait").is_none(),
            "a process exited; log:\n{}",
            support::cluster::read_log(&role.log)
        );
    }
}

/// Invokes through `controller`, blocking, until it succeeds (the balancers hear the invokers
/// again a beat after the bus is back).
async fn invoke_until_ok(cluster: &Cluster, controller: usize, n: u64) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let reply = cluster
            .guest(
                controller,
                Method::POST,
                "/namespaces/_/actions/sleepy?blocking=true&result=true",
                Some(json!({"n": n})),
            )
            .await;
        if reply.status.is_success() {
            assert_eq!(reply.body["n"], n, "{}", reply.text);
            return;
        }
        assert!(
            Instant::now() < deadline,
            "controller {controller} does not invoke again: {}\n{}",
            reply.text,
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The record of each accepted activation says it succeeded with its own result.
async fn assert_records(cluster: &Cluster, accepted: &[(String, u64)]) {
    for (index, (id, n)) in accepted.iter().enumerate() {
        let record = cluster.record(index % 2, id).await;
        assert_eq!(record["response"]["status"], "success", "{record}");
        assert_eq!(record["response"]["result"]["n"], *n, "{record}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_outage_answers_503_and_every_accepted_activation_keeps_its_record() {
    let Some(services) = PrivateServices::start() else {
        return;
    };
    let mut cluster = Cluster::start_on("pgout", "", &services.postgres, &services.nats);
    put_action(&cluster, "sleepy", SLEEPY, json!({"memory": 128})).await;
    cluster.wait_for_invokers("sleepy").await;

    // Running long enough that none can finish before the store is gone.
    let mut accepted = Vec::new();
    for n in 0..4 {
        let id = accept(&cluster, usize::try_from(n % 2).unwrap(), n, 5000).await;
        accepted.push((id, n));
    }
    let controller_log = cluster.controllers[0].log.clone();
    let blocking_before = count_lines(&controller_log, &["activation accepted", "blocking=true"]);
    let kept_before = kept_records(&cluster);

    let blocking = cluster.guest(
        0,
        Method::POST,
        "/namespaces/_/actions/sleepy?blocking=true",
        Some(json!({"n": 100, "ms": 5000})),
    );
    let outage = async {
        // The blocking call is accepted, then the store goes away under everything in flight.
        wait_for_log(
            &cluster,
            &controller_log,
            &["activation accepted", "blocking=true"],
            blocking_before,
        )
        .await;
        services.pause_postgres();

        let id = &accepted[0].0;
        for controller in 0..2 {
            let get = timed(cluster.guest(
                controller,
                Method::GET,
                "/namespaces/_/actions/sleepy",
                None,
            ))
            .await;
            // The controller may still hold the action and the caller's identity (the latter
            // for at most 2 s) in its cache and answer the read from memory; otherwise the
            // read needs the store.
            if get.status.as_u16() != 200 {
                get.assert_error(503, UNAVAILABLE);
            }
            let invoke = timed(cluster.guest(
                controller,
                Method::POST,
                "/namespaces/_/actions/sleepy",
                Some(json!({"n": 1})),
            ))
            .await;
            invoke.assert_error(503, UNAVAILABLE);
            let record = timed(cluster.guest(
                controller,
                Method::GET,
                &format!("/namespaces/_/activations/{id}"),
                None,
            ))
            .await;
            record.assert_error(503, UNAVAILABLE);
            let list =
                timed(cluster.guest(controller, Method::GET, "/namespaces/_/activations", None))
                    .await;
            list.assert_error(503, UNAVAILABLE);
        }

        // The store stays away until the invokers keep the records of all five activations
        // in flight, which they could not store.
        let deadline = Instant::now() + DEADLINE;
        while kept_records(&cluster) < kept_before + 5 {
            assert!(
                Instant::now() < deadline,
                "the invokers did not finish the activations in flight during the outage\n{}",
                cluster.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        services.resume_postgres();
    };
    let (blocking, ()) = tokio::join!(blocking, outage);

    // The call accepted before the outage is answered with its record once the store is back.
    let body = blocking.assert_ok();
    assert_eq!(body["response"]["result"]["n"], 100, "{body}");
    assert_all_running(&mut cluster);
    for controller in 0..2 {
        invoke_until_ok(
            &cluster,
            controller,
            200 + u64::try_from(controller).unwrap(),
        )
        .await;
    }
    assert_records(&cluster, &accepted).await;
    // Nothing was lost, so nothing was closed as lost; and nothing ran twice: each message
    // stayed with the invoker that kept its record.
    let logs = cluster.logs();
    assert!(!logs.contains("activation lost"), "{logs}");
    assert!(!logs.contains("activation delivered again"), "{logs}");
    for (id, _) in &accepted {
        let runs: usize = cluster
            .invokers
            .iter()
            .map(|role| count_lines(&role.log, &["activation done", id]))
            .sum();
        assert_eq!(runs, 1, "{id} ran {runs} times\n{logs}");
    }
    assert_all_running(&mut cluster);
    cluster.stop_all();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bus_outage_answers_503_and_every_accepted_activation_keeps_its_record() {
    let Some(services) = PrivateServices::start() else {
        return;
    };
    // A short grace, so a controller that took the silence of a bus outage for dead invokers
    // would close their activations well within the outage.
    let mut cluster = Cluster::start_on(
        "natsout",
        "[cluster]\nlost-grace-ms = 1000\n",
        &services.postgres,
        &services.nats,
    );
    put_action(&cluster, "sleepy", SLEEPY, json!({"memory": 128})).await;
    cluster.wait_for_invokers("sleepy").await;

    // Running past the point where a controller would give their invokers up (5 s of silence
    // and the grace).
    let mut accepted = Vec::new();
    for n in 0..4 {
        let id = accept(&cluster, usize::try_from(n % 2).unwrap(), n, 9000).await;
        accepted.push((id, n));
    }
    let controller_log = cluster.controllers[0].log.clone();
    let blocking_before = count_lines(&controller_log, &["activation accepted", "blocking=true"]);

    let blocking = cluster.guest(
        0,
        Method::POST,
        "/namespaces/_/actions/sleepy?blocking=true",
        Some(json!({"n": 100, "ms": 9000})),
    );
    let mut refused = Vec::new();
    let outage = async {
        wait_for_log(
            &cluster,
            &controller_log,
            &["activation accepted", "blocking=true"],
            blocking_before,
        )
        .await;
        services.pause_nats();

        for controller in 0..2 {
            // What needs only the store still works.
            let get = timed(cluster.guest(
                controller,
                Method::GET,
                "/namespaces/_/actions/sleepy",
                None,
            ))
            .await;
            assert_eq!(get.assert_ok()["name"], "sleepy");
            // An invocation cannot be handed to an invoker.
            let invoke = timed(cluster.guest(
                controller,
                Method::POST,
                "/namespaces/_/actions/sleepy",
                Some(json!({"n": 1})),
            ))
            .await;
            invoke.assert_error(503, UNAVAILABLE);
            refused.push(invoke.body["code"].as_str().expect("tid").to_owned());
        }
        // The bus stays away until the activations accepted before it went have all run and
        // been recorded (the invokers reach the store without the bus).
        for (id, _) in &accepted {
            cluster.record(0, id).await;
        }
        services.resume_nats();
    };
    let (blocking, ()) = tokio::join!(blocking, outage);

    // Its completion, published while the bus was away, reaches the controller after it.
    let body = blocking.assert_ok();
    assert_eq!(body["response"]["result"]["n"], 100, "{body}");
    assert_all_running(&mut cluster);
    for controller in 0..2 {
        invoke_until_ok(
            &cluster,
            controller,
            200 + u64::try_from(controller).unwrap(),
        )
        .await;
    }
    assert_records(&cluster, &accepted).await;
    let logs = cluster.logs();
    assert!(!logs.contains("activation lost"), "{logs}");
    // An invocation answered 503 did not reach an invoker once the bus was back (the
    // invokers' lines carry the transaction id the 503 named).
    for tid in &refused {
        for role in &cluster.invokers {
            let log = plain_log(&role.log);
            assert!(
                !log.contains(tid.as_str()),
                "{tid} ran after its 503\n{log}"
            );
        }
    }
    assert_all_running(&mut cluster);
    cluster.stop_all();
}
