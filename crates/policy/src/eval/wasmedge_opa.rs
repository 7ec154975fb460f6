//! OPA-compiled Wasm policies (`opa build -t wasm`) on WasmEdge, the
//! WasmEdge shim's own engine: a host for OPA's Wasm ABI 1.x written here,
//! since the `opa-wasm` crate is tied to Wasmtime.
//!
//! What it supports: both evaluation paths (ABI 1.2's `opa_eval`, and the
//! 1.1 eval contexts), data, entrypoints by name, `opa_abort` and
//! `opa_println`, and a wall-clock budget per evaluation. What it does not:
//! builtins that OPA leaves to the host (`sprintf`, `time.*`, `crypto.*`,
//! ...). A policy that needs any is refused at load with every one named;
//! Rego policies (regorus, no engine) have all of them.
//!
//! Policies run in WasmEdge's interpreter: the shim never runs LLVM (see
//! `edgeshim_engine`'s AOT notes), and an OPA decision is a short run.

use std::sync::Arc;
use std::time::Duration;

use wasmedge_sdk::error::{CoreCommonError, CoreError, WasmEdgeError};
use wasmedge_sdk::{ExternalInstanceType, FuncType, ImportObjectBuilder, MemoryType, ValType};
use wasmedge_sys::{
    AsInstance, CallingFrame, Config, Executor, ImportModule, Instance, Loader, Memory, Store,
    Validator, WasmValue,
};

use super::{Evaluate, opa_abi};

/// What the host functions share with the evaluator: the message of the
/// last `opa_abort` (or unsupported builtin call).
#[derive(Default)]
struct HostState {
    failure: Option<String>,
}

/// One instantiation: the module instance and everything it lives in.
/// Fields drop in this order, the instance first and the imports last.
struct Live {
    instance: Instance,
    executor: Executor,
    _store: Store,
    imports: ImportModule<HostState>,
    /// The data document inside the instance.
    data_value: i32,
    /// The heap pointer after the data was loaded: every evaluation starts
    /// from it, which frees what the previous one allocated.
    heap_base: i32,
}

pub(crate) struct WasmEdgeEvaluator {
    config: Config,
    module: Arc<wasmedge_sys::Module>,
    memory_type: MemoryType,
    data: Vec<u8>,
    entrypoint_id: i32,
    /// ABI 1.2 or later: `opa_eval` does a whole evaluation in one call.
    fast_path: bool,
    live: Option<Live>,
}

fn wasmedge_error(what: &str, e: &WasmEdgeError) -> String {
    format!("{what}: {e}")
}

