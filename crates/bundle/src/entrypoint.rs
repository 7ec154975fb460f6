//! Finds `process.args[0]` inside the rootfs and says what kind of file it is.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use crate::{BundleError, Result};

/// How the entrypoint is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkloadKind {
    Wasm,
    Native,
}

/// A resolved entrypoint: its path as the container sees it, and its kind.
#[derive(Debug, Clone)]
pub struct Entrypoint {
    /// Absolute path inside the container (`/hello.wasm`).
    pub container_path: String,
    /// Host path of the rootfs the path is relative to.
    rootfs: std::path::PathBuf,
    pub kind: WorkloadKind,
}

const WASM_MAGIC: &[u8; 4] = b"\0asm";
const ELF_MAGIC: &[u8; 4] = b"\x7fELF";

impl Entrypoint {
    /// Resolves `arg0` as `execvp` would inside the container: a name with a
    /// slash is taken as a path (relative ones from `/`), a bare name is
    /// searched in the `PATH` of `env`.
    pub fn resolve(rootfs: &Path, arg0: &str, env: &[String]) -> Result<Self> {
        let candidates: Vec<String> = if arg0.contains('/') {
            vec![absolute(arg0)]
        } else {
            search_path(env)
                .map(|dir| format!("{}/{arg0}", dir.trim_end_matches('/')))
                .map(|p| absolute(&p))
                .collect()
        };
        for candidate in candidates {
            let Ok(file) = open_in_root(rootfs, &candidate) else {
                continue;
            };
            let kind = classify(file, &candidate)?;
            return Ok(Self {
                container_path: candidate,
                rootfs: rootfs.to_path_buf(),
                kind,
            });
        }
        Err(BundleError::EntrypointNotFound(arg0.to_string()))
    }

    /// Reads the whole file (the module bytes), resolving inside the rootfs.
    pub fn read(&self) -> Result<Vec<u8>> {
        let err = |source| BundleError::ReadEntrypoint {
            path: self.container_path.clone(),
            source,
        };
        let mut file = open_in_root(&self.rootfs, &self.container_path).map_err(err)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(err)?;
        Ok(bytes)
    }
}

fn absolute(path: &str) -> String {
    if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    }
}

fn search_path(env: &[String]) -> impl Iterator<Item = &str> {
    let path = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    path.split(':').filter(|d| !d.is_empty())
}

/// Opens `path` with the rootfs as `/`: the kernel resolves `..` and symlinks
/// (absolute ones too) inside the rootfs (`openat2` with `RESOLVE_IN_ROOT`), so
/// an image's `/bin/sh -> busybox` works and nothing resolves to the host.
fn open_in_root(rootfs: &Path, path: &str) -> std::io::Result<File> {
    let root = File::open(rootfs)?;
    let relative = path.trim_start_matches('/');
    let relative = if relative.is_empty() { "." } else { relative };
    let how = nix::fcntl::OpenHow::new()
        .flags(nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC)
        .resolve(nix::fcntl::ResolveFlag::RESOLVE_IN_ROOT);
    let fd = nix::fcntl::openat2(root.as_raw_fd(), relative, how)?;
    // SAFETY: openat2 returned a fresh descriptor that nothing else owns.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let file = File::from(owned);
    if file.metadata()?.is_dir() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::IsADirectory,
            "entrypoint is a directory",
        ));
    }
    Ok(file)
}

fn classify(mut file: File, path: &str) -> Result<WorkloadKind> {
    let mut magic = [0u8; 4];
    let mut filled = 0;
    while filled < magic.len() {
        match file.read(&mut magic[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(source) => {
                return Err(BundleError::ReadEntrypoint {
                    path: path.to_string(),
                    source,
                });
            }
        }
    }
    let head = &magic[..filled];
    if head == WASM_MAGIC {
        Ok(WorkloadKind::Wasm)
    } else if head == ELF_MAGIC || head.starts_with(b"#!") {
        Ok(WorkloadKind::Native)
    } else {
        Err(BundleError::UnknownFormat {
            path: path.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rootfs_with(files: &[(&str, &[u8])]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        for (path, bytes) in files {
            let full = dir.path().join(path.trim_start_matches('/'));
            std::fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
            std::fs::write(full, bytes).expect("write");
        }
        dir
    }

    #[test]
    fn test_wasm_and_native_are_told_apart() {
        let root = rootfs_with(&[("/m.wasm", b"\0asm\x01\0\0\0"), ("/bin/app", b"\x7fELF..")]);
        let wasm = Entrypoint::resolve(root.path(), "/m.wasm", &[]).expect("wasm");
        assert_eq!(wasm.kind, WorkloadKind::Wasm);
        let native = Entrypoint::resolve(root.path(), "app", &["PATH=/bin".into()]).expect("elf");
        assert_eq!(native.kind, WorkloadKind::Native);
        assert_eq!(native.container_path, "/bin/app");
    }

    #[test]
    fn test_script_is_native_and_text_is_refused() {
        let root = rootfs_with(&[("/run.sh", b"#!/bin/sh\necho"), ("/notes.txt", b"hello")]);
        let script = Entrypoint::resolve(root.path(), "/run.sh", &[]).expect("script");
        assert_eq!(script.kind, WorkloadKind::Native);
        let err = Entrypoint::resolve(root.path(), "/notes.txt", &[]).expect_err("text");
        assert!(matches!(err, BundleError::UnknownFormat { .. }), "{err}");
    }

    #[test]
    fn test_missing_entrypoint_is_named() {
        let root = rootfs_with(&[]);
        let err = Entrypoint::resolve(root.path(), "/nope.wasm", &[]).expect_err("missing");
        assert!(err.to_string().contains("/nope.wasm"), "{err}");
    }

    #[test]
    fn test_symlink_out_of_rootfs_stays_inside() {
        let outside = rootfs_with(&[("/secret.wasm", b"\0asm\x01\0\0\0")]);
        let root = rootfs_with(&[]);
        let target = outside.path().join("secret.wasm");
        std::os::unix::fs::symlink(&target, root.path().join("link.wasm")).expect("symlink");
        std::os::unix::fs::symlink("../../../../../../etc/hostname", root.path().join("up"))
            .expect("symlink");
        assert!(Entrypoint::resolve(root.path(), "/link.wasm", &[]).is_err());
        assert!(Entrypoint::resolve(root.path(), "/up", &[]).is_err());
    }

    #[test]
    fn test_absolute_symlink_resolves_in_rootfs() {
        let root = rootfs_with(&[("/bin/busybox", b"\x7fELF..")]);
        std::os::unix::fs::symlink("/bin/busybox", root.path().join("bin/sh")).expect("symlink");
        let sh = Entrypoint::resolve(root.path(), "sh", &["PATH=/bin".into()]).expect("sh");
        assert_eq!(sh.kind, WorkloadKind::Native);
    }
}
