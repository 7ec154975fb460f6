//! The container's filesystem view, made in its own mount namespace: the
//! rootfs bound on itself, the spec's mounts, the default devices, the
//! pivot into it, then the read-only root, the read-only paths and the
//! masks.
//!
//! Written here rather than through libcontainer's `RootFS`: that walks
//! every path through pathrs's procfs checks (about 400 system calls and
//! 1.3 ms per container, docs/design.md "Where a start's time goes"). A Wasm
//! sandbox's spec holds only tmpfs and bind mounts (its proc mount becomes
//! a mask); a native program's (a pod's pause) may also hold proc, sysfs,
//! mqueue and devpts, made as the kernel's own file systems. [`unsupported`]
//! sends anything else to libcontainer, and every destination is resolved
//! inside the rootfs by the kernel (`openat2` with `RESOLVE_IN_ROOT`), so a
//! link in the image cannot point a mount outside it. Mounts are made
//! detached and attached to that resolved descriptor (`open_tree`,
//! `fsopen`, `move_mount`): no path is looked up twice.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use libcontainer::rootfs::utils::{MountOptionConfig, parse_mount};
use libcontainer::syscall::Syscall;
use nix::mount::MsFlags;
use oci_spec::runtime::{Mount, Spec};

use super::Program;
use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags, OpenTreeFlags};

/// Why a spec's mounts need libcontainer, or `None`.
pub(crate) fn unsupported(spec: &Spec, program: Program) -> Option<String> {
    let propagation = spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().clone());
    if let Some(p) = propagation.filter(|p| !matches!(p.as_str(), "slave" | "private")) {
        return Some(format!("rootfs propagation {p:?}"));
    }
    // A Wasm spec: the mounts the sandbox edit leaves
    // (bundle_config::wasm_sandbox).
    let kept = spec.mounts().iter().flatten().filter(|m| {
        program == Program::Native
            || crate::bundle_config::kept_in_wasm_sandbox(
                m.typ().as_deref().unwrap_or_default(),
                &m.destination().to_string_lossy(),
            )
    });
    let mut dev_tmpfs = false;
    for mount in kept {
        let destination = mount.destination().display();
        let at_dev = mount.destination().to_string_lossy().trim_end_matches('/') == "/dev";
        let options = match parse_mount(mount) {
            Ok(options) => options,
            Err(e) => return Some(format!("mount {destination}: {e}")),
        };
        if options.rec_attr.is_some() {
            return Some(format!("recursive mount attributes on {destination}"));
        }
        match kind(mount, &options) {
            Kind::Bind if at_dev => return Some("a bind mount on /dev".into()),
            Kind::Bind => {
                if !mount.source().as_deref().is_some_and(Path::is_absolute) {
                    return Some(format!(
                        "a bind mount on {destination} from a relative source"
                    ));
                }
            }
            Kind::Tmpfs => dev_tmpfs |= at_dev,
            Kind::Proc => {}
            Kind::Kernel(_) if program == Program::Native => {}
            Kind::Kernel(kind) => return Some(format!("a {kind} mount on {destination}")),
            Kind::Other(kind) => return Some(format!("a {kind} mount on {destination}")),
        }
    }
    // The default devices are made in that tmpfs, before it is attached.
    (!dev_tmpfs).then(|| "no tmpfs on /dev".to_string())
}

