//! The configured gate end to end on real files: modes, fail modes, hot
//! reload, a broken policy keeping the last good one, the input cap, the
//! budget, and the decision log.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use edgeshim_policy::{ContainerKind, DecisionInput, Gate, PolicyGate};

const EXAMPLE: &str = include_str!("../../../docs/policy/input.example.json");

const WASM_ONLY: &str = r#"package edgeshim
decision := {"allow": count(deny) == 0, "reasons": deny}
deny contains "wasm-only: native containers are not allowed" if input.container.kind == "native"
"#;

const ALLOW_ALL: &str = r#"package edgeshim
decision := {"allow": true, "reasons": set()}
"#;

fn input(kind: ContainerKind) -> DecisionInput {
    let mut input: DecisionInput = serde_json::from_str(EXAMPLE).expect("example");
    input.container.kind = kind;
    input
}

struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new(config: &str, policy: Option<&str>) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let setup = Self { dir };
        std::fs::create_dir(setup.path("policy")).expect("mkdir");
        let config = format!(
            "policy = \"policy\"\ncache_dir = \"cache\"\n{config}\n[decision_log]\npath = \"decisions.log\"\n"
        );
        std::fs::write(setup.path("policy.toml"), config).expect("config");
        if let Some(policy) = policy {
            setup.write_policy(policy);
        }
        setup
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Replaces the policy as an operator should: write aside, then rename.
    fn write_policy(&self, text: &str) {
        let staged = self.path("staged.rego");
        std::fs::write(&staged, text).expect("write");
        std::fs::rename(&staged, self.path("policy/edgeshim.rego")).expect("rename");
    }

    /// A gate as a shim starting now makes it; the node's last good copy
    /// is kept in this setup's `node` folder.
    fn gate(&self) -> PolicyGate {
        PolicyGate::new(&self.path("policy.toml")).keeping_last_good_in(&self.path("node"))
    }

    fn log_lines(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.path("decisions.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect()
    }
}

/// Decides `input` until `done` holds; panics after 5 s (reload is due
/// within 1 s).
fn await_decision(
    gate: &PolicyGate,
    input: &DecisionInput,
    done: impl Fn(&edgeshim_policy::Decision) -> bool,
) {
    let start = Instant::now();
    loop {
        let decision = gate.decide(input);
        if done(&decision) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "still {decision:?}"
        );
        std::thread::yield_now();
    }
}

#[test]
fn test_a_node_that_never_had_a_config_is_off() {
    let node = tempfile::tempdir().expect("tempdir");
    let gate = PolicyGate::new(Path::new("/nonexistent/edgeshim/policy.toml"))
        .keeping_last_good_in(node.path());
    let decision = gate.decide(&input(ContainerKind::Native));
    assert!(decision.allow);
    assert_eq!(decision.revision, "off");
    assert_eq!(gate.max_module_bytes(), 64 << 20, "the default cap applies");
    assert_eq!(
        std::fs::read_dir(node.path()).expect("dir").count(),
        0,
        "nothing saved"
    );
}

#[test]
fn test_enforce_denies_with_reasons_and_logs_every_decision() {
    let setup = Setup::new("", Some(WASM_ONLY));
    let gate = setup.gate();
    let denied = gate.decide(&input(ContainerKind::Native));
    assert!(!denied.allow);
    assert_eq!(
        denied.reasons,
        ["wasm-only: native containers are not allowed"]
    );
    assert_eq!(denied.revision.len(), 12, "content-hash revision");
    assert!(gate.decide(&input(ContainerKind::Wasm)).allow);
    let lines = setup.log_lines();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["decision"], "deny");
    assert_eq!(lines[0]["container"], "5d1c0b9f3a");
    assert_eq!(lines[0]["pod"], "line-3/sensor-agg-7f9c");
    assert_eq!(lines[0]["revision"], denied.revision.as_str());
    assert_eq!(lines[1]["decision"], "allow");
    assert!(lines[1]["module_sha256"].is_string());
    assert!(lines[1]["eval_us"].is_u64());
}

#[test]
fn test_audit_mode_decides_and_logs_but_never_denies() {
    let setup = Setup::new("mode = \"audit\"", Some(WASM_ONLY));
    let decision = setup.gate().decide(&input(ContainerKind::Native));
    assert!(decision.allow);
    let lines = setup.log_lines();
    assert_eq!(lines[0]["mode"], "audit");
    assert_eq!(lines[0]["would_deny"], true);
}

