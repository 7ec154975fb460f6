//! Where a process's memory cgroup is: its v1 `memory` hierarchy folder
//! when the host mounts one (v1 and hybrid hosts), else its cgroup2 folder.

use std::path::{Path, PathBuf};

use libcgroups::common::{CgroupSetup, DEFAULT_CGROUP_ROOT};
use libcgroups::v1::ControllerType;

/// A memory cgroup's folder, and which interface it speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemoryCgroup {
    V1(PathBuf),
    V2(PathBuf),
}

impl MemoryCgroup {
    /// The memory cgroup of process `pid`, from `/proc/<pid>/cgroup`.
    pub fn of_pid(pid: u32) -> Option<Self> {
        let table = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
        let v1_root = crate::cgroups::v1_mount_points()
            .get(&ControllerType::Memory)
            .cloned();
        let unified = match crate::cgroups::host_setup().ok()? {
            CgroupSetup::Unified => Some(PathBuf::from(DEFAULT_CGROUP_ROOT)),
            CgroupSetup::Legacy | CgroupSetup::Hybrid => None,
        };
        from_table(&table, v1_root.as_deref(), unified.as_deref())
    }
}

/// The memory cgroup in a `/proc/<pid>/cgroup` table: the `memory` line
/// under `v1_root`, else the `0::` line under `unified_root`.
fn from_table(
    table: &str,
    v1_root: Option<&Path>,
    unified_root: Option<&Path>,
) -> Option<MemoryCgroup> {
    let under = |root: &Path, path: &str| root.join(path.trim_start_matches('/'));
    for line in table.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if let Some(root) = v1_root
            && controllers.split(',').any(|c| c == "memory")
        {
            return Some(MemoryCgroup::V1(under(root, path)));
        }
    }
    let root = unified_root?;
    table
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .map(|path| MemoryCgroup::V2(under(root, path)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "12:pids:/k8s.io/abc\n5:memory:/k8s.io/abc\n1:name=systemd:/\n0::/\n";

    #[test]
    fn a_hybrid_host_watches_the_v1_memory_hierarchy() {
        let found = from_table(HYBRID, Some(Path::new("/sys/fs/cgroup/memory")), None);
        assert_eq!(
            found,
            Some(MemoryCgroup::V1("/sys/fs/cgroup/memory/k8s.io/abc".into()))
        );
    }

    #[test]
    fn a_pure_cgroup2_host_watches_the_unified_folder() {
        let found = from_table(
            "0::/kubepods/pod1/abc\n",
            None,
            Some(Path::new("/sys/fs/cgroup")),
        );
        assert_eq!(
            found,
            Some(MemoryCgroup::V2("/sys/fs/cgroup/kubepods/pod1/abc".into()))
        );
    }

    #[test]
    fn controllers_mounted_together_and_no_memory_at_all() {
        let joined = "4:cpu,memory:/x\n";
        assert_eq!(
            from_table(joined, Some(Path::new("/cg/cpu,memory")), None),
            Some(MemoryCgroup::V1("/cg/cpu,memory/x".into()))
        );
        assert_eq!(
            from_table("3:pids:/x\n", Some(Path::new("/cg/memory")), None),
            None
        );
        assert_eq!(from_table("garbage\n", None, Some(Path::new("/cg"))), None);
    }
}