enum Kind {
    Bind,
    Tmpfs,
    /// A native program's proc; a Wasm sandbox's is made a mask (an empty
    /// read-only tmpfs).
    Proc,
    /// sysfs, mqueue or devpts: a native program's only.
    Kernel(&'static str),
    Other(String),
}

fn kind(mount: &Mount, options: &MountOptionConfig) -> Kind {
    if options.flags.contains(MsFlags::MS_BIND) {
        return Kind::Bind;
    }
    match mount.typ().as_deref() {
        Some("bind") => Kind::Bind,
        Some("tmpfs") => Kind::Tmpfs,
        Some("proc") => Kind::Proc,
        Some("sysfs") => Kind::Kernel("sysfs"),
        Some("mqueue") => Kind::Kernel("mqueue"),
        Some("devpts") => Kind::Kernel("devpts"),
        other => Kind::Other(other.unwrap_or("typeless").to_string()),
    }
}

/// Makes the view and pivots into it; `rootfs` is the bundle's, absolute.
pub(super) fn enter(
    spec: &Spec,
    rootfs: &Path,
    program: Program,
    syscall: &dyn Syscall,
) -> Result<(), String> {
    let linux = spec.linux().as_ref().ok_or("no linux section")?;
    let propagation = match linux.rootfs_propagation().as_deref() {
        Some("private") => MsFlags::MS_PRIVATE,
        _ => MsFlags::MS_SLAVE,
    };
    // Nothing made from here on reaches the host's mount tree.
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | propagation,
        None::<&str>,
    )
    .map_err(|e| format!("cannot make the mount tree {propagation:?}: {e}"))?;
    nix::mount::mount(
        Some(rootfs),
        rootfs,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| format!("cannot bind the rootfs {}: {e}", rootfs.display()))?;
    let root = rustix::fs::open(
        rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| format!("cannot open the rootfs {}: {e}", rootfs.display()))?;
    for mount in spec.mounts().iter().flatten() {
        attach(&root, mount, program)
            .map_err(|e| format!("mount on {}: {e}", mount.destination().display()))?;
    }
    drop(root);
    syscall
        .pivot_rootfs(rootfs)
        .map_err(|e| format!("cannot pivot into {}: {e}", rootfs.display()))?;
    if spec.root().as_ref().and_then(|r| r.readonly()) == Some(true) {
        let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        nix::mount::mount(None::<&str>, "/", None::<&str>, flags, None::<&str>)
            .map_err(|e| format!("cannot make the root read-only: {e}"))?;
    }
    // A Wasm spec has none (bundle_config::wasm_sandbox).
    for path in linux.readonly_paths().iter().flatten() {
        make_read_only(Path::new(path))?;
    }
    for masked in linux.masked_paths().iter().flatten() {
        mask(Path::new(masked))?;
    }
    Ok(())
}

/// One spec mount, made detached and attached at its resolved destination.
fn attach(root: &OwnedFd, mount: &Mount, program: Program) -> Result<(), String> {
    let options = parse_mount(mount).map_err(|e| e.to_string())?;
    let attrs = attributes(options.flags);
    let (tree, is_file) = match kind(mount, &options) {
        Kind::Bind => {
            let source = mount
                .source()
                .as_deref()
                .ok_or("a bind mount with no source")?;
            let is_file = std::fs::metadata(source)
                .map_err(|e| format!("source {}: {e}", source.display()))?
                .is_file();
            let mut flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
            if options.flags.contains(MsFlags::MS_REC) {
                flags |= OpenTreeFlags::AT_RECURSIVE;
            }
            let tree = rustix::mount::open_tree(rustix::fs::CWD, source, flags)
                .map_err(|e| format!("cannot clone {}: {e}", source.display()))?;
            set_attributes(&tree, attrs)?;
            (tree, is_file)
        }
        Kind::Tmpfs => {
            let tree = new_fs("tmpfs", mount, &options, attrs)?;
            // Made in the new tmpfs itself, through its own descriptor: no
            // link in the image and no later mount can put them elsewhere.
            if mount.destination().to_string_lossy().trim_end_matches('/') == "/dev" {
                make_devices(&tree)?;
            }
            (tree, false)
        }
        // This process is in the container's pid, network and IPC
        // namespaces: the kernel's file systems made here show those.
        Kind::Proc if program == Program::Native => {
            (new_fs("proc", mount, &options, attrs)?, false)
        }
        Kind::Kernel(kind) if program == Program::Native => {
            (new_fs(kind, mount, &options, attrs)?, false)
        }
        Kind::Proc => (new_mask()?, false),
        Kind::Kernel(kind) => return Err(format!("{kind} mounts are not made here")),
        Kind::Other(kind) => return Err(format!("{kind} mounts are not made here")),
    };
    let destination = relative(mount.destination())?;
    let target = if is_file {
        make_file(root, &destination)?
    } else {
        make_dirs(root, &destination)?
    };
    if same_inode(&target, root)? {
        return Err("it is the rootfs's own root".into());
    }
    rustix::mount::move_mount(
        tree.as_fd(),
        "",
        target.as_fd(),
        "",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )
    .map_err(|e| format!("cannot attach: {e}"))?;
    if let Some(propagation) = propagation(options.flags) {
        set_propagation(&tree, propagation, options.flags.contains(MsFlags::MS_REC))?;
    }
    Ok(())
}

