//! Scenario `soak`: N create/start/exit/remove cycles through CRI spread
//! over a few long-lived pods (so the same shims serve thousands of
//! containers), with a pod created, run and removed along the way every
//! `pod_every` cycles. Each cycle's module exits with a code of its own
//! (`cycle % 4`), which CRI must report; under the example library (see
//! [`gate`]) every `deny_every`-th cycle also sends a create the library
//! must refuse. Every `sample_every` cycles the shims, launchers and
//! containerd and the node's counts are sampled ([`sample`]); the verdict
//! ([`verdict`]) wants every count exactly flat from `steady_from` on and
//! each RSS growing by less than the limit per 1,000 cycles; at the end
//! every pod is removed and the node must be as it was before the run.
//!
//! It drives CRI only; the watchdog of [`crate::cycles`] guards each cycle.

pub mod gate;
pub mod report;
pub mod sample;
pub mod verdict;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use edgeshim_cri::api::PodSandboxConfig;
use edgeshim_cri::{ContainerSpec, Cri, PodConfig};
use serde::{Deserialize, Serialize};

use crate::cycles::{self, StepError, Tracker, at, lock};
use crate::images::{BUSYBOX, PROBE_IMAGE, Program, workload};
use crate::pod_run;
use sample::{Places, Sample};
use verdict::{Flatness, RssFit};

/// The containers' memory limit (the library requires one).
const MEMORY_LIMIT: i64 = 64 << 20;
/// Consecutive failed cycles after which the run stops.
const MAX_CONSECUTIVE_FAILURES: usize = 10;
const FAILURES_KEPT: usize = 20;
/// containerd's OS threads come and go with its Go runtime's scheduling;
/// they are held to "no upward trend", every other count to "exactly flat".
const CONTAINERD_THREADS: &str = "containerd threads";

