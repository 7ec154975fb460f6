//! Checks and adapts a spec's cgroup requests to this host before
//! libcontainer acts on them.
//!
//! libcontainer's v1 manager silently skips a controller the host has not
//! mounted (a hugepage limit would simply not apply); runc refuses such a
//! spec, and so do we, naming the controller. It also takes a systemd-style
//! `cgroupsPath` (`slice:prefix:name`) literally when it cannot use systemd
//! (no systemd as PID 1, or a v1/hybrid hierarchy), making one directory
//! with colons in its name. We place the container where systemd would
//! have: `/<expanded slice>/<prefix>-<name>.scope`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libcgroups::common::{CgroupSetup, get_cgroup_setup};
use libcgroups::v1::ControllerType;
use oci_spec::runtime::{LinuxResources, Spec};

use crate::{IsolationError, MIN_PIDS_LIMIT, Result};

/// How the container's cgroup is to be made.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum CgroupDriver {
    /// Directly in the cgroup filesystem, at the spec's path.
    Cgroupfs,
    /// Through systemd (a transient scope), as runc's systemd driver does.
    Systemd,
}

/// Refuses what the host cannot enforce and picks the driver; returns the
/// cgroupfs path to put in the bundle when a systemd-style path must be laid
/// out on the cgroup filesystem by hand.
pub(crate) fn prepare(id: &str, spec: &Spec) -> Result<(CgroupDriver, Option<PathBuf>)> {
    let unsupported = |reason: String| IsolationError::Unsupported {
        id: id.to_string(),
        reason,
    };
    let setup = host_setup().map_err(unsupported)?;
    if let Some(resources) = spec.linux().as_ref().and_then(|l| l.resources().as_ref()) {
        check_pids_limit(resources).map_err(unsupported)?;
        check_controllers(resources, setup).map_err(unsupported)?;
    }
    let Some(path) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().as_ref())
        .and_then(|p| p.to_str())
        .filter(|p| is_systemd_style(p))
    else {
        return Ok((CgroupDriver::Cgroupfs, None));
    };
    if systemd_manages_cgroups(setup) {
        return Ok((CgroupDriver::Systemd, None));
    }
    let cgroupfs = systemd_layout(path).map_err(unsupported)?;
    log::info!(
        "container {id}: no systemd to manage cgroups; placing {path} at {}",
        cgroupfs.display()
    );
    Ok((CgroupDriver::Cgroupfs, Some(cgroupfs)))
}

/// The host's cgroup layout, read once per shim process: it is on every
/// create's path and does not change while the shim runs.
pub(crate) fn host_setup() -> std::result::Result<&'static CgroupSetup, String> {
    static SETUP: OnceLock<std::result::Result<CgroupSetup, String>> = OnceLock::new();
    SETUP
        .get_or_init(|| get_cgroup_setup().map_err(|e| format!("cgroups: {e}")))
        .as_ref()
        .map_err(Clone::clone)
}

/// The mounted v1 controllers, read once per shim process (each lookup
/// through libcgroups parses /proc/self/mountinfo again).
pub(crate) fn v1_mount_points() -> &'static HashMap<ControllerType, PathBuf> {
    static MOUNTS: OnceLock<HashMap<ControllerType, PathBuf>> = OnceLock::new();
    MOUNTS.get_or_init(|| libcgroups::v1::util::list_supported_mount_points().unwrap_or_default())
}

fn check_pids_limit(resources: &LinuxResources) -> std::result::Result<(), String> {
    match resources.pids().as_ref().map(|p| p.limit()) {
        Some(limit) if limit > 0 && limit < MIN_PIDS_LIMIT => Err(format!(
            "pids limit {limit} is too low: edgeshim needs at least {MIN_PIDS_LIMIT} to create a container"
        )),
        _ => Ok(()),
    }
}

