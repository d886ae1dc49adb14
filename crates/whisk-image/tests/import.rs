//! Importing image archives built at test time, in both formats, and building their root
//! filesystems.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::Path;

use serde_json::json;
use whisk_image::{Digest, ImageError, ImageStore};

/// A layer tar from (path, content) pairs; a `None` content is a directory.
fn layer(entries: &[(&str, Option<&str>)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, content) in entries {
        let mut header = tar::Header::new_gnu();
        match content {
            Some(content) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(0o755);
                header.set_size(content.len() as u64);
                builder
                    .append_data(&mut header, path, content.as_bytes())
                    .unwrap();
            }
            None => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                builder.append_data(&mut header, path, &b""[..]).unwrap();
            }
        }
    }
    builder.into_inner().unwrap()
}

/// An archive tar from (path, bytes) pairs.
fn archive(files: &[(String, Vec<u8>)], at: &Path) {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, bytes) in files {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o644);
        header.set_size(bytes.len() as u64);
        builder.append_data(&mut header, path, &bytes[..]).unwrap();
    }
    fs::write(at, builder.into_inner().unwrap()).unwrap();
}

fn config() -> Vec<u8> {
    json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["PATH=/bin", "GREETING=hi"], "Entrypoint": ["/bin/proxy"], "Cmd": ["--port", "8080"], "WorkingDir": "/app"}
    })
    .to_string()
    .into_bytes()
}

fn two_layers() -> (Vec<u8>, Vec<u8>) {
    let lower = layer(&[
        ("bin", None),
        ("bin/proxy", Some("proxy v1")),
        ("app/old.txt", Some("old")),
    ]);
    let upper = layer(&[
        ("bin/proxy", Some("proxy v2")),
        ("app/.wh.old.txt", Some("")),
        ("app/new.txt", Some("new")),
    ]);
    (lower, upper)
}

fn check_rootfs(store: &ImageStore, reference: &str) {
    let image = store.resolve(reference).unwrap();
    assert_eq!(image.config.command(), ["/bin/proxy", "--port", "8080"]);
    assert_eq!(image.config.working_dir.as_deref(), Some("/app"));
    let root = store.rootfs(&image).unwrap();
    assert_eq!(
        fs::read_to_string(root.join("bin/proxy")).unwrap(),
        "proxy v2"
    );
    assert_eq!(fs::read_to_string(root.join("app/new.txt")).unwrap(), "new");
    assert!(!root.join("app/old.txt").exists());
    // Built once: a second call returns the same directory without rebuilding.
    let marker = fs::metadata(root.join("bin/proxy"))
        .unwrap()
        .modified()
        .unwrap();
    let again = store.rootfs(&image).unwrap();
    assert_eq!(again, root);
    assert_eq!(
        fs::metadata(again.join("bin/proxy"))
            .unwrap()
            .modified()
            .unwrap(),
        marker
    );
}

#[test]
fn imports_a_docker_save_archive() {
    let dir = tempfile::tempdir().unwrap();
    let (lower, upper) = two_layers();
    let manifest = json!([{
        "Config": "abc.json",
        "RepoTags": ["example/echo:1.0"],
        "Layers": ["l1/layer.tar", "l2/layer.tar"]
    }]);
    let path = dir.path().join("image.tar");
    archive(
        &[
            ("manifest.json".into(), manifest.to_string().into_bytes()),
            ("abc.json".into(), config()),
            ("l1/layer.tar".into(), lower),
            ("l2/layer.tar".into(), upper),
        ],
        &path,
    );
    let store = ImageStore::open(dir.path().join("images")).unwrap();
    let imported = store.import_archive(&path, &["extra-name".into()]).unwrap();
    assert_eq!(imported.len(), 1);
    assert_eq!(
        imported[0].references,
        ["example/echo:1.0", "extra-name:latest"]
    );
    assert_eq!(imported[0].layers.len(), 2);
    check_rootfs(&store, "example/echo:1.0");
    check_rootfs(&store, "extra-name");
    assert_eq!(store.list().unwrap().len(), 1);
    // Importing the same archive again changes nothing.
    let again = store.import_archive(&path, &[]).unwrap();
    assert_eq!(again[0].digest, imported[0].digest);
}