pub struct Options {
    pub handler: String,
    pub n: usize,
    pub pods: usize,
    pub pod_every: usize,
    pub deny_every: usize,
    pub sample_every: usize,
    pub steady_from: usize,
    pub rss_limit_kb_per_1000: f64,
    /// Whether RSS growth decides the verdict (a short run's fit is too
    /// wide to say anything; its counts still must be flat).
    pub judge_rss: bool,
    pub deadline: Duration,
    pub places: Places,
    /// The example library's gate, when the run is under it.
    pub gate: Option<gate::LibraryGate>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Failure {
    pub cycle: usize,
    pub step: String,
    pub error: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SoakResult {
    pub handler: String,
    pub shim_binary: String,
    pub target: usize,
    pub completed: usize,
    pub failures: usize,
    pub failure_list: Vec<Failure>,
    pub pods: usize,
    pub pods_along_the_way: usize,
    /// Creates the library refused as it must (cycles under the gate).
    pub refused_as_due: usize,
    /// `example library, decision log rotated at N bytes` or `as configured`
    pub gate: String,
    pub decision_log_cap: Option<u64>,
    pub steady_from: usize,
    pub rss_limit_kb_per_1000: f64,
    pub rss_judged: bool,
    pub elapsed_s: f64,
    pub before: Option<Sample>,
    pub samples: Vec<Sample>,
    pub after: Option<Sample>,
    pub flat: Vec<Flatness>,
    pub rss: Vec<RssFit>,
    pub hang: Option<String>,
    pub leftovers: Vec<String>,
    pub error: Option<String>,
    pub pass: bool,
}

struct Shared {
    position: Tracker,
    result: Mutex<SoakResult>,
}

impl Shared {
    fn begin(&self, cycle: usize, step: &'static str) {
        self.position.begin(cycle, step);
    }
    fn step(&self, step: &'static str) {
        self.position.step(step);
    }
    fn fail(&self, cycle: usize, (step, error): StepError) {
        let mut result = lock(&self.result);
        result.failures += 1;
        if result.failure_list.len() < FAILURES_KEPT {
            result.failure_list.push(Failure {
                cycle,
                step: step.into(),
                error: format!("{error:#}"),
            });
        }
    }
}

/// A long-lived pod of the run.
struct Pod {
    name: String,
    id: String,
    config: PodSandboxConfig,
    log_dir: PathBuf,
}

/// Runs the soak; the result comes back whether it passed or not.
pub fn run(mut cri: Cri, options: Options, log_root: &Path) -> (SoakResult, Result<()>) {
    let shared = Arc::new(Shared {
        position: Tracker::new("RunPodSandbox"),
        result: Mutex::new(SoakResult {
            handler: options.handler.clone(),
            target: options.n,
            pods: options.pods,
            steady_from: options.steady_from,
            rss_limit_kb_per_1000: options.rss_limit_kb_per_1000,
            rss_judged: options.judge_rss,
            gate: match &options.gate {
                Some(g) => format!(
                    "example library, enforcing; decision log rotated at {} bytes, {} kept",
                    g.max_bytes, g.keep
                ),
                None => "as configured".into(),
            },
            decision_log_cap: options.gate.as_ref().map(gate::LibraryGate::log_cap),
            ..Default::default()
        }),
    });
    let deadline = options.deadline;
    let started = Instant::now();
    let worker = {
        let shared = Arc::clone(&shared);
        let log_root = log_root.to_path_buf();
        std::thread::spawn(move || {
            let outcome = soak(&mut cri, &options, &shared, &log_root);
            // The library's gate is put back here, when the run is over.
            drop(options);
            outcome
        })
    };
    if let Some((cycle, step, waited)) = cycles::watch(&shared.position, &worker, deadline) {
        let mut result = lock(&shared.result).clone();
        let hang = format!(
            "cycle {cycle} stuck in {step} for {:.1} s (deadline {:.1} s)",
            waited.as_secs_f64(),
            deadline.as_secs_f64()
        );
        result.hang = Some(hang.clone());
        return (
            result,
            Err(anyhow!("hang: {hang}; pods left for inspection")),
        );
    }
    let outcome = worker
        .join()
        .unwrap_or_else(|_| Err(anyhow!("the soak thread panicked")));
    let mut result = lock(&shared.result).clone();
    result.elapsed_s = started.elapsed().as_secs_f64();
    judge(&mut result);
    let outcome = outcome.and_then(|()| {
        if result.pass {
            Ok(())
        } else {
            Err(anyhow!("soak failed: {}", report::why(&result)))
        }
    });
    (result, outcome)
}

/// Fills in the verdict from the samples.
fn judge(result: &mut SoakResult) {
    let steady: Vec<&Sample> = result
        .samples
        .iter()
        .filter(|s| s.cycle >= result.steady_from)
        .collect();
    let mut names: Vec<String> = Vec::new();
    for s in &steady {
        for (name, _) in s.counts() {
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    result.flat = names
        .iter()
        .map(|name| {
            let values: Vec<u64> = steady
                .iter()
                .map(|s| {
                    s.counts()
                        .into_iter()
                        .find(|(n, _)| n == name)
                        .map_or(u64::MAX, |(_, v)| v)
                })
                .collect();
            if name == CONTAINERD_THREADS {
                verdict::rises_at_most(name, &values, verdict::GO_THREADS_SLACK)
            } else {
                verdict::flatness(name, &values)
            }
        })
        .collect();
    let roles: Vec<String> = steady
        .first()
        .map(|s| s.processes.iter().map(|p| p.role.clone()).collect())
        .unwrap_or_default();
    // A process absent from every steady sample (the unowned pod's launcher,
    // stopped when idle by design) has no RSS to fit; its absence is
    // judged with the counts (its descriptors and threads stay 0).
    result.rss = roles
        .iter()
        .filter_map(|role| {
            let points: Vec<(usize, u64)> = steady
                .iter()
                .filter_map(|s| {
                    let p = s.processes.iter().find(|p| &p.role == role)?;
                    Some((s.cycle, p.sample.as_ref()?.rss_kb))
                })
                .collect();
            (!points.is_empty())
                .then(|| verdict::rss_fit(role, &points, result.rss_limit_kb_per_1000))
        })
        .collect();
    let log_within_cap = match (
        result.decision_log_cap,
        steady.iter().map(|s| s.decision_log_bytes).max(),
    ) {
        (Some(cap), Some(max)) => max <= cap,
        _ => true,
    };
    result.pass = result.hang.is_none()
        && result.error.is_none()
        && result.failures == 0
        && result.completed == result.target
        && result.leftovers.is_empty()
        && !steady.is_empty()
        && result.flat.iter().all(|f| f.flat)
        && (!result.rss_judged || result.rss.iter().all(|f| f.pass))
        && log_within_cap;
}

/// The container spec of one cycle: the probe exiting with `code`, or under
/// runc (the control run: what containerd does with a shim that is not
/// ours) busybox saying and doing the same.
fn probe_exiting(handler: &str, name: &str, code: i32) -> ContainerSpec {
    let mut spec = pod_run::spec(&workload(handler, Program::Hello), name);
    spec.command = if handler == "runc" {
        let script = format!("echo exiting {code}; exit {code}");
        vec![BUSYBOX.into(), "sh".into(), "-c".into(), script]
    } else {
        spec.image = PROBE_IMAGE.into();
        vec!["/probe.wasm".into(), "exit".into(), code.to_string()]
    };
    spec.memory_limit_bytes = MEMORY_LIMIT;
    spec
}

/// Pod `name` on its own network, with the owner annotation the library
/// asks of a workload's pod unless `owned` is false (containerd passes the
/// pod's `edgeshim.io/*` annotations to the shim with each container, as
/// `hack/containerd.sh` configures it).
fn pod_config(name: &str, log_dir: &Path, owned: bool) -> PodSandboxConfig {
    PodConfig {
        annotations: if owned {
            vec![(gate::OWNER_ANNOTATION.into(), "soak".into())]
        } else {
            Vec::new()
        },
        name: name.into(),
        namespace: "bench".into(),
        uid: format!("uid-{name}"),
        host_network: false,
        log_directory: log_dir.display().to_string(),
        ..Default::default()
    }
    .to_cri()
}

fn new_pod(cri: &mut Cri, handler: &str, name: &str, log_root: &Path, owned: bool) -> Result<Pod> {
    let name = pod_run::unique_name(name);
    let log_dir = log_root.join(&name);
    std::fs::create_dir_all(&log_dir)?;
    let config = pod_config(&name, &log_dir, owned);
    let id = cri
        .run_pod(&config, handler)
        .map_err(|e| anyhow!("RunPodSandbox {name}: {e:#}"))?;
    Ok(Pod {
        name,
        id,
        config,
        log_dir,
    })
}

fn remove_pod(cri: &mut Cri, pod: &Pod) -> Result<()> {
    cri.stop_pod(&pod.id)?;
    cri.remove_pod(&pod.id)?;
    let _ = std::fs::remove_dir_all(&pod.log_dir);
    Ok(())
}

/// One container in `pod`: created, started, its exit code and line
/// checked, removed.
fn one_container(
    cri: &mut Cri,
    shared: &Shared,
    handler: &str,
    pod: &Pod,
    name: &str,
    code: i32,
    ours: &mut HashSet<String>,
) -> std::result::Result<(), StepError> {
    shared.step("CreateContainer");
    let spec = probe_exiting(handler, name, code);
    let id = at(
        "CreateContainer",
        cri.create_container(&pod.id, &spec.to_cri(), &pod.config),
    )?;
    ours.insert(id.clone());
    shared.step("StartContainer");
    let log = pod.log_dir.join(format!("{name}.log"));
    let line = format!("exiting {code}");
    let checked = at("StartContainer", cri.start_container(&id))
        .and_then(|()| cycles::finish_checks(cri, &|s| shared.step(s), &id, &log, (code, &line)));
    shared.step("RemoveContainer");
    let removed = at("RemoveContainer", cri.remove_container(&id));
    let _ = std::fs::remove_file(&log);
    checked.and(removed)
}

/// A container the library must refuse (its pod has no owner). CRI's
/// CreateContainer only records it; the shim's gate decides its create when
/// StartContainer makes the task, so that is the call refused.
fn refused_create(
    cri: &mut Cri,
    shared: &Shared,
    handler: &str,
    pod: &Pod,
    cycle: usize,
) -> std::result::Result<(), StepError> {
    const STEP: &str = "StartContainer (refused)";
    shared.step(STEP);
    let name = format!("anonymous-{cycle}");
    let spec = probe_exiting(handler, &name, 0);
    let id = at(
        STEP,
        cri.create_container(&pod.id, &spec.to_cri(), &pod.config),
    )?;
    let started = cri.start_container(&id);
    let removed = at(STEP, cri.remove_container(&id));
    match started {
        Err(e) if format!("{e:#}").contains("labels:") => removed,
        Err(e) => Err((STEP, anyhow!("refused for another reason: {e:#}"))),
        Ok(()) => Err((
            STEP,
            anyhow!("the library let {name} start without an owner"),
        )),
    }
}

/// The worker: pods, the gate's first refusal, cycles, samples, removal.
fn soak(cri: &mut Cri, options: &Options, shared: &Shared, log_root: &Path) -> Result<()> {
    let places = &options.places;
    lock(&shared.result).before = Some(sample::take(0, &[], places));
    let mut ours = HashSet::new();
    let mut pods = Vec::new();
    for index in 0..options.pods.max(1) {
        let pod = new_pod(
            cri,
            &options.handler,
            &format!("soak-{index}"),
            log_root,
            true,
        )?;
        ours.insert(pod.id.clone());
        pods.push(pod);
    }
    // Under the library, one more long-lived pod without an owner: every
    // container created in it must be refused.
    let unowned = match options.gate {
        Some(_) => {
            let pod = new_pod(cri, &options.handler, "soak-unowned", log_root, false)?;
            ours.insert(pod.id.clone());
            Some(pod)
        }
        None => None,
    };
    lock(&shared.result).shim_binary = cycles::shim_pid(&pods[0].id)
        .and_then(|pid| std::fs::read_link(format!("/proc/{pid}/exe")).ok())
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    if let Some(pod) = &unowned
        && let Err(e) = await_library(cri, shared, &options.handler, pod)
    {
        // The run is over before it began: its pods go (best effort).
        for pod in pods.iter().chain(&unowned) {
            let _ = remove_pod(cri, pod);
        }
        return Err(e);
    }
    let named: Vec<(String, String)> = pods
        .iter()
        .chain(&unowned)
        .map(|p| (p.name.clone(), p.id.clone()))
        .collect();
    let progress = crate::progress(options.n, "soak");
    let mut consecutive = 0;
    for cycle in 1..=options.n {
        shared.begin(cycle, "CreateContainer");
        let pod = &pods[cycle % pods.len()];
        let code = (cycle % 4) as i32;
        let mut outcome = one_container(
            cri,
            shared,
            &options.handler,
            pod,
            &format!("c{cycle}"),
            code,
            &mut ours,
        );
        if let Some(unowned) = &unowned
            && outcome.is_ok()
            && cycle % options.deny_every.max(1) == 0
        {
            outcome = refused_create(cri, shared, &options.handler, unowned, cycle);
            if outcome.is_ok() {
                lock(&shared.result).refused_as_due += 1;
            }
        }
        // Half-way between two samples (which fall on multiples of
        // `pod_every` at the default sizes): containerd tears a removed
        // pod's shim connection down on its own time, and a sample taken
        // the moment after would count that as a leak.
        let pod_every = options.pod_every.max(1);
        if outcome.is_ok() && cycle % pod_every == pod_every / 2 {
            outcome = pod_along_the_way(cri, shared, options, cycle, log_root, &mut ours);
        }
        match outcome {
            Ok(()) => consecutive = 0,
            Err(e) => {
                consecutive += 1;
                shared.fail(cycle, e);
            }
        }
        lock(&shared.result).completed = cycle;
        progress.inc(1);
        if cycle % options.sample_every == 0 || cycle == options.n {
            shared.begin(cycle, "sample");
            let mut s = sample::take(cycle, &named, places);
            eprintln!("cycle {cycle}: {}", report::one_line(&s));
            let mut result = lock(&shared.result);
            if let Some(before) = result.samples.last().or(result.before.as_ref()) {
                s.containerd_new_descriptors = sample::new_descriptors(before, &s);
                for new in &s.containerd_new_descriptors {
                    eprintln!("cycle {cycle}: containerd holds a new descriptor: {new}");
                }
            }
            result.samples.push(s);
        }
        if consecutive >= MAX_CONSECUTIVE_FAILURES {
            lock(&shared.result).error = Some(format!(
                "stopped after {consecutive} failed cycles in a row (at cycle {cycle})"
            ));
            break;
        }
    }
    progress.finish_and_clear();
    shared.begin(options.n, "removing the pods");
    let pods: Vec<&Pod> = pods.iter().chain(&unowned).collect();
    let processes: Vec<(Option<u32>, Option<u32>)> = pods
        .iter()
        .map(|p| {
            let shim = cycles::shim_pid(&p.id);
            (shim, shim.and_then(cycles::launcher_pid))
        })
        .collect();
    for pod in &pods {
        remove_pod(cri, pod)?;
    }
    shared.step("shims and launchers exit");
    let gone = |pid: Option<u32>| pid.is_none_or(|p| !Path::new(&format!("/proc/{p}")).exists());
    let limit = Instant::now() + Duration::from_secs(30);
    while !processes.iter().all(|(s, l)| gone(*s) && gone(*l)) && Instant::now() < limit {
        std::thread::sleep(Duration::from_millis(50));
    }
    shared.step("leftover check");
    let mut left = Vec::new();
    for (pod, (_, launcher)) in pods.iter().zip(&processes) {
        left.extend(cycles::leftovers(
            cri,
            &pod.id,
            &ours,
            &places.containerd_state,
            *launcher,
        )?);
    }
    let after = sample::take(options.n, &[], places);
    if let Some(before) = &lock(&shared.result).before {
        // The node's counts (containerd's own threads and descriptors are
        // judged while it serves, in the samples).
        for ((what, was), (_, now)) in before.node_counts().into_iter().zip(after.node_counts()) {
            if was != now {
                left.push(format!("{what}: {was} before the run, {now} after it"));
            }
        }
    }
    let mut result = lock(&shared.result);
    result.after = Some(after);
    result.leftovers = left;
    Ok(())
}

/// Waits for the gate to serve the library (it reads its config again when
/// it changes): a container of the unowned pod is refused; then for that
/// pod's launcher, which has nothing to launch, to stop.
fn await_library(cri: &mut Cri, shared: &Shared, handler: &str, unowned: &Pod) -> Result<()> {
    // The gate reads its config again when it changes: wait for the
    // library to decide before the first cycle counts.
    shared.begin(0, "the library's first refusal");
    let limit = Instant::now() + Duration::from_secs(30);
    while let Err((_, e)) = refused_create(cri, shared, handler, unowned, 0) {
        if Instant::now() > limit {
            return Err(anyhow!(
                "the gate does not serve the example library: {e:#}"
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Its shim has nothing to launch: its launcher must stop when idle
    // (crates/shim), and stay stopped for the whole run.
    shared.step("the unowned pod's launcher stops when idle");
    let limit = Instant::now() + Duration::from_secs(30);
    while cycles::shim_pid(&unowned.id)
        .and_then(cycles::launcher_pid)
        .is_some()
    {
        if Instant::now() > limit {
            return Err(anyhow!(
                "the launcher of pod {}, which has nothing to launch, did not stop",
                unowned.name
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// A pod created, run to its container's exit and removed.
fn pod_along_the_way(
    cri: &mut Cri,
    shared: &Shared,
    options: &Options,
    cycle: usize,
    log_root: &Path,
    ours: &mut HashSet<String>,
) -> std::result::Result<(), StepError> {
    shared.step("RunPodSandbox (along the way)");
    let pod = at(
        "RunPodSandbox (along the way)",
        new_pod(
            cri,
            &options.handler,
            &format!("soak-along-{cycle}"),
            log_root,
            true,
        ),
    )?;
    ours.insert(pod.id.clone());
    let ran = one_container(cri, shared, &options.handler, &pod, "main", 0, ours);
    shared.step("RemovePodSandbox (along the way)");
    let removed = at("RemovePodSandbox (along the way)", remove_pod(cri, &pod));
    ran.and(removed)?;
    lock(&shared.result).pods_along_the_way += 1;
    Ok(())
}
