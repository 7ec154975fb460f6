//! The Wasm side of the launcher (`edgeshim-isolation`'s single-threaded
//! process that containers are cloned from): what the shim tells it about a
//! module ([`PayloadDescription`]) and how the launcher turns that into the
//! payload the container runs ([`WasmPayloads`]).

use std::collections::HashMap;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use edgeshim_bundle::WasiView;
use edgeshim_engine::{Engine, EngineConfig, NetworkGrant};
use edgeshim_isolation::Payload;
use edgeshim_isolation::launcher::{LAUNCHER_ARG, PayloadFactory};
use serde::{Deserialize, Serialize};

/// A Wasm payload as the shim describes it to its launcher.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PayloadDescription {
    /// Hex sha256 of the module, as the shim computed it.
    pub sha256: String,
    pub view: WasiView,
    /// What the gate granted the container (edgeshim-network).
    pub network: NetworkGrant,
}

/// A prepared module run inside the container process.
pub(crate) struct WasmPayload<E: Engine> {
    pub engine: Arc<E>,
    pub prepared: Arc<E::Prepared>,
    pub view: WasiView,
    pub network: NetworkGrant,
}

impl<E: Engine> Payload for WasmPayload<E> {
    fn run(&self) -> i32 {
        // An engine with no hook where its sockets use an address is held
        // to the grant from below, by the shim (edgeshim-network's guard);
        // never run unguarded.
        if self.engine.needs_guard(&self.prepared, &self.network)
            && let Err(e) = crate::refusals::guard_payload()
        {
            eprintln!("edgeshim: cannot hold the module's sockets to the policy: {e}");
            return 1;
        }
        match self.engine.run(
            &self.prepared,
            &self.view,
            &self.network,
            crate::refusals::payload_reporter(),
        ) {
            Ok(status) => status,
            Err(e) => {
                eprintln!("edgeshim: {e}");
                1
            }
        }
    }
}

/// The launcher's modules, by digest: each is prepared once (mapped from the
/// cache the shim filled), then shared by every container cloned after.
pub(crate) struct WasmPayloads<E: Engine> {
    engine: Option<Arc<E>>,
    modules: HashMap<String, Arc<E::Prepared>>,
}

impl<E: Engine> Default for WasmPayloads<E> {
    fn default() -> Self {
        Self {
            engine: None,
            modules: HashMap::new(),
        }
    }
}

impl<E: Engine> WasmPayloads<E> {
    fn engine(&mut self) -> Result<Arc<E>, String> {
        if let Some(engine) = &self.engine {
            return Ok(engine.clone());
        }
        let config = EngineConfig {
            single_threaded: true,
            ..EngineConfig::from_env()
        };
        let engine = Arc::new(E::new(config).map_err(|e| e.to_string())?);
        self.engine = Some(engine.clone());
        Ok(engine)
    }
}

impl<E: Engine> PayloadFactory for WasmPayloads<E> {
    fn payload(
        &mut self,
        description: &serde_json::Value,
        fd: Option<OwnedFd>,
    ) -> Result<Option<Arc<dyn Payload>>, String> {
        let description: PayloadDescription = serde_json::from_value(description.clone())
            .map_err(|e| format!("bad payload description: {e}"))?;
        let engine = self.engine()?;
        let known = self.modules.get(&description.sha256).cloned();
        let prepared = match known {
            // Interpreted until the shim's background compile is cached
            // (WasmEdge): each start looks again.
            Some(prepared) => match engine.refresh(&prepared, &description.sha256) {
                Some(better) => {
                    let better = Arc::new(better);
                    self.modules
                        .insert(description.sha256.clone(), better.clone());
                    better
                }
                None => prepared,
            },
            None => {
                let Some(fd) = fd else {
                    return Ok(None);
                };
                let mut bytes = Vec::new();
                std::fs::File::from(fd)
                    .read_to_end(&mut bytes)
                    .map_err(|e| format!("cannot read the module from the shim: {e}"))?;
                let sha256 = edgeshim_engine::cache::content_hash(&bytes);
                if sha256 != description.sha256 {
                    return Err(format!(
                        "module from the shim has digest {sha256}, not {}",
                        description.sha256
                    ));
                }
                let prepared =
                    Arc::new(engine.prepare(&bytes, &sha256).map_err(|e| e.to_string())?);
                self.modules.insert(sha256, prepared.clone());
                prepared
            }
        };
        Ok(Some(Arc::new(WasmPayload {
            engine,
            prepared,
            view: description.view,
            network: description.network,
        })))
    }
}

/// When this process was started as the shim's launcher, serves it and
/// returns the exit status; `None` otherwise.
pub(crate) fn launcher_main<E: Engine>() -> Option<i32> {
    if std::env::args_os().nth(1).as_deref() != Some(std::ffi::OsStr::new(LAUNCHER_ARG)) {
        return None;
    }
    Some(serve::<E>())
}

/// The launcher's loop, in a launcher exec'd with [`LAUNCHER_ARG`] or forked
/// from the zygote; returns its exit status.
pub(crate) fn serve<E: Engine>() -> i32 {
    // Set-up failures in libcontainer's processes (cloned from here) are
    // reported through `log`: to containerd's log, as the shim's are.
    crate::logging::init(false, "warn");
    builtin_name_lookups_only();
    edgeshim_isolation::launcher::serve(&mut WasmPayloads::<E>::default())
}

unsafe extern "C" {
    /// glibc's override of `/etc/nsswitch.conf` for one database (exported
    /// since glibc 2.2.5; the libc crate does not declare it).
    fn __nss_configure_lookup(
        db: *const libc::c_char,
        service_line: *const libc::c_char,
    ) -> libc::c_int;
}

/// Name lookups in a Wasm container (wasmtime-wasi's `resolve-addresses`,
/// `wasi:http`, WasmEdge's `sock_getaddrinfo`) run glibc's resolver in the
/// container process, whose `/` is the image's. Left to the image's
/// `/etc/nsswitch.conf`, glibc would load `libnss_<service>.so` from the
/// image: native code of the image's choosing, outside the Wasm sandbox.
/// So the `hosts` database is fixed to glibc's built-in `files` and `dns`
/// (built in since 2.34: nothing is loaded), for every container cloned
/// from this launcher. Native containers exec their own program, which
/// reads the image's configuration as under runc.
fn builtin_name_lookups_only() {
    // SAFETY: both arguments are NUL-terminated constants; the launcher is
    // single-threaded here, before any lookup.
    let status = unsafe { __nss_configure_lookup(c"hosts".as_ptr(), c"files dns".as_ptr()) };
    if status != 0 {
        log::error!("cannot fix name lookups to glibc's built-in services");
    }
}
