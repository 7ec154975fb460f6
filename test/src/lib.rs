//! Harness for the integration suite: a handle on the private containerd
//! started by `hack/containerd.sh`, `ctr` invocations, the test images (built
//! once per run from the modules in `modules/`), and leak checks.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use edgeshim_tools::oci_image::{ImageFile, ImageSpec, write_archive};

pub mod pods;

/// The network guests, built by the tests from WAT (edgeshim-workloads).
pub use edgeshim_workloads::{components, wasmedge_sockets};

/// Namespace all tests use in containerd.
pub const NAMESPACE: &str = "edgeshim-test";
pub const PROBE_IMAGE: &str = "edgeshim.test/probe:1";
pub const SPIN_IMAGE: &str = "edgeshim.test/spin:1";
pub const PAUSE_IMAGE: &str = "edgeshim.test/pause:1";
/// containerd's CRI namespace.
pub const CRI_NAMESPACE: &str = "k8s.io";
/// The pods' sandbox image, as hack/containerd.sh configures it.
pub const SANDBOX_IMAGE: &str = "edgeshim.local/pause:1";
pub const BAD_IMAGE: &str = "edgeshim.test/bad:1";
/// The probe, a file at /etc/secret, and links that try to leave `/`.
pub const TRAVERSAL_IMAGE: &str = "edgeshim.test/traversal:1";

pub use edgeshim_workloads::built;

/// The engine a run of the suite drives: one suite, run once per engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TestEngine {
    /// `wasmtime` or `wasmedge`: also the CRI runtime handler.
    pub name: &'static str,
    /// containerd runtime type, for `ctr run --runtime`.
    pub runtime: &'static str,
    /// The shim binary's file name.
    pub shim_binary: &'static str,
}

pub const WASMTIME: TestEngine = TestEngine {
    name: "wasmtime",
    runtime: "io.containerd.wasmtime.v1",
    shim_binary: "containerd-shim-wasmtime-v1",
};

pub const WASMEDGE: TestEngine = TestEngine {
    name: "wasmedge",
    runtime: "io.containerd.wasmedge.v1",
    shim_binary: "containerd-shim-wasmedge-v1",
};

impl TestEngine {
    /// What the container's stderr says when the memory limit of `limit`
    /// bytes refuses a `memory.grow`: on Wasmtime at the refusal (its
    /// resource limiter), on WasmEdge after the run (0.14.1 has no hook).
    pub fn memory_refusal(&self, limit: u64) -> String {
        if *self == WASMEDGE {
            format!("is refused: the container's memory limit of {limit} bytes")
        } else {
            format!("memory limit is {limit} bytes")
        }
    }
}

/// The engine under test: `EDGESHIM_TEST_ENGINE` (`wasmtime`, the default,
/// or `wasmedge`; `hack/test.sh` runs the suite for each one it has).
pub fn engine() -> TestEngine {
    match std::env::var("EDGESHIM_TEST_ENGINE").as_deref() {
        Ok("wasmedge") => WASMEDGE,
        Ok("wasmtime") | Err(_) => WASMTIME,
        Ok(other) => panic!("EDGESHIM_TEST_ENGINE={other}: expected wasmtime or wasmedge"),
    }
}

/// containerd's socket, from `EDGESHIM_CONTAINERD_ADDRESS`. Integration tests
/// fail (never skip) without it: `hack/test.sh` sets it.
pub fn address() -> String {
    std::env::var("EDGESHIM_CONTAINERD_ADDRESS").expect(
        "EDGESHIM_CONTAINERD_ADDRESS is not set: run the suite with hack/test.sh, \
         which starts the private containerd",
    )
}

/// `ctr` against the private containerd, in the test namespace.
pub fn ctr(args: &[&str]) -> Output {
    ctr_in(NAMESPACE, args)
}

