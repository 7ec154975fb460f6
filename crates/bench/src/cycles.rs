//! Scenario `cycles`: one long-lived pod, then N cycles of CreateContainer,
//! StartContainer, wait for the exit, check exit code 0 and the hello
//! module's line in the CRI log, RemoveContainer, all from one CRI
//! connection; so one pod shim serves thousands of containers.
//!
//! It proves "no hang": the cycles run on a worker thread and a watchdog
//! stops the run when a cycle outlives its deadline, naming the cycle and
//! the step it is stuck in (the pod is left as it is, for inspection).
//! Every `sample_every` cycles it reads the pod shim's and its launcher's
//! descriptors, threads and RSS, and counts the state folders of
//! containerd (task bundles, CRI containers and sandboxes) and of the shim
//! (`/run/edgeshim/k8s.io`). At the end the pod is removed and nothing of it
//! may be left: no container, no state folder, no shim or launcher process.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use edgeshim_cri::Cri;
use serde::Serialize;

use crate::images::{Program, workload};
use crate::memory::{field_kb, parent_map, under_any};
use crate::pod_run::{self, RunningPod};
use crate::stats::{Summary, summarize};

/// The pod's name (before [`pod_run::unique_name`]).
const POD_NAME: &str = "cycles";
/// CRI's namespace, in containerd's and the shim's state folders.
const NAMESPACE: &str = "k8s.io";
/// The shim's state root (`/run/edgeshim/<namespace>/<id>`).
const SHIM_STATE: &str = "/run/edgeshim";
/// Consecutive failed cycles after which the run stops.
const MAX_CONSECUTIVE_FAILURES: usize = 10;
/// Failures kept in the result (the count covers all).
const FAILURES_KEPT: usize = 20;

pub struct Options {
    pub handler: String,
    pub n: usize,
    pub sample_every: usize,
    /// A cycle (or the pod's start, or its removal) taking longer is a hang.
    pub deadline: Duration,
    /// containerd's state folder (`state` in its config).
    pub containerd_state: PathBuf,
}

/// One process's descriptors, threads and resident memory.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct ProcSample {
    pub pid: u32,
    pub fds: usize,
    /// Threads but a shim's request threads ([`REQUEST_THREAD`]).
    pub threads: usize,
    pub rss_kb: u64,
}

/// Entries of one state folder: all of them, and those of this run's pod
/// and containers (the containerd is shared, so others come and go).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct DirCount {
    pub total: usize,
    pub ours: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// Cycles done when sampled (0: the pod and its warm-up container).
    pub cycle: usize,
    pub shim: Option<ProcSample>,
    pub launcher: Option<ProcSample>,
    /// `<state>/io.containerd.runtime.v2.task/k8s.io`
    pub task_dirs: DirCount,
    /// `<state>/io.containerd.grpc.v1.cri/containers` and `sandboxes`
    pub cri_dirs: DirCount,
    /// `/run/edgeshim/k8s.io`
    pub shim_dirs: DirCount,
}

#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub cycle: usize,
    pub step: &'static str,
    pub error: String,
}

/// Where a run hung, and what the shim's processes were doing.
#[derive(Debug, Clone, Serialize)]
pub struct Hang {
    pub cycle: usize,
    pub step: &'static str,
    pub waited_s: f64,
    /// `pid comm state wchan` of the shim and every process under it.
    pub processes: Vec<String>,
}

/// Milliseconds per step of the cycles that passed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Steps {
    pub create: Summary,
    pub start: Summary,
    pub exit: Summary,
    pub remove: Summary,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CyclesResult {
    pub handler: String,
    pub pod_id: String,
    /// The pod shim's binary (`/proc/<pid>/exe`): says debug or release.
    pub shim_binary: String,
    pub target: usize,
    /// Cycles run to their end, passed or failed.
    pub completed: usize,
    pub failures: usize,
    pub failure_list: Vec<Failure>,
    pub deadline_s: f64,
    /// Whole cycle, CreateContainer to RemoveContainer's return.
    pub cycle_ms: Summary,
    pub steps: Steps,
    pub samples: Vec<Sample>,
    pub hang: Option<Hang>,
    /// What was left of the pod after its removal (empty: nothing).
    pub leftovers: Vec<String>,
    /// Why the run stopped early, if it did (other than a hang).
    pub error: Option<String>,
}