/// Whether two descriptors name one file.
fn same_inode(a: &OwnedFd, b: &OwnedFd) -> Result<bool, String> {
    let (a, b) = (
        rustix::fs::fstat(a.as_fd()).map_err(|e| e.to_string())?,
        rustix::fs::fstat(b.as_fd()).map_err(|e| e.to_string())?,
    );
    Ok(a.st_dev == b.st_dev && a.st_ino == b.st_ino)
}

/// A detached file system of `kind` (tmpfs, proc, sysfs, mqueue, devpts)
/// with the spec's source name and data (`size=`, `mode=`, `newinstance`,
/// ...); read-only all through when the spec says `ro`, as mount(2) makes
/// it.
fn new_fs(
    kind: &str,
    mount: &Mount,
    options: &MountOptionConfig,
    attrs: MountAttrFlags,
) -> Result<OwnedFd, String> {
    let source = mount
        .source()
        .as_deref()
        .map(|s| s.to_string_lossy().into_owned());
    let read_only = options.flags.contains(MsFlags::MS_RDONLY);
    configured_fs(kind, source.as_deref(), &options.data, read_only, attrs)
}

/// A Wasm sandbox's proc: an empty read-only tmpfs.
fn new_mask() -> Result<OwnedFd, String> {
    let attrs = MountAttrFlags::MOUNT_ATTR_RDONLY
        | MountAttrFlags::MOUNT_ATTR_NOSUID
        | MountAttrFlags::MOUNT_ATTR_NODEV
        | MountAttrFlags::MOUNT_ATTR_NOEXEC;
    configured_fs("tmpfs", Some("tmpfs"), &[], true, attrs)
}

fn configured_fs(
    kind: &str,
    source: Option<&str>,
    data: &[String],
    read_only: bool,
    attrs: MountAttrFlags,
) -> Result<OwnedFd, String> {
    let fs = rustix::mount::fsopen(kind, FsOpenFlags::FSOPEN_CLOEXEC)
        .map_err(|e| format!("fsopen {kind}: {e}"))?;
    if let Some(source) = source {
        rustix::mount::fsconfig_set_string(fs.as_fd(), "source", source)
            .map_err(|e| format!("{kind} source {source}: {e}"))?;
    }
    if read_only {
        rustix::mount::fsconfig_set_flag(fs.as_fd(), "ro")
            .map_err(|e| format!("{kind} read-only: {e}"))?;
    }
    for item in data
        .iter()
        .flat_map(|d| d.split(','))
        .filter(|d| !d.is_empty())
    {
        let set = match item.split_once('=') {
            Some((key, value)) => rustix::mount::fsconfig_set_string(fs.as_fd(), key, value),
            None => rustix::mount::fsconfig_set_flag(fs.as_fd(), item),
        };
        set.map_err(|e| format!("{kind} option {item}: {e}"))?;
    }
    rustix::mount::fsconfig_create(fs.as_fd()).map_err(|e| format!("{kind}: {e}"))?;
    rustix::mount::fsmount(fs.as_fd(), FsMountFlags::FSMOUNT_CLOEXEC, attrs)
        .map_err(|e| format!("fsmount {kind}: {e}"))
}

