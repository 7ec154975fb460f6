//! The node installer's image, run by the private containerd (runc, the
//! host's `/` stood in for by a scratch root holding a containerd config):
//! installed twice (the second run changes nothing), then a second private
//! containerd started on the patched config runs a Wasm pod through CRI
//! with the installed shim and the handler the installer added; then
//! `--uninstall` leaves the scratch root exactly as it was.
//!
//! The image archive is built by `hack/test.sh`
//! (`hack/installer-image.sh`), before the suite runs.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use edgeshim_cri::Cri;
use edgeshim_integration::pods::*;
use edgeshim_integration::*;
use edgeshim_tools::oci_image::{ImageFile, ImageSpec, write_archive};

const INSTALLER_IMAGE: &str = "edgeshim.local/installer:0.1.0";

fn archive() -> PathBuf {
    let path = workspace_binary("edgeshim-installer-debug.tar")
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join("edgeshim-installer-debug.tar");
    assert!(
        path.is_file(),
        "{} is missing: hack/test.sh builds it (PROFILE=debug hack/installer-image.sh)",
        path.display()
    );
    path
}

/// Runs the installer image with `root` as the host's `/`.
fn run_installer(id: &str, root: &Path, args: &[&str]) -> String {
    let mount = format!(
        "type=bind,src={},dst=/host,options=rbind:rw",
        root.display()
    );
    let mut all = vec![
        "run",
        "--rm",
        "--runtime",
        "io.containerd.runc.v2",
        "--mount",
        &mount,
        INSTALLER_IMAGE,
        id,
        "/edgeshim/edgeshim-install",
        "--root",
        "/host",
    ];
    all.extend_from_slice(args);
    let out = ctr(&all);
    assert!(
        out.status.success(),
        "installer {args:?}: {}{}",
        stdout(&out),
        stderr(&out)
    );
    assert_no_leftovers(id);
    stdout(&out)
}

/// A containerd config for a second private containerd, without edgeshim's
/// handlers: its root, state and socket under `home`, pods' sandbox image
/// the suite's, the OOM score adjustments of this machine's root.
fn containerd_config(home: &Path) -> String {
    let out = Command::new("containerd")
        .args(["config", "default"])
        .output()
        .expect("containerd config default");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .map(|line| {
            let trimmed = line.trim_start();
            let indent = &line[..line.len() - trimmed.len()];
            if trimmed.starts_with("root = ") && indent.is_empty() {
                format!("root = \"{}/root\"", home.display())
            } else if trimmed.starts_with("state = ") && indent.is_empty() {
                format!("state = \"{}/state\"", home.display())
            } else if trimmed.starts_with("address = \"/run/containerd/containerd.sock\"") {
                format!("{indent}address = \"{}/containerd.sock\"", home.display())
            } else if trimmed.starts_with("restrict_oom_score_adj = ") {
                // As hack/containerd.sh: root here lacks CAP_SYS_RESOURCE.
                format!("{indent}restrict_oom_score_adj = true")
            } else if trimmed.starts_with("sandbox_image = ") {
                format!("{indent}sandbox_image = \"{SANDBOX_IMAGE}\"")
            } else {
                line.to_string()
            }
        })
        .map(|line| format!("{line}\n"))
        .collect()
}