#[test]
fn test_missing_policy_fails_closed_by_default_and_open_when_configured() {
    let setup = Setup::new("", None);
    let decision = setup.gate().decide(&input(ContainerKind::Wasm));
    assert!(!decision.allow);
    assert!(
        decision.reasons[0].contains("no policy loaded"),
        "{decision:?}"
    );
    assert_eq!(setup.log_lines()[0]["decision"], "deny");

    let setup = Setup::new("fail = \"open\"", None);
    let decision = setup.gate().decide(&input(ContainerKind::Wasm));
    assert!(decision.allow);
    assert!(decision.reasons[0].contains("fail open"), "{decision:?}");
}

#[test]
fn test_broken_config_fails_closed_with_the_cause() {
    let setup = Setup::new("mode = \"sometimes\"", Some(ALLOW_ALL));
    let decision = setup.gate().decide(&input(ContainerKind::Wasm));
    assert!(!decision.allow);
    assert!(decision.reasons[0].contains("sometimes"), "{decision:?}");
}

#[test]
fn test_rego_syntax_error_is_named_and_fails_closed() {
    let setup = Setup::new(
        "",
        Some("package edgeshim\ndecision := {\"allow\": true,,}\n"),
    );
    let decision = setup.gate().decide(&input(ContainerKind::Wasm));
    assert!(!decision.allow);
    assert!(
        decision.reasons[0].contains("edgeshim.rego"),
        "{decision:?}"
    );
}

#[test]
fn test_missing_entrypoint_is_named() {
    let setup = Setup::new("entrypoint = \"edgeshim/verdict\"", Some(WASM_ONLY));
    let decision = setup.gate().decide(&input(ContainerKind::Wasm));
    assert!(!decision.allow);
    assert!(
        decision.reasons[0].contains("edgeshim/verdict"),
        "{decision:?}"
    );
}

/// A policy whose load check (`problems`) finds a problem when its data says
/// `"bad": true`.
const CHECKED: &str = r#"package edgeshim
decision := {"allow": true, "reasons": set()}
problems contains "config: bad is set" if data.bad == true
"#;