/// Where a watched worker is, shared with its watchdog ([`watch`]).
pub(crate) struct Tracker(Mutex<Position>);

impl Tracker {
    pub(crate) fn new(step: &'static str) -> Self {
        Self(Mutex::new(Position {
            cycle: 0,
            step,
            since: Instant::now(),
        }))
    }

    /// A new cycle (or phase) begins: its deadline starts now.
    pub(crate) fn begin(&self, cycle: usize, step: &'static str) {
        *lock(&self.0) = Position {
            cycle,
            step,
            since: Instant::now(),
        };
    }

    pub(crate) fn step(&self, step: &'static str) {
        lock(&self.0).step = step;
    }
}

/// What the watchdog sees: where the worker is, since when.
pub(crate) struct Position {
    pub(crate) cycle: usize,
    pub(crate) step: &'static str,
    pub(crate) since: Instant,
}

/// State shared by the worker and the watchdog.
struct Shared {
    position: Tracker,
    result: Mutex<CyclesResult>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn begin(&self, cycle: usize, step: &'static str) {
        self.position.begin(cycle, step);
    }

    fn step(&self, step: &'static str) {
        self.position.step(step);
    }
}

/// Waits for `worker` to finish; returns where it is stuck if its current
/// cycle outlives `deadline`.
pub(crate) fn watch<T>(
    tracker: &Tracker,
    worker: &JoinHandle<T>,
    deadline: Duration,
) -> Option<(usize, &'static str, Duration)> {
    let tick = (deadline / 20).clamp(Duration::from_millis(1), Duration::from_millis(500));
    loop {
        if worker.is_finished() {
            return None;
        }
        {
            let p = lock(&tracker.0);
            let waited = p.since.elapsed();
            if waited > deadline {
                return Some((p.cycle, p.step, waited));
            }
        }
        std::thread::sleep(tick);
    }
}

/// Runs the scenario. The result is returned (to be saved) whether the run
/// passed or not; `Err` with it says why it did not pass.
pub fn run(mut cri: Cri, options: Options, log_root: &Path) -> (CyclesResult, Result<()>) {
    let shared = Arc::new(Shared {
        position: Tracker::new("RunPodSandbox"),
        result: Mutex::new(CyclesResult {
            handler: options.handler.clone(),
            target: options.n,
            deadline_s: options.deadline.as_secs_f64(),
            ..Default::default()
        }),
    });
    let deadline = options.deadline;
    let worker = {
        let shared = Arc::clone(&shared);
        let log_root = log_root.to_path_buf();
        std::thread::spawn(move || cycles(&mut cri, &options, &shared, &log_root))
    };
    if let Some((cycle, step, waited)) = watch(&shared.position, &worker, deadline) {
        let mut result = lock(&shared.result).clone();
        let shim = shim_pid(&result.pod_id);
        result.hang = Some(Hang {
            cycle,
            step,
            waited_s: waited.as_secs_f64(),
            processes: shim.map(process_tree).unwrap_or_default(),
        });
        let error = anyhow!(
            "hang: cycle {cycle} stuck in {step} for {:.1} s (deadline {:.1} s); pod {} \
             of namespace bench (id {}, shim pid {}) left as it is for inspection",
            waited.as_secs_f64(),
            deadline.as_secs_f64(),
            pod_run::unique_name(POD_NAME),
            if result.pod_id.is_empty() {
                "not known yet"
            } else {
                &result.pod_id
            },
            shim.map_or("none".into(), |p| p.to_string()),
        );
        // The worker stays blocked in its call; the process exits after the
        // result is saved.
        return (result, Err(error));
    }
    let outcome = worker
        .join()
        .unwrap_or_else(|_| Err(anyhow!("the cycles thread panicked")));
    let result = lock(&shared.result).clone();
    let outcome = outcome.and_then(|()| {
        if let Some(error) = &result.error {
            bail!("{error}");
        }
        if result.failures > 0 {
            bail!(
                "{} of {} cycles failed, first: {:?}",
                result.failures,
                result.completed,
                result.failure_list.first()
            );
        }
        if !result.leftovers.is_empty() {
            bail!("left after removing the pod: {:?}", result.leftovers);
        }
        Ok(())
    });
    (result, outcome)
}