/// The mount attributes the spec's flags ask for.
fn attributes(flags: MsFlags) -> MountAttrFlags {
    let pairs = [
        (MsFlags::MS_RDONLY, MountAttrFlags::MOUNT_ATTR_RDONLY),
        (MsFlags::MS_NOSUID, MountAttrFlags::MOUNT_ATTR_NOSUID),
        (MsFlags::MS_NODEV, MountAttrFlags::MOUNT_ATTR_NODEV),
        (MsFlags::MS_NOEXEC, MountAttrFlags::MOUNT_ATTR_NOEXEC),
        (MsFlags::MS_NOATIME, MountAttrFlags::MOUNT_ATTR_NOATIME),
        (
            MsFlags::MS_STRICTATIME,
            MountAttrFlags::MOUNT_ATTR_STRICTATIME,
        ),
        (
            MsFlags::MS_NODIRATIME,
            MountAttrFlags::MOUNT_ATTR_NODIRATIME,
        ),
    ];
    pairs
        .iter()
        .filter(|(ms, _)| flags.contains(*ms))
        .fold(MountAttrFlags::empty(), |all, (_, attr)| all | *attr)
}

fn propagation(flags: MsFlags) -> Option<MsFlags> {
    [
        MsFlags::MS_PRIVATE,
        MsFlags::MS_SLAVE,
        MsFlags::MS_SHARED,
        MsFlags::MS_UNBINDABLE,
    ]
    .into_iter()
    .find(|p| flags.contains(*p))
}

/// `struct mount_attr` of mount_setattr(2); neither rustix nor nix wraps
/// the call yet.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

fn mount_setattr(tree: &OwnedFd, recursive: bool, attr: &MountAttr) -> Result<(), String> {
    let mut flags = libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: a valid descriptor, an empty C string, and a `mount_attr` of
    // the size passed.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            flags,
            attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(format!(
            "mount_setattr: {}",
            std::io::Error::last_os_error()
        ))
    }
}

/// Sets a bind mount's attributes on its top mount as runc's bind and
/// remount does: a spec that asks for any attribute gets exactly those
/// (the source's nosuid, nodev, noexec and read-only are dropped when not
/// asked for, the access-time mode is the spec's or relatime); a spec that
/// asks for none keeps the source's.
fn set_attributes(tree: &OwnedFd, attrs: MountAttrFlags) -> Result<(), String> {
    if attrs.is_empty() {
        return Ok(());
    }
    let attr = MountAttr {
        attr_set: u64::from(attrs.bits()),
        attr_clr: remount_clears(attrs),
        propagation: 0,
        userns_fd: 0,
    };
    mount_setattr(tree, false, &attr)
}

/// What a remount to exactly `attrs` clears of a mount's attributes.
fn remount_clears(attrs: MountAttrFlags) -> u64 {
    let replaced = MountAttrFlags::MOUNT_ATTR_RDONLY
        | MountAttrFlags::MOUNT_ATTR_NOSUID
        | MountAttrFlags::MOUNT_ATTR_NODEV
        | MountAttrFlags::MOUNT_ATTR_NOEXEC
        | MountAttrFlags::MOUNT_ATTR_NODIRATIME;
    u64::from((replaced - attrs).bits()) | libc::MOUNT_ATTR__ATIME
}

fn set_propagation(tree: &OwnedFd, propagation: MsFlags, recursive: bool) -> Result<(), String> {
    let attr = MountAttr {
        attr_set: 0,
        attr_clr: 0,
        propagation: propagation.bits(),
        userns_fd: 0,
    };
    mount_setattr(tree, recursive, &attr)
}

/// `path` as a path below the rootfs; `..` is refused (inside the root it
/// would resolve to the root anyway, but a spec that says so is wrong).
fn relative(path: &Path) -> Result<PathBuf, String> {
    let mut relative = PathBuf::new();
    for component in path.components() {
        match component {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(part) => relative.push(part),
            _ => return Err(format!("{} climbs with ..", path.display())),
        }
    }
    Ok(relative)
}

