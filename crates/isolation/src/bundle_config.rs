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
    /// Make the spec a Wasm sandbox's: see [`wasm_sandbox`].
    pub wasm_sandbox: bool,
}

impl SpecEdits {
    fn is_empty(&self) -> bool {
        self.cgroups_path.is_none() && !self.wasm_sandbox
    }
}

/// Mount types that are kernel interfaces, not files: a Wasm container gets
/// none of them but proc, which libcontainer's set-up needs (its safe path
/// handling goes through /proc/thread-self) and which is masked before the
/// payload runs (docs/design.md, "The Wasm sandbox").
const KERNEL_MOUNT_TYPES: &[&str] = &["sysfs", "cgroup", "cgroup2", "mqueue", "devpts"];
/// Trees a Wasm payload finds empty: masked with a read-only, empty tmpfs.
const MASKED_TREES: &[&str] = &["/proc", "/sys"];

/// Whether `destination` is `tree` or below it.
fn is_under(destination: &str, tree: &str) -> bool {
    destination
        .strip_prefix(tree)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Whether a mount of type `kind` on `destination` stays in a Wasm
/// container's spec (see [`wasm_sandbox`]).
pub(crate) fn kept_in_wasm_sandbox(kind: &str, destination: &str) -> bool {
    let destination = destination.trim_end_matches('/');
    if kind == "proc" {
        return destination == "/proc";
    }
    !KERNEL_MOUNT_TYPES.contains(&kind)
        && !MASKED_TREES.iter().any(|tree| is_under(destination, tree))
}

/// Makes a Wasm container's spec a sandbox's: no sysfs, cgroup, mqueue or
/// devpts mount, no mount below /proc or /sys but the one proc mount (a
/// bind of the host's /proc would be /proc again), /proc and /sys masked by
/// an empty read-only tmpfs once set-up is done, no devices beyond
/// libcontainer's defaults (null, zero, full, random, urandom, tty), and no
/// read-only paths or sysctls (they act on what is masked), no
/// supplementary groups for libcontainer to set, and every capability set
/// the spec leaves out made empty. What is masked
/// or not mounted cannot be reached through `/`, `..` or a link.
fn wasm_sandbox(json: &mut serde_json::Value) {
    if let Some(mounts) = json.get_mut("mounts").and_then(|m| m.as_array_mut()) {
        mounts.retain(|m| {
            let kind = m.get("type").and_then(|t| t.as_str()).unwrap_or_default();
            let destination = m
                .get("destination")
                .and_then(|d| d.as_str())
                .unwrap_or_default();
            kept_in_wasm_sandbox(kind, destination)
        });
    }
    if let Some(linux) = json.get_mut("linux").and_then(|l| l.as_object_mut()) {
        for key in ["devices", "readonlyPaths", "sysctl"] {
            linux.remove(key);
        }
        linux.insert("maskedPaths".into(), serde_json::json!(MASKED_TREES));
    }
    // libcontainer reads /proc/self/setgroups before it sets supplementary
    // groups, which is after the mask: the launcher's set-up process takes
    // them instead (LaunchRequest::supplementary_gids), and the container
    // inherits them.
    if let Some(user) = json
        .pointer_mut("/process/user")
        .and_then(|u| u.as_object_mut())
    {
        user.remove("additionalGids");
    }
    // A capability set the spec leaves out is empty, as runc takes it.
    // libcontainer leaves an absent set as it was (all of root's), which a
    // native program loses at its exec; a Wasm payload runs without one.
    // A null set is an absent one (runc takes nil as empty).
    if let Some(process) = json.get_mut("process").and_then(|p| p.as_object_mut()) {
        let caps = process
            .entry("capabilities")
            .or_insert_with(|| serde_json::json!({}));
        if caps.is_null() {
            *caps = serde_json::json!({});
        }
        if let Some(caps) = caps.as_object_mut() {
            for set in CAPABILITY_SETS {
                let value = caps.entry(*set).or_insert_with(|| serde_json::json!([]));
                if value.is_null() {
                    *value = serde_json::json!([]);
                }
            }
        }
    }
}

/// The OCI spec's capability sets.
const CAPABILITY_SETS: &[&str] = &[
    "bounding",
    "effective",
    "inheritable",
    "permitted",
    "ambient",
];

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
    if edits.wasm_sandbox {
        wasm_sandbox(&mut json);
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
            wasm_sandbox: false,
        };
        apply(dir.path(), &edits).expect("rewrite");
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&config).expect("read")).expect("json");
        assert_eq!(json["linux"]["cgroupsPath"], "/a.slice/p-n.scope");
        assert_eq!(json["x-unknown"], 1);
        assert_eq!(json["mounts"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn test_null_capability_sets_are_empty_not_root_s() {
        for caps in [
            r#"null"#,
            r#"{"effective":null,"permitted":null,"bounding":["CAP_KILL"]}"#,
        ] {
            let mut json: serde_json::Value =
                serde_json::from_str(&format!(r#"{{"process":{{"capabilities":{caps}}}}}"#))
                    .expect("json");
            wasm_sandbox(&mut json);
            let sets = &json["process"]["capabilities"];
            for set in ["effective", "permitted", "inheritable", "ambient"] {
                assert_eq!(sets[set], serde_json::json!([]), "{caps}: {set}");
            }
        }
    }

    #[test]
    fn test_wasm_sandbox_keeps_file_mounts_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("config.json");
        std::fs::write(
            &config,
            r#"{"process":{"user":{"uid":0,"gid":0,"additionalGids":[10,20]},
                          "capabilities":{"effective":["CAP_KILL"]}},
               "annotations":{"io.edgeshim.supplementary-gids":"0"},
               "linux":{"devices":[{"path":"/dev/kmsg","type":"c","major":1,"minor":11}],
                         "maskedPaths":["/proc/kcore"],"readonlyPaths":["/proc/sys"],
                         "sysctl":{"kernel.msgmax":"1"},"cgroupsPath":"/x"},
               "mounts":[{"destination":"/proc","type":"proc","source":"proc"},
                         {"destination":"/dev","type":"tmpfs","source":"tmpfs"},
                         {"destination":"/dev/pts","type":"devpts","source":"devpts"},
                         {"destination":"/dev/shm","type":"tmpfs","source":"shm"},
                         {"destination":"/dev/mqueue","type":"mqueue","source":"mqueue"},
                         {"destination":"/sys","type":"sysfs","source":"sysfs"},
                         {"destination":"/sys/fs/cgroup","type":"cgroup","source":"cgroup"},
                         {"destination":"/proc/","type":"bind","source":"/proc"},
                         {"destination":"/sys/kernel/x","type":"bind","source":"/data"},
                         {"destination":"/system","type":"bind","source":"/data"},
                         {"destination":"/data","type":"bind","source":"/srv"}]}"#,
        )
        .expect("write");
        let edits = SpecEdits {
            cgroups_path: None,
            wasm_sandbox: true,
        };
        apply(dir.path(), &edits).expect("rewrite");
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&config).expect("read")).expect("json");
        let kept: Vec<&str> = json["mounts"]
            .as_array()
            .expect("mounts")
            .iter()
            .filter_map(|m| m["destination"].as_str())
            .collect();
        assert_eq!(kept, ["/proc", "/dev", "/dev/shm", "/system", "/data"]);
        let linux = json["linux"].as_object().expect("linux");
        let mut keys: Vec<&String> = linux.keys().collect();
        keys.sort();
        assert_eq!(keys, ["cgroupsPath", "maskedPaths"]);
        assert_eq!(
            json["linux"]["maskedPaths"],
            serde_json::json!(["/proc", "/sys"])
        );
        assert!(json["process"]["user"].get("additionalGids").is_none());
        assert_eq!(
            json["annotations"]["io.edgeshim.supplementary-gids"], "0",
            "inert"
        );
        assert_eq!(
            json["process"]["capabilities"],
            serde_json::json!({"effective": ["CAP_KILL"], "bounding": [], "inheritable": [],
                               "permitted": [], "ambient": []})
        );
    }
}