#[test]
fn test_load_check_refuses_a_policy_with_problems_and_names_them() {
    let setup = Setup::new("check = \"edgeshim/problems\"", Some(CHECKED));
    std::fs::write(setup.path("policy/data.json"), r#"{"bad": true}"#).expect("data");
    let decision = setup.gate().decide(&input(ContainerKind::Wasm));
    assert!(!decision.allow, "{decision:?}");
    assert!(
        decision.reasons[0].contains("no policy loaded")
            && decision.reasons[0].contains("edgeshim/problems")
            && decision.reasons[0].contains("config: bad is set"),
        "{decision:?}"
    );
    let logged = setup.log_lines();
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert_eq!(logged[0]["decision"], "deny");
}

#[test]
fn test_load_check_failing_on_reload_keeps_the_last_good_policy() {
    let setup = Setup::new("check = \"edgeshim/problems\"", Some(CHECKED));
    std::fs::write(setup.path("policy/data.json"), r#"{"bad": false}"#).expect("data");
    let gate = setup.gate();
    let wasm = input(ContainerKind::Wasm);
    let good = gate.decide(&wasm);
    assert!(good.allow, "{good:?}");
    // A pass is kept by content, so that new shims do not run it again.
    let passes = || {
        std::fs::read_dir(setup.path("cache/policy-check-passed"))
            .map(|dir| dir.filter(|e| e.is_ok()).count())
            .unwrap_or(0)
    };
    assert_eq!(passes(), 1);

    // Data that fails the check: refused, the last good one keeps serving.
    let staged = setup.path("staged.json");
    std::fs::write(&staged, r#"{"bad": true}"#).expect("data");
    std::fs::rename(&staged, setup.path("policy/data.json")).expect("rename");
    let seen_after = Instant::now() + 2 * edgeshim_policy::RECHECK_EVERY;
    while Instant::now() < seen_after {
        let decision = gate.decide(&wasm);
        assert!(decision.allow, "{decision:?}");
        assert_eq!(decision.revision, good.revision);
    }

    assert_eq!(passes(), 1, "a refusal is not kept");

    // A policy that passes its check again is taken up.
    std::fs::write(setup.path("policy/data.json"), r#"{"bad": false}"#).expect("data");
    setup.write_policy(&format!(
        "{CHECKED}deny_native if input.container.kind == \"native\"\n"
    ));
    await_decision(&gate, &wasm, |d| d.revision != good.revision);
    assert!(gate.decide(&wasm).allow);
    assert_eq!(passes(), 2);
}

#[test]
fn test_the_example_library_passes_its_own_load_check_and_refuses_bad_settings() {
    let library = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies/library");
    let cache = tempfile::tempdir().expect("tempdir");
    let load = |dir: &Path| {
        edgeshim_policy::LoadedPolicy::load_checked(
            edgeshim_policy::WasmHost::for_this_build(),
            dir,
            "edgeshim/decision",
            Some("edgeshim/config_errors"),
            cache.path(),
        )
    };
    load(&library).expect("the shipped settings pass");

    let copy = tempfile::tempdir().expect("tempdir");
    for entry in std::fs::read_dir(&library).expect("library") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, copy.path().join(path.file_name().expect("name"))).expect("copy");
    }
    let mut data: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(library.join("data.json")).expect("data"))
            .expect("json");
    let config = &mut data["edgeshim_config"];
    config["allowed_mount_prefixes"] = serde_json::json!(["/srv/data", 7]);
    config
        .as_object_mut()
        .expect("object")
        .remove("max_memory_bytes");
    config["allowed_registries"] = serde_json::json!(["registry.factory.local"]);
    config["host_network_pods"] = serde_json::json!(["line-4/ok", "just-a-name", "a/b/c"]);
    config["data_local_brokers"] = serde_json::json!([
        "10.20.0.0/16:1883",
        "[fd00::/8]:8000-8099",
        "127.0.0.1:*",
        "10.20.0.0/33:1883",
        "10.20.0.1:70000",
        "10.20.0.1:99-9",
        "10.20.0.1",
        "[fd00::1]:0",
    ]);
    std::fs::write(copy.path().join("data.json"), data.to_string()).expect("write");
    let err = load(copy.path()).expect_err("bad settings are refused");
    for problem in [
        "config: data.edgeshim_config.max_memory_bytes must be set (type number)",
        "config: data.edgeshim_config.allowed_mount_prefixes must hold only strings",
        "config: allowed_mount_prefixes entry \"/srv/data\" must end in \"/\"",
        "config: allowed_registries entry \"registry.factory.local\" must end in \"/\"",
        "config: host_network_pods entry \"just-a-name\" must be \"namespace/name\"",
        "config: host_network_pods entry \"a/b/c\" must be \"namespace/name\"",
    ] {
        assert!(err.contains(problem), "{problem} not in: {err}");
    }
    // Each bad broker rule is named; the good ones are not.
    for bad in [
        "10.20.0.0/33:1883",
        "10.20.0.1:70000",
        "10.20.0.1:99-9",
        "10.20.0.1",
        "[fd00::1]:0",
    ] {
        let problem = format!(
            "config: data_local_brokers entry \"{bad}\" is not a network rule (<network>:<port>, as 10.20.0.0/16:1883)"
        );
        assert!(err.contains(&problem), "{problem} not in: {err}");
    }
    for good in ["10.20.0.0/16:1883", "[fd00::/8]:8000-8099", "127.0.0.1:*"] {
        assert!(
            !err.contains(&format!("entry \"{good}\"")),
            "{good} refused: {err}"
        );
    }
}

#[test]
fn test_hot_reload_flips_the_decision_and_a_broken_policy_keeps_the_last_good() {
    let setup = Setup::new("", Some(WASM_ONLY));
    let gate = setup.gate();
    let native = input(ContainerKind::Native);
    let first = gate.decide(&native);
    assert!(!first.allow);

    setup.write_policy(ALLOW_ALL);
    await_decision(&gate, &native, |d| d.allow);
    let second = gate.decide(&native);
    assert_ne!(second.revision, first.revision);

    setup.write_policy("package edgeshim\ndecision := {\n");
    // Give the gate time to see the broken file (it checks every 250 ms):
    // a condition on the file's stamp is not observable from outside.
    let seen_after = Instant::now() + 2 * edgeshim_policy::RECHECK_EVERY;
    while Instant::now() < seen_after {
        let decision = gate.decide(&native);
        assert!(decision.allow, "{decision:?}");
        assert_eq!(decision.revision, second.revision);
    }

    setup.write_policy(WASM_ONLY);
    await_decision(&gate, &native, |d| !d.allow);
}

#[test]
fn test_a_reloaded_log_cap_takes_effect_in_a_running_gate() {
    let setup = Setup::new("", Some(ALLOW_ALL));
    let gate = setup.gate();
    let wasm = input(ContainerKind::Wasm);
    assert!(gate.decide(&wasm).allow);
    std::fs::write(
        setup.path("staged.toml"),
        "policy = \"policy\"\ncache_dir = \"cache\"\n\
         [decision_log]\npath = \"decisions.log\"\nmax_bytes = 2000\nkeep = 1\n",
    )
    .expect("write");
    std::fs::rename(setup.path("staged.toml"), setup.path("policy.toml")).expect("rename");
    let start = Instant::now();
    while !setup.path("decisions.log.1").exists() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the log was not rotated at the new cap"
        );
        assert!(gate.decide(&wasm).allow);
    }
    for _ in 0..50 {
        assert!(gate.decide(&wasm).allow);
    }
    let size = |name: &str| std::fs::metadata(setup.path(name)).map_or(0, |m| m.len());
    assert!(size("decisions.log") <= 2000, "{}", size("decisions.log"));
    assert!(!setup.path("decisions.log.2").exists(), "keeps one");
}

