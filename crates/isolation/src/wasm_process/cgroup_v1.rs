//! The container's cgroup on a v1 (or hybrid) host: made, limited and
//! joined by the set-up process, before it clones the container, which is
//! born in it.
//!
//! Written here rather than through libcgroups: its v1 `Manager::new`
//! parses /proc/self/mountinfo once per controller on every create (half
//! of libcontainer's intermediate process, docs/design.md "Where a start's
//! time goes"), and its per-controller `apply` functions are private. The
//! mount points come from [`crate::cgroups::v1_mount_points`], read once per
//! shim (see `LaunchRequest::cgroup_mounts`); the files written are the ones runc and libcgroups write for
//! the resources [`unsupported`] lets through (anything else goes to
//! libcontainer). [`remove`] undoes it with the same mount list (a
//! libcgroups manager would parse mountinfo again on every delete); stats
//! and updates stay with libcgroups.

use std::fs;
use std::io::Write;
use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, LinuxResources};

/// Why a spec's resources need libcontainer, or `None`.
pub(crate) fn unsupported(resources: &LinuxResources) -> Option<&'static str> {
    if let Some(memory) = resources.memory() {
        if memory.kernel().is_some() || memory.kernel_tcp().is_some() {
            return Some("a kernel memory limit");
        }
        if memory.swappiness().is_some()
            || memory.disable_oom_killer().is_some()
            || memory.use_hierarchy().is_some()
            || memory.check_before_update().is_some()
        {
            return Some("a memory option beyond limit, reservation and swap");
        }
    }
    if let Some(cpu) = resources.cpu()
        && (cpu.realtime_runtime().is_some()
            || cpu.realtime_period().is_some()
            || cpu.burst().is_some()
            || cpu.idle().is_some())
    {
        return Some("a realtime, burst or idle cpu setting");
    }
    let non_empty = |len: Option<usize>| len.is_some_and(|n| n > 0);
    if resources.block_io().is_some()
        || non_empty(resources.hugepage_limits().as_ref().map(Vec::len))
        || resources.network().is_some()
        || non_empty(resources.rdma().as_ref().map(|r| r.len()))
        || non_empty(resources.unified().as_ref().map(|u| u.len()))
    {
        return Some("block I/O, hugepage, network, rdma or unified resources");
    }
    None
}

/// The cgroup path as a relative path below each controller's mount point;
/// refuses `..` and anything else that could leave the hierarchy.
fn relative(cgroups_path: &Path) -> Result<PathBuf, String> {
    let mut relative = PathBuf::new();
    for component in cgroups_path.components() {
        match component {
            Component::RootDir => {}
            Component::Normal(part) => relative.push(part),
            _ => {
                return Err(format!(
                    "cgroups path {} leaves the cgroup hierarchy",
                    cgroups_path.display()
                ));
            }
        }
    }
    if relative.as_os_str().is_empty() {
        return Err("the cgroups path is the hierarchy's root".into());
    }
    Ok(relative)
}

/// Makes the container's cgroup under every mounted controller and writes
/// the spec's limits. A cgroup that exists already is taken only while no
/// process is in it (runc refuses a populated one): another container's or
/// the host's must never get these limits, nor be killed at delete.
pub(crate) fn make(
    mounts: &[(String, PathBuf)],
    cgroups_path: &Path,
    resources: Option<&LinuxResources>,
) -> Result<(), String> {
    let relative = relative(cgroups_path)?;
    if mounts.is_empty() {
        return Err("no cgroup v1 controller is mounted".into());
    }
    for (controller, mount) in mounts {
        let dir = mount.join(&relative);
        if let Some(parent) = dir.parent() {
            fs::create_dir_all(parent)
                .map_err(|e| format!("cannot make {}: {e}", parent.display()))?;
        }
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                if !read(&dir.join("cgroup.procs"))?.trim().is_empty() {
                    return Err(format!(
                        "cgroup {} exists and has processes in it",
                        dir.display()
                    ));
                }
            }
            Err(e) => return Err(format!("cannot make {}: {e}", dir.display())),
        }
        if controller == "cpuset" {
            inherit_cpuset(mount, &relative)?;
        }
        apply(controller, &dir, resources)?;
    }
    Ok(())
}

