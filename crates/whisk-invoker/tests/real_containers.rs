//! The invoker with real sandboxed containers (as root): Node.js, Python and native round trips,
//! warm reuse, timeout, out-of-memory, crash and a log flood, each through the whole service
//! (bus message in, stored record and completion out).
#![allow(clippy::unwrap_used)] // a panic is the right way for a test to fail

mod common;

use common::Harness;

use std::time::Duration;

use serde_json::{Value, json};
use whisk_model::activation::{ABNORMAL_RUN, MEMORY_EXHAUSTED, logs_truncated};
use whisk_model::{ActionLimits, Exec, WhiskActivation};

const DEADLINE: Duration = Duration::from_secs(60);

fn code(kind: &str, code: &str) -> Exec {
    Exec::Code {
        kind: kind.into(),
        code: code.into(),
        main: None,
        binary: false,
    }
}

fn limits(timeout: u64, memory: u64, logs: u64) -> ActionLimits {
    ActionLimits {
        timeout,
        memory,
        logs,
        ..ActionLimits::default()
    }
}

fn result(record: &WhiskActivation) -> &Value {
    record.response.result.as_ref().unwrap()
}

const NODE_MARKER: &str = r#"
const fs = require('fs');
function main(params) {
  const seen = fs.existsSync('/tmp/marker');
  fs.writeFileSync('/tmp/marker', 'here');
  console.log('hello from node');
  console.error('and from stderr');
  return { seen, name: params.name, namespace: process.env.__OW_NAMESPACE };
}
"#;

#[tokio::test]
async fn nodejs_round_trip_and_warm_reuse() {
    let Some(mut h) = Harness::start("node", DEADLINE, |_| {}).await else {
        return;
    };
    let action = h
        .put(
            "marker",
            code("nodejs:20", NODE_MARKER),
            ActionLimits::default(),
        )
        .await;
    let first = h.invoke(&action, json!({"name": "Ada"})).await;
    assert!(first.response.is_success(), "{first:?}");
    assert_eq!(
        result(&first),
        &json!({"seen": false, "name": "Ada", "namespace": "guest"})
    );
    assert!(first.annotations.get("initTime").is_some());
    assert_eq!(first.logs.len(), 2, "{:?}", first.logs);
    assert!(
        first
            .logs
            .iter()
            .any(|l| l.ends_with(" stdout: hello from node"))
    );
    assert!(
        first
            .logs
            .iter()
            .any(|l| l.ends_with(" stderr: and from stderr"))
    );

    let second = h.invoke(&action, json!({"name": "Bob"})).await;
    assert_eq!(result(&second)["seen"], true, "the same container ran it");
    assert!(second.annotations.get("initTime").is_none());
    assert_eq!(
        second.logs.len(),
        2,
        "only this activation's lines: {:?}",
        second.logs
    );
    h.stop().await;
}

#[tokio::test]
async fn python_round_trip() {
    let Some(mut h) = Harness::start("python", DEADLINE, |_| {}).await else {
        return;
    };
    let source = "def main(args):\n    print('py log')\n    return {'greeting': 'Hello ' + args.get('name', '?')}\n";
    let action = h
        .put("py", code("python:3.11", source), ActionLimits::default())
        .await;
    let record = h.invoke(&action, json!({"name": "Ada"})).await;
    assert!(record.response.is_success(), "{record:?}");
    assert_eq!(result(&record), &json!({"greeting": "Hello Ada"}));
    assert!(
        record.logs[0].ends_with(" stdout: py log"),
        "{:?}",
        record.logs
    );
    h.stop().await;
}

#[tokio::test]
async fn native_round_trip() {
    let Some(mut h) = Harness::start("native", DEADLINE, |_| {}).await else {
        return;
    };
    let script = "#!/bin/sh\necho \"native log\"\necho '{\"native\": true}'\n";
    let exec = Exec::Blackbox {
        image: "openwhisk/dockerskeleton".into(),
        code: Some(script.into()),
        main: None,
        binary: false,
    };
    let action = h.put("native", exec, ActionLimits::default()).await;
    let record = h.invoke(&action, json!({})).await;
    assert!(record.response.is_success(), "{record:?}");
    assert_eq!(result(&record), &json!({"native": true}));
    assert!(
        record
            .logs
            .iter()
            .any(|l| l.ends_with(" stdout: native log")),
        "{:?}",
        record.logs
    );
    h.stop().await;
}

#[tokio::test]
async fn a_timeout_is_a_developer_error() {
    let Some(mut h) = Harness::start("timeout", DEADLINE, |_| {}).await else {
        return;
    };
    let action = h
        .put(
            "hang",
            code(
                "nodejs:20",
                "function main() { return new Promise(() => {}); }",
            ),
            limits(1000, 256, 10),
        )
        .await;
    let record = h.invoke(&action, json!({})).await;
    assert_eq!(record.response.status_code, 2);
    assert_eq!(
        result(&record),
        &json!({"error": "The action exceeded its time limits of 1000 milliseconds."})
    );
    assert_eq!(record.annotations.get("timeout"), Some(&json!(true)));
    h.stop().await;
}

