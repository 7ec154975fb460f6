//! edgeshim's runtime handlers in containerd's `config.toml`, added and
//! removed with `toml_edit` so that everything else in the file (the
//! operator's settings, comments, order) stays as it was. Adding what is
//! already there changes nothing.
//!
//! containerd 1.6 and 1.7 (config `version = 2`) keep CRI's runtimes under
//! `plugins."io.containerd.grpc.v1.cri".containerd.runtimes`; containerd 2
//! (`version = 3`) under `plugins."io.containerd.cri.v1.runtime".containerd.runtimes`.

use anyhow::{Context, Result, bail};
use toml_edit::{Array, DocumentMut, Item, Table, value};

/// The runtime handlers edgeshim adds: the name pods select with
/// `runtimeClassName`, and the shim's runtime type.
pub const HANDLERS: [(&str, &str); 2] = [
    ("wasmtime", "io.containerd.wasmtime.v1"),
    ("wasmedge", "io.containerd.wasmedge.v1"),
];

/// Pod annotations containerd passes to the shim (the example library reads
/// `edgeshim.io/owner`; a pod's own claims grant nothing).
const POD_ANNOTATIONS: &str = "edgeshim.io/*";

/// The keys of the table holding CRI's runtimes for the config's version.
fn runtimes_path(doc: &DocumentMut) -> Result<[&'static str; 4]> {
    match doc.get("version").and_then(Item::as_integer) {
        Some(2) => Ok([
            "plugins",
            "io.containerd.grpc.v1.cri",
            "containerd",
            "runtimes",
        ]),
        Some(3) => Ok([
            "plugins",
            "io.containerd.cri.v1.runtime",
            "containerd",
            "runtimes",
        ]),
        Some(other) => bail!("config version {other}: only versions 2 and 3 are known"),
        None => bail!(
            "no `version` key: a version 1 config (containerd before 1.5) is not supported; \
             `containerd config migrate` writes version 2"
        ),
    }
}

/// The runtimes table, made (as implicit parent tables) when absent.
fn runtimes<'a>(doc: &'a mut DocumentMut, path: &[&str]) -> Result<&'a mut Table> {
    let mut table = doc.as_table_mut();
    for key in path {
        let item = table.entry(key).or_insert_with(|| {
            let mut t = Table::new();
            t.set_implicit(true);
            Item::Table(t)
        });
        table = item
            .as_table_mut()
            .with_context(|| format!("`{key}` in containerd's config is not a table"))?;
    }
    Ok(table)
}

fn handler_table(runtime_type: &str) -> Table {
    let mut table = Table::new();
    table.insert("runtime_type", value(runtime_type));
    let mut annotations = Array::new();
    annotations.push(POD_ANNOTATIONS);
    table.insert("pod_annotations", value(annotations));
    table
}

/// `text` with every handler of [`HANDLERS`] present; `None` when all were
/// there already, with the runtime type edgeshim sets (nothing to write).
/// A handler of the same name with another runtime type is an error: it
/// is the operator's, and is not overwritten.
pub fn with_handlers(text: &str) -> Result<Option<String>> {
    let mut doc: DocumentMut = text.parse().context("containerd's config is not TOML")?;
    let path = runtimes_path(&doc)?;
    let table = runtimes(&mut doc, &path)?;
    let mut changed = false;
    for (name, runtime_type) in HANDLERS {
        match table.get(name) {
            None => {
                table.insert(name, Item::Table(handler_table(runtime_type)));
                changed = true;
            }
            Some(existing) => {
                let found = existing.get("runtime_type").and_then(Item::as_str);
                if found != Some(runtime_type) {
                    bail!(
                        "containerd's config already has a runtime `{name}` of type {found:?}, \
                         not {runtime_type}: left as it is; remove or rename it first"
                    );
                }
            }
        }
    }
    Ok(changed.then(|| doc.to_string()))
}

/// `text` without edgeshim's handlers (those of edgeshim's runtime types);
/// `None` when none was there.
pub fn without_handlers(text: &str) -> Result<Option<String>> {
    let mut doc: DocumentMut = text.parse().context("containerd's config is not TOML")?;
    let path = runtimes_path(&doc)?;
    let table = runtimes(&mut doc, &path)?;
    let mut changed = false;
    for (name, runtime_type) in HANDLERS {
        let ours = table
            .get(name)
            .and_then(|t| t.get("runtime_type"))
            .and_then(Item::as_str)
            == Some(runtime_type);
        if ours {
            table.remove(name);
            changed = true;
        }
    }
    Ok(changed.then(|| doc.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN_1_6: &str = r#"# the operator's comment
version = 2
root = "/var/lib/containerd"

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "registry.k8s.io/pause:3.6"
    [plugins."io.containerd.grpc.v1.cri".containerd]
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes]
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
          runtime_type = "io.containerd.runc.v2"
"#;

    #[test]
    fn test_handlers_are_added_once_and_everything_else_is_kept() {
        let added = with_handlers(DEBIAN_1_6).expect("adds").expect("a change");
        assert!(added.starts_with(DEBIAN_1_6.trim_end()), "{added}");
        let doc: DocumentMut = added.parse().expect("toml");
        let runtimes = &doc["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"];
        assert_eq!(
            runtimes["wasmtime"]["runtime_type"].as_str(),
            Some("io.containerd.wasmtime.v1")
        );
        assert_eq!(
            runtimes["runc"]["runtime_type"].as_str(),
            Some("io.containerd.runc.v2")
        );
        assert_eq!(with_handlers(&added).expect("again"), None, "idempotent");
        let removed = without_handlers(&added)
            .expect("removes")
            .expect("a change");
        assert_eq!(removed.trim_end(), DEBIAN_1_6.trim_end());
        assert_eq!(without_handlers(&removed).expect("again"), None);
    }

    #[test]
    fn test_an_empty_version_2_or_3_config_gets_its_runtimes_table() {
        let added = with_handlers("version = 2\n")
            .expect("adds")
            .expect("a change");
        assert!(
            added.contains("[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.wasmedge]"),
            "{added}"
        );
        let added = with_handlers("version = 3\n")
            .expect("adds")
            .expect("a change");
        assert!(added.contains("io.containerd.cri.v1.runtime"), "{added}");
    }

    #[test]
    fn test_an_operators_own_handler_of_that_name_and_unknown_versions_are_refused() {
        let theirs = format!(
            "{DEBIAN_1_6}        [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.wasmtime]\n          runtime_type = \"io.containerd.spin.v2\"\n"
        );
        let err = with_handlers(&theirs).expect_err("theirs");
        assert!(
            err.to_string().contains("already has a runtime `wasmtime`"),
            "{err}"
        );
        assert_eq!(without_handlers(&theirs).expect("leaves theirs"), None);
        assert!(with_handlers("root = \"/x\"\n").is_err(), "version 1");
        assert!(
            with_handlers("version = 2\n[plugins\n").is_err(),
            "not TOML"
        );
    }
}