#[test]
fn test_oversized_input_is_an_evaluation_error_under_the_fail_mode() {
    let setup = Setup::new("", Some(ALLOW_ALL));
    let mut big = input(ContainerKind::Wasm);
    big.container
        .annotations
        .insert("huge".into(), "x".repeat(1 << 20));
    let decision = setup.gate().decide(&big);
    assert!(!decision.allow);
    assert!(
        decision.reasons[0].contains("over max_input_bytes"),
        "{decision:?}"
    );
    let lines = setup.log_lines();
    assert!(
        lines[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("max_input_bytes"))
    );
}

#[test]
fn test_policy_past_its_budget_fails_closed() {
    let slow = r#"package edgeshim
decision := {"allow": n > 0, "reasons": set()} if {
    r := numbers.range(1, 3000)
    n := count([x | some x in r; some y in r; x + y == -1])
}
"#;
    let setup = Setup::new("budget_ms = 5", Some(slow));
    let decision = setup.gate().decide(&input(ContainerKind::Wasm));
    assert!(!decision.allow, "{decision:?}");
    assert!(
        decision.reasons[0].contains("exceeded time limit"),
        "{decision:?}"
    );
}

/// Asserts that `gate` keeps deciding `input` as `expected` (allow and
/// revision) for twice the reload interval: long enough for it to have seen
/// a change of the files (which is not observable from outside).
fn assert_stays(gate: &PolicyGate, input: &DecisionInput, expected: &edgeshim_policy::Decision) {
    let seen_after = Instant::now() + 2 * edgeshim_policy::RECHECK_EVERY;
    while Instant::now() < seen_after {
        let decision = gate.decide(input);
        assert_eq!(decision.allow, expected.allow, "{decision:?}");
        assert_eq!(decision.revision, expected.revision, "{decision:?}");
    }
}

#[test]
fn test_deleting_the_config_leaves_running_and_new_gates_enforcing_the_last_good() {
    let setup = Setup::new("max_module_bytes = 4096", Some(WASM_ONLY));
    let running = setup.gate();
    let native = input(ContainerKind::Native);
    let denied = running.decide(&native);
    assert!(!denied.allow, "{denied:?}");

    // The config and the whole policy folder go.
    std::fs::remove_file(setup.path("policy.toml")).expect("rm config");
    std::fs::remove_dir_all(setup.path("policy")).expect("rm policy");
    assert_stays(&running, &native, &denied);
    assert_eq!(running.max_module_bytes(), 4096);

    // A shim started after the loss: the node's copy serves.
    let started_later = setup.gate();
    let decision = started_later.decide(&native);
    assert!(!decision.allow, "{decision:?}");
    assert_eq!(
        decision.reasons,
        ["wasm-only: native containers are not allowed"]
    );
    assert_eq!(decision.revision, denied.revision);
    assert!(started_later.decide(&input(ContainerKind::Wasm)).allow);
    assert_eq!(started_later.max_module_bytes(), 4096);
    // Its decisions are logged where the last good config says.
    let logged = setup.log_lines();
    assert_eq!(logged.last().expect("logged")["decision"], "allow");

    // A config that comes back is taken up again.
    std::fs::create_dir(setup.path("policy")).expect("mkdir");
    setup.write_policy(ALLOW_ALL);
    std::fs::write(
        setup.path("policy.toml"),
        "policy = \"policy\"\ncache_dir = \"cache\"\n",
    )
    .expect("config");
    await_decision(&started_later, &native, |d| d.allow);
    assert_eq!(started_later.max_module_bytes(), 64 << 20);
}

