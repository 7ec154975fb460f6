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
    pub kind: WorkloadKind,
}

const WASM_MAGIC: &[u8; 4] = b"\0asm";
const ELF_MAGIC: &[u8; 4] = b"\x7fELF";

/// An entrypoint resolved and opened: the file stays open so that what is
/// classified, measured and read is one and the same file.
pub(crate) struct OpenEntrypoint {
    pub entrypoint: Entrypoint,
    file: File,
    /// The file's size by `fstat` on the open descriptor, taken before any
    /// byte of it was read.
    size: u64,
    /// The first bytes, read to classify it.
    head: Vec<u8>,
}

impl Entrypoint {
    /// Resolves `arg0` as `execvp` would inside the container: a name with a
    /// slash is taken as a path (relative ones from `/`), a bare name is
    /// searched in the `PATH` of `env`.
    pub fn resolve(rootfs: &Path, arg0: &str, env: &[String]) -> Result<Self> {
        OpenEntrypoint::resolve(rootfs, arg0, env).map(|open| open.entrypoint)
    }
}

impl OpenEntrypoint {
    /// As [`Entrypoint::resolve`], keeping the file open.
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
            let Ok((mut file, size)) = open_in_root(rootfs, &candidate) else {
                continue;
            };
            let file_type = file
                .metadata()
                .map_err(|source| BundleError::ReadEntrypoint {
                    path: candidate.clone(),
                    source,
                })?
                .file_type();
            if !file_type.is_file() {
                return Err(BundleError::EntrypointNotRegular {
                    path: candidate,
                    kind: kind_of(file_type),
                });
            }
            let head = read_head(&mut file, &candidate)?;
            let kind = classify(&head, &candidate)?;
            return Ok(Self {
                entrypoint: Entrypoint {
                    container_path: candidate,
                    kind,
                },
                file,
                size,
                head,
            });
        }
        Err(BundleError::EntrypointNotFound(arg0.to_string()))
    }

    /// The whole module, read once from the open file: refused by its size
    /// (from `fstat`, before anything past the magic bytes is read) when it
    /// is over `max_bytes`, so that an oversized file never reaches memory.
    /// A file that grows past the cap while it is read is refused too (at
    /// most `max_bytes + 1` bytes are ever held).
    pub fn read_module(mut self, max_bytes: u64) -> Result<Vec<u8>> {
        let path = &self.entrypoint.container_path;
        let too_large = |size| BundleError::ModuleTooLarge {
            path: path.clone(),
            size,
            max: max_bytes,
        };
        if self.size > max_bytes {
            return Err(too_large(self.size));
        }
        let capacity = usize::try_from(self.size).map_err(|_| too_large(self.size))?;
        let mut bytes = Vec::with_capacity(capacity);
        bytes.extend_from_slice(&self.head);
        let rest = max_bytes
            .saturating_add(1)
            .saturating_sub(bytes.len() as u64);
        (&mut self.file)
            .take(rest)
            .read_to_end(&mut bytes)
            .map_err(|source| BundleError::ReadEntrypoint {
                path: path.clone(),
                source,
            })?;
        if bytes.len() as u64 > max_bytes {
            return Err(too_large(bytes.len() as u64));
        }
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
/// Also returns the file's size, by `fstat` on the descriptor just opened.
/// Opens `path` inside `rootfs`. `O_NONBLOCK`: a FIFO planted as the
/// entrypoint must not hold the open (and the create) until some writer
/// comes; on a regular file, which is all that is read, it changes nothing.
fn open_in_root(rootfs: &Path, path: &str) -> std::io::Result<(File, u64)> {
    let root = File::open(rootfs)?;
    let relative = path.trim_start_matches('/');
    let relative = if relative.is_empty() { "." } else { relative };
    let how = nix::fcntl::OpenHow::new()
        .flags(
            nix::fcntl::OFlag::O_RDONLY
                | nix::fcntl::OFlag::O_CLOEXEC
                | nix::fcntl::OFlag::O_NONBLOCK,
        )
        .resolve(nix::fcntl::ResolveFlag::RESOLVE_IN_ROOT);
    let fd = nix::fcntl::openat2(root.as_raw_fd(), relative, how)?;
    // SAFETY: openat2 returned a fresh descriptor that nothing else owns.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let file = File::from(owned);
    let metadata = file.metadata()?;
    if metadata.is_dir() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::IsADirectory,
            "entrypoint is a directory",
        ));
    }
    Ok((file, metadata.len()))
}

/// What a file that is not a regular one is, for the error.
fn kind_of(file_type: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if file_type.is_fifo() {
        "FIFO"
    } else if file_type.is_socket() {
        "socket"
    } else if file_type.is_char_device() {
        "character device"
    } else if file_type.is_block_device() {
        "block device"
    } else {
        "special file"
    }
}

/// The first 4 bytes (fewer for a shorter file): enough to classify it.
fn read_head(file: &mut File, path: &str) -> Result<Vec<u8>> {
    let mut head = Vec::with_capacity(WASM_MAGIC.len());
    file.take(WASM_MAGIC.len() as u64)
        .read_to_end(&mut head)
        .map_err(|source| BundleError::ReadEntrypoint {
            path: path.to_string(),
            source,
        })?;
    Ok(head)
}

fn classify(head: &[u8], path: &str) -> Result<WorkloadKind> {
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
    fn test_a_fifo_or_device_named_like_a_module_is_refused_without_waiting_for_a_writer() {
        let root = rootfs_with(&[]);
        nix::unistd::mkfifo(&root.path().join("app.wasm"), nix::sys::stat::Mode::S_IRWXU)
            .expect("mkfifo");
        std::os::unix::fs::symlink("/dev/zero", root.path().join("zero.wasm")).expect("link");
        // A hang here is the defect: the test fails after a minute instead.
        let (tx, rx) = std::sync::mpsc::channel();
        let dir = root.path().to_path_buf();
        std::thread::spawn(move || {
            let fifo = Entrypoint::resolve(&dir, "/app.wasm", &[]).map(|e| e.container_path);
            let _ = tx.send(fifo);
        });
        let fifo = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("resolve returned (it hung on the FIFO)");
        let err = fifo.expect_err("a FIFO is refused");
        assert_eq!(
            err.to_string(),
            "entrypoint \"/app.wasm\" is a FIFO, not a regular file: refused without reading it"
        );
        // A link to the node's /dev/zero resolves inside the rootfs (to
        // nothing there); a device node in the image would be refused by kind.
        let zero = Entrypoint::resolve(root.path(), "/zero.wasm", &[]).expect_err("no device");
        assert!(matches!(zero, BundleError::EntrypointNotFound(_)), "{zero}");
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
