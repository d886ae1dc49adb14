//! The container's root file system as a plan: a list of [`Step`]s computed from the spec and
//! what the host has (behind [`HostView`], so the plan is unit-tested without root), executed
//! by the container's first process in its own mount namespace.
//!
//! The root is a small tmpfs made read-only at the end. Only the host's runtime directories
//! (`/usr`, the `lib*` directories, a few `/etc` files) are bound into it, read-only, nosuid and
//! nodev; everything else of the host stays out of reach after `pivot_root`.
//!
//! A container running on an image ([`ContainerSpec::rootfs`]) gets the image's top-level
//! entries instead, each bound read-only, nosuid and nodev on the same tmpfs. Building on the
//! tmpfs rather than mounting the image directory itself as `/` keeps every mount point
//! (`/proc`, `/dev`, `/tmp`, the spec's binds) creatable even when the image lacks it, without
//! ever writing into the image's root filesystem, which other containers share.

use std::path::{Path, PathBuf};

use crate::spec::ContainerSpec;

/// What a host path is, as far as the plan cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKind {
    Dir,
    File,
    /// A symbolic link and where it points (recreated as is, not followed).
    Symlink(PathBuf),
    Missing,
}

/// Read-only questions about the host file system.
pub trait HostView {
    fn kind(&self, path: &Path) -> HostKind;
    /// A small text file's contents, `None` if absent or unreadable.
    fn read(&self, path: &Path) -> Option<String>;
    /// The names in a directory, sorted; empty if it cannot be read.
    fn list(&self, dir: &Path) -> Vec<String>;
}

/// The real host.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealHost;

impl HostView for RealHost {
    fn kind(&self, path: &Path) -> HostKind {
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_symlink() => match std::fs::read_link(path) {
                Ok(target) => HostKind::Symlink(target),
                Err(_) => HostKind::Missing,
            },
            Ok(meta) if meta.is_dir() => HostKind::Dir,
            Ok(_) => HostKind::File,
            Err(_) => HostKind::Missing,
        }
    }

    fn read(&self, path: &Path) -> Option<String> {
        std::fs::read_to_string(path).ok()
    }

    fn list(&self, dir: &Path) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .collect();
        names.sort();
        names
    }
}

/// One action on the new root. Paths named `target`/`path`/`link` are inside the container
/// (absolute); `source` paths are on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Creates a directory and its missing parents.
    Mkdir {
        path: PathBuf,
    },
    /// Creates an empty file (a mount point for a file bind) and its missing parents.
    Touch {
        path: PathBuf,
    },
    Symlink {
        target: PathBuf,
        link: PathBuf,
    },
    WriteFile {
        path: PathBuf,
        contents: String,
    },
    /// Binds a host path (recursively); read-only unless `writable`, always nosuid, and nodev
    /// unless `devices` (only for the few `/dev` nodes).
    Bind {
        source: PathBuf,
        target: PathBuf,
        writable: bool,
        devices: bool,
    },
    /// A fresh tmpfs with these mount options (`size=`, `mode=`).
    Tmpfs {
        target: PathBuf,
        options: String,
    },
    /// A fresh procfs for the container's PID namespace.
    Proc {
        target: PathBuf,
    },
    /// Makes an already mounted path read-only (`/proc/sys`).
    ReadOnly {
        target: PathBuf,
    },
    /// Binds a file of the new root over another one, read-only, nosuid and nodev (generated
    /// `/etc` files over an image's own, which cannot be written).
    Cover {
        source: PathBuf,
        target: PathBuf,
    },
}

/// Host directories bound (or recreated as symlinks) so that host runtimes run inside.
const RUNTIME_DIRS: &[&str] = &[
    "/usr", "/lib", "/lib64", "/lib32", "/libx32", "/bin", "/sbin",
];

/// Host `/etc` entries a runtime needs: TLS roots, the loader cache, the resolver's name
/// service order, Debian's alternatives (many `/usr/bin` entries point there) and the zone.
const ETC_ENTRIES: &[&str] = &[
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/pki",
    "/etc/alternatives",
    "/etc/ld.so.cache",
    "/etc/nsswitch.conf",
    "/etc/localtime",
    "/etc/mime.types",
];