#[test]
fn test_a_half_written_config_keeps_the_last_good_in_running_and_new_gates() {
    let setup = Setup::new("", Some(WASM_ONLY));
    let running = setup.gate();
    let native = input(ContainerKind::Native);
    let denied = running.decide(&native);
    assert!(!denied.allow, "{denied:?}");

    // Rewritten in place, cut short: does not parse.
    std::fs::write(setup.path("policy.toml"), "policy = \"pol").expect("write");
    assert_stays(&running, &native, &denied);
    let decision = setup.gate().decide(&native);
    assert!(!decision.allow, "{decision:?}");
    assert_eq!(decision.revision, denied.revision);

    // Truncated to nothing (parses, names no policy): the same.
    std::fs::write(setup.path("policy.toml"), "").expect("write");
    assert_stays(&running, &native, &denied);
    let decision = setup.gate().decide(&native);
    assert!(!decision.allow, "{decision:?}");
    assert_eq!(decision.revision, denied.revision);
}

#[test]
fn test_only_an_explicit_mode_off_turns_the_gate_off_and_deleting_it_then_stays_off() {
    let setup = Setup::new("", Some(WASM_ONLY));
    let running = setup.gate();
    let native = input(ContainerKind::Native);
    assert!(!running.decide(&native).allow);

    let staged = setup.path("staged.toml");
    std::fs::write(&staged, "mode = \"off\"\n").expect("write");
    std::fs::rename(&staged, setup.path("policy.toml")).expect("rename");
    await_decision(&running, &native, |d| d.allow && d.revision == "off");

    // Off was the last good config: a loss keeps it off, and a new shim too.
    std::fs::remove_file(setup.path("policy.toml")).expect("rm");
    let off = running.decide(&native);
    assert_stays(&running, &native, &off);
    let decision = setup.gate().decide(&native);
    assert!(decision.allow, "{decision:?}");
    assert_eq!(decision.revision, "off");
}

#[test]
fn test_a_corrupt_node_copy_without_a_config_fails_closed() {
    let setup = Setup::new("", Some(WASM_ONLY));
    assert!(!setup.gate().decide(&input(ContainerKind::Native)).allow);
    std::fs::remove_file(setup.path("policy.toml")).expect("rm");
    let copies: Vec<PathBuf> = std::fs::read_dir(setup.path("node"))
        .expect("node copy folder")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(copies.len(), 1, "{copies:?}");
    std::fs::write(&copies[0], "{\"format\": 1, \"config").expect("corrupt");
    let decision = setup.gate().decide(&input(ContainerKind::Wasm));
    assert!(!decision.allow, "{decision:?}");
    assert!(
        decision.reasons[0].contains("no policy loaded")
            && decision.reasons[0].contains("last good policy config"),
        "{decision:?}"
    );
}

#[test]
fn test_max_module_bytes_caps_the_entrypoint_before_it_is_read() {
    let setup = Setup::new("max_module_bytes = 1048576", Some(ALLOW_ALL));
    let gate = setup.gate();
    assert_eq!(gate.max_module_bytes(), 1 << 20);

    let bundle = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(bundle.path().join("rootfs")).expect("mkdir");
    std::fs::write(
        bundle.path().join("config.json"),
        r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},"process":{"cwd":"/","args":["/big.wasm"],"user":{"uid":0,"gid":0}}}"#,
    )
    .expect("spec");
    let module = bundle.path().join("rootfs/big.wasm");
    std::fs::write(&module, b"\0asm\x01\0\0\0").expect("module");
    // 3 GB, sparse.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&module)
        .expect("open");
    file.set_len(3 << 30).expect("set_len");
    drop(file);
    let loaded = edgeshim_bundle::Bundle::load(bundle.path()).expect("bundle");
    let err = loaded
        .workload(gate.max_module_bytes())
        .expect_err("refused by size");
    assert!(
        matches!(
            err,
            edgeshim_bundle::BundleError::ModuleTooLarge {
                size: 3221225472,
                max: 1048576,
                ..
            }
        ),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("\"/big.wasm\"") && text.contains("3221225472") && text.contains("1048576"),
        "{text}"
    );
}

