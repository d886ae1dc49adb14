//! The image store: verified blobs, image records, references, and root filesystems built once.
//!
//! Layout under the store's directory:
//! - `blobs/sha256/<hex>`: configs and layers, named by the digest of their content;
//! - `images/<hex>.json`: one record per image (its config and layer digests), named by the
//!   image's digest (the manifest's digest for OCI layouts, the record's own for `docker save`);
//! - `refs.json`: reference (`name:tag`) → image digest;
//! - `rootfs/<hex>/`: the image's layers applied in order, built on first use and then shared
//!   read-only by every container of that image.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::archive::{ArchiveError, ArchiveImage, read_archive};
use crate::digest::Digest;
use crate::layer::{LayerError, apply_layer};

/// What can go wrong with images.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error("image store I/O failed at {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("the image's config is not valid JSON: {0}")]
    Config(String),
    #[error("no image '{0}' in the store")]
    NotFound(String),
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> ImageError + '_ {
    move |source| ImageError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// How the image wants to be run (the `config` part of its config blob).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(rename = "Env", default)]
    pub env: Vec<String>,
    #[serde(rename = "Entrypoint", default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(rename = "Cmd", default)]
    pub cmd: Option<Vec<String>>,
    #[serde(rename = "WorkingDir", default)]
    pub working_dir: Option<String>,
    #[serde(rename = "User", default)]
    pub user: Option<String>,
}

impl ImageConfig {
    /// The command the image runs: entrypoint followed by cmd, as container engines do.
    pub fn command(&self) -> Vec<String> {
        let mut command = self.entrypoint.clone().unwrap_or_default();
        command.extend(self.cmd.clone().unwrap_or_default());
        command
    }
}

#[derive(Deserialize)]
struct ConfigBlob {
    #[serde(default)]
    config: Option<ImageConfig>,
}

/// An image known to the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportedImage {
    /// The image's digest (`sha256:…`).
    pub digest: String,
    pub references: Vec<String>,
    pub config_digest: String,
    /// Layer digests, lowest first.
    pub layers: Vec<String>,
    pub config: ImageConfig,
}

/// Images on disk. Cheap to share; concurrent root filesystem builds of one image happen once.
#[derive(Debug)]
pub struct ImageStore {
    dir: PathBuf,
    /// Serialises reference updates and root filesystem builds within this process.
    lock: Mutex<()>,
}

/// Normalises a reference the way image names are usually written: a missing tag is `latest`.
pub fn normalize_reference(reference: &str) -> String {
    let name_part = reference.rsplit('/').next().unwrap_or(reference);
    if name_part.contains(':') || name_part.contains('@') {
        reference.to_string()
    } else {
        format!("{reference}:latest")
    }
}

impl ImageStore {
    /// Opens (creating) a store in `dir`.
    pub fn open(dir: impl Into<PathBuf>) -> Result<ImageStore, ImageError> {
        let dir = dir.into();
        for sub in ["blobs/sha256", "images", "rootfs", "staging"] {
            let path = dir.join(sub);
            fs::create_dir_all(&path).map_err(io_error(&path))?;
        }
        Ok(ImageStore {
            dir,
            lock: Mutex::new(()),
        })
    }

    /// Imports every image of an archive (`docker save` tar or OCI layout tar); extra
    /// `references` name them too (useful for archives saved without tags).
    pub fn import_archive(
        &self,
        archive: &Path,
        references: &[String],
    ) -> Result<Vec<ImportedImage>, ImageError> {
        let staging = self.staging()?;
        let found = read_archive(archive, staging.path())?;
        let mut imported = Vec::new();
        for image in found {
            imported.push(self.import_image(&image, references)?);
        }
        Ok(imported)
    }

    /// A fresh directory on the store's file system for files on their way in (removed when
    /// dropped), so that keeping them as blobs is a copy on the same disk.
    pub fn staging(&self) -> Result<tempfile::TempDir, ImageError> {
        let staging_root = self.dir.join("staging");
        tempfile::tempdir_in(&staging_root).map_err(io_error(&staging_root))
    }

