//! Changes to the bundle's config.json that libcontainer must see (it reads
//! the spec from the bundle folder, not from memory).
//!
//! The file is edited as JSON, not through a typed spec, so that nothing the
//! spec types do not know is dropped, and replaced atomically.

use std::path::Path;

/// What to change; `None`/`false` leaves the spec as containerd wrote it.
#[derive(Debug, Default)]
pub(crate) struct SpecEdits {
    /// New `linux.cgroupsPath`.
    pub cgroups_path: Option<String>,
    /// Drop mounts of type `cgroup` (see [`crate::container`] for why).
    pub drop_cgroup_mounts: bool,
}

impl SpecEdits {
    fn is_empty(&self) -> bool {
        self.cgroups_path.is_none() && !self.drop_cgroup_mounts
    }
}

/// Applies `edits` to `<bundle>/config.json`.
pub(crate) fn apply(bundle: &Path, edits: &SpecEdits) -> std::io::Result<()> {
    if edits.is_empty() {
        return Ok(());
    }
    let config = bundle.join("config.json");
    let mut json: serde_json::Value = serde_json::from_slice(&std::fs::read(&config)?)?;
    if let Some(path) = &edits.cgroups_path {
        let linux = json
            .get_mut("linux")
            .and_then(|l| l.as_object_mut())
            .ok_or_else(|| std::io::Error::other("config.json has no linux section"))?;
        linux.insert(
            "cgroupsPath".into(),
            serde_json::Value::String(path.clone()),
        );
    }
    if edits.drop_cgroup_mounts
        && let Some(mounts) = json.get_mut("mounts").and_then(|m| m.as_array_mut())
    {
        mounts.retain(|m| m.get("type").and_then(|t| t.as_str()) != Some("cgroup"));
    }
    let staged = bundle.join(".config.json.edgeshim");
    std::fs::write(&staged, serde_json::to_vec(&json)?)?;
    std::fs::rename(&staged, &config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_edits_keep_every_other_field() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("config.json");
        std::fs::write(
            &config,
            r#"{"ociVersion":"1.0.2","x-unknown":1,"linux":{"cgroupsPath":"a.slice:p:n"},
               "mounts":[{"destination":"/sys/fs/cgroup","type":"cgroup","source":"cgroup"},
                         {"destination":"/proc","type":"proc","source":"proc"}]}"#,
        )
        .expect("write");
        let edits = SpecEdits {
            cgroups_path: Some("/a.slice/p-n.scope".into()),
            drop_cgroup_mounts: true,
        };
        apply(dir.path(), &edits).expect("rewrite");
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&config).expect("read")).expect("json");
        assert_eq!(json["linux"]["cgroupsPath"], "/a.slice/p-n.scope");
        assert_eq!(json["x-unknown"], 1);
        let mounts = json["mounts"].as_array().expect("mounts");
        assert_eq!(mounts.len(), 1);
        assert_eq!(mounts[0]["type"], "proc");
    }
}
