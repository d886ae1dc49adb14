//! Images of blackbox actions that are not one of the platform's own (`--docker IMAGE`): found in
//! the invoker's [`ImageStore`] (imported with `whisk admin image import` or pulled before), or
//! pulled from their registry by an [`ImagePuller`], then run from their root filesystem.
//!
//! Every failure to get an image becomes [`ContainerError::ImagePull`], which the activation
//! reports as OpenWhisk's developer error `Failed to pull container image '<img>'.`: the
//! developer named an image the platform cannot get, which is not the platform's fault.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use tracing::{debug, info, warn};
use whisk_image::{ImageConfig, ImageError, ImageStore, ImportedImage};
use whisk_model::manifest::{ImageName, RuntimeManifest};

use crate::container::ContainerError;

/// Fetches an image the store does not have yet into the store.
#[async_trait]
pub trait ImagePuller: Send + Sync + fmt::Debug {
    /// Pulls `reference` into `store`; the reason of a failure is logged, never shown to users.
    async fn pull(&self, store: Arc<ImageStore>, reference: &str) -> Result<ImportedImage, String>;
}

/// What a container of an image runs on and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageLaunch {
    /// The image's root filesystem (shared, read-only).
    pub rootfs: PathBuf,
    /// The image's entrypoint, cmd, environment and working directory.
    pub config: ImageConfig,
}

/// The invoker's images: the store, which images are the platform's own, and an optional puller.
#[derive(Debug, Clone)]
pub struct ImageSource {
    store: Arc<ImageStore>,
    manifest: Arc<RuntimeManifest>,
    puller: Option<Arc<dyn ImagePuller>>,
}

impl ImageSource {
    pub fn new(
        store: Arc<ImageStore>,
        manifest: Arc<RuntimeManifest>,
        puller: Option<Arc<dyn ImagePuller>>,
    ) -> ImageSource {
        ImageSource {
            store,
            manifest,
            puller,
        }
    }

    /// True when `image` must come from the store: not one of the manifest's native blackbox
    /// images, which run on the platform's own skeleton proxy instead.
    pub fn is_foreign(&self, image: &str) -> bool {
        match ImageName::parse(image) {
            Ok(name) => !self.manifest.is_native_blackbox(&name),
            // Not a valid reference: it cannot be native; resolving it fails as a pull failure.
            Err(_) => true,
        }
    }

    /// The image's root filesystem and config, pulling the image first when the store lacks it.
    pub async fn launch(&self, image: &str) -> Result<ImageLaunch, ContainerError> {
        let pull_error = |reason: String| {
            warn!(image, %reason, "image cannot be had");
            ContainerError::ImagePull {
                image: image.to_string(),
                reason,
            }
        };
        let store = Arc::clone(&self.store);
        let reference = image.to_string();
        let found = blocking(move || store.resolve(&reference)).await;
        let imported = match found {
            Ok(imported) => imported,
            Err(ImageError::NotFound(_)) => {
                let Some(puller) = &self.puller else {
                    return Err(pull_error(
                        "not in the image store and no registry configured".into(),
                    ));
                };
                info!(image, "pulling image");
                puller
                    .pull(Arc::clone(&self.store), image)
                    .await
                    .map_err(pull_error)?
            }
            Err(error) => return Err(pull_error(error.to_string())),
        };
        let store = Arc::clone(&self.store);
        let record = imported.clone();
        let rootfs = blocking(move || store.rootfs(&record))
            .await
            .map_err(|error| pull_error(error.to_string()))?;
        debug!(image, digest = %imported.digest, rootfs = %rootfs.display(), "image ready");
        Ok(ImageLaunch {
            rootfs,
            config: imported.config,
        })
    }
}

/// Runs file-system work of the store off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ImageError> + Send + 'static,
) -> Result<T, ImageError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(error) => Err(ImageError::Io {
            path: "image store task".into(),
            source: std::io::Error::other(error.to_string()),
        }),
    }
}