/// Opens `path` (relative) inside the root: links resolve inside it.
fn resolve(root: &OwnedFd, path: &Path) -> rustix::io::Result<OwnedFd> {
    let path = if path.as_os_str().is_empty() {
        Path::new(".")
    } else {
        path
    };
    rustix::fs::openat2(
        root.as_fd(),
        path,
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
}

/// Makes each missing folder of `path` inside the root; returns the last.
fn make_dirs(root: &OwnedFd, path: &Path) -> Result<OwnedFd, String> {
    let mut done = PathBuf::new();
    let mut dir = resolve(root, &done).map_err(|e| format!("rootfs: {e}"))?;
    for part in path.components() {
        done.push(part);
        dir = match resolve(root, &done) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) => {
                match rustix::fs::mkdirat(dir.as_fd(), part.as_os_str(), Mode::from(0o755)) {
                    Ok(()) => {}
                    // A link to what the rootfs lacks: not followed to make it.
                    Err(rustix::io::Errno::EXIST) => {
                        return Err(format!(
                            "{} is a link to something missing in the rootfs",
                            done.display()
                        ));
                    }
                    Err(e) => return Err(format!("cannot make {}: {e}", done.display())),
                }
                resolve(root, &done).map_err(|e| format!("{}: {e}", done.display()))?
            }
            Err(e) => return Err(format!("{}: {e}", done.display())),
        };
    }
    let stat = rustix::fs::fstat(dir.as_fd()).map_err(|e| format!("{}: {e}", done.display()))?;
    if rustix::fs::FileType::from_raw_mode(stat.st_mode) != rustix::fs::FileType::Directory {
        return Err(format!("{} is not a folder", done.display()));
    }
    Ok(dir)
}

/// The file a file bind mount covers, made empty inside the root if missing.
fn make_file(root: &OwnedFd, path: &Path) -> Result<OwnedFd, String> {
    if let Ok(fd) = resolve(root, path) {
        return Ok(fd);
    }
    let parent = make_dirs(root, path.parent().unwrap_or(Path::new("")))?;
    let name = path.file_name().ok_or("a file mount with no name")?;
    // mknod, not open: nothing raced into its place (a FIFO) can block it.
    let created = rustix::fs::mknodat(
        parent.as_fd(),
        name,
        rustix::fs::FileType::RegularFile,
        Mode::from(0o644),
        0,
    );
    match created {
        Ok(_) | Err(rustix::io::Errno::EXIST) => {}
        Err(e) => return Err(format!("cannot make {}: {e}", path.display())),
    }
    resolve(root, path).map_err(|e| format!("{}: {e}", path.display()))
}

/// The default devices (libcontainer's list: null, zero, full, random,
/// urandom, tty), owned by root, and the links a container's /dev holds,
/// as runc makes them, in `dev` (a tmpfs just made: nothing to replace).
fn make_devices(dev: &OwnedFd) -> Result<(), String> {
    // mknod applies the umask; a device's mode is the spec's.
    let umask = rustix::process::umask(Mode::empty());
    let made = libcontainer::rootfs::utils::default_devices()
        .iter()
        .try_for_each(|device| {
            let name = device
                .path()
                .strip_prefix("/dev")
                .map_err(|_| format!("device {} outside /dev", device.path().display()))?;
            let mode = Mode::from(device.file_mode().unwrap_or(0o666));
            let number = rustix::fs::makedev(device.major() as u32, device.minor() as u32);
            rustix::fs::mknodat(
                dev.as_fd(),
                name,
                rustix::fs::FileType::CharacterDevice,
                mode,
                number,
            )
            .and_then(|()| {
                rustix::fs::chownat(
                    dev.as_fd(),
                    name,
                    Some(rustix::fs::Uid::from_raw(device.uid().unwrap_or(0))),
                    Some(rustix::fs::Gid::from_raw(device.gid().unwrap_or(0))),
                    rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
                )
            })
            .map_err(|e| format!("cannot make {}: {e}", device.path().display()))
        });
    rustix::process::umask(umask);
    made?;
    let links = [
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
        ("/proc/kcore", "core"),
        ("pts/ptmx", "ptmx"),
    ];
    for (target, name) in links {
        rustix::fs::symlinkat(target, dev.as_fd(), name)
            .map_err(|e| format!("cannot link /dev/{name}: {e}"))?;
    }
    Ok(())
}

