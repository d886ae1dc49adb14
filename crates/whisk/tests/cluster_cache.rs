//! The controllers' caches in a cluster: what one controller writes, the others run at once
//! (the write's invalidation is broadcast on the bus), and what `whisk admin` changes in the
//! store directly takes effect everywhere within the identity TTL.
//!
//! Needs root, PostgreSQL and NATS like the other cluster tests; skipped otherwise.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;
use support::cluster::{Cluster, DEADLINE, put_action};

/// The documented bound on invalidation broadcasts reaching the other controller.
const BROADCAST_BOUND: Duration = Duration::from_secs(2);
/// The documented bound on `whisk admin` changes (`whisk_controller::cache::IDENTITY_TTL`).
const IDENTITY_TTL: Duration = Duration::from_secs(2);

fn version_code(version: u32) -> String {
    format!("function main() {{ return {{version: {version}}} }}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_through_one_controller_runs_through_the_other_at_once() {
    let Some(cluster) = Cluster::start("cache-update", "") else {
        return;
    };
    put_action(
        &cluster,
        "versioned",
        &version_code(1),
        json!({"memory": 128}),
    )
    .await;
    cluster.wait_for_invokers("versioned").await;
    let run = |controller: usize| {
        let cluster = &cluster;
        async move {
            let reply = cluster
                .guest(
                    controller,
                    Method::POST,
                    "/namespaces/_/actions/versioned?blocking=true&result=true",
                    Some(json!({})),
                )
                .await;
            reply.assert_ok()["version"].as_u64().expect("a version")
        }
    };
    // Controller 1 has version 1 cached now.
    assert_eq!(run(1).await, 1);
    assert_eq!(run(1).await, 1);

    put_action(
        &cluster,
        "versioned",
        &version_code(2),
        json!({"memory": 128}),
    )
    .await;
    let updated = Instant::now();
    let mut new_seen = 0;
    while new_seen < 5 {
        let started = Instant::now();
        let version = run(1).await;
        if version == 2 {
            new_seen += 1;
            continue;
        }
        assert_eq!(version, 1);
        assert!(
            started < updated + BROADCAST_BOUND,
            "controller 1 ran the old code {:?} after the update answered\n{}",
            started - updated,
            cluster.logs()
        );
        assert!(new_seen == 0, "the old code ran again after the new one");
        assert!(updated.elapsed() < DEADLINE, "the new code never ran");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_changes_to_keys_and_limits_reach_every_controller_within_the_identity_ttl() {
    let Some(cluster) = Cluster::start("cache-admin", "") else {
        return;
    };
    let created = cluster.admin(&["user", "create", "carol-cache"]);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let carol = String::from_utf8(created.stdout).unwrap().trim().to_owned();
    // Unknown keys are not cached: the new key works at once on both controllers, which now
    // hold its identity.
    for controller in 0..2 {
        let limits = cluster
            .call_as(controller, &carol, Method::GET, "/namespaces/_/limits")
            .await;
        assert_ne!(limits.assert_ok()["invocationsPerMinute"], 7);
    }

    let set = cluster.admin(&[
        "limits",
        "set",
        "carol-cache",
        "--invocations-per-minute",
        "7",
    ]);
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
    let changed = Instant::now();
    for controller in 0..2 {
        loop {
            let started = Instant::now();
            let limits = cluster
                .call_as(controller, &carol, Method::GET, "/namespaces/_/limits")
                .await;
            let per_minute = limits.assert_ok()["invocationsPerMinute"].clone();
            if per_minute == 7 {
                break;
            }
            assert!(
                started < changed + IDENTITY_TTL,
                "controller {controller} served the old limit {:?} after the change",
                started - changed
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    let blocked = cluster.admin(&["user", "block", "carol-cache"]);
    assert!(
        blocked.status.success(),
        "{}",
        String::from_utf8_lossy(&blocked.stderr)
    );
    let revoked = Instant::now();
    for controller in 0..2 {
        loop {
            let started = Instant::now();
            let reply = cluster
                .call_as(controller, &carol, Method::GET, "/namespaces")
                .await;
            if reply.status.as_u16() == 401 {
                break;
            }
            reply.assert_ok();
            assert!(
                started < revoked + IDENTITY_TTL,
                "controller {controller} accepted a blocked key {:?} after the block",
                started - revoked
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