/// Host device nodes that are harmless and that runtimes expect.
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// Size of the root tmpfs: it only holds mount points and the generated `/etc` files.
const ROOT_TMPFS_OPTIONS: &str = "size=1m,mode=755";

/// Top-level entries of an image that the sandbox provides itself (fresh `/proc`, `/dev` and
/// `/tmp`; no `/sys` at all, as for host-runtime containers).
const IMAGE_SKIPPED: &[&str] = &["proc", "dev", "tmp", "sys"];

/// Where generated files for an image's `/etc` are written in the root tmpfs before they are
/// bound over the image's own.
const GENERATED_DIR: &str = "/.whisk";

/// The whole plan for one container, in execution order; the root tmpfs itself and
/// `pivot_root` are the executor's frame around it.
pub fn plan(spec: &ContainerSpec, host: &dyn HostView) -> Vec<Step> {
    let mut steps = match &spec.rootfs {
        Some(root) => image_root(spec, root, host),
        None => host_runtime_root(spec, host),
    };
    steps.extend(kernel_and_scratch(spec, host));
    for bind in &spec.binds {
        match host.kind(&bind.source) {
            HostKind::File => steps.push(Step::Touch {
                path: bind.target.clone(),
            }),
            // A missing source still gets its Bind step: opening it fails with a named error.
            _ => steps.push(Step::Mkdir {
                path: bind.target.clone(),
            }),
        }
        steps.push(Step::Bind {
            source: bind.source.clone(),
            target: bind.target.clone(),
            writable: bind.writable,
            devices: false,
        });
    }
    steps
}

/// An image's top-level entries, read-only; its `/etc/hosts`, `/etc/hostname` and
/// `/etc/resolv.conf` covered by generated ones where the image has them.
fn image_root(spec: &ContainerSpec, root: &Path, host: &dyn HostView) -> Vec<Step> {
    let mut steps = Vec::new();
    for name in host.list(root) {
        if IMAGE_SKIPPED.contains(&name.as_str()) || name == GENERATED_DIR.trim_start_matches('/') {
            continue;
        }
        let source = root.join(&name);
        let target = Path::new("/").join(&name);
        match host.kind(&source) {
            HostKind::Dir => {
                steps.push(Step::Mkdir {
                    path: target.clone(),
                });
                steps.push(ro_bind(&source, &target));
            }
            HostKind::File => {
                steps.push(Step::Touch {
                    path: target.clone(),
                });
                steps.push(ro_bind(&source, &target));
            }
            HostKind::Symlink(link_target) => steps.push(Step::Symlink {
                target: link_target,
                link: target,
            }),
            HostKind::Missing => {}
        }
    }
    if host.kind(&root.join("etc")) != HostKind::Dir {
        return steps;
    }
    let mut generated_dir_made = false;
    for (path, contents) in generated_etc(spec, host) {
        let Some(name) = Path::new(path).file_name() else {
            continue;
        };
        // Only regular files are covered: a symlink in the image could point anywhere in it.
        if host.kind(&root.join("etc").join(name)) != HostKind::File {
            continue;
        }
        if !generated_dir_made {
            steps.push(Step::Mkdir {
                path: GENERATED_DIR.into(),
            });
            generated_dir_made = true;
        }
        let source = Path::new(GENERATED_DIR).join(name);
        steps.push(Step::WriteFile {
            path: source.clone(),
            contents,
        });
        steps.push(Step::Cover {
            source,
            target: path.into(),
        });
    }
    steps
}

