//! The node's last good config and policy, kept in the cache folder so that
//! losing the config file never turns the gate off.
//!
//! Every gate that loads a config successfully (a policy that compiled and
//! passed its load check, or an explicit `mode = "off"`) saves it here: the
//! parsed config and the policy's files, one JSON file per config path
//! (`last-good-<sha256 of the path, 16 hex>.json`). A gate whose config file
//! is missing or unreadable, or does not parse, and that holds nothing good
//! of its own (a shim started after the loss), serves this copy instead;
//! running gates prefer it too when the file disappears, since it is the
//! newest good config any shim of the node saw. A node that never had a
//! config has no copy, and its gate stays off.
//!
//! Writes are atomic (a temp file in the same folder, fsync, rename, fsync
//! of the folder), so a reader sees the old copy or the new one, never half
//! of one; a copy is written only when it differs from the one there. A copy
//! whose policy files no longer hash to the content hash it records is
//! refused as corrupt.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::PolicySource;
use crate::config::PolicyConfig;

const FORMAT: u32 = 1;

/// Where one config path's last good copy lives.
#[derive(Debug, Clone)]
pub(crate) struct LastGood {
    path: PathBuf,
}

/// A copy as read back.
pub(crate) struct LastGoodCopy {
    pub config: PolicyConfig,
    /// None for a config whose mode is off.
    pub source: Option<PolicySource>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    format: u32,
    /// The config file this is the last good copy of.
    config_path: PathBuf,
    config: PolicyConfig,
    policy: Option<StoredPolicy>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredPolicy {
    content_hash: String,
    /// (path relative to the policy's root, hex bytes), sorted.
    files: Vec<(String, String)>,
}

impl LastGood {
    /// The copy of the config at `config_path`, in folder `dir`.
    pub fn new(dir: &Path, config_path: &Path) -> Self {
        let key = hex::encode(Sha256::digest(config_path.as_os_str().as_encoded_bytes()));
        Self {
            path: dir.join(format!("last-good-{}.json", &key[..16])),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Saves `config` (with the compiled-policy cache folder it used made
    /// explicit, so that the copy finds the same compiled forms) and its
    /// policy. Returns whether anything was written.
    pub fn save(
        &self,
        config_path: &Path,
        config: &PolicyConfig,
        source: Option<&PolicySource>,
    ) -> Result<bool, String> {
        let mut config = config.clone();
        config.cache_dir = Some(config.cache_dir());
        let stored = Stored {
            format: FORMAT,
            config_path: config_path.to_path_buf(),
            config,
            policy: source.map(|s| StoredPolicy {
                content_hash: s.content_hash.clone(),
                files: s
                    .files
                    .iter()
                    .map(|(name, bytes)| (name.clone(), hex::encode(bytes)))
                    .collect(),
            }),
        };
        let bytes = serde_json::to_vec(&stored).map_err(|e| e.to_string())?;
        if std::fs::read(&self.path).is_ok_and(|old| old == bytes) {
            return Ok(false);
        }
        write_atomically(&self.path, &bytes).map_err(|e| {
            format!(
                "saving the last good policy config to {}: {e}",
                self.path.display()
            )
        })?;
        Ok(true)
    }

    /// The copy, if the node has one; an error when there is one that
    /// cannot be used (unreadable, corrupt).
    pub fn load(&self) -> Result<Option<LastGoodCopy>, String> {
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.bad(e)),
        };
        let stored: Stored = serde_json::from_slice(&bytes).map_err(|e| self.bad(e))?;
        if stored.format != FORMAT {
            return Err(self.bad(format!("format {} is not {FORMAT}", stored.format)));
        }
        let source = match stored.policy {
            None => None,
            Some(policy) => {
                let files = policy
                    .files
                    .into_iter()
                    .map(|(name, text)| hex::decode(&text).map(|bytes| (name, bytes)))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| self.bad(e))?;
                let source = PolicySource::from_files(files).map_err(|e| self.bad(e))?;
                if source.content_hash != policy.content_hash {
                    return Err(self.bad("its policy files do not match their content hash"));
                }
                Some(source)
            }
        };
        Ok(Some(LastGoodCopy {
            config: stored.config,
            source,
        }))
    }