impl WasmEdgeEvaluator {
    pub(crate) fn compile(
        wasm: &[u8],
        data: &serde_json::Value,
        entrypoint: &str,
        _cache_root: &std::path::Path,
    ) -> Result<Self, String> {
        let config = Config::create().map_err(|e| wasmedge_error("WasmEdge config", &e))?;
        let module = Loader::create(Some(&config))
            .and_then(|loader| loader.from_bytes(wasm))
            .map_err(|e| wasmedge_error("not a valid Wasm module", &e))?;
        Validator::create(Some(&config))
            .and_then(|validator| validator.validate(&module))
            .map_err(|e| wasmedge_error("not a valid Wasm module", &e))?;
        let exports: Vec<String> = module.export().iter().map(|e| e.name().into()).collect();
        opa_abi::check_exports(|name| exports.iter().any(|e| e == name))?;
        let memory_type = module
            .imports()
            .iter()
            .find_map(|import| match import.ty() {
                Ok(ExternalInstanceType::Memory(ty))
                    if import.module_name() == "env" && import.name() == "memory" =>
                {
                    Some(ty)
                }
                _ => None,
            })
            .ok_or("not an OPA Wasm policy: it imports no env.memory")?;
        let mut evaluator = Self {
            config,
            module,
            memory_type,
            data: serde_json::to_vec(data).map_err(|e| e.to_string())?,
            entrypoint_id: 0,
            fast_path: false,
            live: None,
        };
        evaluator.instantiate()?;
        let (major, minor) = evaluator.abi_version()?;
        if major != 1 {
            return Err(format!(
                "unsupported ABI version {major}.{minor} (edgeshim speaks OPA Wasm ABI 1.x)"
            ));
        }
        evaluator.fast_path = minor >= 2;
        let builtins = evaluator.json_of_export("builtins")?;
        opa_abi::check_builtins(&builtins, &[])?;
        let entrypoints = evaluator.json_of_export("entrypoints")?;
        evaluator.entrypoint_id = match entrypoints.get(entrypoint).and_then(|id| id.as_i64()) {
            Some(id) => i32::try_from(id).map_err(|e| e.to_string())?,
            None => {
                let mut known: Vec<&str> = entrypoints
                    .as_object()
                    .map(|o| o.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                known.sort_unstable();
                return Err(format!(
                    "the policy has no entrypoint {entrypoint} (it has: {})",
                    known.join(", ")
                ));
            }
        };
        Ok(evaluator)
    }

    /// Makes a fresh instance with the data loaded (after a load, or after
    /// an evaluation was cut off mid-way).
    fn instantiate(&mut self) -> Result<&mut Live, String> {
        if self.live.is_none() {
            let live = self.new_instance()?;
            self.live = Some(live);
        }
        self.live
            .as_mut()
            .ok_or_else(|| "no policy instance".into())
    }

    fn new_instance(&self) -> Result<Live, String> {
        fn err(what: &'static str) -> impl Fn(Box<WasmEdgeError>) -> String {
            move |e| wasmedge_error(what, &e)
        }
        let memory = Memory::create(&self.memory_type).map_err(err("policy memory"))?;
        let mut builder =
            ImportObjectBuilder::new("env", HostState::default()).map_err(err("imports"))?;
        let i32s = |n: usize| FuncType::new(vec![ValType::I32; n], vec![ValType::I32]);
        builder
            .with_func_by_type(
                "opa_abort",
                FuncType::new(vec![ValType::I32], vec![]),
                opa_abort,
            )
            .and_then(|b| {
                b.with_func_by_type(
                    "opa_println",
                    FuncType::new(vec![ValType::I32], vec![]),
                    opa_println,
                )
            })
            .map_err(err("imports"))?;
        for (name, arity) in [
            ("opa_builtin0", 2),
            ("opa_builtin1", 3),
            ("opa_builtin2", 4),
            ("opa_builtin3", 5),
            ("opa_builtin4", 6),
        ] {
            builder
                .with_func_by_type(name, i32s(arity), unsupported_builtin)
                .map_err(err("imports"))?;
        }
        let imports = builder.with_memory("memory", memory).build();
        let mut store = Store::create().map_err(err("store"))?;
        let mut executor = Executor::create(Some(&self.config), None).map_err(err("executor"))?;
        executor
            .register_import_module(&mut store, &imports)
            .map_err(err("imports"))?;
        let instance = executor
            .register_active_module(&mut store, &self.module)
            .map_err(err("instantiating the policy"))?;
        let mut live = Live {
            instance,
            executor,
            _store: store,
            imports,
            data_value: 0,
            heap_base: 0,
        };
        let address = live.write_new(&self.data)?;
        let data_value = live.call("opa_json_parse", &[address, len_i32(&self.data)?])?;
        if data_value == 0 {
            return Err("the policy's data is not valid JSON for it".into());
        }
        live.data_value = data_value;
        live.heap_base = live.call("opa_heap_ptr_get", &[])?;
        Ok(live)
    }

    fn abi_version(&mut self) -> Result<(i32, i32), String> {
        let live = self.instantiate()?;
        let global = |name: &str| {
            live.instance
                .get_global(name)
                .map(|g| g.get_value().to_i32())
                .map_err(|e| wasmedge_error(name, &e))
        };
        Ok((
            global("opa_wasm_abi_version")?,
            global("opa_wasm_abi_minor_version")?,
        ))
    }

    /// The JSON value an export with no arguments returns (`builtins`,
    /// `entrypoints`).
    fn json_of_export(&mut self, export: &str) -> Result<serde_json::Value, String> {
        let live = self.instantiate()?;
        let value = live.call(export, &[])?;
        live.dump(value)
    }
}

impl Live {
    /// Calls export `name` with i32 arguments; returns its i32 result (0
    /// for none). An `opa_abort` becomes its message.
    fn call(&mut self, name: &str, args: &[i32]) -> Result<i32, String> {
        self.call_within(name, args, None)
    }

