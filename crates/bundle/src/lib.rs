//! OCI bundle translation: `config.json` + rootfs in, a [`Workload`] out.
//!
//! Owns: reading the bundle's spec, resolving `process.args[0]` inside the
//! rootfs (without following links out of it), telling a Wasm module from a
//! native program by its magic bytes, and building the read-only
//! [`WasiView`] an engine gets (args, env, cwd, preopens).
//!
//! Leaves out: creating namespaces or cgroups (the isolation crate), compiling
//! or running modules (the engine crate), deciding whether the workload may run
//! (the policy crate). Nothing here has side effects beyond reading files.

mod entrypoint;
mod error;
pub mod limits;
mod wasi_view;

use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;
use sha2::{Digest, Sha256};

use entrypoint::OpenEntrypoint;
pub use entrypoint::{Entrypoint, WorkloadKind};
pub use error::{BundleError, Result};
pub use wasi_view::{Preopen, WasiView};

/// Annotation CRI sets on every container of a pod; shims group by it.
pub const SANDBOX_ID_ANNOTATION: &str = "io.kubernetes.cri.sandbox-id";
/// Annotation CRI sets to say whether a container is the pod's sandbox.
pub const CONTAINER_TYPE_ANNOTATION: &str = "io.kubernetes.cri.container-type";

/// A loaded OCI bundle: its directory, its spec and its rootfs on the host.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub dir: PathBuf,
    pub spec: Spec,
    pub rootfs: PathBuf,
}

/// A module's bytes and their hex sha256 (its identity for caches and policy).
#[derive(Debug, Clone)]
pub struct ModuleBytes {
    pub bytes: Vec<u8>,
    pub sha256: String,
}

/// What the bundle asks to run.
#[derive(Debug, Clone)]
pub enum Workload {
    /// A WASI preview 1 command module, with its bytes already read.
    Wasm {
        entrypoint: Entrypoint,
        module: ModuleBytes,
        view: WasiView,
    },
    /// An ELF binary or a script, run as a normal Linux process.
    Native { entrypoint: Entrypoint },
}

impl Bundle {
    /// Reads `<dir>/config.json`. The rootfs path is resolved against `dir`.
    pub fn load(dir: &Path) -> Result<Self> {
        let config = dir.join("config.json");
        let Ok(metadata) = std::fs::metadata(&config) else {
            return Err(BundleError::MissingConfig(config));
        };
        limits::check_config_size(metadata.len())?;
        let spec = Spec::load(&config).map_err(|source| BundleError::BadConfig {
            path: config.clone(),
            source,
        })?;
        limits::check_spec(&spec)?;
        let root = spec
            .root()
            .as_ref()
            .ok_or_else(|| BundleError::Invalid("config.json has no root".into()))?;
        let rootfs = if root.path().is_absolute() {
            root.path().clone()
        } else {
            dir.join(root.path())
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            spec,
            rootfs,
        })
    }

    /// The annotation value, if the spec carries it.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.spec
            .annotations()
            .as_ref()
            .and_then(|a| a.get(key))
            .map(String::as_str)
    }

    /// `linux.resources`, if the spec sets any.
    pub fn resources(&self) -> Option<&oci_spec::runtime::LinuxResources> {
        self.spec.linux().as_ref()?.resources().as_ref()
    }

    /// Checks `linux.namespaces` against the host before anything is made:
    /// each kind must exist here, each path to join must exist. (libcontainer
    /// would fail later with a bare "ENOENT" that names neither.)
    pub fn check_namespaces(&self) -> Result<()> {
        let namespaces = self
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().as_ref())
            .map(Vec::as_slice)
            .unwrap_or_default();
        for ns in namespaces {
            let kind = proc_ns_name(ns.typ());
            if !Path::new("/proc/self/ns").join(kind).exists() {
                return Err(BundleError::UnsupportedNamespace(kind.to_string()));
            }
            if let Some(path) = ns.path()
                && !path.exists()
            {
                return Err(BundleError::MissingNamespacePath {
                    kind: kind.to_string(),
                    path: path.display().to_string(),
                });
            }
        }
        Ok(())
    }

    /// The `process.args`, or an error if there are none.
    pub fn args(&self) -> Result<&[String]> {
        self.spec
            .process()
            .as_ref()
            .and_then(|p| p.args().as_deref())
            .filter(|a| !a.is_empty())
            .ok_or_else(|| BundleError::Invalid("process.args is empty".into()))
    }

    /// The `process.env` entries, `KEY=VALUE` each.
    pub fn env(&self) -> &[String] {
        self.spec
            .process()
            .as_ref()
            .and_then(|p| p.env().as_deref())
            .unwrap_or_default()
    }

    /// `arg0`, resolved. runwasi's `module.wasm#export` names the module
    /// before the `#`, but only a module: for anything else the whole
    /// `arg0` is the program, as its `exec` will take it (so that what is
    /// decided is what runs, `/bin/ok#evil` is never decided as `/bin/ok`).
    fn resolve_entrypoint(&self, arg0: &str) -> Result<OpenEntrypoint> {
        if let Some((module, _)) = wasi_view::split_entry_export(arg0)
            && let Ok(open) = OpenEntrypoint::resolve(&self.rootfs, module, self.env())
            && open.entrypoint.kind == WorkloadKind::Wasm
        {
            return Ok(open);
        }
        OpenEntrypoint::resolve(&self.rootfs, arg0, self.env())
    }

    /// Resolves the entrypoint and classifies it; a Wasm module is read
    /// (once, from the file that was resolved) unless `fstat` says it is
    /// over `max_module_bytes`, which is refused
    /// ([`BundleError::ModuleTooLarge`]) before its body is read. Native
    /// programs are not read (only their magic bytes). Must be called after
    /// the rootfs is mounted.
    pub fn workload(&self, max_module_bytes: u64) -> Result<Workload> {
        let args = self.args()?;
        let open = self.resolve_entrypoint(&args[0])?;
        match open.entrypoint.kind {
            WorkloadKind::Native => Ok(Workload::Native {
                entrypoint: open.entrypoint,
            }),
            WorkloadKind::Wasm => {
                let entrypoint = open.entrypoint.clone();
                let bytes = open.read_module(max_module_bytes)?;
                let module = ModuleBytes {
                    sha256: hex::encode(Sha256::digest(&bytes)),
                    bytes,
                };
                let view = WasiView::from_spec(&self.spec)?;
                Ok(Workload::Wasm {
                    entrypoint,
                    module,
                    view,
                })
            }
        }
    }
}

