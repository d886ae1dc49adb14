//! Which cgroup version the host runs, and where each controller's hierarchy is mounted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{CgroupError, CgroupFs};

/// Where cgroup file systems are mounted by every init system we know of.
pub const CGROUP_MOUNT_POINT: &str = "/sys/fs/cgroup";

/// The host's cgroup layout, detected once at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupLayout {
    /// Legacy (or hybrid) hierarchies: one mount per controller or group of co-mounted controllers.
    V1 {
        memory: PathBuf,
        pids: PathBuf,
        cpu: PathBuf,
        freezer: PathBuf,
        /// Whether `memory.memsw.*` exists (swap accounting enabled). Without it the memory limit
        /// alone applies; with no swap configured that is the same thing.
        swap_accounting: bool,
    },
    /// The unified hierarchy, one tree for all controllers.
    V2 { root: PathBuf },
}

/// One line of `/proc/self/mountinfo`, reduced to what detection needs.
#[derive(Debug)]
struct CgroupMount<'a> {
    mount_point: &'a str,
    fs_type: &'a str,
    super_options: &'a str,
}

fn parse_mountinfo(mountinfo: &str) -> Vec<CgroupMount<'_>> {
    mountinfo
        .lines()
        .filter_map(|line| {
            // "<id> <parent> <maj:min> <root> <mount point> <options> [optional…] - <fstype> <source> <super options>"
            let (before, after) = line.split_once(" - ")?;
            let mount_point = before.split_whitespace().nth(4)?;
            let mut after = after.split_whitespace();
            let fs_type = after.next()?;
            let _source = after.next()?;
            let super_options = after.next().unwrap_or("");
            Some(CgroupMount {
                mount_point,
                fs_type,
                super_options,
            })
        })
        .collect()
}

/// Controllers the kernel has enabled, from `/proc/cgroups` (`subsys hierarchy num enabled`).
fn enabled_controllers(proc_cgroups: &str) -> Vec<&str> {
    proc_cgroups
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            match fields.as_slice() {
                [name, _hierarchy, _count, "1"] => Some(*name),
                _ => None,
            }
        })
        .collect()
}

impl CgroupLayout {
    /// Reads `/proc/self/mountinfo` and `/proc/cgroups` through `fs` and works out the layout.
    pub fn detect(fs: &dyn CgroupFs) -> Result<Self, CgroupError> {
        let mountinfo_path = Path::new("/proc/self/mountinfo");
        let mountinfo = fs
            .read_to_string(mountinfo_path)
            .map_err(|source| CgroupError::io("read", mountinfo_path, source))?;
        let proc_cgroups_path = Path::new("/proc/cgroups");
        // A v2-only kernel may still have /proc/cgroups; a missing one only matters for v1.
        let proc_cgroups = fs.read_to_string(proc_cgroups_path).unwrap_or_default();
        let mut layout = Self::from_proc(&mountinfo, &proc_cgroups)?;
        if let Self::V1 {
            memory,
            swap_accounting,
            ..
        } = &mut layout
        {
            *swap_accounting = fs.exists(&memory.join("memory.memsw.limit_in_bytes"));
        }
        Ok(layout)
    }

    /// The layout the two `/proc` files describe (swap accounting assumed off; [`Self::detect`]
    /// checks it on the file system).
    ///
    /// `/sys/fs/cgroup` mounted as `cgroup2` means v2; anything else (a tmpfs holding per-controller
    /// `cgroup` mounts, possibly with an extra `unified` v2 mount for systemd) means v1, because
    /// in a hybrid setup the controllers live on the v1 hierarchies.
    pub fn from_proc(mountinfo: &str, proc_cgroups: &str) -> Result<Self, CgroupError> {
        let mounts = parse_mountinfo(mountinfo);
        // The last mount on a path is the visible one.
        let top = mounts
            .iter()
            .rev()
            .find(|mount| mount.mount_point == CGROUP_MOUNT_POINT);
        if top.is_some_and(|mount| mount.fs_type == "cgroup2") {
            return Ok(Self::V2 {
                root: PathBuf::from(CGROUP_MOUNT_POINT),
            });
        }

        let enabled = enabled_controllers(proc_cgroups);
        let mut mount_of: BTreeMap<&str, &str> = BTreeMap::new();
        for mount in mounts.iter().filter(|mount| mount.fs_type == "cgroup") {
            for option in mount.super_options.split(',') {
                mount_of.insert(option, mount.mount_point);
            }
        }
        let find = |controller: &'static str| -> Result<PathBuf, CgroupError> {
            if !proc_cgroups.is_empty() && !enabled.contains(&controller) {
                return Err(CgroupError::MissingController { controller });
            }
            mount_of
                .get(controller)
                .map(PathBuf::from)
                .ok_or(CgroupError::MissingController { controller })
        };
        Ok(Self::V1 {
            memory: find("memory")?,
            pids: find("pids")?,
            cpu: find("cpu")?,
            freezer: find("freezer")?,
            swap_accounting: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This development machine's mountinfo (cgroup v1 with a systemd `unified` mount).
    const V1_MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime shared:9 - cgroup cgroup rw,memory
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    const PROC_CGROUPS: &str = "\
#subsys_name\thierarchy\tnum_cgroups\tenabled
cpuset\t3\t1\t1
cpu\t1\t1\t1
cpuacct\t1\t1\t1
memory\t4\t15\t1
freezer\t6\t1\t1
pids\t8\t1\t1
";

    #[test]
    fn v1_controllers_come_from_their_mounts_including_co_mounted_ones() {
        let layout = CgroupLayout::from_proc(V1_MOUNTINFO, PROC_CGROUPS);
        assert_eq!(
            layout.ok(),
            Some(CgroupLayout::V1 {
                memory: "/sys/fs/cgroup/memory".into(),
                pids: "/sys/fs/cgroup/pids".into(),
                cpu: "/sys/fs/cgroup/cpu,cpuacct".into(),
                freezer: "/sys/fs/cgroup/freezer".into(),
                swap_accounting: false,
            })
        );
    }

    #[test]
    fn cgroup2_on_the_mount_point_is_v2() {
        let mountinfo = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(
            CgroupLayout::from_proc(mountinfo, "").ok(),
            Some(CgroupLayout::V2 {
                root: "/sys/fs/cgroup".into()
            })
        );
    }

    #[test]
    fn a_disabled_or_unmounted_controller_is_reported_by_name() {
        let disabled = PROC_CGROUPS.replace("memory\t4\t15\t1", "memory\t0\t1\t0");
        assert!(matches!(
            CgroupLayout::from_proc(V1_MOUNTINFO, &disabled),
            Err(CgroupError::MissingController {
                controller: "memory"
            })
        ));
        let without_pids: String = V1_MOUNTINFO
            .lines()
            .filter(|line| !line.ends_with(",pids"))
            .map(|line| format!("{line}\n"))
            .collect();
        assert!(matches!(
            CgroupLayout::from_proc(&without_pids, PROC_CGROUPS),
            Err(CgroupError::MissingController { controller: "pids" })
        ));
    }

    #[test]
    fn detect_reads_proc_and_checks_swap_accounting_through_the_fs() {
        let fs = super::super::RecordingCgroupFs::new();
        fs.set_file("/proc/self/mountinfo", V1_MOUNTINFO);
        fs.set_file("/proc/cgroups", PROC_CGROUPS);
        fs.set_file("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes", "max");
        let layout = CgroupLayout::detect(&fs);
        assert!(matches!(
            layout,
            Ok(CgroupLayout::V1 {
                swap_accounting: true,
                ..
            })
        ));
    }
}
