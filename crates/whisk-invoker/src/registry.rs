//! Pulling images from OCI registries (`oci-client`, rustls) into the invoker's image store.
//!
//! Registries are spoken to over HTTPS, with the anonymous bearer-token exchange the
//! distribution protocol defines (`oci-client` answers a registry's `401` challenge itself).
//! Plain HTTP is used only for registries on the machine itself (`localhost`, `127.0.0.1`), such
//! as a test registry, never for one reached over a network.
//!
//! Layers are written into the store's staging directory, checked against the manifest's
//! digests and kept as blobs by digest, so an image shared with an imported one or pulled twice
//! takes its space once.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use tracing::info;
use whisk_image::archive::ArchiveImage;
use whisk_image::{Digest, ImageStore, ImportedImage};

use crate::images::ImagePuller;

/// Pulls images anonymously from their registry.
#[derive(Debug, Default)]
pub struct RegistryPuller;

impl RegistryPuller {
    pub fn new() -> RegistryPuller {
        RegistryPuller
    }
}

/// True for a registry on this machine, the only kind spoken to without TLS.
pub fn is_local_registry(registry: &str) -> bool {
    let host = match registry.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => registry,
    };
    host == "localhost" || host == "127.0.0.1" || host == "[::1]"
}

fn client_for(reference: &Reference) -> Client {
    // Installing fails harmlessly when a provider is already installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let registry = reference.resolve_registry().to_string();
    let insecure = if is_local_registry(&registry) {
        vec![registry]
    } else {
        Vec::new()
    };
    Client::new(ClientConfig {
        protocol: ClientProtocol::HttpsExcept(insecure),
        ..ClientConfig::default()
    })
}

#[async_trait]
impl ImagePuller for RegistryPuller {
    async fn pull(&self, store: Arc<ImageStore>, image: &str) -> Result<ImportedImage, String> {
        let reference: Reference = image
            .parse()
            .map_err(|error| format!("not an image reference: {error}"))?;
        let client = client_for(&reference);
        let auth = RegistryAuth::Anonymous;
        let (manifest, manifest_digest, config) = client
            .pull_manifest_and_config(&reference, &auth)
            .await
            .map_err(|error| format!("manifest: {error}"))?;
        let manifest_digest = Digest::parse(&manifest_digest)
            .ok_or_else(|| format!("the registry gave a bad digest {manifest_digest:?}"))?;
        let staging = store.staging().map_err(|error| error.to_string())?;
        let config_path = staging.path().join("config.json");
        tokio::fs::write(&config_path, config.as_bytes())
            .await
            .map_err(|error| format!("write {}: {error}", config_path.display()))?;
        let mut layers: Vec<PathBuf> = Vec::new();
        for (index, layer) in manifest.layers.iter().enumerate() {
            let path = staging.path().join(format!("layer-{index}"));
            let file = tokio::fs::File::create(&path)
                .await
                .map_err(|error| format!("create {}: {error}", path.display()))?;
            client
                .pull_blob(&reference, layer, file)
                .await
                .map_err(|error| format!("layer {}: {error}", layer.digest))?;
            layers.push(path);
        }
        let expected: Vec<String> = manifest.layers.iter().map(|l| l.digest.clone()).collect();
        let found = ArchiveImage {
            references: vec![image.to_string()],
            manifest_digest: Some(manifest_digest),
            config: config_path,
            layers,
        };
        let imported = tokio::task::spawn_blocking(move || {
            let imported = store.import_image(&found, &[]);
            drop(staging);
            imported
        })
        .await
        .map_err(|error| error.to_string())?
        .map_err(|error| error.to_string())?;
        // The store names blobs by what it read; anything else than the manifest's digests
        // means the registry (or the way to it) sent other bytes than the image it described.
        if imported.layers != expected {
            return Err(format!(
                "layers do not match the manifest's digests: got {:?}, want {expected:?}",
                imported.layers
            ));
        }
        info!(image, digest = %imported.digest, layers = imported.layers.len(), "image pulled");
        Ok(imported)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is the right way for a test to fail
mod tests {
    use super::*;

    #[test]
    fn only_registries_on_this_machine_are_spoken_to_without_tls() {
        for local in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:41234",
            "[::1]:5000",
        ] {
            assert!(is_local_registry(local), "{local}");
        }
        for remote in [
            "docker.io",
            "ghcr.io:443",
            "10.0.0.2:5000",
            "localhost.example.com",
        ] {
            assert!(!is_local_registry(remote), "{remote}");
        }
    }

    #[tokio::test]
    async fn a_registry_that_does_not_answer_is_an_error() {
        // A port just bound and closed again: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(ImageStore::open(dir.path()).unwrap());
        let error = RegistryPuller::new()
            .pull(store, &format!("127.0.0.1:{port}/nothing/here:1"))
            .await
            .unwrap_err();
        assert!(error.starts_with("manifest:"), "{error}");
    }

    #[tokio::test]
    async fn a_malformed_reference_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(ImageStore::open(dir.path()).unwrap());
        let error = RegistryPuller::new()
            .pull(store, "Not A Reference")
            .await
            .unwrap_err();
        assert!(error.starts_with("not an image reference"), "{error}");
    }
}
