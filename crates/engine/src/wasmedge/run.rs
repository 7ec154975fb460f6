//! Runs a prepared module as a WASI preview 1 command in the current process
//! (the container's process: fds 0-2 and `/` are already the container's,
//! and WasmEdge's WASI uses them as they are).

use std::collections::HashMap;

use wasmedge_sdk::error::{CoreCommonError, CoreError, WasmEdgeError};
use wasmedge_sdk::vm::SyncInst;
use wasmedge_sdk::wasi::WasiModule;
use wasmedge_sdk::{AsInstance, ExternalInstanceType, Module, Store, Vm};

use super::base_config;
use crate::{EngineError, Result, TRAP_EXIT_CODE, WasiView};

/// Bytes in a Wasm page.
const PAGE: u64 = 65_536;

/// A container memory limit as linear memory sees it.
#[derive(Clone, Copy)]
struct MemoryBudget {
    /// The container's limit.
    limit: u64,
    /// What this process already holds (libwasmedge and its LLVM are about
    /// 12 MB resident, counted by the same cgroup).
    runtime: u64,
}

impl MemoryBudget {
    /// Linear memory gets what the runtime leaves of the limit, so that a
    /// module that grows is refused a page rather than OOM-killed.
    fn linear_bytes(self) -> u64 {
        self.limit.saturating_sub(self.runtime)
    }

    fn pages(self) -> u32 {
        u32::try_from(self.linear_bytes() / PAGE)
            .unwrap_or(u32::MAX)
            .min(65_536)
    }
}

/// This process's resident bytes (`/proc/self/statm`), 0 if unreadable.
fn resident_bytes() -> u64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page_size = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    pages * page_size
}

pub fn run_command(module: &Module, view: &WasiView) -> Result<i32> {
    let budget = view.memory_limit.map(|limit| MemoryBudget {
        limit,
        runtime: resident_bytes(),
    });
    let max_pages = budget.map(MemoryBudget::pages);
    if let Some(budget) = budget {
        check_initial_memory(module, budget)?;
    }
    let config = base_config(max_pages)?;
    let (args, env, preopens) = wasi_arguments(view)?;
    let mut wasi = WasiModule::create(
        Some(args.iter().map(String::as_str).collect()),
        Some(env.iter().map(String::as_str).collect()),
        Some(preopens.iter().map(String::as_str).collect()),
    )
    .map_err(|e| EngineError::Setup(format!("WasmEdge WASI module: {e}")))?;
    let outcome = {
        let mut instances: HashMap<String, &mut dyn SyncInst> = HashMap::new();
        instances.insert(wasi.name().to_string(), wasi.as_mut());
        let store = Store::new(Some(&config), instances)
            .map_err(|e| EngineError::Setup(format!("WasmEdge store: {e}")))?;
        let mut vm = Vm::new(store);
        vm.register_module(None, module.clone())
            .map_err(|e| EngineError::Instantiate(e.to_string()))?;
        let start = view.entry_export.as_deref().unwrap_or("_start");
        let outcome = vm.run_func(None, start, []).map(|_| ());
        if let Some(budget) = budget {
            report_memory_near_limit(&vm, budget);
        }
        outcome
    };
    // WasmEdge counts `proc_exit` as a normal end of `_start` (its result
    // code "terminated" is a success), so the status is WASI's exit code,
    // 0 when the module returned from `_start`.
    match outcome {
        Ok(()) => Ok(i32::try_from(wasi.exit_code()).unwrap_or(i32::MAX)),
        Err(e)
            if matches!(
                *e,
                WasmEdgeError::Core(CoreError::Common(CoreCommonError::Terminated))
            ) =>
        {
            Ok(i32::try_from(wasi.exit_code()).unwrap_or(i32::MAX))
        }
        Err(e) => {
            eprintln!("edgeshim: wasm trap: {e}");
            Ok(TRAP_EXIT_CODE)
        }
    }
}

/// WasmEdge 0.14.1 refuses a `memory.grow` past the page limit with a log
/// line on the module's stdout and gives the shim no hook, so its logging
/// is off in the container (see [`super::WasmEdgeEngine::new`]) and the
/// shim says it instead, after the run: when the module ended within
/// [`NEAR_LIMIT`] of the limit, a refused grow is the likely reason it
/// failed.
fn report_memory_near_limit<T: SyncInst + ?Sized>(vm: &Vm<'_, T>, budget: MemoryBudget) {
    let Some(instance) = vm.active_module() else {
        return;
    };
    let Ok(memory) = instance.get_memory_ref("memory") else {
        return;
    };
    let used = u64::from(memory.size()) * PAGE;
    let cap = budget.linear_bytes();
    if used + NEAR_LIMIT > cap {
        eprintln!(
            "edgeshim: linear memory reached {used} bytes; memory.grow past {cap} bytes \
             is refused: the container's memory limit of {} bytes, less {} bytes the \
             runtime itself holds",
            budget.limit, budget.runtime
        );
    }
}

/// How close to the memory limit a module must end for
/// [`report_memory_near_limit`] to speak.
const NEAR_LIMIT: u64 = 4 << 20;

/// WasmEdge would quietly shrink a memory whose initial size is over the
/// page limit (and log an error); refuse it with the reason instead. WASI
/// commands export their memory, so the exports are where to look.
fn check_initial_memory(module: &Module, budget: MemoryBudget) -> Result<()> {
    let initial_pages = module
        .exports()
        .iter()
        .filter_map(|export| match export.ty() {
            Ok(ExternalInstanceType::Memory(memory)) => Some(memory.minimum()),
            _ => None,
        })
        .max();
    match initial_pages {
        Some(pages) if pages > budget.pages() => {
            let needed = u64::from(pages) * PAGE;
            let limit = budget.limit;
            eprintln!(
                "edgeshim: the module's initial memory of {needed} bytes is over \
                 what the container's memory limit of {limit} bytes leaves it"
            );
            Err(EngineError::Instantiate(format!(
                "initial memory {needed} bytes exceeds the memory limit of {limit} bytes"
            )))
        }
        _ => Ok(()),
    }
}

/// argv, `KEY=VALUE` and `guest:host[:readonly]` strings as WasmEdge's
/// C API takes them; a NUL byte (which C strings cannot carry) or a `:` in
/// a preopen path (which that format cannot carry) is refused by name.
fn wasi_arguments(view: &WasiView) -> Result<(Vec<String>, Vec<String>, Vec<String>)> {
    let no_nul = |what: &str, s: &str| {
        if s.contains('\0') {
            Err(EngineError::Setup(format!(
                "{what} contains a NUL byte: {s:?}"
            )))
        } else {
            Ok(())
        }
    };
    for arg in &view.args {
        no_nul("an argument", arg)?;
    }
    let env: Vec<String> = view.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    for entry in &env {
        no_nul("an environment variable", entry)?;
    }
    let mut preopens = Vec::with_capacity(view.preopens.len());
    for preopen in &view.preopens {
        let path = &preopen.path;
        no_nul("a mount path", path)?;
        if path.contains(':') {
            return Err(EngineError::Preopen {
                path: path.clone(),
                reason: "WasmEdge cannot preopen a path that contains ':'".into(),
            });
        }
        let mode = if preopen.read_only { ":readonly" } else { "" };
        preopens.push(format!("{path}:{path}{mode}"));
    }
    Ok((view.args.clone(), env, preopens))
}
