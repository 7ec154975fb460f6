//! The policy gate in the shim, under the real containerd: a denied
//! container never runs and leaves nothing, the reason reaches ctr and CRI,
//! every decision is logged, a policy change takes effect in a running
//! shim without a restart while a broken one keeps the last good serving,
//! and an update above the policy's memory cap is refused with the reason.
//!
//! The private containerd serves test/policy (allow unless a test marks a
//! container), so these tests never deny their neighbours' containers.

use edgeshim_integration::pods::*;
use edgeshim_integration::*;

#[test]
fn test_container_denied_at_create_never_runs_and_ctr_shows_why() {
    let _gate = gate_shared();
    let id = "policy-deny-ctr";
    let out = run_rm(id, PROBE_IMAGE, &[], &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("edgeshim: denied by policy (revision "),
        "{err}"
    );
    assert!(
        err.contains(
            "for container policy-deny-ctr: test: container policy-deny-ctr is denied by its id"
        ),
        "{err}"
    );
    assert_eq!(stdout(&out), "", "the module must not have run");
    assert_no_leftovers(id);
    let logged = decision_log();
    let line = logged
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json line"))
        .find(|l| l["container"] == id)
        .expect("a decision-log line for the denied container");
    assert_eq!(line["decision"], "deny");
    assert_eq!(line["action"], "create");
    assert_eq!(line["kind"], "wasm");
    assert!(
        line["module_sha256"]
            .as_str()
            .is_some_and(|s| s.len() == 64)
    );
}