/// `ctr` in containerd namespace `namespace`.
pub fn ctr_in(namespace: &str, args: &[&str]) -> Output {
    let output = Command::new("ctr")
        .args(["--address", &address(), "--namespace", namespace])
        .args(args)
        .output()
        .expect("run ctr");
    eprintln!(
        "ctr {}: {}\nstdout: {}\nstderr: {}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Builds and imports the test images, once per test binary.
pub fn images() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let probe = built("probe.wasm");
        let truncated = dir.path().join("truncated.wasm");
        let bytes = std::fs::read(&probe).expect("probe.wasm");
        std::fs::write(&truncated, &bytes[..bytes.len() / 2]).expect("write");
        let garbage = dir.path().join("garbage.wasm");
        std::fs::write(&garbage, b"\0asm\x01\0\0\0\x01\x7f\x00garbage").expect("write");
        let text = dir.path().join("notes.txt");
        std::fs::write(&text, b"just some text\n").expect("write");

        let secret = dir.path().join("secret");
        std::fs::write(&secret, b"in the rootfs\n").expect("write");
        let images = [
            (
                PROBE_IMAGE,
                "/probe.wasm",
                vec![(probe.clone(), "/probe.wasm")],
            ),
            (
                TRAVERSAL_IMAGE,
                "/probe.wasm",
                vec![(probe, "/probe.wasm"), (secret, "/etc/secret")],
            ),
            (
                SPIN_IMAGE,
                "/spin.wasm",
                vec![(built("spin.wasm"), "/spin.wasm")],
            ),
            (
                PAUSE_IMAGE,
                "/pause",
                vec![(built("pause"), "/pause"), (built("hog"), "/hog")],
            ),
            (
                BAD_IMAGE,
                "/truncated.wasm",
                vec![
                    (truncated, "/truncated.wasm"),
                    (garbage, "/garbage.wasm"),
                    (text, "/notes.txt"),
                ],
            ),
        ];
        let sandbox = (SANDBOX_IMAGE, "/pause", vec![(built("pause"), "/pause")]);
        for (name, entrypoint, files) in images.into_iter().chain([sandbox]) {
            let mut spec = ImageSpec::new(name);
            spec.entrypoint = vec![entrypoint.to_string()];
            spec.dirs = vec!["/data".into(), "/tmp".into()];
            if name == TRAVERSAL_IMAGE {
                spec.symlinks = vec![
                    ("/inside".into(), "etc".into()),
                    ("/up".into(), "../../../../etc".into()),
                    ("/absolute".into(), "/etc".into()),
                ];
            }
            spec.files = files
                .into_iter()
                .map(|(source, target)| ImageFile {
                    source,
                    target: target.to_string(),
                    mode: 0o755,
                })
                .collect();
            let archive = dir.path().join("image.tar");
            write_archive(&spec, &archive).expect("archive");
            let archive = archive.to_string_lossy().into_owned();
            for namespace in [NAMESPACE, CRI_NAMESPACE] {
                let output = ctr_in(namespace, &["image", "import", &archive]);
                assert!(
                    output.status.success(),
                    "import {name}: {}",
                    stderr(&output)
                );
            }
        }
    });
}

/// Imports an image named `name` holding the one file `module` at
/// `/<file name>` (its entrypoint) into the CRI namespace.
pub fn import_module_image(name: &str, module: &Path) {
    import_module_image_in(CRI_NAMESPACE, name, module);
}

/// [`import_module_image`] into containerd namespace `namespace`.
pub fn import_module_image_in(namespace: &str, name: &str, module: &Path) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file_name = module.file_name().expect("file name").to_string_lossy();
    let target = format!("/{file_name}");
    let mut spec = ImageSpec::new(name);
    spec.entrypoint = vec![target.clone()];
    spec.files = vec![ImageFile {
        source: module.to_path_buf(),
        target,
        mode: 0o755,
    }];
    let archive = dir.path().join("image.tar");
    write_archive(&spec, &archive).expect("archive");
    let output = ctr_in(namespace, &["image", "import", &archive.to_string_lossy()]);
    assert!(
        output.status.success(),
        "import {name}: {}",
        stderr(&output)
    );
}

/// `ctr run --rm` of `image` with the runtime of the engine under test; `args` replaces the
/// image's entrypoint when non-empty.
pub fn run_rm(id: &str, image: &str, flags: &[&str], args: &[&str]) -> Output {
    ctr_run("--rm", id, image, flags, args)
}

/// `ctr run -d`: the task keeps running; remove it with [`remove`].
pub fn run_detached(id: &str, image: &str, flags: &[&str], args: &[&str]) -> Output {
    ctr_run("-d", id, image, flags, args)
}

fn ctr_run(mode: &str, id: &str, image: &str, flags: &[&str], args: &[&str]) -> Output {
    images();
    let mut all = vec!["run", mode, "--runtime", engine().runtime];
    all.extend_from_slice(flags);
    all.extend_from_slice(&[image, id]);
    all.extend_from_slice(args);
    ctr(&all)
}