/// The second containerd, stopped (with its tasks) when dropped.
struct Containerd {
    child: Child,
    socket: PathBuf,
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_containerd(config: &Path, home: &Path, bin: &Path) -> Containerd {
    let socket = home.join("containerd.sock");
    let log = std::fs::File::create(home.join("containerd.log")).expect("log");
    let child = Command::new("containerd")
        .arg("--config")
        .arg(config)
        // Only the installed shims: not the suite's build folder.
        .env(
            "PATH",
            format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", bin.display()),
        )
        .env("EDGESHIM_CACHE_DIR", home.join("cache"))
        .env("EDGESHIM_POLICY_CONFIG", home.join("no-policy.toml"))
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("containerd");
    let containerd = Containerd { child, socket };
    await_condition("the second containerd", LIMIT, || {
        Command::new("ctr")
            .arg("--address")
            .arg(&containerd.socket)
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    containerd
}

/// The pause and probe images, into the second containerd's CRI namespace.
fn import_images(socket: &Path) {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, file, target) in [
        (SANDBOX_IMAGE, built("pause"), "/pause"),
        (PROBE_IMAGE, built("probe.wasm"), "/probe.wasm"),
    ] {
        let mut spec = ImageSpec::new(name);
        spec.entrypoint = vec![target.to_string()];
        spec.files = vec![ImageFile {
            source: file,
            target: target.to_string(),
            mode: 0o755,
        }];
        let archive = dir.path().join("image.tar");
        write_archive(&spec, &archive).expect("archive");
        let out = Command::new("ctr")
            .arg("--address")
            .arg(socket)
            .args(["-n", "k8s.io", "image", "import"])
            .arg(&archive)
            .output()
            .expect("ctr import");
        assert!(out.status.success(), "{}", stderr(&out));
    }
}

#[test]
fn test_the_installer_image_installs_once_serves_a_pod_and_uninstalls_to_nothing() {
    images();
    let out = ctr(&["image", "import", &archive().display().to_string()]);
    assert!(out.status.success(), "{}", stderr(&out));

    // The scratch root: a node's / with its containerd config.
    let root = tempfile::tempdir().expect("scratch root");
    let home = tempfile::tempdir().expect("second containerd's folder");
    let config = root.path().join("etc/containerd/config.toml");
    std::fs::create_dir_all(config.parent().expect("parent")).expect("mkdir");
    std::fs::create_dir_all(root.path().join("usr/local")).expect("mkdir");
    std::fs::write(&config, containerd_config(home.path())).expect("config");
    let before = edgeshim_installer::node::tree(root.path());

    let first = run_installer("installer-1", root.path(), &[]);
    assert!(first.contains("restart containerd"), "{first}");
    let installed = edgeshim_installer::node::tree(root.path());
    let second = run_installer("installer-2", root.path(), &[]);
    assert!(second.contains("already had the runtimes"), "{second}");
    assert_eq!(
        edgeshim_installer::node::tree(root.path()),
        installed,
        "the second run changed something"
    );

    // A containerd on the patched config runs a Wasm pod by the handler
    // the installer added, with the shim it installed.
    {
        let containerd = start_containerd(&config, home.path(), &root.path().join("usr/local/bin"));
        import_images(&containerd.socket);
        let mut cri = Cri::connect(&containerd.socket).expect("CRI of the second containerd");
        await_condition("its CRI to see the images", LIMIT, || {
            cri.image_status(PROBE_IMAGE).is_ok_and(|i| i.is_some())
        });
        let logs = tempfile::tempdir().expect("logs");
        let config = pod("installed", "uid-installed", true, logs.path());
        let pod_id = cri.run_pod(&config, engine().name).unwrap_or_else(|e| {
            let log = std::fs::read_to_string(home.path().join("containerd.log"));
            panic!("RunPodSandbox: {e:#}\n{}", log.unwrap_or_default())
        });
        let (id, status, log) = run_to_exit(
            &mut cri,
            &pod_id,
            &config,
            &container("hello", &["hello"]),
            logs.path(),
        );
        assert_eq!(status.exit_code, 0, "{log}");
        assert!(log.contains("hello from wasm"), "{log}");
        let shim = std::fs::read_link(format!(
            "/proc/{}/exe",
            shim_pid_for(&pod_id).expect("the pod's shim")
        ))
        .expect("shim exe");
        assert!(
            shim.starts_with(root.path()),
            "served by {}",
            shim.display()
        );
        cri.remove_container(&id).expect("RemoveContainer");
        cri.stop_pod(&pod_id).expect("StopPodSandbox");
        cri.remove_pod(&pod_id).expect("RemovePodSandbox");
        await_condition("the pod's shim to go", Duration::from_secs(30), || {
            shim_pid_for(&pod_id).is_none()
        });
    }

    let undone = run_installer("installer-3", root.path(), &["--uninstall"]);
    assert!(undone.contains("put back"), "{undone}");
    assert_eq!(
        edgeshim_installer::node::tree(root.path()),
        before,
        "uninstall left something"
    );
}