/// The worker: pod, cycles, samples, removal, leftover check.
fn cycles(cri: &mut Cri, options: &Options, shared: &Shared, log_root: &Path) -> Result<()> {
    let hello = workload(&options.handler, Program::Hello);
    let expected = expected_line(&options.handler);
    shared.begin(0, "RunPodSandbox + warm-up container");
    let (pod, _) = pod_run::start(cri, &options.handler, &hello, POD_NAME, log_root)?;
    let mut ours: HashSet<String> = HashSet::from([pod.pod_id.clone()]);
    {
        let mut result = lock(&shared.result);
        result.pod_id = pod.pod_id.clone();
        result.shim_binary = shim_pid(&pod.pod_id)
            .and_then(|pid| std::fs::read_link(format!("/proc/{pid}/exe")).ok())
            .map(|p| p.display().to_string())
            .unwrap_or_default();
    }
    // The warm-up container (it compiled the module) goes as a cycle would.
    ours.insert(pod.container_id.clone());
    let log = pod.log_dir.join("main.log");
    let checked = finish_checks(
        cri,
        &|s| shared.step(s),
        &pod.container_id,
        &log,
        (0, expected),
    );
    shared.step("RemoveContainer");
    checked
        .and(at(
            "RemoveContainer",
            cri.remove_container(&pod.container_id),
        ))
        .map_err(|(step, e)| anyhow!("warm-up container, {step}: {e:#}"))?;
    let sample_now = |cycle: usize, ours: &HashSet<String>| {
        shared.begin(cycle, "sample");
        let sample = sample(cycle, &pod.pod_id, ours, &options.containerd_state);
        // A line per sample: long runs are followed from a log.
        eprintln!(
            "cycle {cycle}: shim {:?}, launcher {:?}",
            sample.shim, sample.launcher
        );
        lock(&shared.result).samples.push(sample);
    };
    sample_now(0, &ours);
    let progress = crate::progress(options.n, "cycles");
    let (mut times, mut consecutive) = (Vec::with_capacity(options.n), 0);
    for cycle in 1..=options.n {
        shared.begin(cycle, "CreateContainer");
        match one_cycle(cri, shared, &pod, &hello, cycle, expected, &mut ours) {
            Ok(steps) => {
                consecutive = 0;
                times.push(steps);
            }
            Err((step, error)) => {
                consecutive += 1;
                let mut result = lock(&shared.result);
                result.failures += 1;
                if result.failure_list.len() < FAILURES_KEPT {
                    result.failure_list.push(Failure {
                        cycle,
                        step,
                        error: format!("{error:#}"),
                    });
                }
            }
        }
        {
            let mut result = lock(&shared.result);
            result.completed = cycle;
            if cycle % 100 == 0 || cycle == options.n {
                summarize_into(&mut result, &times);
            }
        }
        progress.inc(1);
        if cycle % options.sample_every == 0 || cycle == options.n {
            sample_now(cycle, &ours);
        }
        if consecutive >= MAX_CONSECUTIVE_FAILURES {
            lock(&shared.result).error = Some(format!(
                "stopped after {consecutive} failed cycles in a row (at cycle {cycle})"
            ));
            break;
        }
    }
    progress.finish_and_clear();
    let done = lock(&shared.result).completed;
    shared.begin(done, "StopPodSandbox + RemovePodSandbox");
    let shim = shim_pid(&pod.pod_id);
    let launcher = shim.and_then(launcher_pid);
    pod_run::remove(cri, &pod)?;
    shared.step("shim and launcher exit");
    let gone = |pid: Option<u32>| pid.is_none_or(|p| !Path::new(&format!("/proc/{p}")).exists());
    let limit = Instant::now() + Duration::from_secs(30);
    while !(gone(shim) && gone(launcher)) && Instant::now() < limit {
        std::thread::sleep(Duration::from_millis(50));
    }
    shared.step("leftover check");
    let leftovers = leftovers(cri, &pod.pod_id, &ours, &options.containerd_state, launcher)?;
    lock(&shared.result).leftovers = leftovers;
    Ok(())
}

