//! Which libwasmedge a compile helper loads.
//!
//! libwasmedge built with LLVM (its AOT compiler) brings libLLVM, whose
//! 8.3 MB of relocated data every process that loads it holds privately:
//! the shim, and through it every pod (docs/design.md, "Where a pod's
//! memory goes"). Only the compile helpers need LLVM. So a node may link
//! the shim against a runtime-only libwasmedge (`WASMEDGE_USE_LLVM=OFF`,
//! the same 0.14.1 C API) and name a folder holding the LLVM one here; the
//! helpers then run with that folder first on the loader's path. Both
//! libraries are `libwasmedge.so.0`, so the helper, the same executable as
//! the shim, loads the compiler's. Unset, the helper loads what the shim
//! loads; a shim without a compiler anywhere interprets (see `aot`).
//!
//! The folder comes from the shim's environment (containerd's, set by the
//! operator), never from a request.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The environment variable naming the folder of the LLVM libwasmedge for
/// compile helpers (overrides the build's `WASMEDGE_COMPILER_LIB_DIR`;
/// empty: none).
pub const COMPILER_LIBRARY_ENV: &str = "EDGESHIM_WASMEDGE_COMPILER_LIB";

/// The folder the shim was built to hand its helpers, if any.
const BUILT_WITH: Option<&str> = option_env!("WASMEDGE_COMPILER_LIB_DIR");

/// A command that runs the compile helper `helper`, with the compiler's
/// library first on its loader's path when one is configured.
pub(crate) fn helper_command(helper: &Path) -> Command {
    let mut command = Command::new(helper);
    let folder = chosen(std::env::var_os(COMPILER_LIBRARY_ENV), BUILT_WITH);
    if let Some(path) = folder.and_then(|f| search_path(&f, std::env::var_os("LD_LIBRARY_PATH"))) {
        command.env("LD_LIBRARY_PATH", path);
    }
    command
}

/// The environment's folder, else the build's; an empty value is none.
fn chosen(environment: Option<OsString>, built: Option<&str>) -> Option<PathBuf> {
    match environment {
        Some(value) if value.is_empty() => None,
        Some(value) => Some(PathBuf::from(value)),
        None => built.filter(|b| !b.is_empty()).map(PathBuf::from),
    }
}

/// `folder` ahead of the loader path the shim already has; `None` (and a
/// warning) when the folder holds no libwasmedge, so a mistyped setting
/// leaves the helper on the shim's own library rather than failing.
fn search_path(folder: &Path, existing: Option<OsString>) -> Option<OsString> {
    if !folder.join("libwasmedge.so.0").exists() {
        log::warn!(
            "{COMPILER_LIBRARY_ENV}: {} holds no libwasmedge.so.0; compile helpers load the shim's libwasmedge",
            folder.display()
        );
        return None;
    }
    let mut path = OsString::from(folder.as_os_str());
    if let Some(existing) = existing.filter(|e| !e.is_empty()) {
        path.push(":");
        path.push(existing);
    }
    Some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_the_environment_wins_over_the_build_and_empty_means_none() {
        assert_eq!(chosen(None, None), None);
        assert_eq!(chosen(None, Some("/opt/c/lib")), Some("/opt/c/lib".into()));
        assert_eq!(chosen(None, Some("")), None);
        assert_eq!(
            chosen(Some("/etc/c".into()), Some("/opt/c/lib")),
            Some("/etc/c".into())
        );
        assert_eq!(chosen(Some("".into()), Some("/opt/c/lib")), None);
    }

    #[test]
    fn test_the_compiler_folder_goes_first_and_only_when_it_holds_the_library() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(search_path(dir.path(), None), None, "no library there");
        std::fs::write(dir.path().join("libwasmedge.so.0"), b"").expect("library");
        let folder = dir.path().as_os_str().to_owned();
        assert_eq!(search_path(dir.path(), None), Some(folder.clone()));
        assert_eq!(
            search_path(dir.path(), Some("".into())),
            Some(folder.clone())
        );
        let mut both = folder;
        both.push(":/usr/local/lib");
        assert_eq!(
            search_path(dir.path(), Some("/usr/local/lib".into())),
            Some(both)
        );
    }
}