/// The v1 controllers (v2 names are the same, bar `cpu` standing in for
/// `cpu` and `cpuacct`) that the spec's resources need.
fn requested_controllers(resources: &LinuxResources) -> Vec<(&'static str, ControllerType)> {
    let mut needed = Vec::new();
    if let Some(memory) = resources.memory()
        && (memory.limit().is_some() || memory.reservation().is_some() || memory.swap().is_some())
    {
        needed.push(("memory limits", ControllerType::Memory));
    }
    if let Some(cpu) = resources.cpu() {
        if cpu.shares().is_some() || cpu.quota().is_some() || cpu.period().is_some() {
            needed.push(("cpu shares or quota", ControllerType::Cpu));
        }
        if cpu.cpus().is_some() || cpu.mems().is_some() {
            needed.push(("a cpuset", ControllerType::CpuSet));
        }
    }
    if resources.pids().is_some() {
        needed.push(("a pids limit", ControllerType::Pids));
    }
    if resources
        .hugepage_limits()
        .as_ref()
        .is_some_and(|h| !h.is_empty())
    {
        needed.push(("hugepage limits", ControllerType::HugeTlb));
    }
    if let Some(block_io) = resources.block_io()
        && (block_io.weight().is_some()
            || block_io.throttle_read_bps_device().is_some()
            || block_io.throttle_write_bps_device().is_some())
    {
        needed.push(("block I/O limits", ControllerType::Blkio));
    }
    if let Some(network) = resources.network() {
        if network.class_id().is_some() {
            needed.push(("a network class id", ControllerType::NetworkClassifier));
        }
        if network.priorities().is_some() {
            needed.push(("network priorities", ControllerType::NetworkPriority));
        }
    }
    needed
}

fn check_controllers(
    resources: &LinuxResources,
    setup: &CgroupSetup,
) -> std::result::Result<(), String> {
    let unified_controllers = match setup {
        CgroupSetup::Unified => std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers")
            .map_err(|e| format!("cannot read /sys/fs/cgroup/cgroup.controllers: {e}"))?,
        CgroupSetup::Legacy | CgroupSetup::Hybrid => String::new(),
    };
    for (what, controller) in requested_controllers(resources) {
        let present = match setup {
            CgroupSetup::Unified => {
                let name = v2_name(controller);
                unified_controllers.split_whitespace().any(|c| c == name)
            }
            CgroupSetup::Legacy | CgroupSetup::Hybrid => {
                v1_mount_points().contains_key(&controller)
            }
        };
        if !present {
            return Err(format!(
                "the spec sets {what}, but this host has no {} cgroup controller",
                match setup {
                    CgroupSetup::Unified => v2_name(controller).to_string(),
                    _ => controller.to_string(),
                }
            ));
        }
    }
    Ok(())
}

fn v2_name(controller: ControllerType) -> &'static str {
    match controller {
        ControllerType::Blkio => "io",
        ControllerType::HugeTlb => "hugetlb",
        ControllerType::CpuSet => "cpuset",
        ControllerType::Memory => "memory",
        ControllerType::Pids => "pids",
        ControllerType::NetworkClassifier | ControllerType::NetworkPriority => {
            "(none: v2 has no net_cls/net_prio)"
        }
        _ => "cpu",
    }
}

/// `slice:prefix:name`, the form runc's systemd driver takes (OCI runtime
/// spec, "cgroupsPath"). Absolute and plain relative paths are not.
fn is_systemd_style(path: &str) -> bool {
    let parts: Vec<&str> = path.split(':').collect();
    !path.starts_with('/')
        && parts.len() == 3
        && (parts[0].is_empty() || parts[0].ends_with(".slice"))
        && !parts[2].is_empty()
}

/// Whether runc's systemd driver (and libcontainer's) can be used: systemd
/// is PID 1 and owns a unified hierarchy.
fn systemd_manages_cgroups(setup: &CgroupSetup) -> bool {
    matches!(setup, CgroupSetup::Unified) && Path::new("/run/systemd/system").is_dir()
}

