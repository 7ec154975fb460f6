use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;

use super::*;

const CONFIG: &str = "version = 2\n# the operator's\n[plugins.\"io.containerd.grpc.v1.cri\"]\n  sandbox_image = \"registry.k8s.io/pause:3.6\"\n";

fn snapshot(root: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    tree(root)
}

/// An installer image's folder: two shims.
fn image() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("image");
    for name in ["containerd-shim-wasmtime-v1", "containerd-shim-wasmedge-v1"] {
        std::fs::write(dir.path().join(name), format!("binary {name}")).expect("shim");
    }
    dir
}

fn options(from: &Path, policy_audit: bool) -> Options {
    Options {
        from: from.to_path_buf(),
        policy_audit,
    }
}

#[test]
fn test_install_twice_then_uninstall_leaves_a_containerd_node_as_it_was() {
    let image = image();
    let root = tempfile::tempdir().expect("root");
    std::fs::create_dir_all(root.path().join("etc/containerd")).expect("mkdir");
    std::fs::create_dir_all(root.path().join("usr/local")).expect("mkdir");
    std::fs::write(root.path().join(CONTAINERD_CONFIG), CONFIG).expect("config");
    let before = snapshot(root.path());

    let first = install(root.path(), &options(image.path(), true)).expect("install");
    assert!(first.config_changed);
    let shim = root
        .path()
        .join("usr/local/bin/containerd-shim-wasmtime-v1");
    assert_eq!(
        std::fs::read_to_string(&shim).expect("shim"),
        "binary containerd-shim-wasmtime-v1"
    );
    assert_eq!(
        std::fs::metadata(&shim).expect("meta").permissions().mode() & 0o777,
        0o755
    );
    let config = std::fs::read_to_string(root.path().join(CONTAINERD_CONFIG)).expect("config");
    assert!(config.starts_with(CONFIG.trim_end()) && config.contains("io.containerd.wasmedge.v1"));
    assert_eq!(
        std::fs::read_to_string(
            root.path()
                .join("etc/containerd/config.toml.edgeshim-backup")
        )
        .expect("backup"),
        CONFIG
    );
    let audit = std::fs::read_to_string(root.path().join(policy::CONFIG)).expect("policy.toml");
    assert!(audit.contains("mode = \"audit\""));
    assert!(
        root.path()
            .join("etc/edgeshim/policy/decision.rego")
            .is_file()
    );

    let installed = snapshot(root.path());
    let second = install(root.path(), &options(image.path(), true)).expect("again");
    assert!(
        second.written.is_empty() && !second.config_changed,
        "{second:?}"
    );
    assert_eq!(
        snapshot(root.path()),
        installed,
        "the second run changed nothing"
    );

    let undone = uninstall(root.path()).expect("uninstall");
    assert!(undone.config_changed);
    assert_eq!(
        snapshot(root.path()),
        before,
        "uninstall left the root as it was"
    );
}

#[test]
fn test_a_k3s_node_gets_the_shims_in_opt_kwasm_and_no_config_edit() {
    let image = image();
    let root = tempfile::tempdir().expect("root");
    let template = root
        .path()
        .join("var/lib/rancher/k3s/agent/etc/containerd/config.toml.tmpl");
    std::fs::create_dir_all(template.parent().expect("parent")).expect("mkdir");
    std::fs::write(&template, "{{ template \"base\" . }}\n").expect("tmpl");
    let before = snapshot(root.path());
    let report = install(root.path(), &options(image.path(), false)).expect("install");
    assert!(!report.config_changed);
    assert!(
        root.path()
            .join("opt/kwasm/bin/containerd-shim-wasmedge-v1")
            .is_file()
    );
    assert!(!root.path().join(CONTAINERD_CONFIG).exists());
    assert_eq!(
        std::fs::read_to_string(&template).expect("tmpl"),
        "{{ template \"base\" . }}\n"
    );
    uninstall(root.path()).expect("uninstall");
    assert_eq!(snapshot(root.path()), before);
}

#[test]
fn test_an_operators_file_is_kept_aside_and_put_back_and_a_missing_config_is_made_then_removed() {
    let image = image();
    let root = tempfile::tempdir().expect("root");
    let theirs = root
        .path()
        .join("usr/local/bin/containerd-shim-wasmtime-v1");
    std::fs::create_dir_all(theirs.parent().expect("parent")).expect("mkdir");
    std::fs::write(&theirs, "the operator's older build").expect("theirs");
    let before = snapshot(root.path());
    let report = install(root.path(), &options(image.path(), false)).expect("install");
    assert!(report.config_changed, "a config with the handlers was made");
    assert!(
        std::fs::read_to_string(root.path().join(CONTAINERD_CONFIG))
            .expect("config")
            .starts_with("version = 2")
    );
    uninstall(root.path()).expect("uninstall");
    assert_eq!(snapshot(root.path()), before);
}

#[test]
fn test_an_image_without_shims_is_refused_and_the_library_is_complete() {
    let empty = tempfile::tempdir().expect("image");
    let root = tempfile::tempdir().expect("root");
    let err = install(root.path(), &options(empty.path(), false)).expect_err("no shims");
    assert!(err.to_string().contains("no containerd-shim-*-v1"), "{err}");
    let library = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies/library");
    let mut shipped: Vec<String> = std::fs::read_dir(library)
        .expect("library")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    shipped.sort();
    let built_in: Vec<String> = policy::LIBRARY.iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(
        built_in, shipped,
        "policy::LIBRARY lists every file of policies/library"
    );
}

#[test]
fn test_a_symbolic_link_on_the_way_is_refused_and_nothing_is_written_through_it() {
    let image = image();
    let root = tempfile::tempdir().expect("root");
    let elsewhere = tempfile::tempdir().expect("elsewhere");
    std::fs::create_dir_all(root.path().join("usr/local")).expect("mkdir");
    std::os::unix::fs::symlink(elsewhere.path(), root.path().join("usr/local/bin")).expect("link");
    let err = install(root.path(), &options(image.path(), false)).expect_err("refused");
    assert!(
        err.to_string().contains("is a symbolic link on the node"),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(elsewhere.path()).expect("dir").count(), 0);
}