#[tokio::test]
async fn running_out_of_memory_is_reported() {
    let Some(mut h) = Harness::start("oom", DEADLINE, |_| {}).await else {
        return;
    };
    let source = "function main() { const keep = []; for (;;) { keep.push(Buffer.alloc(8 * 1024 * 1024, 1)); } }";
    let action = h
        .put("hog", code("nodejs:20", source), limits(60_000, 128, 10))
        .await;
    let record = h.invoke(&action, json!({})).await;
    assert_eq!(record.response.status_code, 2, "{record:?}");
    assert_eq!(result(&record), &json!({"error": MEMORY_EXHAUSTED}));
    h.stop().await;
}

#[tokio::test]
async fn a_crash_is_a_developer_error_and_the_next_run_gets_a_new_container() {
    let Some(mut h) = Harness::start("crash", DEADLINE, |_| {}).await else {
        return;
    };
    let source = "function main(p) { if (p.crash) { process.exit(3); } return { pid: process.pid, up: process.uptime() }; }";
    let action = h
        .put("crashy", code("nodejs:20", source), ActionLimits::default())
        .await;
    let record = h.invoke(&action, json!({"crash": true})).await;
    assert_eq!(record.response.status_code, 2, "{record:?}");
    assert_eq!(result(&record), &json!({"error": ABNORMAL_RUN}));
    let next = h.invoke(&action, json!({})).await;
    assert!(next.response.is_success(), "{next:?}");
    assert!(
        next.annotations.get("initTime").is_some(),
        "a new container"
    );
    h.stop().await;
}

#[tokio::test]
async fn a_log_flood_is_truncated_at_the_limit() {
    let Some(mut h) = Harness::start("flood", DEADLINE, |_| {}).await else {
        return;
    };
    let source = "def main(args):\n    for _ in range(30000):\n        print('x' * 99)\n    return {'done': True}\n";
    let action = h
        .put("flood", code("python:3.11", source), limits(60_000, 256, 1))
        .await;
    let record = h.invoke(&action, json!({})).await;
    assert!(record.response.is_success(), "{:?}", record.response);
    let last = record.logs.last().unwrap();
    assert!(
        last.ends_with(&format!(" stderr: {}", logs_truncated(1024 * 1024))),
        "{last}"
    );
    // 100 bytes per line: about 10,000 lines fit in 1 MB.
    assert!(
        (10_000..=10_500).contains(&record.logs.len()),
        "{}",
        record.logs.len()
    );
    // The container is still usable and its next logs start clean.
    let again = h.invoke(&action, json!({})).await;
    assert!(again.response.is_success());
    h.stop().await;
}

#[tokio::test]
async fn an_idle_container_is_frozen_and_thawed_for_the_next_activation() {
    let Some(mut h) = Harness::start("pause", DEADLINE, |config| {
        config.pool.pause_grace = Duration::ZERO;
        config.tick_interval = Duration::from_millis(50);
    })
    .await
    else {
        return;
    };
    let action = h
        .put(
            "marker",
            code("nodejs:20", NODE_MARKER),
            ActionLimits::default(),
        )
        .await;
    let first = h.invoke(&action, json!({})).await;
    assert!(first.response.is_success(), "{first:?}");
    let pool = h.pool().clone();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !pool.snapshot().slots.iter().any(|slot| slot.paused) {
        assert!(tokio::time::Instant::now() < deadline, "not paused in time");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pool.settle().await;
    let second = h.invoke(&action, json!({})).await;
    assert_eq!(
        result(&second)["seen"],
        true,
        "the frozen container was thawed and reused"
    );
    h.stop().await;
}

#[tokio::test]
async fn a_stem_cell_serves_the_first_activation_and_is_replaced() {
    let Some(mut h) = Harness::start("stem", DEADLINE, |config| {
        config.pool.stem_cells = vec![whisk_invoker::StemCellConfig {
            kind: "nodejs:20".into(),
            memory_mb: 256,
            count: 1,
        }];
    })
    .await
    else {
        return;
    };
    let pool = h.pool().clone();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while pool.snapshot().stem_cells() < 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no stem cell in time"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stem = pool.snapshot().slots[0].container.clone();
    let action = h
        .put(
            "marker",
            code("nodejs:20", NODE_MARKER),
            ActionLimits::default(),
        )
        .await;
    let started = std::time::Instant::now();
    let first = h.invoke(&action, json!({"name": "Ada"})).await;
    let with_stem = started.elapsed();
    assert!(first.response.is_success(), "{first:?}");
    assert!(
        first.annotations.get("initTime").is_some(),
        "a stem cell still gets /init"
    );
    pool.settle().await;
    let snapshot = pool.snapshot();
    assert_eq!(snapshot.warm(), 1);
    assert_eq!(snapshot.stem_cells(), 1, "replaced: {snapshot:?}");
    let warm = snapshot.slots.iter().find(|s| s.key.is_some()).unwrap();
    assert_eq!(
        warm.container, stem,
        "the stem cell became the action's container"
    );

    // For comparison: a cold start of another kind, without a stem cell.
    let python = h
        .put(
            "py",
            code("python:3.11", "def main(args):\n    return {}\n"),
            ActionLimits::default(),
        )
        .await;
    let started = std::time::Instant::now();
    h.invoke(&python, json!({})).await;
    let cold = started.elapsed();
    let started = std::time::Instant::now();
    h.invoke(&action, json!({})).await;
    let warm = started.elapsed();
    eprintln!(
        "MEASURED stem-cell start {with_stem:?}, cold start (python) {cold:?}, warm run {warm:?}"
    );
    h.stop().await;
}