/// The host's runtime directories and a few `/etc` entries, plus generated `/etc` files.
fn host_runtime_root(spec: &ContainerSpec, host: &dyn HostView) -> Vec<Step> {
    let mut steps = Vec::new();
    for dir in RUNTIME_DIRS {
        let dir = Path::new(dir);
        match host.kind(dir) {
            HostKind::Dir => {
                steps.push(Step::Mkdir { path: dir.into() });
                steps.push(ro_bind(dir, dir));
            }
            HostKind::Symlink(target) => steps.push(Step::Symlink {
                target,
                link: dir.into(),
            }),
            HostKind::File | HostKind::Missing => {}
        }
    }

    steps.push(Step::Mkdir {
        path: "/etc".into(),
    });
    for entry in ETC_ENTRIES {
        let entry = Path::new(entry);
        match host.kind(entry) {
            HostKind::Dir => {
                steps.push(Step::Mkdir { path: entry.into() });
                steps.push(ro_bind(entry, entry));
            }
            HostKind::File => {
                steps.push(Step::Touch { path: entry.into() });
                steps.push(ro_bind(entry, entry));
            }
            HostKind::Symlink(target) => steps.push(Step::Symlink {
                target,
                link: entry.into(),
            }),
            HostKind::Missing => {}
        }
    }
    for (path, contents) in generated_etc(spec, host) {
        steps.push(Step::WriteFile {
            path: path.into(),
            contents,
        });
    }
    steps
}

/// A fresh `/proc` (with `/proc/sys` read-only), a minimal `/dev`, and the private `/tmp`.
fn kernel_and_scratch(spec: &ContainerSpec, host: &dyn HostView) -> Vec<Step> {
    let mut steps = vec![
        Step::Mkdir {
            path: "/proc".into(),
        },
        Step::Proc {
            target: "/proc".into(),
        },
        Step::ReadOnly {
            target: "/proc/sys".into(),
        },
    ];

    steps.push(Step::Mkdir {
        path: "/dev".into(),
    });
    steps.push(Step::Tmpfs {
        target: "/dev".into(),
        options: "size=64k,mode=755".into(),
    });
    for device in DEVICES {
        let host_path = Path::new("/dev").join(device);
        if host.kind(&host_path) == HostKind::Missing {
            continue;
        }
        steps.push(Step::Touch {
            path: host_path.clone(),
        });
        steps.push(Step::Bind {
            source: host_path.clone(),
            target: host_path,
            writable: true,
            devices: true,
        });
    }
    for (link, target) in [
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
    ] {
        steps.push(Step::Symlink {
            target: target.into(),
            link: link.into(),
        });
    }
    steps.push(Step::Mkdir {
        path: "/dev/shm".into(),
    });
    steps.push(Step::Tmpfs {
        target: "/dev/shm".into(),
        options: "size=64m,mode=1777".into(),
    });

    steps.push(Step::Mkdir {
        path: "/tmp".into(),
    });
    steps.push(Step::Tmpfs {
        target: "/tmp".into(),
        options: format!("size={}m,mode=1777", spec.tmp_size_mb),
    });
    steps
}

/// The root tmpfs options (for the executor).
pub fn root_tmpfs_options() -> &'static str {
    ROOT_TMPFS_OPTIONS
}

fn ro_bind(source: &Path, target: &Path) -> Step {
    Step::Bind {
        source: source.into(),
        target: target.into(),
        writable: false,
        devices: false,
    }
}

/// `/etc` files written for the container: its own users, host name and resolver.
fn generated_etc(spec: &ContainerSpec, host: &dyn HostView) -> Vec<(&'static str, String)> {
    let passwd = "root:x:0:0:root:/root:/bin/sh\n\
                  nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
    let group = "root:x:0:\nnogroup:x:65534:\n";
    let hosts = format!(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{}\n",
        spec.hostname
    );
    vec![
        ("/etc/passwd", passwd.to_owned()),
        ("/etc/group", group.to_owned()),
        ("/etc/hosts", hosts),
        ("/etc/hostname", format!("{}\n", spec.hostname)),
        ("/etc/resolv.conf", resolv_conf(host)),
    ]
}