/// The task's status column in `ctr task ls` (`RUNNING`, `STOPPED`, ...).
pub fn task_status(id: &str) -> Option<String> {
    let output = ctr(&["task", "ls"]);
    stdout(&output)
        .lines()
        .find(|l| l.split_whitespace().next() == Some(id))
        .and_then(|l| l.split_whitespace().nth(2).map(str::to_string))
}

/// The task's pid in `ctr task ls`.
pub fn task_pid(id: &str) -> u32 {
    task_pid_in(NAMESPACE, id)
}

/// The pid of task `id` in containerd namespace `namespace`.
pub fn task_pid_in(namespace: &str, id: &str) -> u32 {
    stdout(&ctr_in(namespace, &["task", "ls"]))
        .lines()
        .find(|l| l.split_whitespace().next() == Some(id))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or_else(|| panic!("no pid for task {id}"))
}

/// Polls `condition` until it holds; panics with `what` after `limit` (a
/// guard against hangs, not a performance assertion).
pub fn await_condition(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Kills (if needed) and removes a task and its container.
pub fn remove(id: &str) {
    if task_status(id).is_some_and(|s| s != "STOPPED") {
        ctr(&["task", "kill", "-s", "SIGKILL", id]);
        await_condition("task to stop", Duration::from_secs(30), || {
            task_status(id).is_none_or(|s| s == "STOPPED")
        });
    }
    ctr(&["task", "rm", id]);
    ctr(&["container", "rm", id]);
}

/// Kills a detached container (a pod's pause) with SIGKILL, waits for it to
/// stop, and removes it.
pub fn kill_and_remove(id: &str) {
    ctr(&["task", "kill", "-s", "SIGKILL", id]);
    await_condition(&format!("{id} to stop"), Duration::from_secs(30), || {
        task_status(id).as_deref() == Some("STOPPED")
    });
    remove(id);
}

/// Asserts nothing of container `id` is left: no shim serving it, no state
/// folder, no cgroup, no mount. Waits for the shim to finish exiting.
pub fn assert_no_leftovers(id: &str) {
    assert_no_leftovers_in(NAMESPACE, id);
}

/// [`assert_no_leftovers`] for a container of containerd namespace `namespace`.
pub fn assert_no_leftovers_in(namespace: &str, id: &str) {
    await_condition(
        &format!("shim of {id} to exit"),
        Duration::from_secs(30),
        || !shim_running_for(id),
    );
    let socket = containerd_shim::socket_address(&address(), namespace, id);
    let socket = socket.trim_start_matches("unix://");
    assert!(!Path::new(socket).exists(), "shim socket left at {socket}");
    // containerd cleans up after a dead shim (its `delete`) on a goroutine
    // of its own: what is left is awaited, and named if it stays.
    let state = Path::new("/run/edgeshim").join(namespace).join(id);
    let needle = format!("/{id}/");
    let left = || {
        let mut left = Vec::new();
        if state.exists() {
            left.push(format!("state at {}", state.display()));
        }
        for controller in cgroup_roots() {
            let dir = controller.join(namespace).join(id);
            if dir.exists() {
                left.push(format!("cgroup at {}", dir.display()));
            }
        }
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        if mounts.lines().any(|l| l.contains(&needle)) {
            left.push(format!("a mount of {id}"));
        }
        left
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !left().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(left().is_empty(), "left of {id}: {:?}", left());
}

/// Whether a shim process was started for container `id` (its `-id` flag).
pub fn shim_running_for(id: &str) -> bool {
    shim_pid_for(id).is_some()
}

/// The pid of the shim process started for container `id`.
pub fn shim_pid_for(id: &str) -> Option<u32> {
    let entries = std::fs::read_dir("/proc").ok()?;
    entries.flatten().find_map(|e| {
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let words: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let ours = words
            .first()
            .is_some_and(|w| w.ends_with(engine().shim_binary.as_bytes()))
            && words
                .windows(2)
                .any(|w| w[0] == b"-id" && w[1] == id.as_bytes());
        ours.then(|| e.file_name().to_str()?.parse().ok()).flatten()
    })
}

/// Every shim launcher process (`--edgeshim-launcher`), with its parent pid.
pub fn launcher_pids() -> Vec<(u32, u32)> {
    marked_pids("--edgeshim-launcher")
}

/// Every process with `word` in its command line, with its parent pid.
fn marked_pids(word: &str) -> Vec<(u32, u32)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let marked = cmdline.split(|b| *b == 0).any(|w| w == word.as_bytes());
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let parent = stat.rsplit_once(") ")?.1.split(' ').nth(1)?.parse().ok()?;
            marked.then_some((pid, parent))
        })
        .collect()
}

