//! Installing onto a node's root (the host's `/`, mounted into the
//! installer's container) and taking it all back.
//!
//! Every file written and folder made is recorded in a manifest
//! (`var/lib/edgeshim/install.json`); the original containerd config is
//! kept beside it as `config.toml.edgeshim-backup` (or its absence
//! recorded). `uninstall` removes what the manifest lists, puts the config
//! back and removes the folders it made, so that the root is as it was.
//! Installing again changes nothing that is already right.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::{containerd_config, policy};

/// Where the manifest is kept, under the node's root.
pub const MANIFEST: &str = "var/lib/edgeshim/install.json";
/// Where K3s looks for extra shims (and registers them by itself).
const K3S_BIN: &str = "opt/kwasm/bin";
const BIN: &str = "usr/local/bin";
const CONTAINERD_CONFIG: &str = "etc/containerd/config.toml";
const BACKUP_SUFFIX: &str = ".edgeshim-backup";

/// What kind of node the root is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// K3s: shims in /opt/kwasm/bin, K3s's own config left alone.
    K3s,
    /// Any other containerd: shims in /usr/local/bin, handlers added to
    /// /etc/containerd/config.toml.
    Containerd,
}

/// A K3s node has its data or config folder.
pub fn detect(root: &Path) -> Layout {
    if root.join("var/lib/rancher/k3s").is_dir() || root.join("etc/rancher/k3s").is_dir() {
        Layout::K3s
    } else {
        Layout::Containerd
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Manifest {
    /// Files written, relative to the root.
    pub files: Vec<PathBuf>,
    /// Folders made (to remove when empty), deepest last.
    pub folders: Vec<PathBuf>,
    /// Files that were there before with other contents, kept beside
    /// themselves with the backup suffix and put back on uninstall.
    #[serde(default)]
    pub replaced: Vec<PathBuf>,
    /// The containerd config edited, if any, and whether it existed before.
    pub config: Option<PathBuf>,
    pub config_existed: bool,
}

/// What an install or uninstall did.
#[derive(Debug, Default)]
pub struct Report {
    pub written: Vec<PathBuf>,
    pub unchanged: Vec<PathBuf>,
    pub removed: Vec<PathBuf>,
    pub config_changed: bool,
}

pub struct Options {
    /// The folder holding `containerd-shim-*-v1` (and `lib/libwasmedge.so*`).
    pub from: PathBuf,
    /// Install the example library in audit mode.
    pub policy_audit: bool,
}

fn read_manifest(root: &Path) -> Result<Manifest> {
    let path = root.join(MANIFEST);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| path.display().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Manifest::default()),
        Err(e) => Err(e).with_context(|| path.display().to_string()),
    }
}

/// Writes `bytes` at `root/relative` (a whole file, renamed into place)
/// unless it already holds them; records it and any folder made.
fn put(
    root: &Path,
    relative: &Path,
    bytes: &[u8],
    mode: u32,
    manifest: &mut Manifest,
    report: &mut Report,
) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    refuse_links(root, relative)?;
    let target = root.join(relative);
    let ours = manifest.files.contains(&relative.to_path_buf());
    let before = std::fs::read(&target).ok();
    if before.as_deref() == Some(bytes) {
        // Right already (ours from an earlier run, or the operator's own).
        report.unchanged.push(relative.to_path_buf());
        return Ok(());
    }
    if !ours {
        if before.is_some() {
            let backup = backup_of(&target);
            std::fs::copy(&target, &backup).with_context(|| backup.display().to_string())?;
            manifest.replaced.push(relative.to_path_buf());
        }
        manifest.files.push(relative.to_path_buf());
    }
    make_folders(root, relative.parent().unwrap_or(Path::new("")), manifest)?;
    let staged = target.with_extension("edgeshim-new");
    std::fs::write(&staged, bytes).with_context(|| staged.display().to_string())?;
    std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(mode))?;
    std::fs::rename(&staged, &target).with_context(|| target.display().to_string())?;
    report.written.push(relative.to_path_buf());
    Ok(())
}

/// Refuses a path under `root` any part of which is a symbolic link: the
/// root is the host's `/` mounted into the installer's container, where an
/// absolute link would resolve inside the container and a relative one could
/// lead anywhere on the host. Written by hand (the paths are a few fixed
/// ones); the bundle crate confines with `openat2` where paths come from a
/// request.
fn refuse_links(root: &Path, relative: &Path) -> Result<()> {
    let mut walked = root.to_path_buf();
    for part in relative.components() {
        walked.push(part);
        if walked
            .symlink_metadata()
            .is_ok_and(|m| m.file_type().is_symlink())
        {
            anyhow::bail!(
                "{} is a symbolic link on the node: not followed; install by hand or replace it \
                 with a folder",
                walked.display()
            );
        }
    }
    Ok(())
}

/// Makes `relative` under `root`, recording each folder it made.
fn make_folders(root: &Path, relative: &Path, manifest: &mut Manifest) -> Result<()> {
    let mut walked = PathBuf::new();
    for part in relative.components() {
        walked.push(part);
        let folder = root.join(&walked);
        if !folder.exists() {
            std::fs::create_dir(&folder).with_context(|| folder.display().to_string())?;
            manifest.folders.push(walked.clone());
        }
    }
    Ok(())
}

