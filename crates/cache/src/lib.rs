//! On-disk cache of compiled artifacts (Wasmtime's serialized modules,
//! WasmEdge's native libraries, the policy gate's compiled policies), keyed
//! by a content hash and a tag that changes with the engine's version and
//! settings.
//!
//! # Layout
//!
//! An entry is one directory, `<cache>/<tag>/<key>.d/`, holding the artifact
//! (`artifact`, or the name the cache was made with) and `sha256`, the hex
//! sha256 of the artifact. A writer fills a temp directory
//! (`<cache>/<tag>/.tmp-...`) with both files, fsyncs them and the temp
//! directory, then renames it to `<key>.d` with a single `rename(2)`. A
//! reader therefore sees either no entry or a whole entry with its digest,
//! never an artifact without one. If `<key>.d` already exists the rename
//! fails (`ENOTEMPTY`): another writer won, ours is discarded and theirs is
//! used.
//!
//! # Reading
//!
//! [`ModuleCache::open_verified`] opens the entry directory once, opens the
//! artifact and the digest relative to it (`openat`, so both come from the
//! same entry even while it is replaced), hashes the artifact through that
//! open file, compares, rewinds and returns the same open file: what was
//! hashed is what the caller maps or loads (Wasmtime mmaps it,
//! WasmEdge `dlopen`s it through `/proc/self/fd/<n>`). An entry that does
//! not verify (corrupt body, missing or wrong digest, missing artifact) is
//! evicted: renamed aside (`.evict-...`) first, then removed, so a
//! concurrent reader never sees half a removal.
//!
//! # Concurrency
//!
//! Shims compiling the same module at once each compile once, race on the
//! rename, and all load the winner's verified entry. Within one process,
//! [`ModuleCache::compile_turn`] makes compiles of one key take turns, so
//! that the second finds the first's entry instead of compiling again.
//! Temp and evicted directories left by a killed writer are ignored by
//! readers and removed by a later store once older than [`STALE_AGE`].
//!
//! # Threat model
//!
//! Corruption (disk, a stray write), partial writes (a writer killed
//! mid-way, a full disk) and concurrent writers. A root process replacing
//! files in the root-owned cache folder is out of scope: it could as well
//! replace the shim binary. The digest is a check, not a signature.

use std::ffi::CString;
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};

/// Name of the digest file in an entry.
pub const DIGEST_FILE: &str = "sha256";
/// Default name of the artifact in an entry.
pub const ARTIFACT_FILE: &str = "artifact";
/// Suffix of an entry directory.
const ENTRY_SUFFIX: &str = ".d";
/// Prefix of a writer's temp directory.
const TEMP_PREFIX: &str = ".tmp-";
/// Prefix of an entry being removed.
const EVICTED_PREFIX: &str = ".evict-";
/// Temp and evicted directories older than this belong to a writer that
/// died (no compile takes an hour) and are removed on the next store.
pub const STALE_AGE: Duration = Duration::from_secs(3600);
/// Flat files of the layout before entry directories (`<hash>.bin`,
/// WasmEdge's `<hash>.so` and `<hash>.so.sha256`): never read, swept.
const LEGACY_SUFFIXES: [&str; 3] = [".bin", ".so", ".so.sha256"];
/// Tries to install an entry when a concurrent writer's entry is in place
/// but does not verify.
const INSTALL_ATTEMPTS: usize = 3;