/// Moves the calling thread into the cgroup [`make`] made. The caller is
/// the single-threaded set-up process (forked from the launcher), so its
/// one thread is all of it, and the container it clones is born here.
///
/// Why `0` into `tasks` rather than the pid into `cgroup.procs`: a write
/// that names a process (or any pid) makes the kernel take the global
/// `cgroup_threadgroup_rwsem` for writing, and without the
/// `favordynmods` mount option that waits for an RCU grace period, 12 to
/// 15 ms on this machine kind when starts are spaced out (docs/design.md,
/// "Where a start's time goes"). Moving only the writing thread itself
/// needs no such lock (the kernel's single-thread migration path, since
/// Linux 6.0): 0.25 ms for all nine controllers here.
pub(crate) fn join(mounts: &[(String, PathBuf)], cgroups_path: &Path) -> Result<(), String> {
    let relative = relative(cgroups_path)?;
    for (_, mount) in mounts {
        write(&mount.join(&relative).join("tasks"), "0")?;
    }
    Ok(())
}

/// How long a removal waits, in all, for killed processes to leave a
/// cgroup (they leave it as they exit; rmdir says EBUSY until then).
const REMOVE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(2);

/// Kills what is left in the container's cgroup and removes its folder
/// under every controller; a folder already gone is fine.
pub(crate) fn remove(mounts: &[(String, PathBuf)], cgroups_path: &Path) -> Result<(), String> {
    let relative = relative(cgroups_path)?;
    for (_, mount) in mounts {
        let dir = mount.join(&relative);
        for pid in procs_in(&dir)? {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        remove_dir_when_empty(&dir)?;
    }
    Ok(())
}

/// The processes in the container's cgroup, as its pids controller lists
/// them (none when the cgroup is gone).
pub(crate) fn procs(mounts: &[(String, PathBuf)], cgroups_path: &Path) -> Result<Vec<i32>, String> {
    let relative = relative(cgroups_path)?;
    match mounts.iter().find(|(controller, _)| controller == "pids") {
        Some((_, mount)) => procs_in(&mount.join(relative)),
        None => Ok(Vec::new()),
    }
}

/// The pids in one cgroup folder's `cgroup.procs`; none when it is gone.
fn procs_in(dir: &Path) -> Result<Vec<i32>, String> {
    match fs::read_to_string(dir.join("cgroup.procs")) {
        Ok(procs) => Ok(procs
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(format!("cannot read {}: {e}", dir.display())),
    }
}

/// rmdir, retried with a growing pause while the kernel still counts an
/// exiting process in the cgroup (as runc and libcgroups retry).
fn remove_dir_when_empty(dir: &Path) -> Result<(), String> {
    let started = std::time::Instant::now();
    let mut pause = std::time::Duration::from_millis(1);
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e)
                if e.raw_os_error() == Some(libc::EBUSY) && started.elapsed() < REMOVE_PATIENCE =>
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_millis(100));
            }
            Err(e) => return Err(format!("cannot remove {}: {e}", dir.display())),
        }
    }
}

/// A new v1 cpuset starts with no cpus and no memory nodes, and a process
/// cannot join it so: each level below the mount point takes its parent's
/// where it has none (as libcgroups and runc do).
fn inherit_cpuset(mount: &Path, relative: &Path) -> Result<(), String> {
    let mut parent = mount.to_path_buf();
    for part in relative.components() {
        let dir = parent.join(part);
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let own = read(&dir.join(file))?;
            if own.trim().is_empty() {
                write(&dir.join(file), read(&parent.join(file))?.trim())?;
            }
        }
        parent = dir;
    }
    Ok(())
}