fn summarize_into(result: &mut CyclesResult, times: &[[f64; 5]]) {
    let pick = |i: usize| summarize(&times.iter().map(|t| t[i]).collect::<Vec<_>>());
    result.steps = Steps {
        create: pick(0),
        start: pick(1),
        exit: pick(2),
        remove: pick(3),
    };
    result.cycle_ms = pick(4);
}

/// The line the hello workload prints under `handler`.
fn expected_line(handler: &str) -> &'static str {
    if handler == "runc" {
        "hello from busybox"
    } else {
        "hello from wasm"
    }
}

pub(crate) type StepError = (&'static str, anyhow::Error);

pub(crate) fn at<T>(step: &'static str, r: Result<T>) -> std::result::Result<T, StepError> {
    r.map_err(|e| (step, e))
}

/// One cycle; milliseconds of create, start, exit (start's return to the
/// exit seen and the log checked), remove, and the whole.
fn one_cycle(
    cri: &mut Cri,
    shared: &Shared,
    pod: &RunningPod,
    hello: &crate::images::Workload,
    cycle: usize,
    expected: &str,
    ours: &mut HashSet<String>,
) -> std::result::Result<[f64; 5], StepError> {
    let name = format!("c{cycle}");
    let t0 = Instant::now();
    let id = at(
        "CreateContainer",
        cri.create_container(
            &pod.pod_id,
            &pod_run::spec(hello, &name).to_cri(),
            &pod.config,
        ),
    )?;
    ours.insert(id.clone());
    let t1 = Instant::now();
    shared.step("StartContainer");
    let started = cri.start_container(&id);
    let t2 = Instant::now();
    let log = pod.log_dir.join(format!("{name}.log"));
    let checked = match started {
        Ok(()) => finish_checks(cri, &|s| shared.step(s), &id, &log, (0, expected)),
        Err(e) => Err(("StartContainer", e)),
    };
    let t3 = Instant::now();
    shared.step("RemoveContainer");
    let removed = at("RemoveContainer", cri.remove_container(&id));
    let t4 = Instant::now();
    let _ = std::fs::remove_file(&log);
    checked?;
    removed?;
    let ms = |a: Instant, b: Instant| b.duration_since(a).as_secs_f64() * 1e3;
    Ok([ms(t0, t1), ms(t1, t2), ms(t2, t3), ms(t3, t4), ms(t0, t4)])
}

/// Waits until CRI reports the container exited, then checks its exit code
/// and a log line ending in the expected text. No limit of its own: the watchdog has it.
pub(crate) fn finish_checks(
    cri: &mut Cri,
    on_step: &dyn Fn(&'static str),
    id: &str,
    log: &Path,
    expected: (i32, &str),
) -> std::result::Result<(), StepError> {
    let (expected_code, expected) = expected;
    on_step("wait for exit");
    let status = loop {
        let status = at("wait for exit", cri.container_status(id))?;
        if edgeshim_cri::state_name(status.state) == "Exited" {
            break status;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    if status.exit_code != expected_code {
        return Err((
            "wait for exit",
            anyhow!(
                "exit code {} where {expected_code} was due ({}: {})",
                status.exit_code,
                status.reason,
                status.message
            ),
        ));
    }
    on_step("check log");
    // containerd may still be copying the last output when the exit is seen.
    let since = Instant::now();
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.lines().any(|l| l.ends_with(expected)) {
            return Ok(());
        }
        if since.elapsed() > Duration::from_secs(5) {
            return Err((
                "check log",
                anyhow!("{} has no {expected:?}: {text:?}", log.display()),
            ));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Words of `/proc/<pid>/cmdline`.
pub(crate) fn cmdline(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .unwrap_or_default()
        .split(|b| *b == 0)
        .filter(|w| !w.is_empty())
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect()
}

pub(crate) fn pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The pod shim: a `containerd-shim-*` process started with `-id <pod id>`
/// (not its short-lived `start` or `delete` runs).
pub(crate) fn shim_pid(pod_id: &str) -> Option<u32> {
    if pod_id.is_empty() {
        return None;
    }
    pids()
        .into_iter()
        .find(|pid| is_shim_for(&cmdline(*pid), pod_id))
}

fn is_shim_for(words: &[String], pod_id: &str) -> bool {
    words.first().is_some_and(|w| w.contains("containerd-shim"))
        && words.windows(2).any(|w| w[0] == "-id" && w[1] == pod_id)
        && !words.last().is_some_and(|w| w == "start" || w == "delete")
}

/// The shim's launcher: its child run with `--edgeshim-launcher`.
pub(crate) fn launcher_pid(shim: u32) -> Option<u32> {
    let parents = parent_map();
    parents
        .iter()
        .filter(|(_, parent)| **parent == shim)
        .map(|(pid, _)| *pid)
        .find(|pid| cmdline(*pid).iter().any(|w| w == "--edgeshim-launcher"))
}

pub(crate) fn proc_sample(pid: u32) -> Option<ProcSample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let threads = field_kb(&status, "Threads:").unwrap_or_default() as usize;
    Some(ProcSample {
        pid,
        fds: std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count(),
        threads: threads.saturating_sub(request_threads(pid)),
        rss_kb: field_kb(&status, "VmRSS:").unwrap_or_default(),
    })
}

/// The name of a shim's request threads (crates/shim/src/lib.rs): its
/// async runtime's blocking pool, which runs each Task API operation and
/// ends a thread 2 s after its last one. How many there are says how many
/// requests ran in the last 2 s, not what the shim holds, so the samples
/// leave them out. One that never ends is a request that never returns:
/// the cycle waiting on it is caught as a hang.
const REQUEST_THREAD: &str = "shim-request";

/// How many of `pid`'s threads are request threads.
fn request_threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|comm| comm.trim() == REQUEST_THREAD)
        })
        .count()
}

/// Entries of `dir`, and how many are named by `ours`.
pub(crate) fn count(dirs: &[PathBuf], ours: &HashSet<String>) -> DirCount {
    let mut counted = DirCount::default();
    for dir in dirs {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            counted.total += 1;
            if ours.contains(entry.file_name().to_string_lossy().as_ref()) {
                counted.ours += 1;
            }
        }
    }
    counted
}

