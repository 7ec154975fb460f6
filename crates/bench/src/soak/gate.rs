//! The soak's gate: the private containerd's policy config pointed at a copy
//! of the example library (settings that admit the bench's images, and ask
//! for what the library asks: an owner annotation, a memory limit) and its
//! decision log rotating at a small size; the config is put back on drop.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The annotation the library's `labels` rule requires.
pub const OWNER_ANNOTATION: &str = "edgeshim.io/owner";

pub struct LibraryGate {
    config: PathBuf,
    original: Vec<u8>,
    pub decision_log: Option<PathBuf>,
    pub max_bytes: u64,
    pub keep: u32,
}

/// The library's settings for this node: the bench's images, containerd's
/// own folders for the binds CRI adds, every pod on its own network.
fn settings(containerd_root: &Path, containerd_state: &Path) -> serde_json::Value {
    let folder = |p: &Path| format!("{}/", p.display());
    serde_json::json!({ "edgeshim_config": {
        "allowed_registries": ["edgeshim.bench/", "edgeshim.local/"],
        "required_annotations": [OWNER_ANNOTATION],
        "max_memory_bytes": 268_435_456,
        "host_network_namespaces": [],
        "host_network_pods": [],
        "max_module_bytes": 10_485_760,
        "allowed_mount_prefixes": [],
        "system_mount_prefixes": [folder(containerd_root), folder(containerd_state)],
        "data_local_namespaces": [],
        "data_local_pods": [],
        "data_local_brokers": [],
        "node_data_dir": "/var/lib/edgeshim-data/"
    }})
}

impl LibraryGate {
    /// Copies `library`'s Rego beside `config` with this node's settings and
    /// rewrites `config` to serve it, with its load check, logging to the
    /// same file rotated at `max_bytes` (keeping `keep` old files).
    pub fn serve(
        config: &Path,
        library: &Path,
        containerd_root: &Path,
        containerd_state: &Path,
        max_bytes: u64,
        keep: u32,
    ) -> Result<Self> {
        let original =
            std::fs::read(config).with_context(|| format!("policy config {}", config.display()))?;
        let text = String::from_utf8_lossy(&original);
        let mut table: toml::Table =
            toml::from_str(&text).with_context(|| format!("policy config {}", config.display()))?;
        let dir = config
            .parent()
            .context("the policy config has no folder")?
            .join("soak-library");
        std::fs::create_dir_all(&dir)?;
        for entry in std::fs::read_dir(library)
            .with_context(|| format!("policy library {}", library.display()))?
        {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "rego")
                && let Some(name) = path.file_name()
            {
                std::fs::copy(&path, dir.join(name))?;
            }
        }
        let data = settings(containerd_root, containerd_state);
        std::fs::write(dir.join("data.json"), serde_json::to_vec_pretty(&data)?)?;

        table.insert("policy".into(), dir.display().to_string().into());
        table.insert("check".into(), "edgeshim/config_errors".into());
        let log = table
            .entry("decision_log")
            .or_insert_with(|| toml::Table::new().into());
        let decision_log = log.get("path").and_then(|p| p.as_str()).map(PathBuf::from);
        if let Some(log) = log.as_table_mut() {
            log.insert("max_bytes".into(), (max_bytes as i64).into());
            log.insert("keep".into(), i64::from(keep).into());
        }
        let gate = Self {
            config: config.to_path_buf(),
            original,
            decision_log,
            max_bytes,
            keep,
        };
        replace(config, toml::to_string(&table)?.as_bytes())?;
        Ok(gate)
    }

    /// What the decision log may hold at most: the cap for each file kept,
    /// and one more line past the cap (it is rotated after that line).
    pub fn log_cap(&self) -> u64 {
        (self.max_bytes + 4096) * (u64::from(self.keep) + 1)
    }
}

/// A whole new file in one rename: the gate never reads half of it.
fn replace(path: &Path, bytes: &[u8]) -> Result<()> {
    let staged = path.with_extension("toml.soak");
    std::fs::write(&staged, bytes)?;
    std::fs::rename(&staged, path)?;
    Ok(())
}

impl Drop for LibraryGate {
    fn drop(&mut self) {
        if let Err(e) = replace(&self.config, &self.original) {
            eprintln!(
                "could not put back the policy config {}: {e:#}",
                self.config.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_the_config_serves_the_library_and_comes_back_unchanged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("policy.toml");
        let original =
            "mode = \"enforce\"\npolicy = \"rego\"\n[decision_log]\npath = \"/x/decisions.log\"\n";
        std::fs::write(&config, original).expect("write");
        let library = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies/library");
        let gate = LibraryGate::serve(&config, &library, Path::new("/r"), Path::new("/s"), 1000, 2)
            .expect("serve");
        let served: toml::Table =
            toml::from_str(&std::fs::read_to_string(&config).expect("read")).expect("toml");
        assert_eq!(served["check"].as_str(), Some("edgeshim/config_errors"));
        assert_eq!(served["mode"].as_str(), Some("enforce"));
        assert_eq!(served["decision_log"]["max_bytes"].as_integer(), Some(1000));
        let rego = PathBuf::from(served["policy"].as_str().expect("policy"));
        assert!(rego.join("decision.rego").is_file());
        let data = std::fs::read_to_string(rego.join("data.json")).expect("data");
        assert!(data.contains("\"/r/\"") && data.contains(OWNER_ANNOTATION));
        assert_eq!(gate.decision_log, Some(PathBuf::from("/x/decisions.log")));
        drop(gate);
        assert_eq!(std::fs::read_to_string(&config).expect("read"), original);
    }
}
