//! Reading a policy from disk in any of the shapes OPA users have: a
//! `.rego` file, a folder, a bare `policy.wasm`, or an OPA bundle
//! (`bundle.tar.gz` with `/policy.wasm` or `.rego` files, `data.json` files
//! and `/.manifest`).
//!
//! `data.json` files are merged into `data` at their folder's path, as OPA
//! does. The revision is the manifest's, else the content hash's first 12
//! hex digits.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The policy code, in one of the two formats.
#[derive(Debug, Clone)]
pub enum PolicyCode {
    /// Rego modules: (path, text).
    Rego(Vec<(String, String)>),
    /// An OPA-compiled Wasm module.
    Wasm(Vec<u8>),
}

/// A policy as read: code, data, identity.
#[derive(Debug, Clone)]
pub struct PolicySource {
    pub code: PolicyCode,
    pub data: serde_json::Value,
    /// Hex sha256 over every file read (names and bytes).
    pub content_hash: String,
    pub revision: String,
    /// The files it was read from (sorted), from which it can be read again
    /// ([`Self::from_files`]): what the node's last good copy keeps.
    pub(crate) files: Files,
}

/// Files gathered from a folder or a bundle, as (relative path, bytes).
pub(crate) type Files = Vec<(String, Vec<u8>)>;

impl PolicySource {
    pub fn load(path: &Path) -> Result<Self, String> {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let files = if path.is_dir() {
            let mut files = Vec::new();
            read_folder(path, path, &mut files)?;
            files
        } else if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
            read_bundle(path)?
        } else {
            let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let mut files = vec![(name.to_string(), bytes)];
            // A bare policy.wasm may come with a data.json beside it.
            let beside = path.with_file_name("data.json");
            if name.ends_with(".wasm") && beside.is_file() {
                let data =
                    std::fs::read(&beside).map_err(|e| format!("{}: {e}", beside.display()))?;
                files.push(("data.json".into(), data));
            }
            files
        };
        Self::from_files(files).map_err(|e| format!("policy {}: {e}", path.display()))
    }

    /// The policy these files (paths relative to the policy's root) make.
    pub(crate) fn from_files(mut files: Files) -> Result<Self, String> {
        files.sort();
        let mut hasher = Sha256::new();
        for (name, bytes) in &files {
            hasher.update((name.len() as u64).to_le_bytes());
            hasher.update(name.as_bytes());
            hasher.update((bytes.len() as u64).to_le_bytes());
            hasher.update(bytes);
        }
        let content_hash = hex::encode(hasher.finalize());
        let mut rego = Vec::new();
        let mut wasm = None;
        let mut data = serde_json::Value::Object(Default::default());
        let mut revision = None;
        for (name, bytes) in files.iter().cloned() {
            let base = name.rsplit('/').next().unwrap_or(&name);
            if name.ends_with(".rego") {
                let text = String::from_utf8(bytes).map_err(|_| format!("{name} is not UTF-8"))?;
                rego.push((name, text));
            } else if base == "policy.wasm" || (name.ends_with(".wasm") && wasm.is_none()) {
                if wasm.is_some() {
                    return Err("more than one policy.wasm".into());
                }
                wasm = Some(bytes);
            } else if base == "data.json" {
                let value: serde_json::Value =
                    serde_json::from_slice(&bytes).map_err(|e| format!("{name}: {e}"))?;
                let folder: Vec<&str> = name
                    .trim_end_matches("data.json")
                    .split('/')
                    .filter(|c| !c.is_empty())
                    .collect();
                merge_at(&mut data, &folder, value).map_err(|e| format!("{name}: {e}"))?;
            } else if base == ".manifest" {
                let manifest: serde_json::Value =
                    serde_json::from_slice(&bytes).map_err(|e| format!("{name}: {e}"))?;
                revision = manifest
                    .get("revision")
                    .and_then(|r| r.as_str())
                    .filter(|r| !r.is_empty())
                    .map(str::to_string);
            }
        }
        let code = match (rego.is_empty(), wasm) {
            (false, Some(_)) => return Err("holds both .rego files and a Wasm policy".into()),
            (false, None) => PolicyCode::Rego(rego),
            (true, Some(wasm)) => PolicyCode::Wasm(wasm),
            (true, None) => return Err("holds no .rego file and no policy.wasm".into()),
        };
        Ok(Self {
            code,
            data,
            revision: revision.unwrap_or_else(|| content_hash[..12].to_string()),
            content_hash,
            files,
        })
    }
}

