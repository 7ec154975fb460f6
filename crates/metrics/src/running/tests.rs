//! Against a fake `/proc` and state root: the process tree is made of
//! folders and links, as the kernel shows it.

use super::*;

struct Node {
    dir: tempfile::TempDir,
}

impl Node {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }
    fn proc_root(&self) -> PathBuf {
        self.dir.path().join("proc")
    }
    fn state_root(&self) -> PathBuf {
        self.dir.path().join("state")
    }
    fn process(&self, pid: u32, ppid: u32, exe: &str, args: &[&str]) {
        let dir = self.proc_root().join(pid.to_string());
        std::fs::create_dir_all(&dir).expect("proc dir");
        std::os::unix::fs::symlink(exe, dir.join("exe")).expect("exe link");
        // A command with a space and a parenthesis, as a hostile one may be.
        std::fs::write(
            dir.join("stat"),
            format!("{pid} (odd) name) S {ppid} 1 1 0"),
        )
        .expect("stat");
        let mut cmdline = Vec::new();
        for word in std::iter::once(exe).chain(args.iter().copied()) {
            cmdline.extend_from_slice(word.as_bytes());
            cmdline.push(0);
        }
        std::fs::write(dir.join("cmdline"), cmdline).expect("cmdline");
    }
    fn container(&self, namespace: &str, id: &str, state: &str) {
        let dir = self.state_root().join(namespace).join(id);
        std::fs::create_dir_all(&dir).expect("state dir");
        std::fs::write(dir.join("state.json"), state).expect("state");
    }
    fn running(&self) -> Vec<(String, i64)> {
        RunningContainers::with_proc(self.state_root(), self.proc_root()).count()
    }
}

const WASMTIME: &str = "/usr/local/bin/containerd-shim-wasmtime-v1";
const WASMEDGE: &str = "/opt/kwasm/bin/containerd-shim-wasmedge-v1";

#[test]
fn only_wasm_containers_of_live_shims_count() {
    let node = Node::new();
    // A wasmtime pod: shim 100, its launcher 101, two Wasm containers (one
    // still the launcher's child, one reparented to the shim), the pause.
    node.process(100, 1, WASMTIME, &["-namespace", "k8s.io", "-id", "pod"]);
    node.process(101, 100, WASMTIME, &["--edgeshim-launcher"]);
    node.process(110, 101, WASMTIME, &[]);
    node.process(111, 100, WASMTIME, &[]);
    node.process(112, 100, "/pause", &[]);
    for (id, pid) in [("a", 110), ("b", 111), ("pause", 112)] {
        node.container(
            "k8s.io",
            id,
            &format!(r#"{{"status":"running","pid":{pid}}}"#),
        );
    }
    // A wasmedge pod whose shim was SIGKILLed: its launcher and container
    // were reparented to init.
    node.process(201, 1, WASMEDGE, &["--edgeshim-launcher"]);
    node.process(210, 201, WASMEDGE, &[]);
    node.container("k8s.io", "orphan", r#"{"pid":210}"#);
    // A wasmedge container whose shim lives, in another namespace.
    node.process(300, 1, WASMEDGE, &[]);
    node.process(310, 300, WASMEDGE, &[]);
    node.container("default", "c", r#"{"pid":310}"#);
    // Left behind: the process is gone; and half-written state.
    node.container("k8s.io", "gone", r#"{"pid":999}"#);
    node.container("k8s.io", "torn", r#"{"pid":11"#);
    node.container("k8s.io", "init", r#"{"pid":1}"#);

    assert_eq!(
        node.running(),
        vec![("wasmedge".to_string(), 1), ("wasmtime".to_string(), 2)]
    );
}

#[test]
fn a_container_made_on_the_direct_launch_path_counts_by_its_record() {
    let node = Node::new();
    node.process(100, 1, WASMTIME, &["-namespace", "k8s.io", "-id", "pod"]);
    node.process(120, 100, WASMTIME, &[]);
    let dir = node.state_root().join("k8s.io").join("direct");
    std::fs::create_dir_all(&dir).expect("state dir");
    std::fs::write(
        dir.join("process.json"),
        r#"{"pid":120,"start_time":5,"cgroups_path":"/k8s.io/direct"}"#,
    )
    .expect("record");
    assert_eq!(node.running(), vec![("wasmtime".to_string(), 1)]);
}

#[test]
fn a_pid_reused_by_another_program_does_not_count() {
    let node = Node::new();
    node.process(100, 1, WASMTIME, &[]);
    node.process(110, 100, "/usr/bin/sleep", &[]);
    node.container("k8s.io", "a", r#"{"pid":110}"#);
    // A cycle in the parents (a fake /proc could say so) ends the walk.
    node.process(120, 121, WASMTIME, &["--edgeshim-launcher"]);
    node.process(121, 120, WASMTIME, &["--edgeshim-launcher"]);
    node.process(130, 120, WASMTIME, &[]);
    node.container("k8s.io", "b", r#"{"pid":130}"#);
    assert_eq!(node.running(), Vec::new());
}

#[test]
fn no_state_root_is_no_containers() {
    let node = Node::new();
    assert_eq!(node.running(), Vec::new());
}

#[test]
fn shim_names_give_the_runtime() {
    assert_eq!(
        shim_runtime(Path::new(WASMTIME)).as_deref(),
        Some("wasmtime")
    );
    assert_eq!(shim_runtime(Path::new("/x/containerd-shim-runc-v2")), None);
    assert_eq!(shim_runtime(Path::new("/x/containerd-shim--v1")), None);
    assert_eq!(shim_runtime(Path::new("/x/sleep")), None);
}
