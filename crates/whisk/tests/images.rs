//! Any OCI image as a blackbox action (`--docker IMAGE`): an image archive built at test time
//! (our own `whisk` binary as its skeleton proxy, with the libraries it needs and `/bin/sh`) is
//! imported with `whisk admin image import` and invoked through the REST API, or pushed to the
//! test registry (`.ci/registry`, `WHISK_TEST_REGISTRY`) and pulled by the platform; an image
//! the platform cannot get is OpenWhisk's developer error.

mod support;

use std::path::Path;

use reqwest::Method;
use serde_json::{Value, json};
use support::Platform;
use whisk_image::testing::SkeletonImage;

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find(|line| line.starts_with("Uid:"))
            .and_then(|line| line.split_whitespace().nth(2))
            == Some("0")
    })
}

/// A platform with a real invoker whose host resources are this test's own.
fn platform(name: &str) -> Option<Platform> {
    if !running_as_root() {
        eprintln!("SKIPPED: containers need root, and this test runs as another user");
        return None;
    }
    let pid = std::process::id();
    let slot: u32 = rand::random_range(0..32_768);
    let base = u32::from(std::net::Ipv4Addr::new(10, 192, 0, 0)) + slot * 64;
    let subnet = format!("{}/26", std::net::Ipv4Addr::from(base));
    Some(Platform::start_with_config(&format!(
        "[invoker]\ninstance = \"img-{name}-{pid}\"\nsubnet = \"{subnet}\"\n\
         stem-cells = false\nnetwork = \"none\"\n"
    )))
}

/// A `docker save` archive of the test image (`whisk_image::testing`) tagged `tag`.
fn image_archive(dir: &Path, tag: &str) -> std::path::PathBuf {
    let path = dir.join("image.tar");
    SkeletonImage::build(Path::new(env!("CARGO_BIN_EXE_whisk")), dir)
        .and_then(|image| image.write_docker_archive(&path, tag).map(|()| path))
        .expect("build the test image")
}

async fn create_blackbox(platform: &Platform, name: &str, image: &str) {
    platform
        .guest(
            Method::PUT,
            &format!("/namespaces/_/actions/{name}"),
            Some(json!({"exec": {
                "kind": "blackbox",
                "image": image,
                "code": "#!/bin/sh\necho \"log from the image\" >&2\necho '{\"hello\":\"from the image\"}'\n"
            }})),
        )
        .await
        .assert_ok();
}

/// A blocking invocation's activation record (polled for should the blocking wait end early).
async fn invoke(platform: &Platform, name: &str) -> Value {
    let reply = platform
        .guest(
            Method::POST,
            &format!("/namespaces/_/actions/{name}?blocking=true"),
            Some(json!({})),
        )
        .await;
    let id = reply.body["activationId"]
        .as_str()
        .unwrap_or_else(|| panic!("an activation id in {:?}", reply.body))
        .to_owned();
    if reply.body.get("response").is_some() {
        return reply.body;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let record = platform
            .guest(
                Method::GET,
                &format!("/namespaces/_/activations/{id}"),
                None,
            )
            .await;
        if record.status.is_success() {
            return record.body;
        }
        assert!(std::time::Instant::now() < deadline, "no record for {id}");
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_imported_image_runs_as_a_blackbox_action() {
    let Some(platform) = platform("import") else {
        return;
    };
    let work = tempfile::tempdir().expect("tempdir");
    let archive = image_archive(work.path(), "whisk-test/skeleton:1");

    let output = platform.admin(&[
        "image",
        "import",
        archive.to_str().expect("utf-8 path"),
        "--tag",
        "whisk-test/alias",
    ]);
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(printed.contains("whisk-test/skeleton:1"), "{printed}");
    assert!(printed.contains("whisk-test/alias:latest"), "{printed}");
    let listed = platform.admin(&["image", "list"]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.starts_with("sha256:"), "{listed}");
    assert!(listed.contains("whisk-test/skeleton:1"), "{listed}");

    for (action, image) in [
        ("from-image", "whisk-test/skeleton:1"),
        ("from-alias", "whisk-test/alias"),
    ] {
        create_blackbox(&platform, action, image).await;
        let record = invoke(&platform, action).await;
        assert_eq!(record["response"]["status"], "success", "{record}");
        assert_eq!(
            record["response"]["result"],
            json!({"hello": "from the image"}),
            "{record}"
        );
        let logs = record["logs"].to_string();
        assert!(logs.contains("log from the image"), "{record}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_the_platform_cannot_get_is_a_developer_error() {
    let Some(platform) = platform("missing") else {
        return;
    };
    // Not in the store, and its registry is a loopback port nothing listens on (tests never
    // reach a registry off this machine).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let image = format!("127.0.0.1:{port}/whisk-test/absent:1");
    create_blackbox(&platform, "absent", &image).await;
    let record = invoke(&platform, "absent").await;
    assert_eq!(
        record["response"]["status"], "action developer error",
        "{record}"
    );
    assert_eq!(
        record["response"]["result"],
        json!({"error": format!("Failed to pull container image '{image}'.")}),
        "{record}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_pulled_from_a_registry_runs_as_a_blackbox_action() {
    let Ok(registry) = std::env::var("WHISK_TEST_REGISTRY") else {
        eprintln!("SKIPPED: WHISK_TEST_REGISTRY is not set (.ci/registry start DIR sets it)");
        return;
    };
    let Some(platform) = platform("pull") else {
        return;
    };
    let work = tempfile::tempdir().expect("tempdir");
    let image = format!("{registry}/whisk-test/pulled-{}:1", std::process::id());
    SkeletonImage::build(Path::new(env!("CARGO_BIN_EXE_whisk")), work.path())
        .expect("build the test image")
        .push(&image)
        .await
        .expect("push the test image");

    create_blackbox(&platform, "pulled", &image).await;
    let record = invoke(&platform, "pulled").await;
    assert_eq!(record["response"]["status"], "success", "{record}");
    assert_eq!(
        record["response"]["result"],
        json!({"hello": "from the image"}),
        "{record}"
    );
    // Pulled once, then kept in the data directory's store under the name it was pulled by.
    let listed = platform.admin(&["image", "list"]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.contains(&image), "{listed}");

    let missing = format!(
        "{registry}/whisk-test/never-pushed-{}:1",
        std::process::id()
    );
    create_blackbox(&platform, "never-pushed", &missing).await;
    let record = invoke(&platform, "never-pushed").await;
    assert_eq!(
        record["response"]["result"],
        json!({"error": format!("Failed to pull container image '{missing}'.")}),
        "{record}"
    );
}
