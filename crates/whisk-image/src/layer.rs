//! Applying one image layer (a tar stream, optionally gzip-compressed) onto a root directory.
//!
//! A layer comes from whoever built the image, so nothing in it is trusted: every path is
//! resolved *inside* the root (`..` stops at the root, symbolic links met on the way are followed
//! as the container would see them, never onto the host), set-id bits are dropped, and device
//! nodes are skipped. Whiteouts (`.wh.<name>`) delete what lower layers left; an opaque marker
//! (`.wh..wh..opq`) empties its directory of lower content. Deletions are applied in a first pass
//! over the layer and content in a second one, so the order of entries inside the tar does not
//! change the result.

use std::fs::{self, File};
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};

use flate2::read::GzDecoder;

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";
/// As the kernel does, give up on chains of links longer than this.
const MAX_LINK_HOPS: usize = 40;

/// Why a layer could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("cannot read the layer: {0}")]
    Read(#[source] io::Error),
    #[error("cannot write '{path}' from the layer: {source}")]
    Write {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("the layer entry '{0}' has an unusable path")]
    BadPath(String),
    #[error("too many levels of symbolic links resolving '{0}'")]
    LinkLoop(String),
    #[error("the hard link '{path}' points at '{target}', which is not a file in the image")]
    BadHardLink { path: String, target: String },
}

/// Applies the layer in `file` onto `root`. Gzip compression is detected from the content.
pub fn apply_layer(file: &mut File, root: &Path) -> Result<LayerStats, LayerError> {
    let mut stats = LayerStats::default();
    for_each_entry(file, |entry| remove_whiteouts(entry, root, &mut stats))?;
    for_each_entry(file, |entry| write_entry(entry, root, &mut stats))?;
    Ok(stats)
}

/// What applying a layer did, for logs and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LayerStats {
    pub written: u64,
    pub removed: u64,
    pub skipped: u64,
}

fn for_each_entry(
    file: &mut File,
    mut visit: impl FnMut(&mut tar::Entry<'_, Box<dyn Read + '_>>) -> Result<(), LayerError>,
) -> Result<(), LayerError> {
    file.seek(SeekFrom::Start(0)).map_err(LayerError::Read)?;
    let mut magic = [0_u8; 2];
    let read = file.read(&mut magic).map_err(LayerError::Read)?;
    file.seek(SeekFrom::Start(0)).map_err(LayerError::Read)?;
    let reader: Box<dyn Read + '_> = if read == 2 && magic == [0x1f, 0x8b] {
        Box::new(GzDecoder::new(BufReader::new(&mut *file)))
    } else {
        Box::new(BufReader::new(&mut *file))
    };
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().map_err(LayerError::Read)? {
        let mut entry = entry.map_err(LayerError::Read)?;
        visit(&mut entry)?;
    }
    Ok(())
}

/// The entry's path as clean relative components; `None` for the root itself.
fn entry_components(entry: &tar::Entry<'_, impl Read>) -> Result<Vec<String>, LayerError> {
    let path = entry.path().map_err(LayerError::Read)?;
    clean_components(&path)
}

/// Splits a path into normal components, dropping `.` and leading `/`; `..` pops (never above
/// the root).
fn clean_components(path: &Path) -> Result<Vec<String>, LayerError> {
    let mut components = Vec::new();
    for component in path.components() {
        match component {
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir => {
                components.pop();
            }
            Component::Normal(name) => {
                let name = name
                    .to_str()
                    .ok_or_else(|| LayerError::BadPath(path.display().to_string()))?;
                components.push(name.to_string());
            }
            Component::Prefix(_) => return Err(LayerError::BadPath(path.display().to_string())),
        }
    }
    Ok(components)
}