#[test]
fn test_container_denied_at_start_is_created_but_never_runs() {
    let _gate = gate_shared();
    let id = "policy-nostart-ctr";
    let out = run_rm(id, PROBE_IMAGE, &[], &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("test: start of policy-nostart-ctr is denied"),
        "{err}"
    );
    assert_eq!(stdout(&out), "");
    remove(id);
    assert_no_leftovers(id);
    let actions: Vec<String> = decision_log()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["container"] == id)
        .map(|l| {
            format!(
                "{} {}",
                l["action"].as_str().unwrap_or_default(),
                l["decision"].as_str().unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(actions, ["create allow", "start deny"]);
}

#[test]
fn test_cri_returns_the_denial_for_containers_and_pods() {
    let _gate = gate_shared();
    let logs = tempfile::tempdir().expect("log dir");
    let mut cri = cri();

    let denied_pod = pod("policy-denied-pod", "uid-policy-2", true, logs.path());
    let err = cri
        .run_pod(&denied_pod, handler())
        .expect_err("the sandbox is denied");
    let text = format!("{err:#}");
    assert!(text.contains("edgeshim: denied by policy"), "{text}");
    assert!(
        text.contains("test: pod policy-denied-pod is denied"),
        "{text}"
    );

    let pod = pod("policy-pod", "uid-policy-1", true, logs.path());
    let pod_id = cri.run_pod(&pod, handler()).expect("RunPodSandbox");
    // containerd's CRI creates the task (and so asks the shim) in
    // StartContainer; CreateContainer only records the container.
    let spec = container("policy-denied", &["hello"]);
    let denied = cri
        .create_container(&pod_id, &spec.to_cri(), &pod)
        .expect("CreateContainer");
    let err = cri
        .start_container(&denied)
        .expect_err("the container is denied");
    let text = format!("{err:#}");
    assert!(text.contains("edgeshim: denied by policy"), "{text}");
    assert!(
        text.contains("test: CRI container name policy-denied is denied"),
        "{text}"
    );
    cri.remove_container(&denied).expect("RemoveContainer");
    assert_no_leftovers_in(CRI_NAMESPACE, &denied);
    // The pod and its shim carry on: an allowed container still runs.
    let (id, status, log) = run_to_exit(
        &mut cri,
        &pod_id,
        &pod,
        &container("allowed", &["hello"]),
        logs.path(),
    );
    assert_eq!(status.exit_code, 0, "{log}");
    remove_pod(&mut cri, &pod_id, &[&id]);
}

/// Creates, starts, awaits and removes container `name` in the pod; `Err`
/// carries the CRI error text.
fn try_run(
    cri: &mut edgeshim_cri::Cri,
    pod_id: &str,
    pod: &edgeshim_cri::api::PodSandboxConfig,
    name: &str,
) -> Result<(), String> {
    let spec = container(name, &["hello"]);
    let id = cri
        .create_container(pod_id, &spec.to_cri(), pod)
        .map_err(|e| format!("{e:#}"))?;
    let started = cri.start_container(&id).map_err(|e| format!("{e:#}"));
    if started.is_ok() {
        wait_exited(cri, &id);
    }
    cri.remove_container(&id).expect("RemoveContainer");
    assert_no_leftovers_in(CRI_NAMESPACE, &id);
    started
}

/// The gate's files (the policy and its config): tests that change what
/// every container is decided by take them alone (`gate_files`); tests
/// that add a rule for their own containers only, or just read, share them
/// (`gate_shared`).
static GATE_FILES: std::sync::RwLock<()> = std::sync::RwLock::new(());

fn gate_files() -> std::sync::RwLockWriteGuard<'static, ()> {
    GATE_FILES
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn gate_shared() -> std::sync::RwLockReadGuard<'static, ()> {
    GATE_FILES
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[test]
fn test_policy_change_reaches_a_running_shim_and_a_broken_one_keeps_the_last_good() {
    let _turn = gate_files();
    let logs = tempfile::tempdir().expect("log dir");
    let mut cri = cri();
    let pod = pod("policy-reload-pod", "uid-reload-1", true, logs.path());
    let pod_id = cri.run_pod(&pod, handler()).expect("RunPodSandbox");
    let pid_before = shim_pid_for(&pod_id).expect("the pod's shim");
    try_run(&mut cri, &pod_id, &pod, "flip-1").expect("allowed at first");

    // Deny "flip-2" by a data change: the running shim picks it up.
    write_policy_file(
        "deny_lists/reload/data.json",
        Some(r#"{"names": ["flip-2"]}"#),
    );
    await_condition("the deny list to take effect", LIMIT, || {
        try_run(&mut cri, &pod_id, &pod, "flip-2")
            .is_err_and(|e| e.contains("is on deny list reload"))
    });

    // A broken policy file: the shim logs why and keeps the last good one
    // (it looks at the files when it decides, so keep it deciding).
    let marker = containerd_log().len();
    write_policy_file(
        "broken.rego",
        Some("package edgeshim\ndeny contains x if {\n"),
    );
    await_condition("the shim to refuse the broken policy", LIMIT, || {
        try_run(&mut cri, &pod_id, &pod, "flip-3").expect("last good allows");
        containerd_log()[marker..].contains("keeps serving")
    });
    let err = try_run(&mut cri, &pod_id, &pod, "flip-2").expect_err("last good still denies");
    assert!(err.contains("is on deny list reload"), "{err}");
    try_run(&mut cri, &pod_id, &pod, "flip-3").expect("last good still allows");

    // Fixed again, and the deny list emptied: "flip-2" runs.
    write_policy_file("broken.rego", None);
    write_policy_file("deny_lists/reload/data.json", Some(r#"{"names": []}"#));
    await_condition("the emptied deny list to take effect", LIMIT, || {
        try_run(&mut cri, &pod_id, &pod, "flip-2").is_ok()
    });
    assert_eq!(
        shim_pid_for(&pod_id),
        Some(pid_before),
        "the pod's shim was not restarted"
    );
    write_policy_file("deny_lists/reload/data.json", None);
    remove_pod(&mut cri, &pod_id, &[]);
}

/// A memory cap on updates of the containers this test names: the suite's
/// policy allows everything unmarked, so the rule is added (in a folder of
/// its own) while the suite runs and taken away after.
const UPDATE_CAP_RULE: &str = r#"package edgeshim

deny contains msg if {
	input.action == "update"
	startswith(input.container.name, "policy-memcap")
	limit := input.container.resources.memory_limit
	is_number(limit)
	limit > 268435456
	msg := concat("", ["test: memory limit of ", format_int(limit, 10), " bytes is over the test cap of 268435456 bytes"])
}
"#;

/// Removes the rule file again, whether the test passes or fails.
struct UpdateCapRule;

impl Drop for UpdateCapRule {
    fn drop(&mut self) {
        write_policy_file("update_cap/edgeshim.rego", None);
    }
}

#[test]
fn test_cri_update_above_the_policy_cap_is_refused_with_the_reason() {
    let _gate = gate_shared();
    // Written before the pod exists, so the pod's new shim loads it.
    write_policy_file("update_cap/edgeshim.rego", Some(UPDATE_CAP_RULE));
    let _rule = UpdateCapRule;
    let logs = tempfile::tempdir().expect("log dir");
    let mut cri = cri();
    let pod = pod(
        "policy-update-pod",
        "uid-policy-update-1",
        true,
        logs.path(),
    );
    let pod_id = cri.run_pod(&pod, handler()).expect("RunPodSandbox");
    let mut spec = container("policy-memcap", &["sleep", "3600"]);
    spec.memory_limit_bytes = 64 << 20;
    let id = cri
        .create_container(&pod_id, &spec.to_cri(), &pod)
        .expect("CreateContainer");
    cri.start_container(&id).expect("StartContainer");

    let limit_file = std::path::Path::new("/sys/fs/cgroup/memory")
        .join(CRI_NAMESPACE)
        .join(&id)
        .join("memory.limit_in_bytes");
    let limit = || std::fs::read_to_string(&limit_file).expect("memory.limit_in_bytes");
    cri.update_memory_limit(&id, 128 << 20)
        .expect("an update within the cap");
    assert_eq!(limit().trim(), (128u64 << 20).to_string());

    let err = cri
        .update_memory_limit(&id, 512 << 20)
        .expect_err("an update above the cap");
    let text = format!("{err:#}");
    assert!(text.contains("edgeshim: denied by policy"), "{text}");
    assert!(
        text.contains(
            "test: memory limit of 536870912 bytes is over the test cap of 268435456 bytes"
        ),
        "{text}"
    );
    assert_eq!(
        limit().trim(),
        (128u64 << 20).to_string(),
        "the cgroup is untouched"
    );
    let line = decision_log()
        .lines()
        .rev()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json line"))
        .find(|l| l["container"] == id.as_str() && l["action"] == "update")
        .expect("the update's decision is logged");
    assert_eq!(line["decision"], "deny");

    cri.stop_container(&id, 10).expect("StopContainer");
    wait_exited(&mut cri, &id);
    remove_pod(&mut cri, &pod_id, &[&id]);
}

#[test]
fn test_a_native_program_claiming_to_be_a_sandbox_is_decided_as_native() {
    let _gate = gate_shared();
    let id = "policy-claims-sandbox";
    let out = run_rm(
        id,
        PAUSE_IMAGE,
        &["--annotation=io.kubernetes.cri.container-type=sandbox"],
        &["/hog", "1"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_no_leftovers(id);
    let kinds: Vec<String> = decision_log()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["container"] == id)
        .map(|l| l["kind"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(kinds, ["native", "native"], "create and start");
}

/// Puts the config file back when dropped, whatever the test did.
struct RestoreConfig {
    path: std::path::PathBuf,
    text: Vec<u8>,
}

impl Drop for RestoreConfig {
    fn drop(&mut self) {
        std::fs::write(&self.path, &self.text).expect("restore policy.toml");
    }
}

#[test]
fn test_deleting_the_config_leaves_the_gate_enforcing_in_running_and_new_shims() {
    let _turn = gate_files();
    let pod = "--annotation=io.kubernetes.cri.sandbox-id=policy-keep-pod";
    let out = run_detached("policy-keep-pod", PAUSE_IMAGE, &[pod], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let path = std::path::PathBuf::from(
        std::env::var_os("EDGESHIM_POLICY_CONFIG").expect("EDGESHIM_POLICY_CONFIG"),
    );
    let restore = RestoreConfig {
        text: std::fs::read(&path).expect("policy.toml"),
        path: path.clone(),
    };
    std::fs::remove_file(&path).expect("delete policy.toml");
    // The running pod shim still enforces: a container it must deny.
    let out = run_rm("policy-deny-kept-in-pod", PROBE_IMAGE, &[pod], &[]);
    assert!(
        stderr(&out).contains("container policy-deny-kept-in-pod is denied by its id"),
        "{}",
        stderr(&out)
    );
    assert_eq!(stdout(&out), "");
    // So does a shim started after the deletion, from the node's copy.
    let out = run_rm("policy-deny-kept-new", PROBE_IMAGE, &[], &[]);
    assert!(
        stderr(&out).contains("container policy-deny-kept-new is denied by its id"),
        "{}",
        stderr(&out)
    );
    assert_eq!(stdout(&out), "");
    drop(restore);
    kill_and_remove("policy-keep-pod");
    for id in [
        "policy-keep-pod",
        "policy-deny-kept-in-pod",
        "policy-deny-kept-new",
    ] {
        assert_no_leftovers(id);
    }
}

/// The example library with settings that admit the suite's images, so
/// that its host-network rule decides: only namespace edge-system is
/// granted the node's network.
const LIBRARY_SETTINGS: &str = r#"{"edgeshim_config": {
    "allowed_registries": ["edgeshim.test/", "edgeshim.local/"],
    "required_annotations": [],
    "max_memory_bytes": 1099511627776,
    "host_network_namespaces": ["edge-system"],
    "host_network_pods": [],
    "max_module_bytes": 67108864,
    "allowed_mount_prefixes": ["/"],
    "system_mount_prefixes": [],
    "data_local_namespaces": [],
    "data_local_pods": [],
    "data_local_brokers": [],
    "node_data_dir": "/var/lib/edgeshim-data/"
}}"#;

/// Points the gate at a copy of policies/library with [`LIBRARY_SETTINGS`];
/// the returned guard puts the suite's config back.
fn serve_the_example_library(dir: &std::path::Path) -> RestoreConfig {
    let library = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/library");
    for entry in std::fs::read_dir(&library).expect("policies/library") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "rego") {
            std::fs::copy(&path, dir.join(path.file_name().expect("name"))).expect("copy");
        }
    }
    std::fs::write(dir.join("data.json"), LIBRARY_SETTINGS).expect("data.json");
    let path = std::path::PathBuf::from(
        std::env::var_os("EDGESHIM_POLICY_CONFIG").expect("EDGESHIM_POLICY_CONFIG"),
    );
    let text = std::fs::read(&path).expect("policy.toml");
    let library_config = String::from_utf8_lossy(&text)
        .lines()
        .filter(|l| !l.starts_with("policy =") && !l.starts_with("check ="))
        .map(|l| format!("{l}\n"))
        .collect::<String>();
    let library_config = format!(
        "policy = {:?}\ncheck = \"edgeshim/config_errors\"\n{library_config}",
        dir.display().to_string()
    );
    let restore = RestoreConfig {
        path: path.clone(),
        text,
    };
    std::fs::write(&path, library_config).expect("write policy.toml");
    restore
}

#[test]
fn test_a_pod_cannot_grant_itself_host_network_under_the_example_library() {
    let _turn = gate_files();
    let library = tempfile::tempdir().expect("library dir");
    let restore = serve_the_example_library(library.path());
    let logs = tempfile::tempdir().expect("log dir");
    let mut cri = cri();

    // A pod author's own grant: the annotation reaches the shim
    // (hack/containerd.sh passes edgeshim.io/* through) and grants nothing.
    let annotated = |name: &str, namespace: &str| {
        let mut pod = pod_config(name, &format!("uid-{name}"), true, logs.path());
        pod.namespace = namespace.into();
        pod.annotations = vec![("edgeshim.io/host-network".into(), "true".into())];
        pod.to_cri()
    };
    let self_granted = annotated("policy-hostnet-self", "default");
    let mut refusal = String::new();
    await_condition("the gate to serve the example library", LIMIT, || match cri
        .run_pod(&self_granted, handler())
    {
        Ok(pod_id) => {
            remove_pod(&mut cri, &pod_id, &[]);
            false
        }
        Err(e) => {
            refusal = format!("{e:#}");
            refusal.contains("host-network: pod")
        }
    });
    assert!(
        refusal.contains("host-network: pod")
            && refusal.contains("default/policy-hostnet-self")
            && refusal.contains("is not granted the node's network"),
        "{refusal}"
    );

    // The operator's grant (namespace edge-system in data.json) does.
    let granted = annotated("policy-hostnet-granted", "edge-system");
    let pod_id = cri
        .run_pod(&granted, handler())
        .expect("a granted pod runs");
    let info = ctr_in(CRI_NAMESPACE, &["containers", "info", &pod_id]);
    assert!(
        stdout(&info).contains("\"edgeshim.io/host-network\": \"true\""),
        "the pod's annotation reached the shim's spec: {}",
        stdout(&info)
    );
    remove_pod(&mut cri, &pod_id, &[]);

    // The suite's policy again, before the next test takes the gate.
    drop(restore);
    await_condition("the suite's policy to serve again", LIMIT, || {
        stderr(&run_rm("policy-deny-after-library", PROBE_IMAGE, &[], &[]))
            .contains("is denied by its id")
    });
    assert_no_leftovers("policy-deny-after-library");
}