/// The files of the image to install: the shims, and libwasmedge beside
/// them (`lib/`) when the image carries it.
fn sources(from: &Path) -> Result<Vec<(PathBuf, PathBuf)>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(from).with_context(|| from.display().to_string())? {
        let path = entry?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        if let Some(name) = name
            && name.starts_with("containerd-shim-")
            && path.is_file()
        {
            found.push((path, PathBuf::from(name)));
        }
    }
    for entry in std::fs::read_dir(from.join("lib")).into_iter().flatten() {
        let path = entry?.path();
        if let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned())
            && name.starts_with("libwasmedge.so")
        {
            found.push((path, PathBuf::from("../lib").join(name)));
        }
    }
    if !found
        .iter()
        .any(|(_, name)| name.to_string_lossy().starts_with("containerd-shim-"))
    {
        anyhow::bail!("no containerd-shim-*-v1 in {}", from.display());
    }
    found.sort();
    Ok(found)
}

/// Installs onto `root`.
pub fn install(root: &Path, options: &Options) -> Result<Report> {
    let mut manifest = read_manifest(root)?;
    let mut report = Report::default();
    let layout = detect(root);
    let bin = Path::new(match layout {
        Layout::K3s => K3S_BIN,
        Layout::Containerd => BIN,
    });
    for (source, name) in sources(&options.from)? {
        let bytes = std::fs::read(&source).with_context(|| source.display().to_string())?;
        // `../lib/x` from the bin folder: its sibling lib folder.
        let relative = normalize(&bin.join(&name));
        put(root, &relative, &bytes, 0o755, &mut manifest, &mut report)?;
    }
    if options.policy_audit {
        for (relative, text) in policy::files() {
            put(
                root,
                &relative,
                text.as_bytes(),
                0o644,
                &mut manifest,
                &mut report,
            )?;
        }
    }
    if layout == Layout::Containerd {
        edit_config(root, &mut manifest, &mut report)?;
    }
    refuse_links(root, Path::new(MANIFEST))?;
    let manifest_path = root.join(MANIFEST);
    make_folders(
        root,
        Path::new(MANIFEST).parent().unwrap_or(Path::new("")),
        &mut manifest,
    )?;
    std::fs::write(&manifest_path, serde_json::to_vec_pretty(&manifest)?)
        .with_context(|| manifest_path.display().to_string())?;
    Ok(report)
}

/// `a/b/../c` as `a/c` (no file system access: the root is not ours).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

fn edit_config(root: &Path, manifest: &mut Manifest, report: &mut Report) -> Result<()> {
    let relative = PathBuf::from(CONTAINERD_CONFIG);
    refuse_links(root, &relative)?;
    let path = root.join(&relative);
    let existed = path.is_file();
    let text = if existed {
        std::fs::read_to_string(&path).with_context(|| path.display().to_string())?
    } else {
        // containerd 1.6 fills in its defaults around a partial config.
        "version = 2\n".to_string()
    };
    let Some(updated) =
        containerd_config::with_handlers(&text).with_context(|| path.display().to_string())?
    else {
        return Ok(());
    };
    if manifest.config.is_none() {
        manifest.config = Some(relative.clone());
        manifest.config_existed = existed;
        if existed {
            let backup = backup_of(&path);
            std::fs::copy(&path, &backup).with_context(|| backup.display().to_string())?;
        }
    }
    make_folders(root, relative.parent().unwrap_or(Path::new("")), manifest)?;
    let staged = path.with_extension("toml.edgeshim-new");
    std::fs::write(&staged, updated)?;
    std::fs::rename(&staged, &path).with_context(|| path.display().to_string())?;
    report.config_changed = true;
    Ok(())
}

fn backup_of(config: &Path) -> PathBuf {
    let mut name = config.as_os_str().to_owned();
    name.push(BACKUP_SUFFIX);
    PathBuf::from(name)
}

/// Takes back everything the manifest lists.
pub fn uninstall(root: &Path) -> Result<Report> {
    let manifest = read_manifest(root)?;
    let mut report = Report::default();
    for file in &manifest.files {
        let path = root.join(file);
        let outcome = if manifest.replaced.contains(file) {
            std::fs::rename(backup_of(&path), &path)
        } else {
            std::fs::remove_file(&path)
        };
        match outcome {
            Ok(()) => report.removed.push(file.clone()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| file.display().to_string()),
        }
    }
    if let Some(config) = &manifest.config {
        let path = root.join(config);
        let backup = backup_of(&path);
        if manifest.config_existed {
            std::fs::rename(&backup, &path).with_context(|| backup.display().to_string())?;
        } else {
            std::fs::remove_file(&path).with_context(|| path.display().to_string())?;
        }
        report.config_changed = true;
    }
    std::fs::remove_file(root.join(MANIFEST))
        .with_context(|| root.join(MANIFEST).display().to_string())?;
    for folder in manifest.folders.iter().rev() {
        // Only if empty: anything else put there since is not ours.
        let _ = std::fs::remove_dir(root.join(folder));
    }
    Ok(report)
}

/// Every folder and file under `root` with its contents (`None` for a
/// folder): what "the root as it was" compares, in this crate's tests and
/// the installer's integration test.
pub fn tree(root: &Path) -> std::collections::BTreeMap<PathBuf, Option<Vec<u8>>> {
    let mut seen = std::collections::BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            let Ok(relative) = path.strip_prefix(root).map(Path::to_path_buf) else {
                continue;
            };
            if path.is_dir() {
                seen.insert(relative, None);
                stack.push(path);
            } else {
                seen.insert(relative, std::fs::read(&path).ok());
            }
        }
    }
    seen
}

#[cfg(test)]
mod tests;