/// The host's resolver configuration without loopback name servers: a resolver on the host's
/// 127.0.0.x is not reachable from the container's own network namespace.
fn resolv_conf(host: &dyn HostView) -> String {
    let Some(contents) = host.read(Path::new("/etc/resolv.conf")) else {
        return String::new();
    };
    let mut out = String::new();
    for line in contents.lines() {
        let mut words = line.split_whitespace();
        let loopback = words.next() == Some("nameserver")
            && words
                .next()
                .and_then(|address| address.parse::<std::net::IpAddr>().ok())
                .is_some_and(|address| address.is_loopback());
        if !loopback {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::spec::Bind;

    #[derive(Default)]
    struct FakeHost {
        kinds: HashMap<PathBuf, HostKind>,
        files: HashMap<PathBuf, String>,
    }

    impl FakeHost {
        fn with(mut self, path: &str, kind: HostKind) -> Self {
            self.kinds.insert(path.into(), kind);
            self
        }
    }

    impl HostView for FakeHost {
        fn kind(&self, path: &Path) -> HostKind {
            self.kinds.get(path).cloned().unwrap_or(HostKind::Missing)
        }
        fn read(&self, path: &Path) -> Option<String> {
            self.files.get(path).cloned()
        }
        fn list(&self, dir: &Path) -> Vec<String> {
            let mut names: Vec<String> = self
                .kinds
                .keys()
                .filter(|path| path.parent() == Some(dir))
                .filter_map(|path| Some(path.file_name()?.to_str()?.to_owned()))
                .collect();
            names.sort();
            names
        }
    }

    fn spec() -> ContainerSpec {
        ContainerSpec {
            id: "c1".into(),
            hostname: "box".into(),
            argv: vec!["/bin/true".into()],
            env: vec![],
            cwd: "/".into(),
            binds: vec![
                Bind::read_only("/srv/code", "/action"),
                Bind {
                    source: "/srv/assets/proxy.js".into(),
                    target: "/opt/proxy.js".into(),
                    writable: true,
                },
            ],
            tmp_size_mb: 32,
            memory_mb: 128,
            pids_max: 64,
            netns: None,
            rootfs: None,
        }
    }

    fn usrmerged_host() -> FakeHost {
        FakeHost::default()
            .with("/usr", HostKind::Dir)
            .with("/lib", HostKind::Symlink("usr/lib".into()))
            .with("/lib64", HostKind::Symlink("usr/lib64".into()))
            .with("/bin", HostKind::Symlink("usr/bin".into()))
            .with("/sbin", HostKind::Dir)
            .with("/etc/ssl", HostKind::Dir)
            .with("/etc/ld.so.cache", HostKind::File)
            .with(
                "/etc/localtime",
                HostKind::Symlink("/usr/share/zoneinfo/Etc/UTC".into()),
            )
            .with("/dev/null", HostKind::File)
            .with("/srv/code", HostKind::Dir)
            .with("/srv/assets/proxy.js", HostKind::File)
    }

    fn binds(steps: &[Step]) -> Vec<(PathBuf, bool)> {
        steps
            .iter()
            .filter_map(|step| match step {
                Step::Bind {
                    source, writable, ..
                } => Some((source.clone(), *writable)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn runtime_dirs_are_bound_read_only_and_symlinks_recreated() {
        let steps = plan(&spec(), &usrmerged_host());
        let bound = binds(&steps);
        assert!(bound.contains(&("/usr".into(), false)));
        assert!(bound.contains(&("/sbin".into(), false)));
        assert!(bound.contains(&("/etc/ssl".into(), false)));
        assert!(bound.contains(&("/etc/ld.so.cache".into(), false)));
        assert!(steps.contains(&Step::Symlink {
            target: "usr/lib".into(),
            link: "/lib".into()
        }));
        assert!(steps.contains(&Step::Symlink {
            target: "/usr/share/zoneinfo/Etc/UTC".into(),
            link: "/etc/localtime".into()
        }));
        // Absent on this host: neither bound nor linked.
        assert!(!steps.iter().any(|step| matches!(step,
            Step::Symlink { link, .. } | Step::Mkdir { path: link } if link == Path::new("/lib32"))));
    }

    #[test]
    fn nothing_else_of_the_host_is_bound() {
        let steps = plan(&spec(), &usrmerged_host());
        for (source, _) in binds(&steps) {
            let allowed = ["/usr", "/sbin", "/etc/", "/dev/", "/srv/"]
                .iter()
                .any(|prefix| source.to_string_lossy().starts_with(prefix));
            assert!(allowed, "unexpected bind of {}", source.display());
        }
    }

    #[test]
    fn spec_binds_come_last_with_their_mode_and_mount_point_kind() {
        let steps = plan(&spec(), &usrmerged_host());
        let tmp = steps
            .iter()
            .position(
                |step| matches!(step, Step::Tmpfs { target, .. } if target == Path::new("/tmp")),
            )
            .expect("a /tmp tmpfs");
        let action = steps
            .iter()
            .position(
                |step| matches!(step, Step::Bind { target, .. } if target == Path::new("/action")),
            )
            .expect("the /action bind");
        assert!(action > tmp);
        assert_eq!(
            steps[action - 1],
            Step::Mkdir {
                path: "/action".into()
            }
        );
        assert!(steps.contains(&Step::Touch {
            path: "/opt/proxy.js".into()
        }));
        assert!(binds(&steps).contains(&("/srv/assets/proxy.js".into(), true)));
        assert!(binds(&steps).contains(&("/srv/code".into(), false)));
    }

    #[test]
    fn tmp_is_size_limited_and_proc_sys_read_only() {
        let steps = plan(&spec(), &usrmerged_host());
        assert!(steps.contains(&Step::Tmpfs {
            target: "/tmp".into(),
            options: "size=32m,mode=1777".into()
        }));
        let proc_at = steps
            .iter()
            .position(|step| {
                *step
                    == Step::Proc {
                        target: "/proc".into(),
                    }
            })
            .expect("a fresh /proc");
        assert_eq!(
            steps[proc_at + 1],
            Step::ReadOnly {
                target: "/proc/sys".into()
            }
        );
    }

    #[test]
    fn only_present_devices_are_bound_with_device_access() {
        let steps = plan(&spec(), &usrmerged_host());
        let devices: Vec<&Step> = steps
            .iter()
            .filter(|step| matches!(step, Step::Bind { devices: true, .. }))
            .collect();
        assert_eq!(
            devices,
            vec![&Step::Bind {
                source: "/dev/null".into(),
                target: "/dev/null".into(),
                writable: true,
                devices: true
            }]
        );
    }

    #[test]
    fn generated_files_name_the_host_and_drop_loopback_resolvers() {
        let mut host = usrmerged_host();
        host.files.insert(
            "/etc/resolv.conf".into(),
            "nameserver 127.0.0.53\nnameserver 10.0.0.2\nsearch example\n".into(),
        );
        let steps = plan(&spec(), &host);
        let file = |name: &str| {
            steps.iter().find_map(|step| match step {
                Step::WriteFile { path, contents } if path == Path::new(name) => {
                    Some(contents.clone())
                }
                _ => None,
            })
        };
        assert_eq!(file("/etc/hostname").as_deref(), Some("box\n"));
        assert!(file("/etc/hosts").is_some_and(|hosts| hosts.contains("127.0.1.1\tbox")));
        assert_eq!(
            file("/etc/resolv.conf").as_deref(),
            Some("nameserver 10.0.0.2\nsearch example\n")
        );
        assert!(file("/etc/passwd").is_some_and(|passwd| passwd.starts_with("root:x:0:0:")));
    }

    /// A host with an unpacked image at `/img` next to its own runtime directories.
    fn image_host() -> FakeHost {
        usrmerged_host()
            .with("/img/bin", HostKind::Symlink("usr/bin".into()))
            .with("/img/usr", HostKind::Dir)
            .with("/img/etc", HostKind::Dir)
            .with("/img/etc/hosts", HostKind::File)
            .with("/img/etc/resolv.conf", HostKind::Symlink("/run/x".into()))
            .with("/img/proc", HostKind::Dir)
            .with("/img/dev", HostKind::Dir)
            .with("/img/sys", HostKind::Dir)
            .with("/img/tmp", HostKind::Dir)
            .with("/img/whisk", HostKind::File)
    }

    fn image_spec() -> ContainerSpec {
        ContainerSpec {
            rootfs: Some("/img".into()),
            ..spec()
        }
    }

    #[test]
    fn an_image_root_replaces_the_host_runtime_dirs_read_only() {
        let steps = plan(&image_spec(), &image_host());
        let bound = binds(&steps);
        assert!(bound.contains(&("/img/usr".into(), false)));
        assert!(bound.contains(&("/img/etc".into(), false)));
        assert!(bound.contains(&("/img/whisk".into(), false)));
        assert!(steps.contains(&Step::Touch {
            path: "/whisk".into()
        }));
        assert!(steps.contains(&Step::Symlink {
            target: "usr/bin".into(),
            link: "/bin".into()
        }));
        for (source, writable) in &bound {
            let allowed = source.starts_with("/img")
                || source.starts_with("/dev")
                || source.starts_with("/srv");
            assert!(allowed, "unexpected bind of {}", source.display());
            if source.starts_with("/img") {
                assert!(!writable, "{} must be read-only", source.display());
            }
        }
        assert!(
            !bound.iter().any(|(source, _)| source == Path::new("/usr")),
            "the host's /usr stays out"
        );
    }

    #[test]
    fn an_image_gets_fresh_proc_dev_and_tmp_and_no_sys() {
        let steps = plan(&image_spec(), &image_host());
        for skipped in ["/img/proc", "/img/dev", "/img/sys", "/img/tmp"] {
            assert!(
                !binds(&steps).contains(&(skipped.into(), false)),
                "{skipped}"
            );
        }
        assert!(steps.contains(&Step::Proc {
            target: "/proc".into()
        }));
        assert!(steps.contains(&Step::Tmpfs {
            target: "/tmp".into(),
            options: "size=32m,mode=1777".into()
        }));
        assert!(steps.contains(&Step::Tmpfs {
            target: "/dev".into(),
            options: "size=64k,mode=755".into()
        }));
    }

    #[test]
    fn only_an_image_s_regular_etc_files_are_covered_and_nothing_is_written_into_it() {
        let steps = plan(&image_spec(), &image_host());
        assert!(steps.contains(&Step::Cover {
            source: "/.whisk/hosts".into(),
            target: "/etc/hosts".into()
        }));
        let covered: Vec<&PathBuf> = steps
            .iter()
            .filter_map(|step| match step {
                Step::Cover { target, .. } => Some(target),
                _ => None,
            })
            .collect();
        assert_eq!(
            covered,
            vec![Path::new("/etc/hosts")],
            "no symlinked or absent files"
        );
        for step in &steps {
            if let Step::WriteFile { path, .. } | Step::Touch { path } | Step::Mkdir { path } = step
            {
                // `/etc` itself is the bind's mount point in the root tmpfs.
                assert!(
                    !path.starts_with("/etc") || path == Path::new("/etc"),
                    "{} would be created inside the image's /etc",
                    path.display()
                );
            }
        }
    }

    #[test]
    fn an_image_without_etc_gets_no_generated_files() {
        let mut host = image_host();
        host.kinds.retain(|path, _| !path.starts_with("/img/etc"));
        let steps = plan(&image_spec(), &host);
        assert!(
            !steps
                .iter()
                .any(|step| matches!(step, Step::WriteFile { .. } | Step::Cover { .. }))
        );
        assert!(
            !steps
                .iter()
                .any(|step| matches!(step, Step::Mkdir { path } if path.starts_with("/etc")))
        );
    }

    #[test]
    fn spec_binds_still_apply_on_an_image_root() {
        let steps = plan(&image_spec(), &image_host());
        assert!(binds(&steps).contains(&("/srv/code".into(), false)));
        assert!(binds(&steps).contains(&("/srv/assets/proxy.js".into(), true)));
    }
}