/// Writes one controller's limits.
fn apply(controller: &str, dir: &Path, resources: Option<&LinuxResources>) -> Result<(), String> {
    if controller == "devices" {
        return apply_devices(dir, resources.and_then(|r| r.devices().as_deref()));
    }
    let Some(resources) = resources else {
        return Ok(());
    };
    match controller {
        "memory" => {
            if let Some(memory) = resources.memory() {
                // A new cgroup has no limits, so the memory limit can go
                // first and memory+swap (which must be at least it) next.
                if let Some(limit) = memory.limit() {
                    write(&dir.join("memory.limit_in_bytes"), &limit.to_string())?;
                }
                if let Some(swap) = memory.swap() {
                    write_swap(dir, swap, memory.limit())?;
                }
                if let Some(reservation) = memory.reservation() {
                    write(
                        &dir.join("memory.soft_limit_in_bytes"),
                        &reservation.to_string(),
                    )?;
                }
            }
        }
        "cpu" => {
            if let Some(cpu) = resources.cpu() {
                if let Some(shares) = cpu.shares().filter(|s| *s > 0) {
                    write(&dir.join("cpu.shares"), &shares.to_string())?;
                }
                if let Some(period) = cpu.period().filter(|p| *p > 0) {
                    write(&dir.join("cpu.cfs_period_us"), &period.to_string())?;
                }
                if let Some(quota) = cpu.quota().filter(|q| *q != 0) {
                    write(&dir.join("cpu.cfs_quota_us"), &quota.to_string())?;
                }
            }
        }
        "cpuset" => {
            if let Some(cpu) = resources.cpu() {
                if let Some(cpus) = cpu.cpus().as_deref().filter(|c| !c.is_empty()) {
                    write(&dir.join("cpuset.cpus"), cpus)?;
                }
                if let Some(mems) = cpu.mems().as_deref().filter(|m| !m.is_empty()) {
                    write(&dir.join("cpuset.mems"), mems)?;
                }
            }
        }
        "pids" => {
            if let Some(pids) = resources.pids() {
                let max = match pids.limit() {
                    limit if limit > 0 => limit.to_string(),
                    _ => "max".to_string(),
                };
                write(&dir.join("pids.max"), &max)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// memory+swap. Without swap accounting the file is missing: a spec that
/// asks for no more than its memory limit loses nothing then; one that asks
/// for swap beyond it is refused (runc's rule).
fn write_swap(dir: &Path, swap: i64, limit: Option<i64>) -> Result<(), String> {
    let file = dir.join("memory.memsw.limit_in_bytes");
    if file.exists() {
        return write(&file, &swap.to_string());
    }
    if swap == 0 || Some(swap) == limit {
        return Ok(());
    }
    Err(format!(
        "a swap limit of {swap} bytes needs swap accounting, which this kernel lacks"
    ))
}

/// The device rules: every device denied (a new v1 cgroup inherits its
/// parent's list, often all allowed), then the spec's rules, then what
/// every container may use (the default devices a container's /dev holds,
/// and the list runc allows; libcgroups keeps its copy private).
fn apply_devices(dir: &Path, rules: Option<&[LinuxDeviceCgroup]>) -> Result<(), String> {
    apply_device(dir, false, "a")?;
    for rule in rules.unwrap_or_default() {
        apply_device(dir, rule.allow(), &rule.to_string())?;
    }
    for device in libcontainer::rootfs::utils::default_devices() {
        let kind = match device.typ() {
            LinuxDeviceType::B => 'b',
            _ => 'c',
        };
        let rule = format!("{kind} {}:{} rwm", device.major(), device.minor());
        apply_device(dir, true, &rule)?;
    }
    for rule in ALWAYS_ALLOWED_DEVICES {
        apply_device(dir, true, rule)?;
    }
    Ok(())
}

/// runc's default allow list: mknod of any device (using one needs a rule),
/// /dev/console, the pty devices and the tun device.
const ALWAYS_ALLOWED_DEVICES: &[&str] = &[
    "c *:* m",
    "b *:* m",
    "c 5:1 rwm",
    "c 136:* rwm",
    "c 5:2 rwm",
    "c 10:200 rwm",
];

fn apply_device(dir: &Path, allow: bool, rule: &str) -> Result<(), String> {
    let file = if allow {
        "devices.allow"
    } else {
        "devices.deny"
    };
    write(&dir.join(file), rule)
}

fn read(path: &Path) -> Result<String, String> {
    fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// One write of the whole value, as cgroup files expect.
fn write(path: &Path, value: &str) -> Result<(), String> {
    fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|mut file| file.write_all(value.as_bytes()))
        .map_err(|e| format!("cannot write {value:?} to {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{
        LinuxCpuBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResourcesBuilder,
    };

    /// The files a kernel makes in every new v1 cgroup, made by hand in
    /// `dir`; `cpus` for its cpuset (memory node 0 where it has cpus).
    fn fill(dir: &Path, cpus: &str) {
        for file in [
            "cgroup.procs",
            "tasks",
            "memory.limit_in_bytes",
            "memory.memsw.limit_in_bytes",
            "memory.soft_limit_in_bytes",
            "cpu.shares",
            "cpu.cfs_period_us",
            "cpu.cfs_quota_us",
            "pids.max",
            "devices.allow",
            "devices.deny",
        ] {
            fs::write(dir.join(file), "").expect("file");
        }
        fs::write(dir.join("cpuset.cpus"), cpus).expect("cpus");
        let mems = if cpus.is_empty() { "" } else { "0" };
        fs::write(dir.join("cpuset.mems"), mems).expect("mems");
    }

    /// A fake v1 hierarchy: controller folders with each level's files.
    fn fake_mounts(root: &Path, path: &str) -> Vec<(String, PathBuf)> {
        let controllers = ["memory", "cpu", "cpuset", "pids", "devices"];
        let mut mounts = Vec::new();
        for controller in controllers {
            let mount = root.join(controller);
            let mut dir = mount.clone();
            let levels = std::iter::once("").chain(path.trim_start_matches('/').split('/'));
            for level in levels {
                dir.push(level);
                fs::create_dir_all(&dir).expect("mkdir");
                fill(&dir, if level.is_empty() { "0-1" } else { "" });
            }
            mounts.push((controller.to_string(), mount));
        }
        mounts
    }

    #[test]
    fn test_limits_land_in_their_files_and_the_process_joins_every_controller() {
        let root = tempfile::tempdir().expect("tempdir");
        let mounts = fake_mounts(root.path(), "/pod/c1");
        let resources = LinuxResourcesBuilder::default()
            .memory(
                LinuxMemoryBuilder::default()
                    .limit(64 << 20)
                    .swap(64 << 20)
                    .build()
                    .expect("memory"),
            )
            .cpu(
                LinuxCpuBuilder::default()
                    .shares(512u64)
                    .quota(50_000)
                    .period(100_000u64)
                    .build()
                    .expect("cpu"),
            )
            .pids(LinuxPidsBuilder::default().limit(20).build().expect("pids"))
            .build()
            .expect("resources");
        // The leaf is made here, as on a real host; the fake made its parent.
        for (_, mount) in &mounts {
            fs::remove_dir_all(mount.join("pod/c1")).expect("no leaf yet");
            fs::create_dir(mount.join("pod/c1")).expect("leaf");
            fill(&mount.join("pod/c1"), "");
        }
        make(&mounts, Path::new("/pod/c1"), Some(&resources)).expect("made");
        join(&mounts, Path::new("/pod/c1")).expect("joined");
        let file = |controller: &str, name: &str| {
            fs::read_to_string(root.path().join(controller).join("pod/c1").join(name))
                .expect("read")
        };
        assert_eq!(file("memory", "memory.limit_in_bytes"), "67108864");
        assert_eq!(file("memory", "memory.memsw.limit_in_bytes"), "67108864");
        assert_eq!(file("cpu", "cpu.shares"), "512");
        assert_eq!(file("cpu", "cpu.cfs_quota_us"), "50000");
        assert_eq!(file("cpu", "cpu.cfs_period_us"), "100000");
        assert_eq!(file("pids", "pids.max"), "20");
        assert_eq!(
            file("cpuset", "cpuset.cpus"),
            "0-1",
            "taken from the parent"
        );
        assert_eq!(file("cpuset", "cpuset.mems"), "0");
        for controller in ["memory", "cpu", "cpuset", "pids", "devices"] {
            assert_eq!(
                file(controller, "tasks"),
                "0",
                "{controller}: the caller's thread"
            );
        }
        // A file takes one write each; the fake keeps the last.
        assert_eq!(
            file("devices", "devices.deny"),
            "a",
            "everything denied first"
        );
        assert_eq!(file("devices", "devices.allow"), "c 10:200 rwm");
    }

    #[test]
    fn test_a_path_that_climbs_out_of_the_hierarchy_is_refused() {
        let root = tempfile::tempdir().expect("tempdir");
        let mounts = fake_mounts(root.path(), "/pod");
        for path in ["/pod/../../etc", "/", "pod/./x/.."] {
            let err = make(&mounts, Path::new(path), None).expect_err(path);
            assert!(
                err.contains("leaves the cgroup hierarchy") || err.contains("root"),
                "{path}: {err}"
            );
        }
    }

    #[test]
    fn test_a_populated_cgroup_that_exists_is_refused_by_name() {
        let root = tempfile::tempdir().expect("tempdir");
        let mounts = fake_mounts(root.path(), "/system.slice");
        fs::write(mounts[0].1.join("system.slice/cgroup.procs"), "1\n").expect("a member");
        let err = make(&mounts, Path::new("/system.slice"), None).expect_err("populated");
        assert!(err.contains("exists and has processes in it"), "{err}");
        assert_eq!(
            fs::read_to_string(mounts[0].1.join("system.slice/cgroup.procs")).expect("read"),
            "1\n",
            "its members untouched"
        );
    }

    #[test]
    fn test_the_cgroups_processes_are_read_from_its_pids_controller() {
        let root = tempfile::tempdir().expect("tempdir");
        let mounts = fake_mounts(root.path(), "/pod/c1");
        fs::write(root.path().join("pids/pod/c1/cgroup.procs"), "7\n9\n").expect("procs");
        assert_eq!(procs(&mounts, Path::new("/pod/c1")), Ok(vec![7, 9]));
        assert_eq!(procs(&mounts, Path::new("/pod/gone")), Ok(Vec::new()));
        assert!(procs(&mounts, Path::new("/pod/../x")).is_err(), "climbs");
    }

    #[test]
    fn test_removal_takes_every_controllers_folder_and_tolerates_missing_ones() {
        let root = tempfile::tempdir().expect("tempdir");
        let mounts = fake_mounts(root.path(), "/pod/c1");
        // A fake cgroup folder holds files; a real one's vanish with it.
        for (_, mount) in &mounts {
            for entry in fs::read_dir(mount.join("pod/c1")).expect("dir") {
                fs::remove_file(entry.expect("entry").path()).expect("rm");
            }
        }
        fs::remove_dir(mounts[0].1.join("pod/c1")).expect("one already gone");
        remove(&mounts, Path::new("/pod/c1")).expect("removed");
        for (controller, mount) in &mounts {
            assert!(!mount.join("pod/c1").exists(), "{controller}");
            assert!(mount.join("pod").exists(), "the parent stays: {controller}");
        }
        let err = remove(&mounts, Path::new("/pod/../x")).expect_err("climbs");
        assert!(err.contains("leaves the cgroup hierarchy"), "{err}");
    }

    #[test]
    fn test_swap_beyond_the_limit_without_swap_accounting_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_swap(dir.path(), 64, Some(64)).expect("equal to the limit: nothing lost");
        let err = write_swap(dir.path(), 128, Some(64)).expect_err("swap beyond");
        assert!(err.contains("needs swap accounting"), "{err}");
    }

    #[test]
    fn test_resources_beyond_the_direct_path_are_named() {
        let plain = LinuxResourcesBuilder::default().build().expect("resources");
        assert_eq!(unsupported(&plain), None);
        let realtime = LinuxResourcesBuilder::default()
            .cpu(
                LinuxCpuBuilder::default()
                    .realtime_runtime(1000)
                    .build()
                    .expect("cpu"),
            )
            .build()
            .expect("resources");
        assert_eq!(
            unsupported(&realtime),
            Some("a realtime, burst or idle cpu setting")
        );
        let kernel = LinuxResourcesBuilder::default()
            .memory(LinuxMemoryBuilder::default().kernel(1).build().expect("m"))
            .build()
            .expect("resources");
        assert_eq!(unsupported(&kernel), Some("a kernel memory limit"));
    }
}
