//! containerd's rootfs mounts (snapshots) onto `<bundle>/rootfs`.

use std::path::{Path, PathBuf};

use containerd_shim::protos::types::mount::Mount;

/// Mounts each of containerd's rootfs mounts on `<bundle>/rootfs`; returns the
/// target when something was mounted (so delete knows to unmount it).
pub fn mount(bundle: &Path, mounts: &[Mount]) -> Result<Option<PathBuf>, String> {
    if mounts.is_empty() {
        return Ok(None);
    }
    let target = bundle.join("rootfs");
    std::fs::create_dir_all(&target).map_err(|e| format!("create {}: {e}", target.display()))?;
    for (done, m) in mounts.iter().enumerate() {
        let fs_type = (!m.type_.is_empty()).then_some(m.type_.as_str());
        let source = (!m.source.is_empty()).then_some(m.source.as_str());
        if let Err(e) = containerd_shim::mount::mount_rootfs(fs_type, source, &m.options, &target) {
            if done > 0 {
                unmount(&target);
            }
            return Err(format!("mount {} on {}: {e}", m.source, target.display()));
        }
    }
    Ok(Some(target))
}

/// Unmounts everything on `target` (lazily, so a busy mount cannot block a
/// delete); errors are logged, there is nobody to return them to.
pub fn unmount(target: &Path) {
    loop {
        match nix::mount::umount2(target, nix::mount::MntFlags::MNT_DETACH) {
            Ok(()) => continue,
            Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOENT) => break,
            Err(e) => {
                log::warn!("unmount {}: {e}", target.display());
                break;
            }
        }
    }
}
