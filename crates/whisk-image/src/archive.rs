//! Reading image archives: `docker save` output and OCI image layouts, both as tar files.
//!
//! Either way an archive is a set of files: JSON documents naming, per image, a config blob and
//! an ordered list of layer blobs. Reading one yields those lists; the store then verifies and
//! keeps the blobs.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

use crate::digest::Digest;

/// Why an archive could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("cannot read the archive: {0}")]
    Io(#[from] io::Error),
    #[error("the archive is neither a 'docker save' tar nor an OCI image layout")]
    UnknownFormat,
    #[error("the archive's {file} is not valid: {reason}")]
    Invalid { file: String, reason: String },
    #[error("the archive names '{0}', which it does not contain")]
    Missing(String),
    #[error("the blob {expected} does not match its content ({actual})")]
    DigestMismatch { expected: String, actual: String },
    #[error("the archive holds no image for linux/amd64")]
    NoPlatform,
}

/// One image found in an archive.
#[derive(Debug, Clone)]
pub struct ArchiveImage {
    /// Names it was saved under (`name:tag`), possibly none.
    pub references: Vec<String>,
    /// The manifest's digest when the archive has a manifest blob (OCI layouts do).
    pub manifest_digest: Option<Digest>,
    pub config: PathBuf,
    /// Layer files in the order they apply (lowest first).
    pub layers: Vec<PathBuf>,
}

/// Unpacks the archive's files into `staging` (plain files and directories only) and lists the
/// images it holds.
pub fn read_archive(archive: &Path, staging: &Path) -> Result<Vec<ArchiveImage>, ArchiveError> {
    extract_files(File::open(archive)?, staging)?;
    if staging.join("oci-layout").is_file() && staging.join("index.json").is_file() {
        read_oci_layout(staging)
    } else if staging.join("manifest.json").is_file() {
        read_docker_save(staging)
    } else {
        Err(ArchiveError::UnknownFormat)
    }
}

fn extract_files(reader: impl Read, staging: &Path) -> Result<(), ArchiveError> {
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        let mut relative = PathBuf::new();
        for component in path.components() {
            match component {
                Component::Normal(part) => relative.push(part),
                Component::CurDir => {}
                // The outer archive has no business leaving its own directory.
                _ => {
                    return Err(ArchiveError::Invalid {
                        file: path.display().to_string(),
                        reason: "path leaves the archive".into(),
                    });
                }
            }
        }
        if relative.as_os_str().is_empty() {
            continue;
        }
        let target = staging.join(&relative);
        match entry.header().entry_type() {
            tar::EntryType::Directory => fs::create_dir_all(&target)?,
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                if let Some(parent) = target.parent() {
                    fs::create_dir_all(parent)?;
                }
                let mut file = File::create(&target)?;
                io::copy(&mut entry, &mut file)?;
            }
            // `docker save` links repeated layers; anything else is not needed to read images.
            tar::EntryType::Symlink | tar::EntryType::Link => {
                if let Some(link) = entry.link_name()? {
                    let source = match entry.header().entry_type() {
                        tar::EntryType::Symlink => target
                            .parent()
                            .map(|parent| parent.join(&link))
                            .unwrap_or_default(),
                        _ => staging.join(&link),
                    };
                    let inside = source
                        .canonicalize()
                        .ok()
                        .filter(|resolved| resolved.starts_with(staging));
                    if let Some(resolved) = inside {
                        if let Some(parent) = target.parent() {
                            fs::create_dir_all(parent)?;
                        }
                        fs::copy(resolved, &target)?;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, ArchiveError> {
    let text = fs::read(path).map_err(|_| ArchiveError::Missing(path.display().to_string()))?;
    serde_json::from_slice(&text).map_err(|error| ArchiveError::Invalid {
        file: path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default(),
        reason: error.to_string(),
    })
}

/// A path inside the staging directory named by the archive; refuses escapes.
fn inside(staging: &Path, name: &str) -> Result<PathBuf, ArchiveError> {
    let relative = Path::new(name);
    let clean = relative
        .components()
        .all(|component| matches!(component, Component::Normal(_) | Component::CurDir));
    let path = staging.join(relative);
    if !clean || !path.is_file() {
        return Err(ArchiveError::Missing(name.to_string()));
    }
    Ok(path)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerSaveEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

fn read_docker_save(staging: &Path) -> Result<Vec<ArchiveImage>, ArchiveError> {
    let entries: Vec<DockerSaveEntry> = read_json(&staging.join("manifest.json"))?;
    entries
        .into_iter()
        .map(|entry| {
            Ok(ArchiveImage {
                references: entry.repo_tags.unwrap_or_default(),
                manifest_digest: None,
                config: inside(staging, &entry.config)?,
                layers: entry
                    .layers
                    .iter()
                    .map(|layer| inside(staging, layer))
                    .collect::<Result<_, _>>()?,
            })
        })
        .collect()
}

#[derive(Deserialize)]
struct OciIndex {
    manifests: Vec<OciDescriptor>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OciDescriptor {
    #[serde(default)]
    media_type: String,
    digest: String,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    platform: Option<OciPlatform>,
}

#[derive(Deserialize)]
struct OciPlatform {
    architecture: String,
    os: String,
}

#[derive(Deserialize)]
struct OciManifest {
    config: OciDescriptor,
    layers: Vec<OciDescriptor>,
}

const REF_NAME: &str = "org.opencontainers.image.ref.name";

fn blob(staging: &Path, digest: &str) -> Result<(PathBuf, Digest), ArchiveError> {
    let parsed = Digest::parse(digest).ok_or_else(|| ArchiveError::Invalid {
        file: "index.json".into(),
        reason: format!("'{digest}' is not a sha256 digest"),
    })?;
    let path = staging.join("blobs/sha256").join(parsed.hex());
    if !path.is_file() {
        return Err(ArchiveError::Missing(digest.to_string()));
    }
    let actual = Digest::of_reader(File::open(&path)?)?;
    if actual != parsed {
        return Err(ArchiveError::DigestMismatch {
            expected: parsed.to_string(),
            actual: actual.to_string(),
        });
    }
    Ok((path, parsed))
}

fn read_oci_layout(staging: &Path) -> Result<Vec<ArchiveImage>, ArchiveError> {
    let index: OciIndex = read_json(&staging.join("index.json"))?;
    let mut images = Vec::new();
    for descriptor in index.manifests {
        let reference = descriptor.annotations.get(REF_NAME).cloned();
        let manifest_descriptor = if descriptor.media_type.contains("index") {
            let (path, _) = blob(staging, &descriptor.digest)?;
            let nested: OciIndex = read_json(&path)?;
            nested
                .manifests
                .into_iter()
                .find(|candidate| {
                    candidate.platform.as_ref().is_none_or(|platform| {
                        platform.os == "linux" && platform.architecture == "amd64"
                    })
                })
                .ok_or(ArchiveError::NoPlatform)?
        } else {
            descriptor
        };
        let (manifest_path, manifest_digest) = blob(staging, &manifest_descriptor.digest)?;
        let manifest: OciManifest = read_json(&manifest_path)?;
        let (config, _) = blob(staging, &manifest.config.digest)?;
        let layers = manifest
            .layers
            .iter()
            .map(|layer| blob(staging, &layer.digest).map(|(path, _)| path))
            .collect::<Result<_, _>>()?;
        images.push(ArchiveImage {
            references: reference.into_iter().collect(),
            manifest_digest: Some(manifest_digest),
            config,
            layers,
        });
    }
    Ok(images)
}
