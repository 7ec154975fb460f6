//! `containerd-shim-wasmtime-v1`: edgeshim with the Wasmtime engine,
//! runtime type `io.containerd.wasmtime.v1`; OPA Wasm policies run on
//! Wasmtime too.

fn main() {
    edgeshim_shim::run::<edgeshim_engine::WasmtimeEngine>(
        "io.containerd.wasmtime.v1",
        edgeshim_policy::WasmHost::WASMTIME,
    );
}
