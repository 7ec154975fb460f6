//! `containerd-shim-wasmedge-v1`: edgeshim with the WasmEdge engine,
//! runtime type `io.containerd.wasmedge.v1`; OPA Wasm policies run on
//! WasmEdge too, so this binary carries no second engine.
//!
//! The same binary is the engine's ahead-of-time compile helper (see
//! `edgeshim_engine::compile_helper_main`): the shim never runs LLVM itself.

fn main() {
    if let Some(status) = edgeshim_engine::compile_helper_main() {
        std::process::exit(status);
    }
    edgeshim_shim::run::<edgeshim_engine::WasmEdgeEngine>(
        "io.containerd.wasmedge.v1",
        edgeshim_policy::WasmHost::WASMEDGE,
    );
}