    fn call_within(
        &mut self,
        name: &str,
        args: &[i32],
        budget: Option<Duration>,
    ) -> Result<i32, String> {
        let mut func = self
            .instance
            .get_func_mut(name)
            .map_err(|e| wasmedge_error(name, &e))?;
        let params = args.iter().map(|a| WasmValue::from_i32(*a));
        let outcome = match budget {
            Some(budget) => self
                .executor
                .call_func_with_timeout(&mut func, params, budget),
            None => self.executor.call_func(&mut func, params),
        };
        match outcome {
            Ok(results) => Ok(results.first().map(WasmValue::to_i32).unwrap_or(0)),
            Err(e) => {
                let failure = self.imports.get_host_data_mut().failure.take();
                Err(match (failure, *e) {
                    (Some(message), _) => message,
                    (None, WasmEdgeError::ExecuteTimeout) => "timeout".into(),
                    (None, other) => wasmedge_error(name, &other),
                })
            }
        }
    }

    /// Copies `bytes` into memory the policy allocates; returns the address.
    fn write_new(&mut self, bytes: &[u8]) -> Result<i32, String> {
        let address = self.call("opa_malloc", &[len_i32(bytes)?])?;
        self.write_at(address, bytes)?;
        Ok(address)
    }

    fn write_at(&mut self, address: i32, bytes: &[u8]) -> Result<(), String> {
        let mut memory = self
            .imports
            .get_memory_mut("memory")
            .map_err(|e| wasmedge_error("policy memory", &e))?;
        let end = u64::try_from(address).map_err(|e| e.to_string())? + bytes.len() as u64;
        let size = u64::from(memory.size()) * 65_536;
        if end > size {
            let pages = u32::try_from((end - size).div_ceil(65_536)).map_err(|e| e.to_string())?;
            memory
                .grow(pages)
                .map_err(|e| wasmedge_error("growing the policy's memory", &e))?;
        }
        let offset = u32::try_from(address).map_err(|e| e.to_string())?;
        memory
            .set_data(bytes, offset)
            .map_err(|e| wasmedge_error("writing the policy's memory", &e))
    }

    /// The JSON text of value `value`, through the policy's `opa_json_dump`.
    fn dump(&mut self, value: i32) -> Result<serde_json::Value, String> {
        let text = self.call("opa_json_dump", &[value])?;
        let bytes = self.read_c_string(text)?;
        serde_json::from_slice(&bytes).map_err(|e| format!("the policy's JSON: {e}"))
    }

