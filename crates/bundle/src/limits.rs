//! How much of a spec the shim takes: a request just over any of these is
//! refused by name before it is read further or anything is made, never
//! with a crash, a hang or memory it did not need. runc has no such limits
//! of its own; the kernel's `execve` ones (2 MiB of arguments and
//! environment with an 8 MiB stack, 128 KiB per string) bound a native
//! container later, with a bare E2BIG. A Wasm module's arguments never
//! meet `execve`, so the shim sets the bound itself, for both kinds alike.

use oci_spec::runtime::Spec;

use crate::{BundleError, Result};

/// config.json's size: specs containerd writes are tens of KB; this is room
/// for [`MAX_ARGS_ENV_BYTES`] of arguments and environment, Kubernetes'
/// 256 KiB of annotations, and the rest, JSON-escaped.
pub const MAX_CONFIG_BYTES: u64 = 4 << 20;
/// `process.args` entries.
pub const MAX_ARGS: usize = 4096;
/// `process.env` entries.
pub const MAX_ENV: usize = 4096;
/// Bytes of `process.args` and `process.env` together, each string with
/// its terminating NUL, as `execve` counts them: half of what Linux takes
/// with the default stack, so a native container just under it still runs.
pub const MAX_ARGS_ENV_BYTES: usize = 1 << 20;
/// `mounts` entries.
pub const MAX_MOUNTS: usize = 256;

/// Refuses a config.json of `len` bytes before it is read.
pub(crate) fn check_config_size(len: u64) -> Result<()> {
    over("config.json", "bytes", len, MAX_CONFIG_BYTES)
}

/// Refuses a spec over any count limit.
pub(crate) fn check_spec(spec: &Spec) -> Result<()> {
    let process = spec.process().as_ref();
    let args = process
        .and_then(|p| p.args().as_deref())
        .unwrap_or_default();
    let env = process.and_then(|p| p.env().as_deref()).unwrap_or_default();
    let mounts = spec.mounts().as_deref().unwrap_or_default();
    let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    over(
        "process.args",
        "entries",
        count(args.len()),
        count(MAX_ARGS),
    )?;
    over("process.env", "entries", count(env.len()), count(MAX_ENV))?;
    let bytes: usize = args.iter().chain(env).map(|s| s.len() + 1).sum();
    over(
        "process.args and process.env",
        "bytes",
        count(bytes),
        count(MAX_ARGS_ENV_BYTES),
    )?;
    over("mounts", "entries", count(mounts.len()), count(MAX_MOUNTS))
}

fn over(what: &'static str, unit: &'static str, found: u64, max: u64) -> Result<()> {
    if found > max {
        return Err(BundleError::OverLimit {
            what,
            unit,
            found,
            max,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(args: usize, env: usize, mounts: usize, arg_len: usize) -> Spec {
        let json = serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "process": {
                "cwd": "/",
                "user": {"uid": 0, "gid": 0},
                "args": vec!["a".repeat(arg_len); args],
                "env": (0..env).map(|i| format!("K{i}=v")).collect::<Vec<_>>(),
            },
            "mounts": (0..mounts)
                .map(|i| serde_json::json!({"destination": format!("/m{i}"), "type": "bind", "source": "/tmp"}))
                .collect::<Vec<_>>(),
        });
        serde_json::from_value(json).expect("spec")
    }

    #[test]
    fn test_each_count_is_taken_at_its_limit_and_refused_just_over() {
        check_spec(&spec(MAX_ARGS, MAX_ENV, MAX_MOUNTS, 1)).expect("at every limit");
        for (spec, what) in [
            (spec(MAX_ARGS + 1, 0, 0, 1), "process.args has 4097 entries"),
            (spec(1, MAX_ENV + 1, 0, 1), "process.env has 4097 entries"),
            (spec(1, 0, MAX_MOUNTS + 1, 1), "mounts has 257 entries"),
        ] {
            let err = check_spec(&spec).expect_err("just over");
            assert!(err.to_string().starts_with(what), "{err}");
        }
    }

    #[test]
    fn test_argument_bytes_are_counted_as_exec_counts_them() {
        // Each string and its NUL: 4 strings of (n - 1) bytes fill it.
        let n = MAX_ARGS_ENV_BYTES / 4;
        check_spec(&spec(4, 0, 0, n - 1)).expect("exactly at the limit");
        let err = check_spec(&spec(4, 0, 0, n)).expect_err("4 bytes over");
        assert_eq!(
            err.to_string(),
            format!(
                "process.args and process.env has {} bytes, over the limit of {} bytes the shim takes",
                MAX_ARGS_ENV_BYTES + 4,
                MAX_ARGS_ENV_BYTES
            )
        );
    }

    #[test]
    fn test_config_size_is_refused_just_over() {
        check_config_size(MAX_CONFIG_BYTES).expect("at the limit");
        let err = check_config_size(MAX_CONFIG_BYTES + 1).expect_err("over");
        assert!(
            err.to_string().starts_with("config.json has 4194305 bytes"),
            "{err}"
        );
    }
}
