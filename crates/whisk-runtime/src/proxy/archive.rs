//! Unpacking the archives actions arrive in (zip, or tar.gz) into the action directory.
//!
//! Zip is read with a small reader of our own on top of `flate2`'s raw inflate: a native proxy only
//! needs the central directory, stored and deflated entries and Unix modes, and a full zip crate
//! would bring compressors we never use.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

/// Why an archive could not be unpacked.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("not a zip archive (no end of central directory)")]
    NoCentralDirectory,
    #[error("zip64 archives are not supported")]
    Zip64,
    #[error("corrupt zip archive: {0}")]
    Corrupt(&'static str),
    #[error("unsupported zip compression method {0}")]
    Method(u16),
    #[error("entry {0:?} would be written outside the action directory")]
    UnsafePath(String),
    #[error("I/O error while unpacking: {0}")]
    Io(#[from] std::io::Error),
}

/// What the bytes of an action's code are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveKind {
    Zip,
    TarGz,
    Other,
}

pub fn sniff(bytes: &[u8]) -> ArchiveKind {
    if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
        ArchiveKind::Zip
    } else if bytes.starts_with(&[0x1f, 0x8b]) {
        ArchiveKind::TarGz
    } else {
        ArchiveKind::Other
    }
}

/// Unpacks a tar.gz archive under `dir`; `tar` refuses entries that climb out of it.
pub fn unpack_tar_gz(bytes: &[u8], dir: &Path) -> Result<(), ArchiveError> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    archive.set_preserve_permissions(true);
    archive.unpack(dir)?;
    Ok(())
}

fn u16_at(bytes: &[u8], at: usize) -> Result<u16, ArchiveError> {
    bytes
        .get(at..at + 2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .ok_or(ArchiveError::Corrupt("truncated header"))
}

fn u32_at(bytes: &[u8], at: usize) -> Result<u32, ArchiveError> {
    bytes
        .get(at..at + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or(ArchiveError::Corrupt("truncated header"))
}

/// A relative path without `..`, or an error naming the entry.
fn safe_relative(name: &str) -> Result<PathBuf, ArchiveError> {
    let path = Path::new(name);
    let mut clean = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => clean.push(part),
            Component::CurDir => {}
            _ => return Err(ArchiveError::UnsafePath(name.to_string())),
        }
    }
    Ok(clean)
}

const S_IFMT: u32 = 0o170000;
const S_IFLNK: u32 = 0o120000;

