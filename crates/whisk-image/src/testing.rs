//! A small runnable image for tests and benchmarks, built at run time so that nothing binary
//! lives in the repository (feature `testing`; pushing it to a registry needs
//! `testing-registry`).
//!
//! The image has one layer holding a `whisk` binary as OpenWhisk's dockerskeleton proxy
//! (`whisk proxy skeleton`, the action's `exec` script run once per activation), `/bin/sh` for
//! that script, and the shared libraries `ldd` says each needs. The platform's own tests, `wsk`'s
//! tests and the benchmarks all need the same image, so it is built here once rather than in
//! each of them.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::Digest;

/// Why the test image could not be built, written or pushed.
#[derive(Debug, thiserror::Error)]
pub enum TestImageError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`ldd {program}` failed: {stderr}")]
    Ldd { program: String, stderr: String },
    #[cfg(feature = "testing-registry")]
    #[error("`{image}` is not an image reference: {reason}")]
    Reference { image: String, reason: String },
    #[cfg(feature = "testing-registry")]
    #[error("pushing {image}: {source}")]
    Push {
        image: String,
        #[source]
        source: oci_client::errors::OciDistributionError,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> TestImageError {
    let what = what.into();
    move |source| TestImageError::Io { what, source }
}

/// The parts of the skeleton image: its one layer (an uncompressed tar) and its config.
#[derive(Debug, Clone)]
pub struct SkeletonImage {
    /// The layer, an uncompressed tar of the root filesystem.
    pub layer: Vec<u8>,
    /// The image config (`config.Cmd` = `/whisk proxy skeleton`, `rootfs.diff_ids` = the layer).
    pub config: Value,
}

impl SkeletonImage {
    /// Builds the image from `whisk` (a built `whisk` binary, copied in as `/whisk`) and the
    /// host's `/bin/sh`, staging the root filesystem under `work`.
    pub fn build(whisk: &Path, work: &Path) -> Result<SkeletonImage, TestImageError> {
        let root = work.join("skeleton-root");
        copy_program(whisk, "/whisk", &root)?;
        copy_program(Path::new("/bin/sh"), "/bin/sh", &root)?;
        let etc = root.join("etc");
        std::fs::create_dir_all(&etc).map_err(io(format!("create {}", etc.display())))?;
        std::fs::write(etc.join("hosts"), "127.0.0.1 localhost\n")
            .map_err(io("write etc/hosts"))?;

        let mut builder = tar::Builder::new(Vec::new());
        builder.follow_symlinks(false);
        builder
            .append_dir_all(".", &root)
            .map_err(io("tar the root filesystem"))?;
        let layer = builder.into_inner().map_err(io("finish the layer"))?;
        let config = json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {
                "Env": ["PATH=/bin", "__OW_ACTION_DIR=/tmp/action"],
                "Cmd": ["/whisk", "proxy", "skeleton"],
                "WorkingDir": "/"
            },
            "rootfs": {"type": "layers", "diff_ids": [Digest::of_bytes(&layer).to_string()]}
        });
        Ok(SkeletonImage { layer, config })
    }

    /// Writes the image as a `docker save` archive tagged `tag` at `path`, the form
    /// `whisk admin image import` reads.
    pub fn write_docker_archive(&self, path: &Path, tag: &str) -> Result<(), TestImageError> {
        let manifest = json!([{
            "Config": "config.json",
            "RepoTags": [tag],
            "Layers": ["layer/layer.tar"]
        }]);
        let file = std::fs::File::create(path).map_err(io(format!("create {}", path.display())))?;
        let mut archive = tar::Builder::new(file);
        for (name, bytes) in [
            ("config.json", self.config.to_string().into_bytes()),
            ("manifest.json", manifest.to_string().into_bytes()),
            ("layer/layer.tar", self.layer.clone()),
        ] {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            archive
                .append_data(&mut header, name, bytes.as_slice())
                .map_err(io(format!("add {name} to the archive")))?;
        }
        archive.finish().map_err(io("finish the archive"))
    }

    /// Pushes the image as `image` (`<registry>/<repository>:<tag>`), anonymously. Plain HTTP is
    /// used for a registry on this machine (a test registry such as `.ci/registry`'s), HTTPS
    /// otherwise, as the invoker's puller does.
    #[cfg(feature = "testing-registry")]
    pub async fn push(&self, image: &str) -> Result<(), TestImageError> {
        use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};

        let reference: oci_client::Reference =
            image
                .parse()
                .map_err(|error: oci_client::ParseError| TestImageError::Reference {
                    image: image.to_owned(),
                    reason: error.to_string(),
                })?;
        // Installing fails harmlessly when a provider is already installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let registry = reference.resolve_registry().to_owned();
        let host = registry
            .rsplit_once(':')
            .map_or(registry.as_str(), |(host, _)| host);
        let plain = if matches!(host, "localhost" | "127.0.0.1" | "[::1]") {
            vec![registry.clone()]
        } else {
            Vec::new()
        };
        let client = oci_client::Client::new(ClientConfig {
            protocol: ClientProtocol::HttpsExcept(plain),
            ..ClientConfig::default()
        });
        client
            .push(
                &reference,
                &[ImageLayer::oci_v1(self.layer.clone(), None)],
                Config::oci_v1(self.config.to_string().into_bytes(), None),
                &oci_client::secrets::RegistryAuth::Anonymous,
                None,
            )
            .await
            .map_err(|source| TestImageError::Push {
                image: image.to_owned(),
                source,
            })?;
        Ok(())
    }
}

/// Copies a host program and what `ldd` says it loads (with the loader) into `root`, each at
/// its host path (the program itself at `at`).
fn copy_program(program: &Path, at: &str, root: &Path) -> Result<(), TestImageError> {
    let mut files: Vec<(PathBuf, String)> = vec![(program.to_path_buf(), at.to_owned())];
    let output = Command::new("ldd")
        .arg(program)
        .output()
        .map_err(io("run ldd"))?;
    // A static program makes ldd exit 1 with "not a dynamic executable": nothing to add.
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success()
        && !String::from_utf8_lossy(&output.stderr).contains("not a dynamic")
    {
        return Err(TestImageError::Ldd {
            program: program.display().to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    for line in stdout.lines() {
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
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io(format!("create {}", parent.display())))?;
        }
        std::fs::copy(&source, &target)
            .map_err(io(format!("copy {} into the image", source.display())))?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_archive_imports_into_a_store_with_the_skeleton_command() {
        let work = tempfile::tempdir().unwrap();
        let image = SkeletonImage::build(Path::new("/bin/sh"), work.path()).unwrap();
        let archive = work.path().join("image.tar");
        image
            .write_docker_archive(&archive, "whisk-test/skeleton:1")
            .unwrap();
        let store = crate::ImageStore::open(work.path().join("store")).unwrap();
        let imported = store.import_archive(&archive, &[]).unwrap();
        assert_eq!(imported.len(), 1);
        let resolved = store.resolve("whisk-test/skeleton:1").unwrap();
        assert_eq!(
            resolved.config.command(),
            vec!["/whisk", "proxy", "skeleton"]
        );
        let root = store.rootfs(&resolved).unwrap();
        assert!(root.join("whisk").is_file());
        assert!(root.join("bin/sh").is_file());
    }

    #[test]
    fn a_missing_program_is_an_error() {
        let work = tempfile::tempdir().unwrap();
        let error = SkeletonImage::build(Path::new("/nonexistent/whisk"), work.path()).unwrap_err();
        assert!(
            matches!(
                error,
                TestImageError::Io { .. } | TestImageError::Ldd { .. }
            ),
            "{error}"
        );
    }
}