#[test]
fn imports_an_oci_layout_archive() {
    let dir = tempfile::tempdir().unwrap();
    let (lower, upper) = two_layers();
    let config = config();
    let blob = |bytes: &[u8]| {
        (
            format!("blobs/sha256/{}", Digest::of_bytes(bytes).hex()),
            bytes.to_vec(),
        )
    };
    let descriptor = |bytes: &[u8], media: &str| json!({"mediaType": media, "digest": Digest::of_bytes(bytes).to_string(), "size": bytes.len()});
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": descriptor(&config, "application/vnd.oci.image.config.v1+json"),
        "layers": [
            descriptor(&lower, "application/vnd.oci.image.layer.v1.tar"),
            descriptor(&upper, "application/vnd.oci.image.layer.v1.tar"),
        ]
    })
    .to_string()
    .into_bytes();
    let mut manifest_descriptor =
        descriptor(&manifest, "application/vnd.oci.image.manifest.v1+json");
    manifest_descriptor["annotations"] = json!({"org.opencontainers.image.ref.name": "oci/echo:2"});
    let index = json!({"schemaVersion": 2, "manifests": [manifest_descriptor]});
    let path = dir.path().join("oci.tar");
    archive(
        &[
            (
                "oci-layout".into(),
                br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
            ),
            ("index.json".into(), index.to_string().into_bytes()),
            blob(&manifest),
            blob(&config),
            blob(&lower),
            blob(&upper),
        ],
        &path,
    );
    let store = ImageStore::open(dir.path().join("images")).unwrap();
    let imported = store.import_archive(&path, &[]).unwrap();
    assert_eq!(imported[0].digest, Digest::of_bytes(&manifest).to_string());
    check_rootfs(&store, "oci/echo:2");
    check_rootfs(&store, &imported[0].digest);
}

#[test]
fn bad_archives_are_refused_with_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path().join("images")).unwrap();

    let unknown = dir.path().join("unknown.tar");
    archive(&[("hello.txt".into(), b"hi".to_vec())], &unknown);
    let error = store.import_archive(&unknown, &[]).unwrap_err();
    assert!(error.to_string().contains("neither"), "{error}");

    let missing_layer = dir.path().join("missing.tar");
    let manifest = json!([{"Config": "c.json", "RepoTags": ["x:1"], "Layers": ["nope/layer.tar"]}]);
    archive(
        &[
            ("manifest.json".into(), manifest.to_string().into_bytes()),
            ("c.json".into(), config()),
        ],
        &missing_layer,
    );
    let error = store.import_archive(&missing_layer, &[]).unwrap_err();
    assert!(error.to_string().contains("nope/layer.tar"), "{error}");

    let escaping = dir.path().join("escaping.tar");
    let manifest = json!([{"Config": "../../etc/passwd", "RepoTags": ["x:1"], "Layers": []}]);
    archive(
        &[("manifest.json".into(), manifest.to_string().into_bytes())],
        &escaping,
    );
    assert!(store.import_archive(&escaping, &[]).is_err());

    let tampered = dir.path().join("tampered.tar");
    let layer_bytes = layer(&[("a", Some("a"))]);
    let name = format!("blobs/sha256/{}", Digest::of_bytes(b"something else").hex());
    let manifest = json!({
        "config": {"digest": Digest::of_bytes(&config()).to_string()},
        "layers": [{"digest": format!("sha256:{}", Digest::of_bytes(b"something else").hex())}]
    })
    .to_string()
    .into_bytes();
    let index = json!({"manifests": [{"digest": Digest::of_bytes(&manifest).to_string()}]});
    archive(
        &[
            ("oci-layout".into(), b"{}".to_vec()),
            ("index.json".into(), index.to_string().into_bytes()),
            (
                format!("blobs/sha256/{}", Digest::of_bytes(&manifest).hex()),
                manifest.clone(),
            ),
            (
                format!("blobs/sha256/{}", Digest::of_bytes(&config()).hex()),
                config(),
            ),
            (name, layer_bytes),
        ],
        &tampered,
    );
    let error = store.import_archive(&tampered, &[]).unwrap_err();
    assert!(error.to_string().contains("does not match"), "{error}");

    assert!(matches!(
        store.resolve("never/imported").unwrap_err(),
        ImageError::NotFound(_)
    ));
    assert!(store.list().unwrap().is_empty(), "nothing half-imported");
}