/// Hex sha256 of `bytes`.
pub fn content_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Hex sha256 of everything in `file` from its start, read through this
/// open file; leaves it rewound.
pub fn file_hash(file: &mut File) -> std::io::Result<String> {
    file.rewind()?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buffer[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    file.rewind()?;
    Ok(hex::encode(hasher.finalize()))
}

/// A cache folder for one engine build.
#[derive(Debug, Clone)]
pub struct ModuleCache {
    dir: PathBuf,
    artifact_name: String,
}

impl ModuleCache {
    /// `root/<engine_tag>/`; the folder is created on first store.
    pub fn new(root: &Path, engine_tag: &str) -> Self {
        Self {
            dir: root.join(engine_tag),
            artifact_name: ARTIFACT_FILE.to_string(),
        }
    }

    /// The same cache with the artifact stored under `name` in each entry
    /// (for a compiler that picks the file extension).
    pub fn with_artifact_name(mut self, name: &str) -> Self {
        self.artifact_name = name.to_string();
        self
    }

    /// The cache folder (it may not exist yet).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The entry directory for `key` (it may not exist).
    pub fn entry_dir(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}{ENTRY_SUFFIX}"))
    }

    /// The artifact of the entry for `key` (it may not exist). For tests
    /// and diagnostics: load through [`Self::open_verified`].
    pub fn artifact_path(&self, key: &str) -> PathBuf {
        self.entry_dir(key).join(&self.artifact_name)
    }

    /// The digest file of the entry for `key` (it may not exist).
    pub fn digest_path(&self, key: &str) -> PathBuf {
        self.entry_dir(key).join(DIGEST_FILE)
    }

    /// The artifact for `key`, opened once and verified against its digest
    /// through that open file, rewound. `None` when there is no entry or it
    /// did not verify (then it is evicted).
    pub fn open_verified(&self, key: &str) -> Option<File> {
        if !valid_key(key) {
            return None;
        }
        let entry = self.entry_dir(key);
        let dir = match open_dir(&entry) {
            Ok(dir) => dir,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                log::warn!("cache entry {}: {e}; evicting it", entry.display());
                self.evict_entry(key, None);
                return None;
            }
        };
        match verify(&dir, &self.artifact_name) {
            Ok(file) => Some(file),
            Err(reason) => {
                log::warn!(
                    "cache entry {} unusable ({reason}); evicting it",
                    entry.display()
                );
                self.evict_entry(key, Some(&dir));
                None
            }
        }
    }

    /// Stores `artifact` for `key` and returns the entry's artifact, opened
    /// and verified (ours, or a concurrent writer's that won the race).
    pub fn store(&self, key: &str, artifact: &[u8]) -> std::io::Result<File> {
        self.store_with(key, |path: &Path| {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)?;
            file.write_all(artifact)
        })
    }

    /// Stores the artifact that `build` writes at the path it is given (in
    /// a fresh temp directory), as [`Self::store`].
    pub fn store_with<E, F>(&self, key: &str, build: F) -> Result<File, E>
    where
        E: From<std::io::Error>,
        F: FnOnce(&Path) -> Result<(), E>,
    {
        if !valid_key(key) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("bad cache key {key:?}"),
            )
            .into());
        }
        std::fs::create_dir_all(&self.dir)?;
        self.sweep(STALE_AGE);
        let temp = self.dir.join(format!("{TEMP_PREFIX}{}-{key}", unique()));
        std::fs::create_dir(&temp)?;
        let installed = self.fill_and_install(key, &temp, build);
        if installed.is_err() || temp.exists() {
            // A failed build, or the race lost: ours goes.
            let _ = std::fs::remove_dir_all(&temp);
        }
        installed
    }

    fn fill_and_install<E, F>(&self, key: &str, temp: &Path, build: F) -> Result<File, E>
    where
        E: From<std::io::Error>,
        F: FnOnce(&Path) -> Result<(), E>,
    {
        let artifact = temp.join(&self.artifact_name);
        build(&artifact)?;
        let mut file = File::open(&artifact)?;
        file.sync_all()?;
        let digest = file_hash(&mut file)?;
        drop(file);
        let mut digest_file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(temp.join(DIGEST_FILE))?;
        digest_file.write_all(digest.as_bytes())?;
        digest_file.sync_all()?;
        File::open(temp)?.sync_all()?;
        let target = self.entry_dir(key);
        for _ in 0..INSTALL_ATTEMPTS {
            match std::fs::rename(temp, &target) {
                Ok(()) => {
                    File::open(&self.dir)?.sync_all()?;
                    return self.open_verified(key).ok_or_else(|| {
                        std::io::Error::other("the entry did not verify right after it was written")
                            .into()
                    });
                }
                Err(e) if is_occupied(&e) => {
                    // Another writer won: use theirs; if theirs is bad,
                    // `open_verified` evicted it and ours goes in.
                    if let Some(file) = self.open_verified(key) {
                        return Ok(file);
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(std::io::Error::other("concurrent writers keep leaving bad entries").into())
    }

    /// Removes the entry for `key`, so that the next start rebuilds it.
    pub fn evict(&self, key: &str) {
        if valid_key(key) {
            self.evict_entry(key, None);
        }
    }

    /// Renames the entry aside, then removes it. With `expected`, only if
    /// the entry is still that directory: a concurrent writer's fresh entry
    /// that replaced a bad one is left alone.
    fn evict_entry(&self, key: &str, expected: Option<&File>) {
        let entry = self.entry_dir(key);
        if let Some(dir) = expected {
            let same = match (dir.metadata(), std::fs::symlink_metadata(&entry)) {
                (Ok(ours), Ok(now)) => ours.dev() == now.dev() && ours.ino() == now.ino(),
                _ => false,
            };
            if !same {
                return;
            }
        }
        let aside = self.dir.join(format!("{EVICTED_PREFIX}{}-{key}", unique()));
        match std::fs::rename(&entry, &aside) {
            Ok(()) => {
                let removed = if aside.is_dir() {
                    std::fs::remove_dir_all(&aside)
                } else {
                    std::fs::remove_file(&aside)
                };
                if let Err(e) = removed {
                    log::warn!("cannot remove {}: {e}", aside.display());
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => log::warn!("cannot evict {}: {e}", entry.display()),
        }
    }

    /// Removes temp and evicted directories (and files) older than
    /// `older_than`: what writers killed mid-way left behind; also the
    /// flat files of the layout before entry directories.
    pub fn sweep(&self, older_than: Duration) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let legacy = LEGACY_SUFFIXES.iter().any(|suffix| name.ends_with(suffix))
                && entry.file_type().is_ok_and(|t| t.is_file());
            if !name.starts_with(TEMP_PREFIX) && !name.starts_with(EVICTED_PREFIX) && !legacy {
                continue;
            }
            let Ok(metadata) = entry.metadata() else {
                continue;
            };
            let age = metadata
                .modified()
                .ok()
                .and_then(|modified| modified.elapsed().ok());
            if age.is_none_or(|age| age < older_than) {
                continue;
            }
            let path = entry.path();
            let _ = if metadata.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
        }
    }

    /// Waits until no other thread of this process compiles `key` for this
    /// cache, and holds that turn until the returned value is dropped. A
    /// caller that had to wait finds the other's entry with
    /// [`Self::open_verified`] instead of compiling again.
    pub fn compile_turn(&self, key: &str) -> CompileTurn {
        let entry = self.entry_dir(key);
        let mut busy = lock(&IN_FLIGHT.0);
        while busy.contains(&entry) {
            busy = IN_FLIGHT
                .1
                .wait(busy)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        busy.push(entry.clone());
        CompileTurn { entry }
    }
}

/// Entries being compiled in this process, and a wake-up for waiters.
static IN_FLIGHT: (Mutex<Vec<PathBuf>>, Condvar) = (Mutex::new(Vec::new()), Condvar::new());

fn lock(set: &Mutex<Vec<PathBuf>>) -> std::sync::MutexGuard<'_, Vec<PathBuf>> {
    set.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// This thread's turn to compile one entry; see [`ModuleCache::compile_turn`].
#[must_use]
pub struct CompileTurn {
    entry: PathBuf,
}

impl Drop for CompileTurn {
    fn drop(&mut self) {
        lock(&IN_FLIGHT.0).retain(|entry| *entry != self.entry);
        IN_FLIGHT.1.notify_all();
    }
}

/// Keys are content hashes: one path component, nothing to traverse with.
fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 128
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A name no other writer (thread or process) uses at the same time.
fn unique() -> String {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "{}-{}-{nanos}",
        std::process::id(),
        CALLS.fetch_add(1, Ordering::Relaxed)
    )
}

/// `rename(2)` onto an entry that is there already.
fn is_occupied(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOTEMPTY) | Some(libc::EEXIST))
}

fn open_dir(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(path)
}

/// `name` in the directory `dir` is open on, read-only.
fn open_in(dir: &File, name: &str) -> std::io::Result<File> {
    let name = CString::new(Path::new(name).as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: `dir` is an open directory and `name` a NUL-terminated
    // string, both alive for the call; the fd returned is ours alone.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and nothing else owns it.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// The artifact in the entry `dir`, if its digest file matches it.
fn verify(dir: &File, artifact_name: &str) -> Result<File, String> {
    let mut artifact =
        open_in(dir, artifact_name).map_err(|e| format!("no artifact {artifact_name}: {e}"))?;
    let mut recorded = String::new();
    open_in(dir, DIGEST_FILE)
        .and_then(|file| file.take(256).read_to_string(&mut recorded))
        .map_err(|e| format!("no digest: {e}"))?;
    let actual = file_hash(&mut artifact).map_err(|e| format!("cannot read the artifact: {e}"))?;
    if recorded.trim() != actual {
        return Err("the artifact does not match its digest".into());
    }
    Ok(artifact)
}

#[cfg(test)]
mod tests;
