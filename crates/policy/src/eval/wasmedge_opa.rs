//! OPA Wasm policies on WasmEdge (placeholder until the ABI host lands).

use super::Evaluate;

pub(crate) struct WasmEdgeEvaluator;

impl WasmEdgeEvaluator {
    pub(crate) fn compile(
        _wasm: &[u8],
        _data: &serde_json::Value,
        _entrypoint: &str,
        _cache_root: &std::path::Path,
    ) -> Result<Self, String> {
        Err("OPA Wasm on WasmEdge is not built yet".into())
    }
}

impl Evaluate for WasmEdgeEvaluator {
    fn evaluate(
        &mut self,
        _input: &serde_json::Value,
        _budget: std::time::Duration,
    ) -> Result<serde_json::Value, String> {
        Err("unreachable".into())
    }
}
