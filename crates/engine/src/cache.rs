//! On-disk cache of compiled modules, keyed by the module's sha256 and a tag
//! that changes with the engine's version and settings.
//!
//! Writes are atomic (temp file + rename in the same folder), so a reader
//! never sees half a file; a failed write only costs a recompile.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Hex sha256 of `bytes`.
pub fn content_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A cache folder for one engine build.
#[derive(Debug, Clone)]
pub struct ModuleCache {
    dir: PathBuf,
}

impl ModuleCache {
    /// `root/<engine_tag>/`; the folder is created on first store.
    pub fn new(root: &Path, engine_tag: &str) -> Self {
        Self {
            dir: root.join(engine_tag),
        }
    }

    /// Where the entry for `module_hash` lives (it may not exist).
    pub fn entry(&self, module_hash: &str) -> PathBuf {
        self.dir.join(format!("{module_hash}.bin"))
    }

    /// Stores `artifact` for `module_hash` atomically and returns its path.
    pub fn store(&self, module_hash: &str, artifact: &[u8]) -> std::io::Result<PathBuf> {
        self.store_file(&format!("{module_hash}.bin"), artifact)
    }

    /// Stores `bytes` as `file_name` in the cache folder, atomically.
    pub fn store_file(&self, file_name: &str, bytes: &[u8]) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(&self.dir)?;
        let mut tmp = tempfile_in(&self.dir)?;
        tmp.1.write_all(bytes)?;
        tmp.1.sync_all()?;
        let target = self.dir.join(file_name);
        std::fs::rename(&tmp.0, &target)?;
        Ok(target)
    }

    /// The cache folder (it may not exist yet).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Removes a bad entry so that the next start rebuilds it.
    pub fn evict(&self, module_hash: &str) {
        let _ = std::fs::remove_file(self.entry(module_hash));
    }
}

fn tempfile_in(dir: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    let name = format!(
        ".tmp-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    );
    let path = dir.join(name);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)?;
    Ok((path, file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_store_then_entry_exists_with_content() {
        let root = tempfile::tempdir().expect("tempdir");
        let cache = ModuleCache::new(root.path(), "eng-1");
        let hash = content_hash(b"module");
        assert!(!cache.entry(&hash).exists());
        let path = cache.store(&hash, b"compiled").expect("store");
        assert_eq!(std::fs::read(path).expect("read"), b"compiled");
        let leftovers: Vec<_> = std::fs::read_dir(root.path().join("eng-1"))
            .expect("dir")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
        cache.evict(&hash);
        assert!(!cache.entry(&hash).exists());
    }
}
