//! runwasi's own test modules (crates.io: containerd-shim-wasm-test-modules
//! 0.4.1, unpacked by `hack/install-runwasi-modules.sh`) on edgeshim's
//! shims through a real containerd: what runs on runwasi runs here, with
//! the same output and exit status, and what an engine cannot run is
//! refused at create by name; and a module importing what no engine
//! provides is refused at create, by name. The crate's two Rust guests
//! (`has_default_devices`, `seccomp`) need a Rust wasm32 target to build
//! and are not here; the suite's own modules cover what they test (see
//! `test_module_reaches_no_kernel_interface_and_default_devices_work` in
//! ctr.rs).

use std::path::PathBuf;

use edgeshim_integration::*;

/// A fixture's bytes: WAT compiled here, Wasm as published.
fn fixture(name: &str) -> Vec<u8> {
    let dir = std::env::var_os("RUNWASI_MODULES_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/runwasi-test-modules"),
        PathBuf::from,
    );
    let path = dir.join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (hack/install-deps.sh unpacks runwasi's test modules)",
            path.display()
        )
    });
    if name.ends_with(".wat") {
        wat::parse_bytes(&bytes)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .into_owned()
    } else {
        bytes
    }
}

/// Runs fixture `name` as container `id` started at `arg0` (`/app.wasm`,
/// or `/app.wasm#export`).
fn run(id: &str, name: &str, arg0: &str) -> std::process::Output {
    let module = fixture(name);
    let out = run_rm_with_spec(id, &[], &[arg0], |spec| {
        let root = PathBuf::from(spec["root"]["path"].as_str().expect("root"));
        std::fs::create_dir_all(&root).expect("rootfs");
        std::fs::write(root.join("app.wasm"), &module).expect("module");
    });
    assert_no_leftovers(id);
    out
}

#[test]
fn test_runwasi_hello_world_prints_and_exits_zero() {
    let out = run("runwasi-hello", "hello_world.wat", "/app.wasm");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "hello world\n");
}

#[test]
fn test_runwasi_custom_entrypoint_runs_at_its_export_and_not_without_it() {
    let out = run("runwasi-entry", "custom_entrypoint.wat", "/app.wasm#foo");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "hello world\n");
    // Without `#foo` there is no `_start`: refused at create, by name.
    let out = run("runwasi-entry-none", "custom_entrypoint.wat", "/app.wasm");
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("container runwasi-entry-none"), "{err}");
    assert!(err.contains("no `_start` export"), "{err}");
}

#[test]
fn test_runwasi_exit_code_is_the_modules() {
    let out = run("runwasi-exit", "exit_code.wat", "/app.wasm");
    assert_eq!(out.status.code(), Some(42), "{}", stderr(&out));
}

#[test]
fn test_runwasi_unreachable_traps_with_the_abort_status() {
    let out = run("runwasi-unreachable", "unreachable.wat", "/app.wasm");
    assert_eq!(out.status.code(), Some(134), "{}", stderr(&out));
    assert!(stderr(&out).contains("wasm trap"), "{}", stderr(&out));
}

/// The components: a `wasi:cli/command` built by cargo-component, and a
/// component whose exports are started with `#export`. Run on the Wasmtime
/// shim; refused at create, by name, on the WasmEdge shim.
#[test]
fn test_runwasi_components_run_on_wasmtime_and_are_refused_by_name_on_wasmedge() {
    let cases: [(&str, &str, &str, Option<i32>, &str); 3] = [
        (
            "runwasi-component-hello",
            "component-hello-world.wasm",
            "/app.wasm",
            Some(0),
            "Hello, world!\n",
        ),
        (
            "runwasi-thunk",
            "simple_component.wat",
            "/app.wasm#thunk",
            Some(0),
            "",
        ),
        (
            "runwasi-thunk-trap",
            "simple_component.wat",
            "/app.wasm#thunk-trap",
            Some(134),
            "",
        ),
    ];
    for (id, name, arg0, status, output) in cases {
        let out = run(id, name, arg0);
        if engine() == WASMEDGE {
            assert!(!out.status.success(), "{id}");
            let err = stderr(&out);
            assert!(err.contains(&format!("container {id}")), "{err}");
            assert!(err.contains("WebAssembly component"), "{err}");
        } else {
            assert_eq!(out.status.code(), status, "{id}: {}", stderr(&out));
            assert_eq!(stdout(&out), output, "{id}");
        }
    }
    if engine() == WASMTIME {
        // Not a command, and no export named: refused at create, by name.
        let out = run("runwasi-thunk-none", "simple_component.wat", "/app.wasm");
        assert!(!out.status.success());
        let err = stderr(&out);
        assert!(err.contains("container runwasi-thunk-none"), "{err}");
        assert!(err.contains("not a wasi:cli/command"), "{err}");
    }
}

/// A module importing a function neither engine provides (here a socket
/// call under another module name, and a WASI function that does not
/// exist) is refused at create, naming the container and the import, and
/// leaves nothing behind.
#[test]
fn test_a_module_importing_what_no_engine_provides_is_refused_by_name() {
    for (id, import) in [
        (
            "import-unknown-module",
            r#""wasi_unstable_sockets" "sock_open""#,
        ),
        (
            "import-unknown-function",
            r#""wasi_snapshot_preview1" "sock_teleport""#,
        ),
    ] {
        let module = wat::parse_str(format!(
            r#"(module (import {import} (func (param i32) (result i32)))
                 (memory (export "memory") 1) (func (export "_start")))"#
        ))
        .expect("wat");
        let out = run_rm_with_spec(id, &[], &["/app.wasm"], |spec| {
            let root = PathBuf::from(spec["root"]["path"].as_str().expect("root"));
            std::fs::create_dir_all(&root).expect("rootfs");
            std::fs::write(root.join("app.wasm"), &module).expect("module");
        });
        assert!(!out.status.success(), "{id}");
        let err = stderr(&out);
        assert!(err.contains(&format!("container {id}")), "{err}");
        let name = import.split('"').nth(3).expect("the function's name");
        assert!(err.contains(name), "{id}: {err}");
        assert_no_leftovers(id);
    }
}