/// Every file under `dir` (hidden ones too: `.manifest`), by relative path.
fn read_folder(root: &Path, dir: &Path, files: &mut Files) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
        let path = entry.path();
        if path.is_dir() {
            read_folder(root, &path, files)?;
        } else if is_policy_file(&path) {
            let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let relative = path.strip_prefix(root).unwrap_or(&path);
            files.push((relative.display().to_string(), bytes));
        }
    }
    Ok(())
}

fn is_policy_file(path: &Path) -> bool {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    name.ends_with(".rego") || name.ends_with(".wasm") || name == "data.json" || name == ".manifest"
}

fn read_bundle(path: &Path) -> Result<Files, String> {
    let err = |e: std::io::Error| format!("{}: {e}", path.display());
    let file = std::fs::File::open(path).map_err(err)?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut files = Vec::new();
    for entry in archive.entries().map_err(err)? {
        let mut entry = entry.map_err(err)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = entry.path().map_err(err)?.display().to_string();
        let name = name
            .trim_start_matches("./")
            .trim_start_matches('/')
            .to_string();
        if !is_policy_file(&PathBuf::from(&name)) {
            continue;
        }
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).map_err(err)?;
        files.push((name, bytes));
    }
    Ok(files)
}

/// Puts `value` at `path` inside `data`, merging objects.
fn merge_at(
    data: &mut serde_json::Value,
    path: &[&str],
    value: serde_json::Value,
) -> Result<(), String> {
    let mut node = data;
    for component in path {
        let object = node
            .as_object_mut()
            .ok_or_else(|| format!("data at {component} is not an object"))?;
        node = object
            .entry(component.to_string())
            .or_insert_with(|| serde_json::Value::Object(Default::default()));
    }
    merge(node, value)
}

fn merge(into: &mut serde_json::Value, value: serde_json::Value) -> Result<(), String> {
    match (into, value) {
        (serde_json::Value::Object(left), serde_json::Value::Object(right)) => {
            for (key, value) in right {
                match left.get_mut(&key) {
                    Some(existing) => merge(existing, value)?,
                    None => {
                        left.insert(key, value);
                    }
                }
            }
            Ok(())
        }
        (into, value) if into.as_object().is_some_and(|o| o.is_empty()) => {
            *into = value;
            Ok(())
        }
        _ => Err("conflicting data.json values".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_folder_with_rego_and_nested_data_is_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("a.rego"), "package a\n").expect("write");
        std::fs::create_dir(dir.path().join("x")).expect("mkdir");
        std::fs::write(dir.path().join("x/data.json"), r#"{"k": 1}"#).expect("write");
        std::fs::write(dir.path().join("data.json"), r#"{"top": true}"#).expect("write");
        let source = PolicySource::load(dir.path()).expect("loads");
        assert!(matches!(source.code, PolicyCode::Rego(ref m) if m.len() == 1));
        assert_eq!(source.data, serde_json::json!({"top": true, "x": {"k": 1}}));
        assert_eq!(source.revision, source.content_hash[..12]);
    }

    #[test]
    fn test_bundle_with_manifest_revision_is_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bundle.tar.gz");
        let file = std::fs::File::create(&path).expect("create");
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
            file,
            flate2::Compression::fast(),
        ));
        for (name, bytes) in [
            ("/policy.wasm", &b"\0asm\x01\0\0\0"[..]),
            ("/data.json", br#"{"d": 2}"#),
            ("/.manifest", br#"{"revision": "r42"}"#),
        ] {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder
                .append_data(&mut header, name.trim_start_matches('/'), bytes)
                .expect("append");
        }
        builder.into_inner().expect("tar").finish().expect("gz");
        let source = PolicySource::load(&path).expect("loads");
        assert!(matches!(source.code, PolicyCode::Wasm(_)));
        assert_eq!(source.revision, "r42");
        assert_eq!(source.data, serde_json::json!({"d": 2}));
    }

    #[test]
    fn test_folder_without_policy_or_with_both_formats_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("data.json"), "{}").expect("write");
        let err = PolicySource::load(dir.path()).expect_err("empty");
        assert!(err.contains("no .rego file and no policy.wasm"), "{err}");
        std::fs::write(dir.path().join("a.rego"), "package a\n").expect("write");
        std::fs::write(dir.path().join("policy.wasm"), b"\0asm").expect("write");
        let err = PolicySource::load(dir.path()).expect_err("both");
        assert!(err.contains("both"), "{err}");
    }
}
