//! Errors of bundle translation. Each names the file or field at fault.

use std::path::PathBuf;

pub type Result<T, E = BundleError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("bundle has no config.json at {0}")]
    MissingConfig(PathBuf),
    #[error("malformed config.json at {path}: {source}")]
    BadConfig {
        path: PathBuf,
        source: oci_spec::OciSpecError,
    },
    #[error("{kind} namespace to join at {path} does not exist")]
    MissingNamespacePath { kind: String, path: String },
    #[error("the host has no {0} namespace (no /proc/self/ns/{0})")]
    UnsupportedNamespace(String),
    #[error("invalid spec: {0}")]
    Invalid(String),
    #[error("{what} has {found} {unit}, over the limit of {max} {unit} the shim takes")]
    OverLimit {
        what: &'static str,
        unit: &'static str,
        found: u64,
        max: u64,
    },
    #[error("entrypoint {0:?} not found in the rootfs (searched PATH too)")]
    EntrypointNotFound(String),
    #[error("entrypoint {path:?} is a {kind}, not a regular file: refused without reading it")]
    EntrypointNotRegular { path: String, kind: &'static str },
    #[error("entrypoint {path:?} is neither a Wasm module nor an ELF binary nor a script")]
    UnknownFormat { path: String },
    #[error(
        "entrypoint {path:?} is {size} bytes, over the module size cap of {max} bytes \
         (max_module_bytes in the policy config): refused before reading it"
    )]
    ModuleTooLarge { path: String, size: u64, max: u64 },
    #[error("cannot read entrypoint {path:?}: {source}")]
    ReadEntrypoint {
        path: String,
        source: std::io::Error,
    },
}
