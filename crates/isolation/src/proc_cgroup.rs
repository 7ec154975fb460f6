//! Which cgroup a process is in, read from `/proc/<pid>/cgroup`: the one
//! place the shim reads that table (for OOM watching, the pids of a
//! container, and its CPU usage on v1). A controller's folder is its v1
//! hierarchy's, where the host mounts one (v1 and hybrid hosts), else the
//! process's cgroup2 folder on a pure cgroup2 host.

use std::path::{Path, PathBuf};

use libcgroups::common::{CgroupSetup, DEFAULT_CGROUP_ROOT};
pub use libcgroups::v1::ControllerType;

/// A cgroup's folder, and which interface its files speak.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupFolder {
    V1(PathBuf),
    V2(PathBuf),
}

impl CgroupFolder {
    /// Process `pid`'s cgroup for `controller`.
    pub fn of_pid(pid: u32, controller: ControllerType) -> Option<Self> {
        let table = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
        let v1_root = crate::cgroups::v1_mount_points().get(&controller).cloned();
        let unified = match crate::cgroups::host_setup().ok()? {
            CgroupSetup::Unified => Some(PathBuf::from(DEFAULT_CGROUP_ROOT)),
            CgroupSetup::Legacy | CgroupSetup::Hybrid => None,
        };
        from_table(
            &table,
            controller.as_ref(),
            v1_root.as_deref(),
            unified.as_deref(),
        )
    }

    pub fn path(&self) -> &Path {
        match self {
            Self::V1(dir) | Self::V2(dir) => dir,
        }
    }
}

/// The pids in process `pid`'s own cgroup (its `pids` one; every process a
/// container has).
pub fn procs(pid: u32) -> Vec<u32> {
    CgroupFolder::of_pid(pid, ControllerType::Pids)
        .and_then(|cgroup| std::fs::read_to_string(cgroup.path().join("cgroup.procs")).ok())
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// CPU usage (total, user, kernel) in nanoseconds from cgroup v1's
/// `cpuacct` controller; `None` on cgroup2 (its `cpu.stat` is read by the
/// shim library) or when unreadable.
pub fn cpuacct_usage(pid: u32) -> Option<(u64, u64, u64)> {
    let CgroupFolder::V1(dir) = CgroupFolder::of_pid(pid, ControllerType::CpuAcct)? else {
        return None;
    };
    let read = |name: &str| -> Option<u64> {
        std::fs::read_to_string(dir.join(name))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    Some((
        read("cpuacct.usage")?,
        read("cpuacct.usage_user")?,
        read("cpuacct.usage_sys")?,
    ))
}

/// The folder in a `/proc/<pid>/cgroup` table: the line naming `controller`
/// under `v1_root`, else the `0::` line under `unified_root`.
fn from_table(
    table: &str,
    controller: &str,
    v1_root: Option<&Path>,
    unified_root: Option<&Path>,
) -> Option<CgroupFolder> {
    let under = |root: &Path, path: &str| root.join(path.trim_start_matches('/'));
    if let Some(root) = v1_root {
        for line in table.lines() {
            let mut fields = line.splitn(3, ':');
            let (Some(_), Some(controllers), Some(path)) =
                (fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            if controllers.split(',').any(|c| c == controller) {
                return Some(CgroupFolder::V1(under(root, path)));
            }
        }
    }
    let root = unified_root?;
    table
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .map(|path| CgroupFolder::V2(under(root, path)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "12:pids:/k8s.io/abc\n5:memory:/k8s.io/abc\n1:name=systemd:/\n0::/\n";

    #[test]
    fn a_hybrid_host_uses_the_v1_hierarchy_of_the_controller() {
        let memory = Path::new("/sys/fs/cgroup/memory");
        assert_eq!(
            from_table(HYBRID, "memory", Some(memory), None),
            Some(CgroupFolder::V1("/sys/fs/cgroup/memory/k8s.io/abc".into()))
        );
        let pids = Path::new("/sys/fs/cgroup/pids");
        assert_eq!(
            from_table(HYBRID, "pids", Some(pids), None),
            Some(CgroupFolder::V1("/sys/fs/cgroup/pids/k8s.io/abc".into()))
        );
    }

    #[test]
    fn a_pure_cgroup2_host_uses_the_unified_folder() {
        let found = from_table(
            "0::/kubepods/pod1/abc\n",
            "memory",
            None,
            Some(Path::new("/sys/fs/cgroup")),
        );
        assert_eq!(
            found,
            Some(CgroupFolder::V2("/sys/fs/cgroup/kubepods/pod1/abc".into()))
        );
    }

    #[test]
    fn controllers_mounted_together_and_a_controller_not_there() {
        assert_eq!(
            from_table(
                "4:cpu,cpuacct:/x\n",
                "cpuacct",
                Some(Path::new("/cg/cpu,cpuacct")),
                None
            ),
            Some(CgroupFolder::V1("/cg/cpu,cpuacct/x".into()))
        );
        // `name=systemd` is not `pids`, nor is `pids2`.
        assert_eq!(
            from_table(
                "1:name=systemd:/x\n2:pids2:/y\n",
                "pids",
                Some(Path::new("/cg/pids")),
                None
            ),
            None
        );
        assert_eq!(
            from_table("garbage\n", "memory", None, Some(Path::new("/cg"))),
            None
        );
    }
}
