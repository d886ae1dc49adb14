//! Checks of `deploy/` that need no container engine or Kubernetes (neither runs here): the
//! manifests parse as YAML and hold together (names, namespaces, counts, privileges), the
//! environment they set is what the binary reads, and the Containerfile has its two stages.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_json::Value;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

/// Every document of every manifest, with the file it came from.
fn documents() -> Vec<(String, Value)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(deploy_dir().join("kubernetes"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no manifests");
    let mut documents = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        for document in serde_norway::Deserializer::from_str(&text) {
            let value = Value::deserialize(document)
                .unwrap_or_else(|error| panic!("{name} is not valid YAML: {error}"));
            documents.push((name.clone(), value));
        }
    }
    documents
}

fn find<'a>(documents: &'a [(String, Value)], kind: &str, name: &str) -> &'a Value {
    documents
        .iter()
        .map(|(_, document)| document)
        .find(|document| document["kind"] == kind && document["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn help(role: &str) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_whisk"))
        .args([role, "--help"])
        .output()
        .unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn every_manifest_document_is_a_named_kubernetes_object() {
    let documents = documents();
    for (file, document) in &documents {
        for field in ["apiVersion", "kind"] {
            assert!(
                document[field].is_string(),
                "{file}: no {field} in {document}"
            );
        }
        assert!(
            document["metadata"]["name"].is_string(),
            "{file}: unnamed {document}"
        );
        let cluster_wide = ["Namespace", "ClusterRole", "ClusterRoleBinding"];
        if !cluster_wide.contains(&document["kind"].as_str().unwrap()) {
            assert_eq!(
                document["metadata"]["namespace"], "whisk",
                "{file}: {document}"
            );
        }
    }
}

#[test]
fn controllers_and_invokers_are_wired_as_documented() {
    let documents = documents();
    let config = find(&documents, "ConfigMap", "whisk-cluster");
    let controllers = find(&documents, "StatefulSet", "whisk-controller");
    assert_eq!(
        controllers["spec"]["replicas"].to_string(),
        config["data"]["WHISK_CONTROLLERS"].as_str().unwrap(),
        "--controllers must match the replicas"
    );
    let service = find(&documents, "Service", "whisk-controller");
    assert_eq!(
        service["spec"]["selector"],
        controllers["spec"]["template"]["metadata"]["labels"]
    );
    assert_eq!(
        controllers["spec"]["selector"]["matchLabels"],
        controllers["spec"]["template"]["metadata"]["labels"]
    );

    let invokers = find(&documents, "DaemonSet", "whisk-invoker");
    let pod = &invokers["spec"]["template"]["spec"];
    assert_eq!(
        invokers["spec"]["selector"]["matchLabels"],
        invokers["spec"]["template"]["metadata"]["labels"]
    );
    let invoker = &pod["containers"][0];
    assert_eq!(invoker["securityContext"]["privileged"], true);
    assert!(pod.get("hostPID").is_none(), "the invoker needs no hostPID");
    assert!(pod.get("hostNetwork").is_none(), "nor the host's network");
    let command = invoker["args"][0].as_str().unwrap();
    for flag in ["--invoker-id", "--api", "--metrics-port 9090"] {
        assert!(command.contains(flag), "{command}");
    }
    assert_eq!(invoker["ports"][0]["containerPort"], 9090);
    let account = find(&documents, "ServiceAccount", "whisk-invoker");
    assert_eq!(pod["serviceAccountName"], account["metadata"]["name"]);
    find(&documents, "Secret", "whisk-store");
}

#[test]
fn the_environment_the_manifests_set_is_read_by_the_binary() {
    let documents = documents();
    let (controller, invoker) = (help("controller"), help("invoker"));
    assert!(invoker.contains("--metrics-port"), "{invoker}");
    let mut names: Vec<String> = Vec::new();
    for kind_name in [("ConfigMap", "whisk-cluster"), ("Secret", "whisk-store")] {
        let document = find(&documents, kind_name.0, kind_name.1);
        let data = document
            .get("data")
            .or_else(|| document.get("stringData"))
            .unwrap();
        names.extend(data.as_object().unwrap().keys().cloned());
    }
    let invokers = find(&documents, "DaemonSet", "whisk-invoker");
    for variable in invokers["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
    {
        names.push(variable["name"].as_str().unwrap().to_owned());
    }
    for name in names {
        // The two logging variables are read before the command line is parsed.
        if name == "WHISK_LOG" || name == "WHISK_LOG_FORMAT" {
            continue;
        }
        let pattern = format!("[env: {name}=");
        assert!(
            controller.contains(&pattern) || invoker.contains(&pattern),
            "{name} is read by neither role"
        );
    }
}

#[test]
fn the_containerfile_builds_then_runs_on_debian_slim_with_the_runtimes() {
    let text = std::fs::read_to_string(deploy_dir().join("Containerfile")).unwrap();
    let stages: Vec<&str> = text
        .lines()
        .filter(|line| line.starts_with("FROM "))
        .collect();
    assert_eq!(stages.len(), 2, "{stages:?}");
    assert!(stages[0].contains("rust:") && stages[0].ends_with(" AS build"));
    assert!(stages[1].contains("debian:") && stages[1].contains("-slim"));
    for package in ["nodejs", "python3", "iproute2", "nftables"] {
        assert!(text.contains(package), "{package} not installed");
    }
    assert!(text.contains("COPY --from=build"));
}
