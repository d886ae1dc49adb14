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

/// Copies a host program and what `ldd` says it loads (with the loader) into `root`, each at
/// its host path (the program itself at `at`).
fn copy_program(program: &Path, at: &str, root: &Path) {
    let mut files = vec![(program.to_path_buf(), at.to_owned())];
    let output = std::process::Command::new("ldd")
        .arg(program)
        .output()
        .expect("run ldd");
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(path) = path.filter(|path| path.starts_with('/')) {
            files.push((path.into(), path.to_owned()));
        }
    }
    for (source, target) in files {
        let target = root.join(target.trim_start_matches('/'));
        std::fs::create_dir_all(target.parent().expect("a parent")).expect("mkdir");
        std::fs::copy(&source, &target).expect("copy a file into the image");
    }
}

/// The one layer (an uncompressed tar) and the config of our test image: the skeleton proxy as
/// its command.
fn image_parts(dir: &Path) -> (Vec<u8>, Value) {
    let root = dir.join("root");
    copy_program(Path::new(env!("CARGO_BIN_EXE_whisk")), "/whisk", &root);
    copy_program(Path::new("/bin/sh"), "/bin/sh", &root);
    std::fs::create_dir_all(root.join("etc")).expect("mkdir etc");
    std::fs::write(root.join("etc/hosts"), "127.0.0.1 localhost\n").expect("hosts");

    let mut layer = tar::Builder::new(Vec::new());
    layer.follow_symlinks(false);
    layer.append_dir_all(".", &root).expect("layer");
    let layer = layer.into_inner().expect("layer bytes");
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Env": ["PATH=/bin", "__OW_ACTION_DIR=/tmp/action"],
            "Cmd": ["/whisk", "proxy", "skeleton"],
            "WorkingDir": "/"
        },
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", sha256_hex(&layer))]}
    });
    (layer, config)
}

fn sha256_hex(bytes: &[u8]) -> String {
    let output = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().expect("stdin").write_all(bytes)?;
            child.wait_with_output()
        })
        .expect("run sha256sum");
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .next()
        .expect("a digest")
        .to_owned()
}

/// A `docker save` archive of the test image tagged `tag`.
fn image_archive(dir: &Path, tag: &str) -> std::path::PathBuf {
    let (layer, config) = image_parts(dir);
    let manifest = json!([{
        "Config": "config.json",
        "RepoTags": [tag],
        "Layers": ["layer/layer.tar"]
    }]);
    let path = dir.join("image.tar");
    let mut archive = tar::Builder::new(std::fs::File::create(&path).expect("archive file"));
    for (name, bytes) in [
        ("config.json", config.to_string().into_bytes()),
        ("manifest.json", manifest.to_string().into_bytes()),
        ("layer/layer.tar", layer),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        archive
            .append_data(&mut header, name, bytes.as_slice())
            .expect("archive entry");
    }
    archive.finish().expect("finish the archive");
    path
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
    let (layer, config) = image_parts(work.path());
    let image = format!("{registry}/whisk-test/pulled-{}:1", std::process::id());
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = oci_client::Client::new(oci_client::client::ClientConfig {
        protocol: oci_client::client::ClientProtocol::HttpsExcept(vec![registry.clone()]),
        ..Default::default()
    });
    let reference: oci_client::Reference = image.parse().expect("a reference");
    client
        .push(
            &reference,
            &[oci_client::client::ImageLayer::oci_v1(layer, None)],
            oci_client::client::Config::oci_v1(config.to_string().into_bytes(), None),
            &oci_client::secrets::RegistryAuth::Anonymous,
            None,
        )
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
