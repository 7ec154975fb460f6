//! Links `containerd-shim-wasmtime-v1` as a position-dependent executable,
//! as Debian links runc, containerd and containerd-shim-runc-v2.
//!
//! Why (docs/design.md, "Where a pod's memory goes"): the shim, its
//! launcher and every Wasm container are this one binary. As a PIE, each of
//! those processes relocated the binary's 2 MB of `.data.rel.ro` (Wasmtime's
//! and Cranelift's tables, vtables, static strings) into pages of its own:
//! 2 MB of private memory per shim and again per container. Linked at a
//! fixed address, those pages need no relocation and stay shared from the
//! file. The code is still compiled position-independent; only the link
//! changes. What it costs: the binary's own code is not at a random address
//! (libraries, stacks, heap and Wasmtime's code still are).

fn main() {
    println!("cargo:rustc-link-arg-bins=-no-pie");
}