/// The example library, with its load check, as policy.toml would name it.
fn library_gate(setup: &Setup) -> PolicyGate {
    library_gate_with(setup, "")
}

/// The example library's gate, with `settings` added to its policy.toml.
fn library_gate_with(setup: &Setup, settings: &str) -> PolicyGate {
    let library = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies/library");
    std::fs::write(
        setup.path("policy.toml"),
        format!(
            "policy = \"{}\"\ncheck = \"edgeshim/config_errors\"\ncache_dir = \"cache\"\n{settings}\n[decision_log]\npath = \"decisions.log\"\n",
            library.display()
        ),
    )
    .expect("config");
    setup.gate()
}

#[test]
fn test_the_example_library_refuses_an_update_above_its_memory_cap() {
    let setup = Setup::new("", None);
    let gate = library_gate(&setup);
    let created = input(ContainerKind::Wasm);
    let decision = gate.decide(&created);
    assert!(decision.allow, "{decision:?}");

    // 512 MiB: over the library's 256 MiB cap.
    let raise = gate.decide(
        &created
            .for_update(br#"{"memory": {"limit": 536870912}}"#)
            .expect("resources"),
    );
    assert!(!raise.allow, "{raise:?}");
    assert_eq!(
        raise.reasons,
        ["memory: limit of 536870912 bytes is over the maximum of 268435456 bytes"]
    );
    let logged = setup.log_lines();
    assert_eq!(logged.last().expect("logged")["action"], "update");

    // Within the cap, with only the CPU changed: allowed.
    let update = created
        .for_update(br#"{"memory": {"limit": 134217728}, "cpu": {"quota": 20000}}"#)
        .expect("resources");
    assert_eq!(update.container.resources.memory_limit, Some(134217728));
    assert_eq!(update.container.resources.cpu_quota, Some(20000));
    assert_eq!(update.container.resources.cpu_period, Some(100000), "kept");
    assert!(gate.decide(&update).allow);
}

#[test]
fn test_the_example_library_grants_host_network_from_operator_data_only() {
    let setup = Setup::new("", None);
    let gate = library_gate(&setup);
    let mut own_grant = input(ContainerKind::Wasm);
    own_grant.container.host_network = true;
    own_grant
        .container
        .annotations
        .insert("edgeshim.io/host-network".into(), "allowed".into());
    let decision = gate.decide(&own_grant);
    assert!(!decision.allow, "a pod grants itself nothing: {decision:?}");
    assert!(
        decision
            .reasons
            .iter()
            .any(|r| r.starts_with("host-network: ")),
        "{decision:?}"
    );

    // Granted by the operator (data.json): by namespace, or by pod.
    for (namespace, name) in [
        ("edge-system", "exporter-x1"),
        ("line-4", "modbus-bridge-0"),
    ] {
        let mut listed = own_grant.clone();
        let pod = listed.pod.as_mut().expect("pod");
        pod.namespace = namespace.into();
        pod.name = name.into();
        let decision = gate.decide(&listed);
        assert!(decision.allow, "{namespace}/{name}: {decision:?}");
    }
    // A data-local pod (data_local_pods) on the node's network.
    let mut local = own_grant.clone();
    let pod = local.pod.as_mut().expect("pod");
    pod.namespace = "line-4".into();
    pod.name = "historian-0".into();
    let decision = gate.decide(&local);
    assert!(
        decision
            .reasons
            .iter()
            .any(|r| r.starts_with("data-local: ")),
        "{decision:?}"
    );
}

#[test]
fn test_the_example_library_checks_an_unnamed_image_except_a_pods_own_sandbox() {
    let setup = Setup::new("", None);
    let gate = library_gate(&setup);
    let unknown = "registry: image unknown (containerd did not name the image), so its registry cannot be checked";
    // containerd 1.6 does not name the pause image; the operator chose it.
    let mut sandbox = input(ContainerKind::Sandbox);
    sandbox.container.image = String::new();
    let decision = gate.decide(&sandbox);
    assert!(
        !decision.reasons.iter().any(|r| r == unknown),
        "{decision:?}"
    );
    // A workload's image is the pod author's: unnamed, it is refused.
    for kind in [ContainerKind::Wasm, ContainerKind::Native] {
        let mut workload = input(kind);
        workload.container.image = String::new();
        let decision = gate.decide(&workload);
        assert!(!decision.allow, "{kind:?}: {decision:?}");
        assert!(
            decision.reasons.iter().any(|r| r == unknown),
            "{kind:?}: {decision:?}"
        );
    }
    // A named pause image is checked as any other.
    sandbox.container.image = "registry.k8s.io/pause:3.9".into();
    let decision = gate.decide(&sandbox);
    assert!(
        decision
            .reasons
            .iter()
            .any(|r| r.starts_with("registry: image \"registry.k8s.io/pause:3.9\"")),
        "{decision:?}"
    );
}

/// A decision with a network section for pods of namespace line-3 (the
/// example input's), and none for others.
const NETWORK_SECTION: &str = r#"package edgeshim
decision := {"allow": true, "reasons": set(), "network": {"connect": ["10.20.0.0/16:1883"], "listen": ["*:1883"]}} if input.pod.namespace == "line-3"
decision := {"allow": true, "reasons": set()} if input.pod.namespace != "line-3"
"#;

#[test]
fn test_the_network_grant_comes_from_the_section_else_the_configured_default() {
    use edgeshim_policy::NetworkGrant;
    use std::net::SocketAddr;
    let broker: SocketAddr = "10.20.1.1:1883".parse().expect("address");
    let outside: SocketAddr = "8.8.8.8:1883".parse().expect("address");
    let use_connect = edgeshim_network::Use::Connect;

    let setup = Setup::new("", Some(NETWORK_SECTION));
    let gate = setup.gate();
    let local = input(ContainerKind::Wasm);
    let decision = gate.decide(&local);
    assert!(decision.network.check(use_connect, broker).allowed);
    assert!(!decision.network.check(use_connect, outside).allowed);
    // No section: policy.toml's network_default, "deny" unless set.
    let mut elsewhere = local.clone();
    elsewhere.pod.as_mut().expect("pod").namespace = "line-9".into();
    let decision = gate.decide(&elsewhere);
    assert!(decision.allow);
    assert!(!decision.network.allows_any(), "{:?}", decision.network);

    let allowing = Setup::new("network_default = \"allow\"", Some(NETWORK_SECTION));
    assert_eq!(
        allowing.gate().decide(&elsewhere).network,
        NetworkGrant::All
    );
    assert!(
        !allowing
            .gate()
            .decide(&local)
            .network
            .check(use_connect, outside)
            .allowed,
        "a section wins over the default"
    );
    // Audit never restricts; with the gate off everything is allowed.
    let audit = Setup::new("mode = \"audit\"", Some(NETWORK_SECTION));
    assert_eq!(audit.gate().decide(&local).network, NetworkGrant::All);
    let node = tempfile::tempdir().expect("tempdir");
    let off = PolicyGate::new(Path::new("/nonexistent/edgeshim/policy.toml"))
        .keeping_last_good_in(node.path());
    assert_eq!(off.decide(&local).network, NetworkGrant::All);
}

#[test]
fn test_a_network_section_that_does_not_parse_gets_the_fail_mode() {
    let bad = r#"package edgeshim
decision := {"allow": true, "reasons": set(), "network": {"connect": ["10.20.0.0/16:99999"]}}
"#;
    let setup = Setup::new("", Some(bad));
    let decision = setup.gate().decide(&input(ContainerKind::Wasm));
    assert!(!decision.allow, "fail closed: {decision:?}");
    assert!(
        decision.reasons[0].contains("port 99999 is not in 1-65535"),
        "{decision:?}"
    );
    let open = Setup::new("fail = \"open\"", Some(bad));
    let decision = open.gate().decide(&input(ContainerKind::Wasm));
    assert!(decision.allow);
    assert!(!decision.network.allows_any(), "the default still holds");
}

/// A new policy whose network section does not parse, for an input the
/// gate decided lately, fails its load like a syntax error: the last good
/// keeps serving, grant and all; a good one is taken up after it.
#[test]
fn test_a_reloaded_policy_with_a_network_section_that_does_not_parse_keeps_the_last_good() {
    let good = r#"package edgeshim
decision := {"allow": true, "reasons": set(), "network": {"connect": ["10.20.0.0/16:1883"]}}
"#;
    let setup = Setup::new("", Some(good));
    let gate = setup.gate();
    let wasm = input(ContainerKind::Wasm);
    let first = gate.decide(&wasm);
    assert!(first.allow, "{first:?}");
    let granted: std::net::SocketAddr = "10.20.1.1:1883".parse().expect("address");
    let connect = edgeshim_network::Use::Connect;
    assert!(first.network.check(connect, granted).allowed);

    setup.write_policy(&good.replace("1883", "99999"));
    let seen_after = Instant::now() + 2 * edgeshim_policy::RECHECK_EVERY;
    while Instant::now() < seen_after {
        let decision = gate.decide(&wasm);
        assert!(decision.allow, "{decision:?}");
        assert_eq!(decision.revision, first.revision);
        assert!(decision.network.check(connect, granted).allowed);
    }

    setup.write_policy(&good.replace("1883", "8883"));
    await_decision(&gate, &wasm, |d| d.revision != first.revision);
    let taken = gate.decide(&wasm);
    assert!(!taken.network.check(connect, granted).allowed);
    assert!(
        taken
            .network
            .check(connect, "10.20.1.1:8883".parse().expect("address"))
            .allowed
    );
}

#[test]
fn test_the_example_library_lets_a_data_local_pod_connect_only_to_its_brokers() {
    use std::net::SocketAddr;
    let setup = Setup::new("", None);
    let gate = library_gate_with(&setup, "network_default = \"allow\"");
    let connect = edgeshim_network::Use::Connect;
    let at = |a: &str| a.parse::<SocketAddr>().expect("address");
    // The example input's pod is in namespace line-3: data-local (data.json).
    let local = input(ContainerKind::Wasm);
    let decision = gate.decide(&local);
    assert!(decision.allow, "{decision:?}");
    assert!(
        decision
            .network
            .check(connect, at("10.20.4.2:1883"))
            .allowed
    );
    assert!(
        decision
            .network
            .check(connect, at("127.0.0.1:1883"))
            .allowed
    );
    assert!(!decision.network.check(connect, at("52.1.2.3:443")).allowed);
    assert!(
        !decision
            .network
            .check(edgeshim_network::Use::Listen, at("0.0.0.0:1883"))
            .allowed
    );
    // Elsewhere the operator's default holds (here: allow).
    let mut elsewhere = local.clone();
    elsewhere.pod.as_mut().expect("pod").namespace = "line-9".into();
    assert_eq!(
        gate.decide(&elsewhere).network,
        edgeshim_policy::NetworkGrant::All
    );
    // A pod's own annotations change nothing.
    let mut claims = local.clone();
    claims
        .container
        .annotations
        .insert("edgeshim.io/data-local".into(), "false".into());
    assert!(
        !gate
            .decide(&claims)
            .network
            .check(connect, at("52.1.2.3:443"))
            .allowed
    );
}

/// A shim warms its gate up at start-up: the policy is loaded then (the
/// node's last good copy is saved by that load), nothing is decided or
/// logged by it, and the first real decision is logged with the gate's
/// whole time, which includes its evaluation.
#[test]
fn test_warm_up_loads_the_policy_without_deciding_or_logging() {
    let setup = Setup::new("", Some(WASM_ONLY));
    let gate = setup.gate();
    gate.warm_up();
    assert!(
        std::fs::read_dir(setup.path("node")).is_ok_and(|d| d.count() > 0),
        "the load saved the node's last good copy"
    );
    assert!(setup.log_lines().is_empty(), "warm-up logs no decision");
    assert!(!gate.decide(&input(ContainerKind::Native)).allow);
    let lines = setup.log_lines();
    assert_eq!(lines.len(), 1);
    let (eval, whole) = (&lines[0]["eval_us"], &lines[0]["gate_us"]);
    assert!(
        whole
            .as_u64()
            .is_some_and(|w| eval.as_u64().is_some_and(|e| w >= e)),
        "gate_us {whole} covers eval_us {eval}"
    );
}

/// A request arriving while the warm-up is loading waits for that load and
/// is decided by the policy (never by a half-loaded gate); a policy that
/// fails on the warm-up's sample input changes nothing.
#[test]
fn test_a_decision_racing_the_warm_up_is_decided_by_the_policy() {
    let failing_on_sample = r#"package edgeshim
decision := {"allow": input.pod.name != "", "reasons": set()}
"#;
    let setup = Setup::new("", Some(failing_on_sample));
    let gate = std::sync::Arc::new(setup.gate());
    let warming = {
        let gate = gate.clone();
        std::thread::spawn(move || gate.warm_up())
    };
    let decision = gate.decide(&input(ContainerKind::Wasm));
    warming.join().expect("warm-up thread");
    assert!(decision.allow, "{decision:?}");
    assert_eq!(decision.revision.len(), 12, "decided by the loaded policy");
    assert_eq!(setup.log_lines().len(), 1, "only the request is logged");
}
