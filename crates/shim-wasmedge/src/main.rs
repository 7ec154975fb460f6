//! `containerd-shim-wasmedge-v1`: edgeshim with the WasmEdge engine,
//! runtime type `io.containerd.wasmedge.v1`; OPA Wasm policies run on
//! WasmEdge too, so this binary carries no second engine.

fn main() {
    edgeshim_task::run::<edgeshim_engine::WasmEdgeEngine>(
        "io.containerd.wasmedge.v1",
        edgeshim_policy::WasmHost::WASMEDGE,
    );
}
