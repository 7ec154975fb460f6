//! Gives `containerd-shim-wasmedge-v1` an rpath to libwasmedge, since
//! containerd starts shims without LD_LIBRARY_PATH: `WASMEDGE_RPATH` when
//! set (e.g. `$ORIGIN/../lib` for a binary shipped with its library), else
//! the folder it was linked against (`WASMEDGE_LIB_DIR`, else
//! `$WASMEDGE_DIR/lib64` or `/lib`, as wasmedge-sys searches). A library
//! in the loader's default paths (/usr/local/lib after `ldconfig`) needs
//! none.
//!
//! `WASMEDGE_COMPILER_LIB_DIR` (read by the engine crate at build time)
//! names the folder of an LLVM libwasmedge for the compile helpers when
//! the rpath's is runtime-only; `EDGESHIM_WASMEDGE_COMPILER_LIB` overrides
//! it at run time.
//!
//! Like the Wasmtime shim, it is linked as a position-dependent executable
//! (docs/design.md, "Where a pod's memory goes"): its own read-only data
//! then need no relocation, so the shim, its launcher and every container
//! share them from the file. libwasmedge, a shared library, still relocates
//! its own.

use std::path::Path;

fn main() {
    println!("cargo:rustc-link-arg-bins=-no-pie");
    for var in ["WASMEDGE_DIR", "WASMEDGE_LIB_DIR", "WASMEDGE_RPATH"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    if std::env::var_os("CARGO_FEATURE_WASMEDGE").is_none() {
        return;
    }
    let rpath = std::env::var("WASMEDGE_RPATH")
        .ok()
        .or_else(|| std::env::var("WASMEDGE_LIB_DIR").ok())
        .or_else(|| {
            let dir = std::env::var("WASMEDGE_DIR").ok()?;
            ["lib64", "lib"]
                .iter()
                .map(|lib| format!("{dir}/{lib}"))
                .find(|lib| Path::new(lib).join("libwasmedge.so").exists())
        });
    if let Some(rpath) = rpath {
        // As DT_RUNPATH (new dtags), which LD_LIBRARY_PATH precedes: the
        // compile helpers are this binary, run with the LLVM libwasmedge's
        // folder on LD_LIBRARY_PATH when the shim links a runtime-only one
        // (the engine's `compiler_library`). An old-style DT_RPATH would
        // win over it.
        println!("cargo:rustc-link-arg-bins=-Wl,--enable-new-dtags,-rpath,{rpath}");
    }
}