/// Whether process `pid` exists and has not exited (a zombie has).
pub fn process_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat.rsplit_once(") ")?.1.chars().next()?;
            Some(state != 'Z' && state != 'X')
        })
        .unwrap_or(false)
}

/// The zygote (`--edgeshim-zygote`) of the shim started for container `id`.
pub fn zygote_pid_for(id: &str) -> Option<u32> {
    let shim = shim_pid_for(id)?;
    marked_pids("--edgeshim-zygote")
        .into_iter()
        .find_map(|(pid, parent)| (parent == shim).then_some(pid))
}

/// What each open descriptor of `pid` points at, by number.
pub fn descriptors(pid: u32) -> std::collections::BTreeMap<u32, String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| {
                    let fd = e.file_name().to_str()?.parse().ok()?;
                    let target = std::fs::read_link(e.path()).ok()?;
                    Some((fd, target.to_string_lossy().into_owned()))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The launcher of the shim started for container `id`.
pub fn launcher_pid_for(id: &str) -> Option<u32> {
    let shim = shim_pid_for(id)?;
    launcher_pids()
        .into_iter()
        .find_map(|(pid, parent)| (parent == shim).then_some(pid))
}

/// Every cgroup hierarchy root: each v1 controller and the unified one.
pub fn cgroup_roots() -> Vec<PathBuf> {
    let mut roots = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() && !path.is_symlink() {
                roots.push(path);
            }
        }
    }
    roots.push(PathBuf::from("/sys/fs/cgroup"));
    roots
}