    /// Keeps one image whose config and layers are files (from an archive or pulled from a
    /// registry into [`ImageStore::staging`]) and names it by its references and `references`.
    pub fn import_image(
        &self,
        image: &ArchiveImage,
        references: &[String],
    ) -> Result<ImportedImage, ImageError> {
        let config_digest = self.keep_blob(&image.config)?;
        let layers = image
            .layers
            .iter()
            .map(|layer| self.keep_blob(layer).map(|digest| digest.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        let config_bytes = fs::read(&image.config).map_err(io_error(&image.config))?;
        let config: ConfigBlob = serde_json::from_slice(&config_bytes)
            .map_err(|error| ImageError::Config(error.to_string()))?;
        let mut names: Vec<String> = image
            .references
            .iter()
            .chain(references)
            .map(|reference| normalize_reference(reference))
            .collect();
        names.sort();
        names.dedup();
        let digest = match image.manifest_digest.clone() {
            Some(digest) => digest,
            None => {
                let identity =
                    serde_json::json!({"config": config_digest.to_string(), "layers": layers});
                Digest::of_bytes(identity.to_string().as_bytes())
            }
        };
        let record = ImportedImage {
            digest: digest.to_string(),
            references: names,
            config_digest: config_digest.to_string(),
            layers,
            config: config.config.unwrap_or_default(),
        };
        self.save_record(&digest, &record)?;
        Ok(record)
    }

    /// Copies a file into the blobs, named by its digest.
    fn keep_blob(&self, source: &Path) -> Result<Digest, ImageError> {
        let digest = Digest::of_reader(File::open(source).map_err(io_error(source))?)
            .map_err(io_error(source))?;
        let target = self.blob_path(&digest);
        if !target.exists() {
            let temporary = target.with_extension("partial");
            fs::copy(source, &temporary).map_err(io_error(&temporary))?;
            fs::rename(&temporary, &target).map_err(io_error(&target))?;
        }
        Ok(digest)
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.dir.join("blobs/sha256").join(digest.hex())
    }

    fn save_record(&self, digest: &Digest, record: &ImportedImage) -> Result<(), ImageError> {
        let _guard = self
            .lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let path = self
            .dir
            .join("images")
            .join(format!("{}.json", digest.hex()));
        let text = serde_json::to_vec_pretty(record)
            .map_err(|error| ImageError::Config(error.to_string()))?;
        write_atomically(&path, &text)?;
        let mut references = self.references()?;
        for name in &record.references {
            references.insert(name.clone(), record.digest.clone());
        }
        let refs_path = self.dir.join("refs.json");
        let text = serde_json::to_vec_pretty(&references)
            .map_err(|error| ImageError::Config(error.to_string()))?;
        write_atomically(&refs_path, &text)
    }

    fn references(&self) -> Result<BTreeMap<String, String>, ImageError> {
        let path = self.dir.join("refs.json");
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|error| ImageError::Config(error.to_string())),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(source) => Err(ImageError::Io {
                path: path.display().to_string(),
                source,
            }),
        }
    }

    /// Every image in the store.
    pub fn list(&self) -> Result<Vec<ImportedImage>, ImageError> {
        let dir = self.dir.join("images");
        let mut images = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_error(&dir))? {
            let path = entry.map_err(io_error(&dir))?.path();
            if path
                .extension()
                .is_some_and(|extension| extension == "json")
            {
                let bytes = fs::read(&path).map_err(io_error(&path))?;
                let image: ImportedImage = serde_json::from_slice(&bytes)
                    .map_err(|error| ImageError::Config(error.to_string()))?;
                images.push(image);
            }
        }
        images.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok(images)
    }

    /// Finds an image by reference (`name[:tag]`) or digest.
    pub fn resolve(&self, reference: &str) -> Result<ImportedImage, ImageError> {
        let digest = match Digest::parse(reference) {
            Some(digest) => digest,
            None => {
                let references = self.references()?;
                let found = references
                    .get(&normalize_reference(reference))
                    .and_then(|digest| Digest::parse(digest));
                found.ok_or_else(|| ImageError::NotFound(reference.to_string()))?
            }
        };
        let path = self
            .dir
            .join("images")
            .join(format!("{}.json", digest.hex()));
        let bytes = fs::read(&path).map_err(|_| ImageError::NotFound(reference.to_string()))?;
        serde_json::from_slice(&bytes).map_err(|error| ImageError::Config(error.to_string()))
    }

    /// The image's root filesystem, built from its layers on first use. Containers mount it
    /// read-only; it is never changed once built.
    pub fn rootfs(&self, image: &ImportedImage) -> Result<PathBuf, ImageError> {
        let digest = Digest::parse(&image.digest)
            .ok_or_else(|| ImageError::NotFound(image.digest.clone()))?;
        let target = self.dir.join("rootfs").join(digest.hex());
        if target.is_dir() {
            return Ok(target);
        }
        let _guard = self
            .lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if target.is_dir() {
            return Ok(target);
        }
        let staging_root = self.dir.join("staging");
        let building = tempfile::tempdir_in(&staging_root).map_err(io_error(&staging_root))?;
        let root = building.path().join("root");
        fs::create_dir(&root).map_err(io_error(&root))?;
        for layer in &image.layers {
            let layer_digest =
                Digest::parse(layer).ok_or_else(|| ImageError::NotFound(layer.clone()))?;
            let path = self.blob_path(&layer_digest);
            let mut file = File::open(&path).map_err(io_error(&path))?;
            let stats = apply_layer(&mut file, &root)?;
            tracing::debug!(image = %image.digest, layer = %layer, ?stats, "layer applied");
        }
        fs::rename(&root, &target).map_err(io_error(&target))?;
        tracing::info!(image = %image.digest, rootfs = %target.display(), "image root filesystem built");
        Ok(target)
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ImageError> {
    let temporary = path.with_extension("partial");
    fs::write(&temporary, bytes).map_err(io_error(&temporary))?;
    fs::rename(&temporary, path).map_err(io_error(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_get_latest_when_untagged() {
        assert_eq!(normalize_reference("hello"), "hello:latest");
        assert_eq!(normalize_reference("org/hello:1.0"), "org/hello:1.0");
        assert_eq!(
            normalize_reference("localhost:5000/hello"),
            "localhost:5000/hello:latest"
        );
        assert_eq!(normalize_reference("r@sha256:abc"), "r@sha256:abc");
    }
}
