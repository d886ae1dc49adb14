//! Timings of each proxy run as a plain process (no container): start until listening, `/init`,
//! and a warm `/run` through `RuntimeClient` next to the same request written by hand on a kept
//! socket (the bare HTTP cost). Prints a table; asserts only that the calls succeed, never a time.
//! More runs: `WHISK_LATENCY_RUNS=300 cargo test -p whisk-runtime --test latency -- --nocapture`.
#![allow(clippy::unwrap_used)] // a panic is the right way for a test to fail

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

fn runs() -> usize {
    std::env::var("WHISK_LATENCY_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30)
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[index]
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}

/// One `/run` written by hand on a kept connection: the floor any client can reach.
async fn bare_run(stream: &mut BufReader<TcpStream>, body: &str) -> String {
    let request = format!(
        "POST /run HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream
        .get_mut()
        .write_all(request.as_bytes())
        .await
        .unwrap();
    let mut length = 0;
    loop {
        let mut line = String::new();
        stream.read_line(&mut line).await.unwrap();
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
    }
    let mut reply = vec![0; length];
    stream.read_exact(&mut reply).await.unwrap();
    String::from_utf8(reply).unwrap()
}

async fn measure(name: &str, start: impl Fn() -> Proxy, init_value: serde_json::Value) -> String {
    let started = Instant::now();
    let proxy = start();
    let listening = started.elapsed();
    let client = proxy.client();
    let init_started = Instant::now();
    let reply = init(&client, init_value).await;
    let init_time = init_started.elapsed();
    assert_eq!(reply.status, 200, "{name}: {}", reply.body);

    let payload = run_payload(json!({"hello":"world"}));
    let n = runs();
    let mut warm = Vec::with_capacity(n);
    for _ in 0..n {
        let begun = Instant::now();
        let reply = client.run(&payload, CALL_TIMEOUT).await.unwrap();
        warm.push(begun.elapsed());
        assert_eq!(reply.status, 200, "{name}: {}", reply.body);
    }
    let mut stream = BufReader::new(TcpStream::connect(proxy.addr).await.unwrap());
    stream.get_ref().set_nodelay(true).unwrap();
    let text = payload.to_string();
    let mut bare = Vec::with_capacity(n);
    for _ in 0..n {
        let begun = Instant::now();
        bare_run(&mut stream, &text).await;
        bare.push(begun.elapsed());
    }
    format!(
        "| {name} | {} | {} | {} | {} | {} | {} |",
        ms(listening),
        ms(init_time),
        ms(percentile(&mut warm, 0.5)),
        ms(percentile(&mut warm, 0.99)),
        ms(percentile(&mut bare, 0.5)),
        ms(percentile(&mut bare, 0.99)),
    )
}

#[tokio::test]
async fn proxy_timings_as_plain_processes() {
    let build = tempfile::tempdir().unwrap();
    let exec = gcc(
        build.path(),
        "echo",
        r#"#include <stdio.h>
int main(void) { static char l[1 << 20]; FILE *o = fdopen(3, "w");
  while (fgets(l, sizeof l, stdin)) { fputs("{\"ok\":true}\n", o); fflush(o); } return 0; }"#,
    );
    let mut rows = vec![
        format!("runs per row: {}", runs()),
        "| runtime | start→listening ms | /init ms | warm /run p50 ms | p99 | bare HTTP p50 ms | p99 |"
            .to_string(),
        "|---|---|---|---|---|---|---|".to_string(),
    ];
    rows.push(
        measure(
            "nodejs:20",
            Proxy::node,
            json!({"main":"main","code":"function main(p) { return p; }"}),
        )
        .await,
    );
    rows.push(
        measure(
            "python:3.11",
            Proxy::python,
            json!({"main":"main","code":"def main(a):\n    return a\n"}),
        )
        .await,
    );
    rows.push(
        measure(
            "go:1.20 (actionloop, C exec)",
            || Proxy::native("actionloop"),
            json!({"main":"main","code":base64(&exec),"binary":true}),
        )
        .await,
    );
    rows.push(
        measure(
            "blackbox (skeleton, shell exec)",
            || Proxy::native("skeleton"),
            json!({"main":"main","code":"#!/bin/sh\necho '{\"ok\":true}'\n"}),
        )
        .await,
    );
    println!("{}", rows.join("\n"));
}