pub(crate) struct StateDirs {
    pub(crate) task: Vec<PathBuf>,
    pub(crate) cri: Vec<PathBuf>,
    pub(crate) shim: Vec<PathBuf>,
}

pub(crate) fn state_dirs(containerd_state: &Path) -> StateDirs {
    let cri = containerd_state.join("io.containerd.grpc.v1.cri");
    StateDirs {
        task: vec![
            containerd_state
                .join("io.containerd.runtime.v2.task")
                .join(NAMESPACE),
        ],
        cri: vec![cri.join("containers"), cri.join("sandboxes")],
        shim: vec![Path::new(SHIM_STATE).join(NAMESPACE)],
    }
}

fn sample(cycle: usize, pod_id: &str, ours: &HashSet<String>, containerd_state: &Path) -> Sample {
    let shim = shim_pid(pod_id);
    let dirs = state_dirs(containerd_state);
    Sample {
        cycle,
        shim: shim.and_then(proc_sample),
        launcher: shim.and_then(launcher_pid).and_then(proc_sample),
        task_dirs: count(&dirs.task, ours),
        cri_dirs: count(&dirs.cri, ours),
        shim_dirs: count(&dirs.shim, ours),
    }
}

/// `pid comm state wchan` of `root` and every process under it, and under
/// each its other threads (`  tid comm state wchan`): where a hang sits.
pub(crate) fn process_tree(root: u32) -> Vec<String> {
    let parents = parent_map();
    let mut pids: Vec<u32> = parents
        .keys()
        .copied()
        .filter(|pid| under_any(*pid, &HashSet::from([root]), &parents))
        .collect();
    pids.sort_unstable();
    let describe = |dir: &str| {
        let read =
            |file: &str| std::fs::read_to_string(format!("{dir}/{file}")).unwrap_or_default();
        let stat = read("stat");
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .unwrap_or("?")
            .to_string();
        format!("{} {state} {}", read("comm").trim(), read("wchan"))
    };
    let mut lines = Vec::new();
    for pid in pids {
        lines.push(format!("{pid} {}", describe(&format!("/proc/{pid}"))));
        let mut threads: Vec<u32> = std::fs::read_dir(format!("/proc/{pid}/task"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .filter(|tid| *tid != pid)
            .collect();
        threads.sort_unstable();
        for tid in threads {
            lines.push(format!(
                "  {tid} {}",
                describe(&format!("/proc/{pid}/task/{tid}"))
            ));
        }
    }
    lines
}

/// What is left of the removed pod: CRI objects, state folders, processes.
pub(crate) fn leftovers(
    cri: &mut Cri,
    pod_id: &str,
    ours: &HashSet<String>,
    containerd_state: &Path,
    launcher: Option<u32>,
) -> Result<Vec<String>> {
    let mut left = Vec::new();
    for c in cri.list_containers().context("ListContainers")? {
        if c.pod_sandbox_id == pod_id || ours.contains(&c.id) {
            left.push(format!("CRI container {}", c.id));
        }
    }
    if cri
        .list_pods()
        .context("ListPodSandbox")?
        .iter()
        .any(|p| p.id == pod_id)
    {
        left.push(format!("CRI pod {pod_id}"));
    }
    let dirs = state_dirs(containerd_state);
    for dir in dirs.task.iter().chain(&dirs.cri).chain(&dirs.shim) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if ours.contains(entry.file_name().to_string_lossy().as_ref()) {
                left.push(format!("state {}", entry.path().display()));
            }
        }
    }
    if let Some(pid) = shim_pid(pod_id) {
        left.push(format!("shim process {pid}"));
    }
    if let Some(pid) = launcher
        && cmdline(pid).iter().any(|w| w == "--edgeshim-launcher")
    {
        left.push(format!("launcher process {pid}"));
    }
    Ok(left)
}

