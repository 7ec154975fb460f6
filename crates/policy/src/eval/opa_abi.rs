//! What every OPA Wasm host checks, whatever engine runs the module: the
//! ABI exports it must have, and the builtins it needs from the host.

/// What every OPA Wasm module exports (ABI 1.x); `opa_eval` (1.2) is
/// optional.
pub(crate) const REQUIRED_EXPORTS: &[&str] = &[
    "opa_wasm_abi_version",
    "opa_wasm_abi_minor_version",
    "eval",
    "builtins",
    "entrypoints",
    "opa_eval_ctx_new",
    "opa_eval_ctx_set_input",
    "opa_eval_ctx_set_data",
    "opa_eval_ctx_set_entrypoint",
    "opa_eval_ctx_get_result",
    "opa_malloc",
    "opa_free",
    "opa_json_parse",
    "opa_json_dump",
    "opa_heap_ptr_get",
    "opa_heap_ptr_set",
];

/// Refuses a module that lacks ABI exports, naming every one.
pub(crate) fn check_exports(has_export: impl Fn(&str) -> bool) -> Result<(), String> {
    let missing: Vec<&str> = REQUIRED_EXPORTS
        .iter()
        .copied()
        .filter(|name| !has_export(name))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "not an OPA Wasm policy: missing exports {}",
            missing.join(", ")
        ))
    }
}

/// Refuses a module whose `builtins` map (its export's JSON) names builtins
/// outside `host_builtins`, naming every one.
pub(crate) fn check_builtins(
    needed: &serde_json::Value,
    host_builtins: &[&str],
) -> Result<(), String> {
    let mut missing: Vec<&str> = needed
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    missing.retain(|name| !host_builtins.contains(name));
    missing.sort_unstable();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the policy needs builtins edgeshim does not implement: {}",
            missing.join(", ")
        ))
    }
}

/// The NUL-terminated string at `address` in `memory`.
pub(crate) fn read_c_string(memory: &[u8], address: i32) -> Result<Vec<u8>, String> {
    let start = usize::try_from(address).map_err(|e| e.to_string())?;
    let tail = memory
        .get(start..)
        .ok_or_else(|| "string address out of memory".to_string())?;
    let end = tail
        .iter()
        .position(|b| *b == 0)
        .ok_or_else(|| "unterminated string".to_string())?;
    Ok(tail[..end].to_vec())
}