/// Resolves the directory `components` inside `root` the way the container will see it:
/// symbolic links are followed with `root` as `/`. Missing directories are created.
fn resolve_dir(root: &Path, components: &[String]) -> Result<PathBuf, LayerError> {
    let mut pending: Vec<String> = components.iter().rev().cloned().collect();
    let mut resolved: Vec<String> = Vec::new();
    let mut hops = 0;
    while let Some(name) = pending.pop() {
        if name == ".." {
            resolved.pop();
            continue;
        }
        if name == "." || name.is_empty() {
            continue;
        }
        let candidate = join(root, &resolved).join(&name);
        match fs::symlink_metadata(&candidate) {
            Ok(metadata) if metadata.file_type().is_symlink() => {
                hops += 1;
                if hops > MAX_LINK_HOPS {
                    return Err(LayerError::LinkLoop(components.join("/")));
                }
                let target =
                    fs::read_link(&candidate).map_err(|source| write_error(&candidate, source))?;
                if target.is_absolute() {
                    resolved.clear();
                }
                let target_components: Vec<String> = target
                    .components()
                    .filter_map(|component| match component {
                        Component::Normal(part) => part.to_str().map(str::to_string),
                        Component::ParentDir => Some("..".to_string()),
                        _ => None,
                    })
                    .collect();
                pending.extend(target_components.into_iter().rev());
            }
            Ok(metadata) if metadata.is_dir() => resolved.push(name),
            Ok(_) => {
                // A file where a directory is needed: the layer replaces it.
                fs::remove_file(&candidate).map_err(|source| write_error(&candidate, source))?;
                create_dir(&candidate)?;
                resolved.push(name);
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                create_dir(&candidate)?;
                resolved.push(name);
            }
            Err(source) => return Err(write_error(&candidate, source)),
        }
    }
    Ok(join(root, &resolved))
}

fn join(root: &Path, components: &[String]) -> PathBuf {
    let mut path = root.to_path_buf();
    path.extend(components);
    path
}

fn create_dir(path: &Path) -> Result<(), LayerError> {
    fs::create_dir(path).map_err(|source| write_error(path, source))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))
        .map_err(|source| write_error(path, source))
}

fn write_error(path: &Path, source: io::Error) -> LayerError {
    LayerError::Write {
        path: path.display().to_string(),
        source,
    }
}

/// Removes whatever is at `path` (not following a link there).
fn remove_path(path: &Path) -> Result<bool, LayerError> {
    match fs::symlink_metadata(path) {
        Ok(metadata) if metadata.is_dir() => {
            fs::remove_dir_all(path).map_err(|source| write_error(path, source))?;
            Ok(true)
        }
        Ok(_) => {
            fs::remove_file(path).map_err(|source| write_error(path, source))?;
            Ok(true)
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(write_error(path, source)),
    }
}

fn remove_whiteouts(
    entry: &mut tar::Entry<'_, impl Read>,
    root: &Path,
    stats: &mut LayerStats,
) -> Result<(), LayerError> {
    let mut components = entry_components(entry)?;
    let Some(name) = components.pop() else {
        return Ok(());
    };
    if name == OPAQUE_MARKER {
        let dir = resolve_dir(root, &components)?;
        let children = fs::read_dir(&dir).map_err(|source| write_error(&dir, source))?;
        for child in children {
            let child = child.map_err(|source| write_error(&dir, source))?;
            if remove_path(&child.path())? {
                stats.removed += 1;
            }
        }
    } else if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
        if hidden.is_empty() || hidden == "." || hidden == ".." {
            return Err(LayerError::BadPath(name));
        }
        let dir = resolve_dir(root, &components)?;
        if remove_path(&dir.join(hidden))? {
            stats.removed += 1;
        }
    }
    Ok(())
}