/// The name of a namespace kind under /proc/<pid>/ns.
fn proc_ns_name(kind: oci_spec::runtime::LinuxNamespaceType) -> &'static str {
    use oci_spec::runtime::LinuxNamespaceType::*;
    match kind {
        Mount => "mnt",
        Cgroup => "cgroup",
        Uts => "uts",
        Ipc => "ipc",
        User => "user",
        Pid => "pid",
        Network => "net",
        Time => "time",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_namespace_path_that_does_not_exist_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("config.json"),
            br#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},
                "process":{"cwd":"/","args":["/m.wasm"],"user":{"uid":0,"gid":0}},
                "linux":{"namespaces":[{"type":"pid"},{"type":"network","path":"/run/netns/nope"}]}}"#,
        )
        .expect("write");
        let err = Bundle::load(dir.path())
            .expect("load")
            .check_namespaces()
            .expect_err("missing netns");
        assert_eq!(
            err.to_string(),
            "net namespace to join at /run/netns/nope does not exist"
        );
    }

    #[test]
    fn test_missing_config_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = Bundle::load(dir.path()).expect_err("no config");
        assert!(matches!(err, BundleError::MissingConfig(_)), "{err}");
        assert!(err.to_string().contains("config.json"), "{err}");
    }

    #[test]
    fn test_malformed_config_is_refused_with_its_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("config.json"), b"{ not json").expect("write");
        let err = Bundle::load(dir.path()).expect_err("malformed");
        assert!(matches!(err, BundleError::BadConfig { .. }), "{err}");
    }

    #[test]
    fn test_empty_args_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("config.json"),
            br#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},"process":{"cwd":"/","args":[],"user":{"uid":0,"gid":0}}}"#,
        )
        .expect("write");
        let bundle = Bundle::load(dir.path()).expect("load");
        assert_eq!(bundle.rootfs, dir.path().join("rootfs"));
        let err = bundle.workload(1 << 20).expect_err("no args");
        assert!(err.to_string().contains("process.args is empty"), "{err}");
    }

    /// A bundle whose rootfs holds `/m.wasm` with `bytes`, run as the
    /// entrypoint.
    fn wasm_bundle(bytes: &[u8]) -> (tempfile::TempDir, Bundle) {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("config.json"),
            br#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},"process":{"cwd":"/","args":["/m.wasm"],"user":{"uid":0,"gid":0}}}"#,
        )
        .expect("write");
        std::fs::create_dir(dir.path().join("rootfs")).expect("mkdir");
        std::fs::write(dir.path().join("rootfs/m.wasm"), bytes).expect("module");
        let bundle = Bundle::load(dir.path()).expect("load");
        (dir, bundle)
    }

    /// Bytes this process has read through read(2) and friends so far.
    fn bytes_read_by_this_process() -> u64 {
        let io = std::fs::read_to_string("/proc/self/io").expect("/proc/self/io");
        io.lines()
            .find_map(|l| l.strip_prefix("rchar: "))
            .expect("rchar line")
            .parse()
            .expect("number")
    }

    #[test]
    fn test_module_over_the_cap_is_refused_by_its_size_without_reading_it() {
        let (dir, bundle) = wasm_bundle(b"\0asm\x01\0\0\0");
        // 3 GB, sparse: costs no disk, and reading it would take seconds and
        // 3 GB of memory.
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(dir.path().join("rootfs/m.wasm"))
            .expect("open");
        file.set_len(3 << 30).expect("set_len");
        drop(file);
        let cap = 64 << 20;
        let before = bytes_read_by_this_process();
        let err = bundle.workload(cap).expect_err("over the cap");
        let read = bytes_read_by_this_process() - before;
        match &err {
            BundleError::ModuleTooLarge { path, size, max } => {
                assert_eq!(path, "/m.wasm");
                assert_eq!(*size, 3 << 30);
                assert_eq!(*max, cap);
            }
            other => panic!("not refused by size: {other}"),
        }
        assert_eq!(
            err.to_string(),
            "entrypoint \"/m.wasm\" is 3221225472 bytes, over the module size cap of \
             67108864 bytes (max_module_bytes in the policy config): refused before reading it"
        );
        // Other tests of this binary read small files meanwhile: allow for
        // them, but nothing near the module's size.
        assert!(read < 1 << 20, "{read} bytes were read");
    }

    #[test]
    fn test_module_at_the_cap_is_read_whole_and_hashed() {
        let mut bytes = b"\0asm\x01\0\0\0".to_vec();
        bytes.resize(4096, 7);
        let (_dir, bundle) = wasm_bundle(&bytes);
        let Workload::Wasm { module, .. } = bundle.workload(4096).expect("at the cap") else {
            panic!("not wasm");
        };
        assert_eq!(module.bytes, bytes);
        assert_eq!(module.sha256, hex::encode(Sha256::digest(&bytes)));
        let err = bundle.workload(4095).expect_err("one over");
        assert!(
            matches!(
                err,
                BundleError::ModuleTooLarge {
                    size: 4096,
                    max: 4095,
                    ..
                }
            ),
            "{err}"
        );
    }

    /// A bundle whose rootfs holds `files`, run as `args`.
    fn bundle_with(files: &[(&str, &[u8])], args: &str) -> (tempfile::TempDir, Bundle) {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("config.json"),
            format!(
                r#"{{"ociVersion":"1.0.2","root":{{"path":"rootfs"}},"process":{{"cwd":"/","args":{args},"user":{{"uid":0,"gid":0}}}}}}"#
            ),
        )
        .expect("write");
        std::fs::create_dir(dir.path().join("rootfs")).expect("mkdir");
        for (name, bytes) in files {
            std::fs::write(dir.path().join("rootfs").join(name), bytes).expect("file");
        }
        let bundle = Bundle::load(dir.path()).expect("load");
        (dir, bundle)
    }

    #[test]
    fn test_an_export_is_named_after_a_module_only() {
        let (_dir, bundle) = bundle_with(&[("m.wasm", b"\0asm\x01\0\0\0")], r#"["/m.wasm#run"]"#);
        let Workload::Wasm {
            entrypoint, view, ..
        } = bundle.workload(1 << 20).expect("wasm")
        else {
            panic!("not wasm");
        };
        assert_eq!(entrypoint.container_path, "/m.wasm");
        assert_eq!(view.entry_export.as_deref(), Some("run"));
        // A native program whose name has a `#` is that program, whole:
        // what is decided is what its exec runs.
        let elf: &[u8] = b"\x7fELF and more";
        let (_dir, bundle) = bundle_with(&[("ok", elf), ("ok#evil", elf)], r#"["/ok#evil"]"#);
        let Workload::Native { entrypoint } = bundle.workload(1 << 20).expect("native") else {
            panic!("not native");
        };
        assert_eq!(entrypoint.container_path, "/ok#evil");
    }

    #[test]
    fn test_native_entrypoint_is_not_capped() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("config.json"),
            br#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},"process":{"cwd":"/","args":["/app"],"user":{"uid":0,"gid":0}}}"#,
        )
        .expect("write");
        std::fs::create_dir(dir.path().join("rootfs")).expect("mkdir");
        std::fs::write(
            dir.path().join("rootfs/app"),
            b"\x7fELF and more than 8 bytes",
        )
        .expect("write");
        let bundle = Bundle::load(dir.path()).expect("load");
        assert!(matches!(
            bundle.workload(8).expect("native"),
            Workload::Native { .. }
        ));
    }
}