/// `ctr events`, read line by line in the background.
pub struct EventWatcher {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl EventWatcher {
    /// Starts `ctr events` and returns once it is subscribed: it subscribes
    /// asynchronously, so this waits until it reports a container of its own.
    pub fn start() -> Self {
        use std::io::BufRead;
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        images();
        let mut child = Command::new("ctr")
            .args(["--address", &address(), "events"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("ctr events");
        let pipe = child.stdout.take().expect("pipe");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut watcher = Self {
            child,
            lines,
            seen: Vec::new(),
        };
        let marker = format!("events-probe-{}", NEXT.fetch_add(1, Ordering::Relaxed));
        await_condition("ctr events to subscribe", Duration::from_secs(60), || {
            ctr(&["container", "create", PROBE_IMAGE, &marker]);
            ctr(&["container", "rm", &marker]);
            watcher.seen.extend(watcher.lines.try_iter());
            watcher.seen.iter().any(|l| l.contains(&marker))
        });
        watcher
    }

    /// Waits until a line satisfies `done`, then stops and returns all lines.
    /// On a timeout it says what it saw and whether `ctr events` still runs.
    pub fn until(mut self, done: impl Fn(&str) -> bool) -> Vec<String> {
        let start = Instant::now();
        loop {
            self.seen.extend(self.lines.try_iter());
            if self.seen.iter().any(|l| done(l)) {
                break;
            }
            if start.elapsed() > Duration::from_secs(60) {
                let running = self.child.try_wait().ok().flatten().is_none();
                let _ = self.child.kill();
                let _ = self.child.wait();
                let last: Vec<&String> = self.seen.iter().rev().take(30).collect();
                panic!(
                    "timed out waiting for an event; ctr events {}; last lines seen: {last:#?}",
                    if running {
                        "still running"
                    } else {
                        "had exited"
                    }
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::mem::take(&mut self.seen)
    }
}

/// `ctr run --rm --config`: a spec of our own (from `ctr oci spec`, changed
/// by `edit`) over a rootfs folder holding `files`; for what ctr has no flag
/// for (pids limits, say).
pub fn run_rm_with_spec(
    id: &str,
    files: &[(PathBuf, &str)],
    args: &[&str],
    edit: impl FnOnce(&mut serde_json::Value),
) -> Output {
    images();
    let dir = tempfile::tempdir().expect("tempdir");
    let rootfs = dir.path().join("rootfs");
    for (source, target) in files {
        let dest = rootfs.join(target.trim_start_matches('/'));
        std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
        std::fs::copy(source, &dest).expect("copy");
    }
    let spec = ctr(&["oci", "spec"]);
    let mut spec: serde_json::Value = serde_json::from_slice(&spec.stdout).expect("spec json");
    spec["root"] = serde_json::json!({ "path": rootfs, "readonly": false });
    spec["process"]["args"] = serde_json::json!(args);
    spec["process"]["env"] = serde_json::json!(["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]);
    spec["linux"]["cgroupsPath"] = serde_json::json!(format!("/{NAMESPACE}/{id}"));
    edit(&mut spec);
    let spec_file = dir.path().join("config.json");
    std::fs::write(&spec_file, serde_json::to_vec(&spec).expect("json")).expect("write");
    let spec_file = spec_file.to_string_lossy().into_owned();
    ctr(&[
        "run",
        "--rm",
        "--runtime",
        engine().runtime,
        "--config",
        &spec_file,
        id,
    ])
}

/// Runs the sensor module (`sensor.wasm simulate <seconds>`) as container
/// `id` with `ctr run --rm`: one JSON window aggregate per 5 s on stdout.
pub fn run_sensor(id: &str, seconds: u32) -> Output {
    import_module_image_in(
        NAMESPACE,
        "edgeshim.test/sensor:1",
        &edgeshim_workloads::built("sensor.wasm"),
    );
    let seconds = seconds.to_string();
    run_rm(
        id,
        "edgeshim.test/sensor:1",
        &[],
        &["/sensor.wasm", "simulate", &seconds],
    )
}

/// The shims' module cache (`hack/containerd.sh env`'s EDGESHIM_CACHE_DIR).
pub fn cache_dir() -> PathBuf {
    env_path("EDGESHIM_CACHE_DIR")
}

/// An environment variable `hack/containerd.sh env` exports.
fn env_path(name: &str) -> PathBuf {
    std::env::var_os(name)
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("{name} is not set: run the suite with hack/test.sh"))
}

/// The Rego folder the shims' policy gate serves (test/policy, copied).
pub fn policy_dir() -> PathBuf {
    env_path("EDGESHIM_POLICY_DIR")
}

/// The shims' decision log.
pub fn decision_log() -> String {
    std::fs::read_to_string(env_path("EDGESHIM_DECISION_LOG")).unwrap_or_default()
}

/// containerd's log, where the shims' own log lines land.
pub fn containerd_log() -> String {
    std::fs::read_to_string(env_path("EDGESHIM_CONTAINERD_LOG")).unwrap_or_default()
}

/// Writes (atomically, as an operator should) `rel` under the policy
/// folder; `None` removes it.
pub fn write_policy_file(rel: &str, text: Option<&str>) {
    let path = policy_dir().join(rel);
    match text {
        Some(text) => {
            let parent = path.parent().expect("parent");
            std::fs::create_dir_all(parent).expect("mkdir");
            let staged = parent.join(".staged");
            std::fs::write(&staged, text).expect("write");
            std::fs::rename(&staged, &path).expect("rename");
        }
        None => {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// A binary of the workspace, built beside the test binaries by
/// `cargo build --workspace`.
pub fn workspace_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary");
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join(name)
}

/// A module of its own (so with its own hash, never in any cache) that
/// prints `line` and exits 0: for tests of a module's first start.
pub fn module_printing(line: &str) -> Vec<u8> {
    let escaped: String = line.bytes().map(|b| format!("\\{b:02x}")).collect();
    wat::parse_str(format!(
        r#"(module
          (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
          (memory (export "memory") 1)
          (data (i32.const 16) "{escaped}")
          (func (export "_start")
            (i32.store (i32.const 0) (i32.const 16))
            (i32.store (i32.const 4) (i32.const {len}))
            (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#,
        len = line.len()
    ))
    .expect("the module's text")
}

/// How many connections process `pid` holds to containerd's ttrpc socket
/// (`<address>.ttrpc`, its event service), from `ss -xpn`: the sockets of
/// `pid` whose peer is a socket containerd accepted there.
pub fn connections_to_containerd_events(pid: u32) -> usize {
    let output = Command::new("ss")
        .arg("-xpn")
        .output()
        .expect("ss (iproute2)");
    let text = String::from_utf8_lossy(&output.stdout);
    let listening = format!("{}.ttrpc", address());
    // Netid State Recv-Q Send-Q Local-path Local-inode Peer-path Peer-inode users
    let rows: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f.len() >= 9)
        .collect();
    let accepted: Vec<&str> = rows
        .iter()
        .filter(|f| f[4] == listening)
        .map(|f| f[5])
        .collect();
    let owner = format!("pid={pid},");
    rows.iter()
        .filter(|f| f[8..].iter().any(|u| u.contains(&owner)) && accepted.contains(&f[7]))
        .count()
}
