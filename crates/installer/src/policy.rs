//! The example policy library, installed only when asked
//! (`--policy audit`): its Rego and data in `/etc/edgeshim/policy/` and a
//! `policy.toml` deciding in audit mode with the library's load check, so
//! that a node logs what the library would deny before anyone enforces it.
//! The files are the repository's `policies/library`, built in.

use std::path::PathBuf;

/// The library's files, by name.
pub const LIBRARY: [(&str, &str); 11] = [
    (
        "README.md",
        include_str!("../../../policies/library/README.md"),
    ),
    (
        "config.rego",
        include_str!("../../../policies/library/config.rego"),
    ),
    (
        "data.json",
        include_str!("../../../policies/library/data.json"),
    ),
    (
        "datalocal.rego",
        include_str!("../../../policies/library/datalocal.rego"),
    ),
    (
        "decision.rego",
        include_str!("../../../policies/library/decision.rego"),
    ),
    (
        "labels.rego",
        include_str!("../../../policies/library/labels.rego"),
    ),
    (
        "memory.rego",
        include_str!("../../../policies/library/memory.rego"),
    ),
    (
        "mounts.rego",
        include_str!("../../../policies/library/mounts.rego"),
    ),
    (
        "network.rego",
        include_str!("../../../policies/library/network.rego"),
    ),
    (
        "registry.rego",
        include_str!("../../../policies/library/registry.rego"),
    ),
    (
        "wasm.rego",
        include_str!("../../../policies/library/wasm.rego"),
    ),
];

/// Where the shims look for their config by default.
pub const CONFIG: &str = "etc/edgeshim/policy.toml";
pub const FOLDER: &str = "etc/edgeshim/policy";

/// The config the installer writes: audit mode, the library's check.
pub const AUDIT_CONFIG: &str = r#"# Written by edgeshim-install --policy audit: every create and start is
# decided and logged, nothing is denied. Review the decision log, adjust
# policy/data.json, then set mode = "enforce".
mode = "audit"
policy = "policy"
check = "edgeshim/config_errors"

[decision_log]
path = "/var/log/edgeshim/decisions.log"
"#;

/// The files to write, as (path under the node's root, contents).
pub fn files() -> Vec<(PathBuf, &'static str)> {
    let mut files = vec![(PathBuf::from(CONFIG), AUDIT_CONFIG)];
    files.extend(
        LIBRARY
            .iter()
            .map(|(name, text)| (PathBuf::from(FOLDER).join(name), *text)),
    );
    files
}
