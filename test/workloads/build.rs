//! Builds the test workloads from source into OUT_DIR: C to Wasm with
//! Debian's clang + wasi-libc (SQLite's amalgamation from a crate's
//! sources), WAT with the `wat` crate, and a static native pause program
//! with the system C compiler. Nothing binary is committed.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    let modules = Path::new("modules");
    println!("cargo:rerun-if-changed=modules");

    for module in ["probe", "sensor", "compute"] {
        run(Command::new("clang")
            .args(["--target=wasm32-wasi", "-O2", "-Wl,--strip-all", "-o"])
            .arg(out.join(format!("{module}.wasm")))
            .arg(modules.join(format!("{module}.c"))));
    }
    // The C network guests, twice each (see modules/net.h): a WASI
    // preview 1 command on WasmEdge's sockets, and the core module of a
    // component (src/components.rs wraps it) that links no WASI preview 1.
    for guest in ["mqtt", "netprobe"] {
        run(Command::new("clang")
            .args([
                "--target=wasm32-wasi",
                "-O2",
                "-DNET_WASMEDGE",
                "-Wl,--strip-all",
                "-o",
            ])
            .arg(out.join(format!("{guest}.wasm")))
            .arg(modules.join(format!("{guest}.c"))));
        run(Command::new("clang")
            .args([
                "--target=wasm32-wasi",
                "-O2",
                "-DNET_WASI_SOCKETS",
                "-nostartfiles",
            ])
            .args(["-Wl,--no-entry", "-Wl,--export=run", "-Wl,--import-memory"])
            // Four pages for data and stack; the component's fifth is the
            // host's (components.rs, C_MEMORY).
            .args(["-Wl,--initial-memory=262144", "-Wl,-z,stack-size=65536"])
            .args(["-Wl,--strip-all", "-o"])
            .arg(out.join(format!("{guest}-core.wasm")))
            .arg(modules.join(format!("{guest}.c"))));
    }
    // A module the size of a real edge application: SQLite's amalgamation
    // (see modules/sqlite_logger.c).
    let sqlite = sqlite_amalgamation();
    run(Command::new("clang")
        .args(["--target=wasm32-wasi", "-O2", "-Wl,--strip-all"])
        .args([
            "-DSQLITE_THREADSAFE=0",
            "-DSQLITE_OMIT_LOAD_EXTENSION",
            "-I",
        ])
        .arg(&sqlite)
        .arg("-o")
        .arg(out.join("sqlite_logger.wasm"))
        .arg(modules.join("sqlite_logger.c"))
        .arg(sqlite.join("sqlite3.c")));
    for native in ["pause", "hog", "echo"] {
        run(Command::new("cc")
            .args(["-static", "-O2", "-s", "-o"])
            .arg(out.join(native))
            .arg(modules.join(format!("{native}.c"))));
    }
    // An NSS module an image might ship (see modules/nss_evil.c).
    run(Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(out.join("libnss_evil.so.2"))
        .arg(modules.join("nss_evil.c")));
    let source = modules.join("spin.wat");
    let bytes =
        wat::parse_file(&source).unwrap_or_else(|e| panic!("compile {}: {e}", source.display()));
    std::fs::write(out.join("spin.wasm"), bytes).expect("write module");
}

/// The libsqlite3-sys version in Cargo.toml, whose `sqlite3/` folder holds
/// the amalgamation.
const LIBSQLITE3_SYS: &str = "libsqlite3-sys-0.30.1";

/// The folder of SQLite's amalgamation, where cargo unpacked the
/// libsqlite3-sys build-dependency (`$CARGO_HOME/registry/src/<index>/`).
/// Found by path because a build-dependency's build script passes nothing
/// on to ours.
fn sqlite_amalgamation() -> PathBuf {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")))
        .expect("CARGO_HOME or HOME");
    let registry = cargo_home.join("registry").join("src");
    std::fs::read_dir(&registry)
        .into_iter()
        .flatten()
        .flatten()
        .map(|index| index.path().join(LIBSQLITE3_SYS).join("sqlite3"))
        .find(|dir| dir.join("sqlite3.c").is_file())
        .unwrap_or_else(|| {
            panic!(
                "no {LIBSQLITE3_SYS}/sqlite3/sqlite3.c under {}: cargo unpacks it there \
                 as this crate's build-dependency",
                registry.display()
            )
        })
}

fn run(command: &mut Command) {
    let status = command
        .status()
        .unwrap_or_else(|e| panic!("cannot run {command:?} (run hack/install-deps.sh first): {e}"));
    assert!(status.success(), "{command:?} failed: {status}");
}