    fn read_c_string(&mut self, address: i32) -> Result<Vec<u8>, String> {
        let memory = self
            .imports
            .get_memory_mut("memory")
            .map_err(|e| wasmedge_error("policy memory", &e))?;
        let size = memory.size() as usize * 65_536;
        let all = memory
            .slice::<u8>(0, size)
            .ok_or("cannot read the policy's memory")?;
        opa_abi::read_c_string(all, address)
    }
}

impl Evaluate for WasmEdgeEvaluator {
    fn evaluate(
        &mut self,
        input: &serde_json::Value,
        budget: Duration,
    ) -> Result<serde_json::Value, String> {
        let input = serde_json::to_vec(input).map_err(|e| e.to_string())?;
        let (entrypoint, fast_path) = (self.entrypoint_id, self.fast_path);
        let live = self.instantiate()?;
        let outcome = if fast_path {
            evaluate_fast(live, entrypoint, &input, budget)
        } else {
            evaluate_with_context(live, entrypoint, &input, budget)
        };
        match outcome {
            Err(e) if e == "timeout" => {
                // Cut off mid-way: the instance's state is not to be trusted.
                self.live = None;
                Err(format!(
                    "evaluation exceeded its budget of {} ms",
                    budget.as_millis()
                ))
            }
            // As above for any failure: a fresh instance next time.
            Err(e) => {
                self.live = None;
                Err(format!("evaluating entrypoint {entrypoint}: {e}"))
            }
            ok => ok,
        }
    }
}

/// ABI 1.2: input written at the heap base, one `opa_eval` call.
fn evaluate_fast(
    live: &mut Live,
    entrypoint: i32,
    input: &[u8],
    budget: Duration,
) -> Result<serde_json::Value, String> {
    let input_at = live.heap_base;
    live.write_at(input_at, input)?;
    let heap_after_input = input_at + len_i32(input)?;
    let result = live.call_within(
        "opa_eval",
        &[
            0,
            entrypoint,
            live.data_value,
            input_at,
            len_i32(input)?,
            heap_after_input,
            0,
        ],
        Some(budget),
    )?;
    let text = live.read_c_string(result)?;
    serde_json::from_slice(&text).map_err(|e| format!("the policy's result: {e}"))
}

/// ABI 1.1: an eval context set up export by export.
fn evaluate_with_context(
    live: &mut Live,
    entrypoint: i32,
    input: &[u8],
    budget: Duration,
) -> Result<serde_json::Value, String> {
    live.call("opa_heap_ptr_set", &[live.heap_base])?;
    let address = live.write_new(input)?;
    let input_value = live.call("opa_json_parse", &[address, len_i32(input)?])?;
    if input_value == 0 {
        return Err("the policy could not parse its input".into());
    }
    let context = live.call("opa_eval_ctx_new", &[])?;
    live.call("opa_eval_ctx_set_input", &[context, input_value])?;
    live.call("opa_eval_ctx_set_data", &[context, live.data_value])?;
    live.call("opa_eval_ctx_set_entrypoint", &[context, entrypoint])?;
    live.call_within("eval", &[context], Some(budget))?;
    let result = live.call("opa_eval_ctx_get_result", &[context])?;
    live.dump(result)
}

fn len_i32(bytes: &[u8]) -> Result<i32, String> {
    i32::try_from(bytes.len()).map_err(|_| "document over 2 GiB".to_string())
}

/// The string at the first argument, read from the caller's memory.
fn message_at(frame: &CallingFrame, args: &[WasmValue]) -> String {
    let Some(address) = args.first().map(WasmValue::to_i32) else {
        return String::new();
    };
    let Some(memory) = frame.memory_ref(0) else {
        return String::new();
    };
    let size = memory.size() as usize * 65_536;
    memory
        .slice::<u8>(0, size)
        .and_then(|all| opa_abi::read_c_string(all, address).ok())
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default()
}

fn opa_abort(
    state: &mut HostState,
    _instance: &mut Instance,
    frame: &mut CallingFrame,
    args: Vec<WasmValue>,
) -> Result<Vec<WasmValue>, CoreError> {
    state.failure = Some(format!("opa_abort: {}", message_at(frame, &args)));
    Err(CoreError::Common(CoreCommonError::UserDefError))
}

fn opa_println(
    _state: &mut HostState,
    _instance: &mut Instance,
    frame: &mut CallingFrame,
    args: Vec<WasmValue>,
) -> Result<Vec<WasmValue>, CoreError> {
    log::info!("policy: {}", message_at(frame, &args));
    Ok(vec![])
}

/// Never reached for a loaded policy (one needing builtins is refused at
/// load), but a module may call an import it did not declare in `builtins`.
fn unsupported_builtin(
    state: &mut HostState,
    _instance: &mut Instance,
    _frame: &mut CallingFrame,
    args: Vec<WasmValue>,
) -> Result<Vec<WasmValue>, CoreError> {
    let id = args.first().map(WasmValue::to_i32).unwrap_or(-1);
    state.failure = Some(format!(
        "the policy called builtin #{id}, which edgeshim does not implement on WasmEdge"
    ));
    Err(CoreError::Common(CoreCommonError::UserDefError))
}