/// Unpacks a zip archive under `dir`, keeping the Unix modes recorded in it (an `exec` must stay
/// executable). Symbolic links are created last so no entry is written through one.
pub fn unpack_zip(bytes: &[u8], dir: &Path) -> Result<(), ArchiveError> {
    let search_from = bytes.len().saturating_sub(22 + 65535);
    let eocd = (search_from..bytes.len().saturating_sub(21))
        .rev()
        .find(|&at| bytes[at..].starts_with(b"PK\x05\x06"))
        .ok_or(ArchiveError::NoCentralDirectory)?;
    let entries = u16_at(bytes, eocd + 10)?;
    let directory_offset = u32_at(bytes, eocd + 16)?;
    if entries == 0xFFFF || directory_offset == 0xFFFF_FFFF {
        return Err(ArchiveError::Zip64);
    }
    let mut links = Vec::new();
    let mut at = directory_offset as usize;
    for _ in 0..entries {
        if u32_at(bytes, at)? != 0x0201_4b50 {
            return Err(ArchiveError::Corrupt("bad central directory entry"));
        }
        let made_by_unix = u16_at(bytes, at + 4)? >> 8 == 3;
        let method = u16_at(bytes, at + 10)?;
        let compressed = u32_at(bytes, at + 20)? as usize;
        let name_len = u16_at(bytes, at + 28)? as usize;
        let extra_len = u16_at(bytes, at + 30)? as usize;
        let comment_len = u16_at(bytes, at + 32)? as usize;
        let external = u32_at(bytes, at + 38)?;
        let local = u32_at(bytes, at + 42)? as usize;
        let name = bytes
            .get(at + 46..at + 46 + name_len)
            .ok_or(ArchiveError::Corrupt("truncated name"))?;
        let name = String::from_utf8_lossy(name).into_owned();
        at += 46 + name_len + extra_len + comment_len;

        let relative = safe_relative(&name)?;
        let target = dir.join(&relative);
        if name.ends_with('/') {
            std::fs::create_dir_all(&target)?;
            continue;
        }
        if u32_at(bytes, local)? != 0x0403_4b50 {
            return Err(ArchiveError::Corrupt("bad local header"));
        }
        let data_at =
            local + 30 + u16_at(bytes, local + 26)? as usize + u16_at(bytes, local + 28)? as usize;
        let data = bytes
            .get(data_at..data_at + compressed)
            .ok_or(ArchiveError::Corrupt("truncated entry"))?;
        let contents = match method {
            0 => data.to_vec(),
            8 => {
                let mut out = Vec::new();
                flate2::read::DeflateDecoder::new(data).read_to_end(&mut out)?;
                out
            }
            other => return Err(ArchiveError::Method(other)),
        };
        let mode = if made_by_unix { external >> 16 } else { 0 };
        if mode & S_IFMT == S_IFLNK {
            links.push((String::from_utf8_lossy(&contents).into_owned(), target));
            continue;
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&target, &contents)?;
        if mode & 0o777 != 0 {
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode & 0o777))?;
        }
    }
    for (link_target, path) in links {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::os::unix::fs::symlink(link_target, path)?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is the right way for a test to fail
mod tests {
    use std::process::Command;

    use super::*;

    #[test]
    fn sniffs_archive_kinds() {
        assert_eq!(sniff(b"PK\x03\x04rest"), ArchiveKind::Zip);
        assert_eq!(sniff(&[0x1f, 0x8b, 8]), ArchiveKind::TarGz);
        assert_eq!(sniff(b"\x7fELF"), ArchiveKind::Other);
    }

    #[test]
    fn refuses_paths_that_leave_the_directory() {
        assert!(matches!(
            safe_relative("../x"),
            Err(ArchiveError::UnsafePath(_))
        ));
        assert!(matches!(
            safe_relative("/etc/x"),
            Err(ArchiveError::UnsafePath(_))
        ));
        assert_eq!(safe_relative("./a/b").unwrap(), PathBuf::from("a/b"));
    }

    #[test]
    fn rejects_garbage_as_zip() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            unpack_zip(b"PK\x03\x04 not really", dir.path()),
            Err(ArchiveError::NoCentralDirectory)
        ));
        assert!(unpack_tar_gz(&[0x1f, 0x8b, 0, 0], dir.path()).is_err());
    }

    /// Round trip through the system's `zip` when it exists (it does on the development machine
    /// and in CI); the integration tests build their zips in Rust and cover the rest.
    #[test]
    fn unpacks_a_zip_made_by_the_zip_tool_with_modes() {
        let src = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(src.path().join("lib")).unwrap();
        std::fs::write(src.path().join("exec"), "#!/bin/sh\necho hi\n").unwrap();
        std::fs::set_permissions(
            src.path().join("exec"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        std::fs::write(src.path().join("lib/data.txt"), "x".repeat(5000)).unwrap();
        let zip = src.path().join("a.zip");
        let made = Command::new("zip")
            .current_dir(src.path())
            .args(["-q", "-r", "a.zip", "exec", "lib"])
            .status();
        if !matches!(made, Ok(status) if status.success()) {
            eprintln!("skipped: no zip tool on this machine");
            return;
        }
        let out = tempfile::tempdir().unwrap();
        unpack_zip(&std::fs::read(zip).unwrap(), out.path()).unwrap();
        let mode = std::fs::metadata(out.path().join("exec"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
        assert_eq!(
            std::fs::read_to_string(out.path().join("lib/data.txt")).unwrap(),
            "x".repeat(5000)
        );
    }
}
