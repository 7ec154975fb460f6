//! The read-only view of a container that a Wasm engine gets.
//!
//! Engines never see the OCI spec: only what WASI needs, in container terms
//! (paths as they are after the rootfs became `/`).

use oci_spec::runtime::Spec;

use crate::{BundleError, Result};

/// A directory the module may open, under the name it sees.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Preopen {
    /// Path inside the container (after pivot), e.g. `/data`.
    pub path: String,
    /// Whether the mount is read-only (`ro` in its options).
    pub read_only: bool,
}

/// Everything an engine needs to set a WASI context up.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WasiView {
    /// `argv`, `argv[0]` included.
    pub args: Vec<String>,
    /// Environment as `(key, value)` pairs, in spec order.
    pub env: Vec<(String, String)>,
    /// Working directory inside the container.
    pub cwd: String,
    /// `/` first, then each mount that carries files.
    pub preopens: Vec<Preopen>,
    /// `linux.resources.memory.limit`, in bytes, when set and positive.
    pub memory_limit: Option<u64>,
    /// The export a module is started at instead of `_start`: runwasi's
    /// `module.wasm#export` entrypoint (see [`split_entry_export`]).
    #[serde(default)]
    pub entry_export: Option<String>,
}

/// `module.wasm#export` as runwasi's shims take it: the file and the export
/// to call. `None` when `arg0` names no export (no `#`, or nothing after
/// it).
pub fn split_entry_export(arg0: &str) -> Option<(&str, &str)> {
    arg0.rsplit_once('#')
        .filter(|(path, export)| !path.is_empty() && !export.is_empty())
}

/// Mount types that are kernel interfaces, not files for a module.
const NON_FILE_MOUNT_TYPES: &[&str] = &["proc", "sysfs", "cgroup", "cgroup2", "devpts", "mqueue"];
const SYSTEM_PREFIXES: &[&str] = &["/proc", "/sys", "/dev"];

impl WasiView {
    pub fn from_spec(spec: &Spec) -> Result<Self> {
        let process = spec
            .process()
            .as_ref()
            .ok_or_else(|| BundleError::Invalid("config.json has no process".into()))?;
        let args = process.args().clone().unwrap_or_default();
        let env = process
            .env()
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|entry| match entry.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (entry.clone(), String::new()),
            })
            .collect();
        let cwd = process.cwd().to_string_lossy().into_owned();
        let root_read_only = spec
            .root()
            .as_ref()
            .and_then(|r| r.readonly())
            .unwrap_or(false);
        let mut preopens = vec![Preopen {
            path: "/".into(),
            read_only: root_read_only,
        }];
        for mount in spec.mounts().as_deref().unwrap_or_default() {
            let path = mount.destination().to_string_lossy().into_owned();
            let kind = mount.typ().as_deref().unwrap_or("bind");
            let is_system = SYSTEM_PREFIXES
                .iter()
                .any(|p| path == *p || path.starts_with(&format!("{p}/")));
            if is_system || NON_FILE_MOUNT_TYPES.contains(&kind) || is_file_bind(mount) {
                continue;
            }
            let read_only = mount
                .options()
                .as_deref()
                .unwrap_or_default()
                .iter()
                .any(|o| o == "ro");
            preopens.push(Preopen { path, read_only });
        }
        let memory_limit = spec
            .linux()
            .as_ref()
            .and_then(|l| l.resources().as_ref())
            .and_then(|r| r.memory().as_ref())
            .and_then(|m| m.limit())
            .and_then(|l| u64::try_from(l).ok())
            .filter(|l| *l > 0);
        let entry_export = args
            .first()
            .and_then(|arg0| split_entry_export(arg0))
            .map(|(_, export)| export.to_string());
        Ok(Self {
            args,
            env,
            cwd,
            preopens,
            memory_limit,
            entry_export,
        })
    }
}

/// A bind mount of a single file (CRI mounts /etc/hosts, /etc/hostname,
/// /etc/resolv.conf so): not a preopen, which must be a folder; the file is
/// still reachable through `/`.
fn is_file_bind(mount: &oci_spec::runtime::Mount) -> bool {
    mount
        .source()
        .as_ref()
        .is_some_and(|source| source.is_absolute() && source.exists() && !source.is_dir())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_mounts_become_preopens_but_kernel_mounts_do_not() {
        let spec: Spec = serde_json::from_str(
            r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},
            "process":{"cwd":"/work","args":["/m.wasm","a"],"env":["A=1","B=x=y"],"user":{"uid":0,"gid":0}},
            "mounts":[{"destination":"/proc","type":"proc","source":"proc"},
                      {"destination":"/dev/shm","type":"tmpfs","source":"shm"},
                      {"destination":"/data","type":"bind","source":"/srv","options":["rbind","ro"]},
                      {"destination":"/tmp","type":"tmpfs","source":"tmpfs"},
                      {"destination":"/etc/hostname","type":"bind","source":"/etc/hostname","options":["rbind","ro"]}],
            "linux":{"resources":{"memory":{"limit":67108864}}}}"#,
        )
        .expect("spec");
        let view = WasiView::from_spec(&spec).expect("view");
        assert_eq!(view.args, ["/m.wasm", "a"]);
        assert_eq!(view.env[1], ("B".to_string(), "x=y".to_string()));
        assert_eq!(view.cwd, "/work");
        let paths: Vec<_> = view.preopens.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["/", "/data", "/tmp"]);
        assert!(view.preopens[1].read_only);
        assert_eq!(view.memory_limit, Some(64 << 20));
    }
}