/// A spec's read-only path (after the pivot): a copy of the mount tree
/// there, made read-only, nosuid, nodev and noexec all the way down and
/// put in its place (libcontainer's `readonly_path` binds and remounts;
/// the copy is one mount and keeps the flags of the mounts below). A
/// missing path is skipped, as runc does.
fn make_read_only(path: &Path) -> Result<(), String> {
    let flags = OpenTreeFlags::OPEN_TREE_CLONE
        | OpenTreeFlags::OPEN_TREE_CLOEXEC
        | OpenTreeFlags::AT_RECURSIVE;
    let tree = match rustix::mount::open_tree(rustix::fs::CWD, path, flags) {
        Ok(tree) => tree,
        Err(rustix::io::Errno::NOENT) => return Ok(()),
        Err(e) => return Err(format!("cannot make {} read-only: {e}", path.display())),
    };
    let attrs = MountAttrFlags::MOUNT_ATTR_RDONLY
        | MountAttrFlags::MOUNT_ATTR_NOSUID
        | MountAttrFlags::MOUNT_ATTR_NODEV
        | MountAttrFlags::MOUNT_ATTR_NOEXEC;
    let attr = MountAttr {
        attr_set: u64::from(attrs.bits()),
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    mount_setattr(&tree, true, &attr)
        .map_err(|e| format!("cannot make {} read-only: {e}", path.display()))?;
    rustix::mount::move_mount(
        tree.as_fd(),
        "",
        rustix::fs::CWD,
        path,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(|e| format!("cannot make {} read-only: {e}", path.display()))
}

/// A folder is covered by an empty read-only tmpfs; a file by /dev/null.
/// Inside the new root, so a link in the path resolves there.
fn mask(path: &Path) -> Result<(), String> {
    let Ok(metadata) = std::fs::metadata(path) else {
        return Ok(());
    };
    let (source, kind, flags) = if metadata.is_dir() {
        ("tmpfs", Some("tmpfs"), MsFlags::MS_RDONLY)
    } else {
        ("/dev/null", None, MsFlags::MS_BIND)
    };
    nix::mount::mount(Some(source), path, kind, flags, None::<&str>)
        .map_err(|e| format!("cannot mask {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{LinuxBuilder, MountBuilder, SpecBuilder};

    fn spec_with(mounts: Vec<Mount>, propagation: Option<&str>) -> Spec {
        let mut linux = LinuxBuilder::default();
        if let Some(p) = propagation {
            linux = linux.rootfs_propagation(p);
        }
        SpecBuilder::default()
            .mounts(mounts)
            .linux(linux.build().expect("linux"))
            .build()
            .expect("spec")
    }

    fn mount(destination: &str, typ: &str, source: &str, options: &[&str]) -> Mount {
        MountBuilder::default()
            .destination(destination)
            .typ(typ)
            .source(source)
            .options(options.iter().map(|o| o.to_string()).collect::<Vec<_>>())
            .build()
            .expect("mount")
    }

    /// The mounts containerd's default spec gives every container.
    fn default_mounts() -> Vec<Mount> {
        vec![
            mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
            mount(
                "/dev",
                "tmpfs",
                "tmpfs",
                &["nosuid", "strictatime", "mode=755"],
            ),
            mount(
                "/dev/pts",
                "devpts",
                "devpts",
                &["nosuid", "newinstance", "gid=5"],
            ),
            mount(
                "/dev/shm",
                "tmpfs",
                "shm",
                &["nosuid", "noexec", "size=65536k"],
            ),
            mount(
                "/sys",
                "sysfs",
                "sysfs",
                &["nosuid", "noexec", "nodev", "ro"],
            ),
        ]
    }

    #[test]
    fn test_the_mounts_of_a_wasm_sandbox_spec_are_covered() {
        let mut mounts = default_mounts();
        mounts.push(mount("/data", "bind", "/srv", &["rbind", "rprivate", "ro"]));
        mounts.push(mount("/etc/hosts", "", "/etc/hosts", &["bind", "ro"]));
        assert_eq!(unsupported(&spec_with(mounts, None), Program::Wasm), None);
    }

    #[test]
    fn test_what_the_direct_path_does_not_make_is_named() {
        let cases = [
            (
                spec_with(vec![mount("/x", "overlay", "overlay", &[])], None),
                "a overlay mount on /x",
            ),
            (
                spec_with(vec![mount("/x", "bind", "relative/dir", &["rbind"])], None),
                "a bind mount on /x from a relative source",
            ),
            (
                spec_with(vec![mount("/x", "bind", "/srv", &["rbind", "rro"])], None),
                "recursive mount attributes on /x",
            ),
            (
                spec_with(Vec::new(), Some("shared")),
                "rootfs propagation \"shared\"",
            ),
            (spec_with(Vec::new(), None), "no tmpfs on /dev"),
            (
                spec_with(vec![mount("/dev", "bind", "/dev", &["rbind"])], None),
                "a bind mount on /dev",
            ),
        ];
        for (spec, reason) in cases {
            assert_eq!(unsupported(&spec, Program::Wasm).as_deref(), Some(reason));
        }
    }

    #[test]
    fn test_flags_become_mount_attributes() {
        let attrs = attributes(MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_BIND);
        assert_eq!(
            attrs,
            MountAttrFlags::MOUNT_ATTR_RDONLY | MountAttrFlags::MOUNT_ATTR_NOSUID
        );
        assert_eq!(
            propagation(MsFlags::MS_REC | MsFlags::MS_PRIVATE),
            Some(MsFlags::MS_PRIVATE)
        );
        assert_eq!(propagation(MsFlags::MS_BIND), None);
    }

    #[test]
    fn test_a_remount_keeps_only_what_the_spec_asks_for() {
        let clears = remount_clears(MountAttrFlags::MOUNT_ATTR_RDONLY);
        for dropped in [
            MountAttrFlags::MOUNT_ATTR_NOSUID,
            MountAttrFlags::MOUNT_ATTR_NODEV,
            MountAttrFlags::MOUNT_ATTR_NOEXEC,
        ] {
            assert_ne!(clears & u64::from(dropped.bits()), 0, "{dropped:?}");
        }
        assert_eq!(
            clears & u64::from(MountAttrFlags::MOUNT_ATTR_RDONLY.bits()),
            0
        );
        assert_eq!(clears & libc::MOUNT_ATTR__ATIME, libc::MOUNT_ATTR__ATIME);
    }

    #[test]
    fn test_the_mounts_of_a_pause_spec_are_covered_for_a_native_program() {
        let mut mounts = default_mounts();
        mounts.push(mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "nodev"],
        ));
        mounts.push(mount("/dev/shm", "bind", "/run/pod/shm", &["rbind", "ro"]));
        mounts.push(mount(
            "/etc/resolv.conf",
            "bind",
            "/run/pod/resolv.conf",
            &["rbind", "ro"],
        ));
        assert_eq!(
            unsupported(&spec_with(mounts.clone(), None), Program::Native),
            None
        );
        mounts.push(mount("/sys/fs/cgroup", "cgroup", "cgroup", &["ro"]));
        assert_eq!(
            unsupported(&spec_with(mounts, None), Program::Native).as_deref(),
            Some("a cgroup mount on /sys/fs/cgroup")
        );
    }

    #[test]
    fn test_a_link_in_the_image_cannot_take_a_mount_point_outside_the_rootfs() {
        let outside = tempfile::tempdir().expect("outside");
        let rootfs = tempfile::tempdir().expect("rootfs");
        // The image's /data is a link to a host folder, by absolute path and
        // by climbing.
        std::os::unix::fs::symlink(outside.path(), rootfs.path().join("data")).expect("link");
        std::os::unix::fs::symlink("../../../..", rootfs.path().join("up")).expect("link");
        let root = rustix::fs::open(
            rootfs.path(),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .expect("root");
        let err = make_dirs(&root, Path::new("data/made")).expect_err("dangling inside");
        assert!(err.contains("data is a link to something missing"), "{err}");
        make_dirs(&root, Path::new("up/etc/made")).expect("made inside");
        let file = make_file(&root, Path::new("up/hosts")).expect("file inside");
        drop(file);
        assert!(
            std::fs::read_dir(outside.path())
                .expect("outside")
                .next()
                .is_none(),
            "nothing made outside the rootfs"
        );
        assert!(
            rootfs.path().join("etc/made").is_dir(),
            "the climb ends at the root"
        );
        assert!(rootfs.path().join("hosts").is_file());
        let err = relative(Path::new("/a/../../b")).expect_err("climbs");
        assert!(err.contains("climbs"), "{err}");
    }
}