/// The command of an image's container: its entrypoint and cmd; the image's environment, then
/// the platform's (`__OW_*` and the like) over it, as a container engine would pass `-e`.
pub fn image_command(
    config: &ImageConfig,
    platform_env: impl IntoIterator<Item = (String, String)>,
) -> (Vec<String>, Vec<(String, String)>, PathBuf) {
    let mut env: Vec<(String, String)> = config
        .env
        .iter()
        .filter_map(|entry| {
            let (name, value) = entry.split_once('=')?;
            Some((name.to_string(), value.to_string()))
        })
        .collect();
    if !env.iter().any(|(name, _)| name == "PATH") {
        env.push((
            "PATH".to_string(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
        ));
    }
    for (name, value) in platform_env {
        env.retain(|(existing, _)| *existing != name);
        env.push((name, value));
    }
    let cwd = config
        .working_dir
        .as_deref()
        .filter(|dir| dir.starts_with('/'))
        .map_or_else(|| PathBuf::from("/"), PathBuf::from);
    (config.command(), env, cwd)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is the right way for a test to fail
mod tests {
    use super::*;

    fn source(dir: &std::path::Path, puller: Option<Arc<dyn ImagePuller>>) -> ImageSource {
        ImageSource::new(
            Arc::new(ImageStore::open(dir).unwrap()),
            Arc::new(RuntimeManifest::builtin().unwrap()),
            puller,
        )
    }

    #[derive(Debug)]
    struct FailingPuller;

    #[async_trait]
    impl ImagePuller for FailingPuller {
        async fn pull(&self, _: Arc<ImageStore>, reference: &str) -> Result<ImportedImage, String> {
            Err(format!("{reference}: registry unreachable"))
        }
    }

    #[test]
    fn native_images_are_not_foreign() {
        let dir = tempfile::tempdir().unwrap();
        let images = source(dir.path(), None);
        assert!(!images.is_foreign("openwhisk/dockerskeleton"));
        assert!(images.is_foreign("me/my-action:1"));
        assert!(images.is_foreign("not a reference"));
    }

    #[tokio::test]
    async fn a_missing_image_without_a_registry_is_a_pull_failure() {
        let dir = tempfile::tempdir().unwrap();
        let error = source(dir.path(), None)
            .launch("me/absent:1")
            .await
            .unwrap_err();
        assert!(
            matches!(&error, ContainerError::ImagePull { image, .. } if image == "me/absent:1"),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn a_failed_pull_is_a_pull_failure() {
        let dir = tempfile::tempdir().unwrap();
        let error = source(dir.path(), Some(Arc::new(FailingPuller)))
            .launch("me/absent:1")
            .await
            .unwrap_err();
        assert!(
            matches!(&error, ContainerError::ImagePull { reason, .. } if reason.contains("unreachable")),
            "{error:?}"
        );
    }

    #[test]
    fn the_command_is_entrypoint_then_cmd_with_platform_env_over_the_image_s() {
        let config = ImageConfig {
            env: vec!["PATH=/opt/bin".into(), "A=image".into(), "B=kept".into()],
            entrypoint: Some(vec!["/entry".into()]),
            cmd: Some(vec!["serve".into()]),
            working_dir: Some("/app".into()),
            user: None,
        };
        let (argv, env, cwd) = image_command(&config, [("A".to_string(), "platform".to_string())]);
        assert_eq!(argv, vec!["/entry", "serve"]);
        assert_eq!(cwd, PathBuf::from("/app"));
        assert!(env.contains(&("PATH".into(), "/opt/bin".into())));
        assert!(env.contains(&("A".into(), "platform".into())));
        assert!(!env.contains(&("A".into(), "image".into())));
        assert!(env.contains(&("B".into(), "kept".into())));
    }

    #[test]
    fn an_image_without_path_or_working_dir_gets_defaults() {
        let (argv, env, cwd) = image_command(&ImageConfig::default(), std::iter::empty());
        assert!(argv.is_empty());
        assert_eq!(cwd, PathBuf::from("/"));
        assert!(env.iter().any(|(name, _)| name == "PATH"));
    }
}