fn write_entry(
    entry: &mut tar::Entry<'_, impl Read>,
    root: &Path,
    stats: &mut LayerStats,
) -> Result<(), LayerError> {
    let mut components = entry_components(entry)?;
    let Some(name) = components.pop() else {
        return Ok(());
    };
    if name.starts_with(WHITEOUT_PREFIX) {
        return Ok(());
    }
    let dir = resolve_dir(root, &components)?;
    let path = dir.join(&name);
    // Drop set-user-id, set-group-id and sticky bits: nothing in an action needs them.
    let mode = entry.header().mode().map_err(LayerError::Read)? & 0o777;
    let kind = entry.header().entry_type();
    match kind {
        tar::EntryType::Directory => {
            match fs::symlink_metadata(&path) {
                Ok(metadata) if metadata.is_dir() => {}
                Ok(_) => {
                    remove_path(&path)?;
                    create_dir(&path)?;
                }
                Err(_) => create_dir(&path)?,
            }
            fs::set_permissions(&path, fs::Permissions::from_mode(mode | 0o700))
                .map_err(|source| write_error(&path, source))?;
        }
        tar::EntryType::Regular | tar::EntryType::Continuous => {
            remove_existing_file(&path)?;
            let mut file = File::create(&path).map_err(|source| write_error(&path, source))?;
            io::copy(entry, &mut file).map_err(|source| write_error(&path, source))?;
            fs::set_permissions(&path, fs::Permissions::from_mode(mode))
                .map_err(|source| write_error(&path, source))?;
        }
        tar::EntryType::Symlink => {
            let target = entry
                .link_name()
                .map_err(LayerError::Read)?
                .ok_or_else(|| LayerError::BadPath(name.clone()))?;
            remove_existing_file(&path)?;
            // The target is stored as written: it is only ever followed inside the container
            // (or by `resolve_dir`, which keeps it inside the root).
            symlink(&target, &path).map_err(|source| write_error(&path, source))?;
        }
        tar::EntryType::Link => {
            let target = entry
                .link_name()
                .map_err(LayerError::Read)?
                .ok_or_else(|| LayerError::BadPath(name.clone()))?;
            let mut target_components = clean_components(&target)?;
            let bad_link = || LayerError::BadHardLink {
                path: path.display().to_string(),
                target: target.display().to_string(),
            };
            let target_name = target_components.pop().ok_or_else(bad_link)?;
            let target_path = resolve_dir(root, &target_components)?.join(target_name);
            let is_file = fs::symlink_metadata(&target_path)
                .map(|metadata| metadata.is_file())
                .unwrap_or(false);
            if !is_file {
                return Err(bad_link());
            }
            remove_existing_file(&path)?;
            fs::hard_link(&target_path, &path).map_err(|source| write_error(&path, source))?;
        }
        _ => {
            // Device nodes, FIFOs and the like: a container gets its own minimal /dev.
            tracing::debug!(path = %path.display(), ?kind, "layer entry skipped");
            stats.skipped += 1;
            return Ok(());
        }
    }
    stats.written += 1;
    Ok(())
}