    fn bad(&self, e: impl std::fmt::Display) -> String {
        format!("last good policy config {}: {e}", self.path.display())
    }
}

/// Writes `bytes` to `path` so that readers see the old file or the whole
/// new one: temp file in the same folder, fsync, rename, fsync the folder.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let temp = dir.join(format!(".{name}.{}.{nanos}.tmp", std::process::id()));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> PolicyConfig {
        PolicyConfig::parse(text, Path::new("/etc/edgeshim")).expect("config")
    }

    #[test]
    fn test_a_saved_copy_reads_back_with_its_policy_and_is_written_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let policy = dir.path().join("policy");
        std::fs::create_dir(&policy).expect("mkdir");
        std::fs::write(policy.join("a.rego"), "package a\nx := 1\n").expect("write");
        std::fs::write(policy.join("data.json"), r#"{"k": [1]}"#).expect("write");
        let source = PolicySource::load(&policy).expect("source");
        let copy = LastGood::new(
            &dir.path().join("node"),
            Path::new("/etc/edgeshim/policy.toml"),
        );
        assert!(copy.load().expect("no copy yet").is_none());
        let config = config("policy = \"policy\"\nmax_module_bytes = 99");
        assert!(
            copy.save(
                Path::new("/etc/edgeshim/policy.toml"),
                &config,
                Some(&source)
            )
            .expect("saved")
        );
        assert!(
            !copy
                .save(
                    Path::new("/etc/edgeshim/policy.toml"),
                    &config,
                    Some(&source)
                )
                .expect("same")
        );
        let back = copy.load().expect("readable").expect("there");
        assert_eq!(back.config.max_module_bytes, 99);
        assert_eq!(back.config.policy, config.policy);
        assert_eq!(back.config.cache_dir, Some(config.cache_dir()));
        let back = back.source.expect("policy");
        assert_eq!(back.content_hash, source.content_hash);
        assert_eq!(back.revision, source.revision);
        assert_eq!(back.data, source.data);
        // No temp files are left beside it.
        let names: Vec<_> = std::fs::read_dir(dir.path().join("node"))
            .expect("dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn test_a_corrupt_copy_is_an_error_not_an_absent_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let policy = dir.path().join("p.rego");
        std::fs::write(&policy, "package a\nx := 1\n").expect("write");
        let source = PolicySource::load(&policy).expect("source");
        let copy = LastGood::new(dir.path(), Path::new("/c.toml"));
        copy.save(
            Path::new("/c.toml"),
            &config("policy = \"/p.rego\""),
            Some(&source),
        )
        .expect("saved");
        let text = std::fs::read_to_string(copy.path()).expect("read");
        // One byte of the policy's text changed (hex of "x := 1" -> "x := 2").
        let changed = text.replacen("78203a3d2031", "78203a3d2032", 1);
        assert_ne!(text, changed);
        std::fs::write(copy.path(), changed).expect("write");
        let err = copy.load().err().expect("corrupt");
        assert!(err.contains("content hash"), "{err}");
        std::fs::write(copy.path(), &text[..text.len() / 2]).expect("write");
        assert!(copy.load().is_err(), "half a copy");
    }

    #[test]
    fn test_copies_of_different_config_paths_are_apart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = LastGood::new(dir.path(), Path::new("/etc/edgeshim/policy.toml"));
        let b = LastGood::new(dir.path(), Path::new("/tmp/test/policy.toml"));
        assert_ne!(a.path(), b.path());
        a.save(
            Path::new("/etc/edgeshim/policy.toml"),
            &config("mode = \"off\""),
            None,
        )
        .expect("saved");
        assert!(b.load().expect("no copy").is_none());
        assert!(a.load().expect("copy").expect("there").source.is_none());
    }
}