/// Where systemd puts `slice:prefix:name`: the slice expanded by its dashes
/// (`a-b.slice` lives in `a.slice/a-b.slice`), then the scope
/// `prefix-name.scope` (or `name` itself when it is a slice). An empty slice
/// is `system.slice`, as for a root-run runc. Written here because
/// libcgroups keeps its own expansion private to its systemd manager.
fn systemd_layout(path: &str) -> std::result::Result<PathBuf, String> {
    let bad = |why: &str| format!("cgroupsPath {path:?}: {why}");
    let mut parts = path.splitn(3, ':');
    let (slice, prefix, name) = match (parts.next(), parts.next(), parts.next()) {
        (Some(slice), Some(prefix), Some(name)) => (slice, prefix, name),
        _ => return Err(bad("expected slice:prefix:name")),
    };
    let slice = if slice.is_empty() {
        "system.slice"
    } else {
        slice
    };
    if name.contains('/') || prefix.contains('/') {
        return Err(bad("a unit name cannot contain '/'"));
    }
    let mut layout = PathBuf::from("/");
    let stem = slice
        .strip_suffix(".slice")
        .filter(|s| !s.is_empty() && !s.contains('/'))
        .ok_or_else(|| bad("the slice must be a name ending in .slice"))?;
    if stem != "-" {
        let mut joined = String::new();
        for component in stem.split('-') {
            if component.is_empty() {
                return Err(bad("the slice has an empty component"));
            }
            joined.push_str(component);
            layout.push(format!("{joined}.slice"));
            joined.push('-');
        }
    }
    let unit = if name.ends_with(".slice") {
        name.to_string()
    } else if prefix.is_empty() {
        format!("{name}.scope")
    } else {
        format!("{prefix}-{name}.scope")
    };
    layout.push(unit);
    Ok(layout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_systemd_style_paths_are_told_from_cgroupfs_paths() {
        assert!(is_systemd_style(
            "kubepods-besteffort-pod1.slice:cri-containerd:abc"
        ));
        assert!(is_systemd_style(":docker:abc"));
        assert!(!is_systemd_style("/k8s.io/abc"));
        assert!(!is_systemd_style("k8s.io/abc"));
        assert!(!is_systemd_style("a:b"));
        assert!(!is_systemd_style("notaslice:prefix:name"));
    }

    #[test]
    fn test_systemd_layout_expands_slices_like_systemd() {
        let layout = |p| systemd_layout(p).map(|p| p.display().to_string());
        assert_eq!(
            layout("kubepods-besteffort-pod1.slice:cri-containerd:abc"),
            Ok("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/cri-containerd-abc.scope".into())
        );
        assert_eq!(
            layout(":docker:abc"),
            Ok("/system.slice/docker-abc.scope".into())
        );
        assert_eq!(layout("-.slice:p:n"), Ok("/p-n.scope".into()));
        assert_eq!(
            layout("machine.slice:p:inner.slice"),
            Ok("/machine.slice/inner.slice".into())
        );
        assert!(layout("a--b.slice:p:n").is_err_and(|e| e.contains("empty component")));
        assert!(layout("a.slice:p:n/../x").is_err_and(|e| e.contains("'/'")));
    }

    #[test]
    fn test_pids_limit_of_one_is_refused_with_the_minimum() {
        let resources: LinuxResources =
            serde_json::from_value(serde_json::json!({ "pids": { "limit": 1 } }))
                .expect("resources");
        let err = check_pids_limit(&resources).expect_err("refused");
        assert!(err.contains("pids limit 1 is too low"), "{err}");
        let resources: LinuxResources =
            serde_json::from_value(serde_json::json!({ "pids": { "limit": 0 } }))
                .expect("resources");
        assert!(check_pids_limit(&resources).is_ok());
    }

    #[test]
    fn test_requested_controllers_follow_the_resources_set() {
        let resources: LinuxResources = serde_json::from_value(serde_json::json!({
            "memory": { "limit": 1048576 },
            "hugepageLimits": [ { "pageSize": "2MB", "limit": 2097152 } ],
        }))
        .expect("resources");
        let names: Vec<String> = requested_controllers(&resources)
            .into_iter()
            .map(|(_, c)| c.to_string())
            .collect();
        assert_eq!(names, ["memory", "hugetlb"]);
    }
}