/// Makes room for a non-directory entry; a directory in the way is removed with its content.
fn remove_existing_file(path: &Path) -> Result<(), LayerError> {
    remove_path(path).map(|_| ())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::io::Write;

    use super::*;

    /// Builds a tar layer from (path, kind, content-or-link) triples.
    pub(crate) fn layer(entries: &[(&str, char, &str)]) -> File {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, kind, data) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_mode(if *kind == 'd' { 0o755 } else { 0o4755 });
            match kind {
                'f' => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_size(data.len() as u64);
                    builder
                        .append_data(&mut header, path, data.as_bytes())
                        .unwrap();
                }
                'd' => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_size(0);
                    builder.append_data(&mut header, path, &b""[..]).unwrap();
                }
                'l' | 'h' => {
                    header.set_entry_type(if *kind == 'l' {
                        tar::EntryType::Symlink
                    } else {
                        tar::EntryType::Link
                    });
                    header.set_size(0);
                    builder.append_link(&mut header, path, data).unwrap();
                }
                _ => unreachable!(),
            }
        }
        let bytes = builder.into_inner().unwrap();
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&bytes).unwrap();
        file
    }

    fn raw_layer_with_path(path: &[u8]) -> File {
        // tar::Builder refuses `..` paths, so write the header bytes by hand.
        let mut header = tar::Header::new_old();
        header.as_old_mut().name[..path.len()].copy_from_slice(path);
        header.set_mode(0o644);
        header.set_size(4);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        let mut bytes = header.as_bytes().to_vec();
        bytes.extend_from_slice(b"evil");
        bytes.resize(bytes.len() + 508, 0);
        bytes.resize(bytes.len() + 1024, 0);
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&bytes).unwrap();
        file
    }

    #[test]
    fn files_directories_links_and_dropped_setuid() {
        let root = tempfile::tempdir().unwrap();
        let mut first = layer(&[
            ("bin", 'd', ""),
            ("bin/tool", 'f', "#!/bin/sh"),
            ("usr/lib/libx.so", 'f', "lib"),
            ("lib", 'l', "usr/lib"),
            ("bin/tool-again", 'h', "bin/tool"),
        ]);
        let stats = apply_layer(&mut first, root.path()).unwrap();
        assert_eq!(stats.written, 5);
        let tool = root.path().join("bin/tool");
        assert_eq!(fs::read_to_string(&tool).unwrap(), "#!/bin/sh");
        assert_eq!(
            fs::metadata(&tool).unwrap().permissions().mode() & 0o7777,
            0o755
        );
        assert_eq!(
            fs::read_link(root.path().join("lib")).unwrap(),
            Path::new("usr/lib")
        );
        assert_eq!(
            fs::read_to_string(root.path().join("bin/tool-again")).unwrap(),
            "#!/bin/sh"
        );
    }

    #[test]
    fn whiteouts_and_opaque_directories_hide_lower_layers() {
        let root = tempfile::tempdir().unwrap();
        apply_layer(
            &mut layer(&[
                ("etc/keep", 'f', "1"),
                ("etc/gone", 'f', "2"),
                ("opt/old/a", 'f', "3"),
                ("opt/old/b", 'f', "4"),
            ]),
            root.path(),
        )
        .unwrap();
        // The opaque marker comes after the new content on purpose: order must not matter.
        let stats = apply_layer(
            &mut layer(&[
                ("etc/.wh.gone", 'f', ""),
                ("opt/old/new", 'f', "5"),
                ("opt/old/.wh..wh..opq", 'f', ""),
            ]),
            root.path(),
        )
        .unwrap();
        assert_eq!(stats.removed, 3);
        assert!(root.path().join("etc/keep").exists());
        assert!(!root.path().join("etc/gone").exists());
        assert!(!root.path().join("opt/old/a").exists());
        assert_eq!(
            fs::read_to_string(root.path().join("opt/old/new")).unwrap(),
            "5"
        );
        assert!(!root.path().join("etc/.wh.gone").exists());
    }

    #[test]
    fn symlinks_never_lead_outside_the_root() {
        let outside = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        let escape = outside.path().display().to_string();
        // A link to an absolute host path, then a file written "through" it.
        apply_layer(
            &mut layer(&[
                ("hostdir", 'l', &escape),
                ("up", 'l', "../../../../.."),
                ("hostdir/planted", 'f', "x"),
                ("up/planted-too", 'f', "y"),
            ]),
            root.path(),
        )
        .unwrap();
        assert!(
            fs::read_dir(outside.path()).unwrap().next().is_none(),
            "nothing may be written outside the root"
        );
        // Both landed inside the root, where the container would see them.
        let inside = root
            .path()
            .join(escape.trim_start_matches('/'))
            .join("planted");
        assert!(inside.exists(), "{}", inside.display());
        assert!(root.path().join("planted-too").exists());
    }

    #[test]
    fn dot_dot_paths_stay_in_the_root() {
        let parent = tempfile::tempdir().unwrap();
        let root = parent.path().join("root");
        fs::create_dir(&root).unwrap();
        apply_layer(&mut raw_layer_with_path(b"../../escaped"), &root).unwrap();
        assert!(!parent.path().join("escaped").exists());
        assert_eq!(fs::read_to_string(root.join("escaped")).unwrap(), "evil");
    }

    #[test]
    fn hard_links_must_name_a_file_in_the_image() {
        let root = tempfile::tempdir().unwrap();
        let error = apply_layer(&mut layer(&[("x", 'h', "/etc/passwd")]), root.path()).unwrap_err();
        assert!(matches!(error, LayerError::BadHardLink { .. }), "{error}");
    }

    #[test]
    fn a_link_loop_is_an_error_not_a_hang() {
        let root = tempfile::tempdir().unwrap();
        let error = apply_layer(
            &mut layer(&[("a", 'l', "b"), ("b", 'l', "a"), ("a/file", 'f', "x")]),
            root.path(),
        )
        .unwrap_err();
        assert!(matches!(error, LayerError::LinkLoop(_)), "{error}");
    }

    #[test]
    fn gzip_layers_are_detected() {
        let root = tempfile::tempdir().unwrap();
        let mut plain = layer(&[("hello", 'f', "gz")]);
        let mut bytes = Vec::new();
        plain.seek(SeekFrom::Start(0)).unwrap();
        plain.read_to_end(&mut bytes).unwrap();
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(&bytes).unwrap();
        let mut compressed = tempfile::tempfile().unwrap();
        compressed.write_all(&encoder.finish().unwrap()).unwrap();
        apply_layer(&mut compressed, root.path()).unwrap();
        assert_eq!(fs::read_to_string(root.path().join("hello")).unwrap(), "gz");
    }

    #[test]
    fn a_truncated_layer_is_a_read_error() {
        let root = tempfile::tempdir().unwrap();
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&[1, 2, 3, 4, 5]).unwrap();
        // Five bytes are no tar header: the tar reader reports it.
        let outcome = apply_layer(&mut file, root.path());
        assert!(matches!(outcome, Err(LayerError::Read(_))), "{outcome:?}");
    }
}