/// containerd's state folder for the socket at `address`: the private
/// containerd of `hack/containerd.sh` keeps it beside its socket.
pub fn default_state(address: &Path) -> PathBuf {
    address
        .parent()
        .map(|dir| dir.join("state"))
        .filter(|state| state.join("io.containerd.runtime.v2.task").is_dir())
        .unwrap_or_else(|| PathBuf::from("/run/containerd"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_watchdog_names_the_cycle_and_step_of_a_hang() {
        let position = Arc::new(Tracker::new("start"));
        let worker = {
            let position = Arc::clone(&position);
            std::thread::spawn(move || {
                position.begin(7, "StartContainer");
                std::thread::sleep(Duration::from_secs(2));
            })
        };
        let (cycle, step, waited) =
            watch(&position, &worker, Duration::from_millis(100)).expect("a hang");
        assert_eq!((cycle, step), (7, "StartContainer"));
        assert!(waited > Duration::from_millis(100));
        let quick = std::thread::spawn(|| ());
        assert!(watch(&position, &quick, Duration::from_secs(60)).is_none());
    }

    #[test]
    fn test_the_pod_shim_is_found_by_its_id_not_its_start_run() {
        let words = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        let daemon =
            words("/bin/containerd-shim-wasmtime-v1 -namespace k8s.io -id abc -address /x");
        assert!(is_shim_for(&daemon, "abc"));
        assert!(!is_shim_for(&daemon, "ab"));
        let start = words("/bin/containerd-shim-wasmtime-v1 -namespace k8s.io -id abc start");
        assert!(!is_shim_for(&start, "abc"));
        assert!(!is_shim_for(&words("/bin/sleep -id abc"), "abc"));
    }

    #[test]
    fn test_a_hang_report_lists_processes_and_their_threads() {
        let me = std::process::id();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let waiter = std::thread::spawn(move || rx.recv());
        let lines = process_tree(me);
        assert!(lines[0].starts_with(&format!("{me} ")), "{lines:?}");
        assert!(lines.iter().any(|l| l.starts_with("  ")), "{lines:?}");
        drop(tx);
        let _ = waiter.join();
    }

    #[test]
    fn test_own_process_is_sampled() {
        let me = proc_sample(std::process::id()).expect("sample");
        assert!(me.fds > 0 && me.threads > 0 && me.rss_kb > 0, "{me:?}");
    }
}
