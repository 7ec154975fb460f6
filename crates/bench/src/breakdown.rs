//! Where the pods' memory goes, process by process and thread by thread:
//! every process under the node's shims, sorted into its role (shim,
//! zygote, launcher, Wasm container, pause, other), with its PSS, the
//! anonymous and private parts, its page tables and its threads by name.
//! The density scenario takes one at its last point (docs/design.md's
//! "Where a pod's memory goes" is written from it); it reads /proc only.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

use crate::memory::{field_kb, parent_map, under_any};

/// One role's processes, as means per process.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct RoleMemory {
    pub role: String,
    pub processes: usize,
    pub pss_kb: f64,
    /// `Anonymous:` of smaps_rollup: heap, stacks, copy-on-write copies
    /// (shared ones counted in full by every process mapping them).
    pub anonymous_kb: f64,
    /// Private clean and dirty pages: what the process alone holds.
    pub private_kb: f64,
    /// `VmPTE:` of status: page tables, kernel memory outside PSS.
    pub page_tables_kb: f64,
    pub threads: f64,
    /// Threads by name (`/proc/PID/task/TID/comm`), per process; a Wasm
    /// container's main thread, named after its container, as `<id>`.
    pub thread_names: BTreeMap<String, f64>,
    /// PSS by kind of mapping (see [`mapping_kind`]), per process.
    pub pss_kb_by_mapping: BTreeMap<String, f64>,
}

/// The role of a process under a shim, from its program name and command
/// line. The edgeshim words are the isolation crate's `ZYGOTE_ARG`,
/// `LAUNCHER_ARG` and `CONTAINER_ARG`, which its processes put in their
/// command line (`ps` shows them the same way); written out here because
/// the bench does not link the isolation crate.
pub fn role(comm: &str, cmdline: &[String]) -> &'static str {
    let has = |word: &str| cmdline.iter().any(|w| w == word);
    if has("--edgeshim-zygote") {
        "zygote"
    } else if has("--edgeshim-launcher") {
        "launcher"
    } else if has("--edgeshim-wasm-container") {
        "Wasm container"
    } else if comm.starts_with("containerd-shim") {
        "shim"
    } else if comm == "pause" {
        "pause"
    } else {
        "other"
    }
}

/// Every process under a process named `containerd-shim*` (the shims
/// included), summed by role; roles in a fixed order.
pub fn by_role() -> Vec<RoleMemory> {
    let parents = parent_map();
    let shims: HashSet<u32> = parents
        .keys()
        .copied()
        .filter(|pid| read(*pid, "comm").is_some_and(|c| c.starts_with("containerd-shim")))
        .collect();
    let mut roles: BTreeMap<&'static str, RoleMemory> = BTreeMap::new();
    for pid in parents.keys().copied() {
        if !under_any(pid, &shims, &parents) {
            continue;
        }
        let Some((name, one)) = process_memory(pid) else {
            continue; // gone meanwhile
        };
        let entry = roles.entry(name).or_default();
        entry.processes += 1;
        entry.pss_kb += one.pss_kb;
        entry.anonymous_kb += one.anonymous_kb;
        entry.private_kb += one.private_kb;
        entry.page_tables_kb += one.page_tables_kb;
        entry.threads += one.threads;
        for (thread, count) in one.thread_names {
            *entry.thread_names.entry(thread).or_default() += count;
        }
        for (kind, kb) in one.pss_kb_by_mapping {
            *entry.pss_kb_by_mapping.entry(kind).or_default() += kb;
        }
    }
    let order = [
        "shim",
        "zygote",
        "launcher",
        "Wasm container",
        "pause",
        "other",
    ];
    order
        .iter()
        .filter_map(|name| roles.remove(name).map(|r| means(name, r)))
        .collect()
}

/// One process's role and memory; `None` once it is gone.
fn process_memory(pid: u32) -> Option<(&'static str, RoleMemory)> {
    let comm = read(pid, "comm")?;
    let cmdline = read(pid, "cmdline")?;
    let rollup = read(pid, "smaps_rollup")?;
    let status = read(pid, "status")?;
    let words: Vec<String> = cmdline
        .split('\0')
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect();
    let kb = |text: &str, key: &str| field_kb(text, key).unwrap_or_default() as f64;
    let mut one = RoleMemory {
        processes: 1,
        pss_kb: kb(&rollup, "Pss:"),
        anonymous_kb: kb(&rollup, "Anonymous:"),
        private_kb: kb(&rollup, "Private_Clean:") + kb(&rollup, "Private_Dirty:"),
        page_tables_kb: kb(&status, "VmPTE:"),
        ..RoleMemory::default()
    };
    let role = role(comm.trim(), &words);
    for mut name in thread_names(pid) {
        if role == "Wasm container" && name == comm.trim() {
            name = "<id>".to_string();
        }
        one.threads += 1.0;
        *one.thread_names.entry(name).or_default() += 1.0;
    }
    let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    one.pss_kb_by_mapping = pss_by_mapping(&read(pid, "smaps").unwrap_or_default(), &exe);
    Some((role, one))
}

/// PSS summed by [`mapping_kind`] over the mappings of one smaps file.
fn pss_by_mapping(smaps: &str, exe: &str) -> BTreeMap<String, f64> {
    let mut kinds = BTreeMap::new();
    let mut kind = "other";
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let first = fields.next().unwrap_or_default();
        if first.contains('-') && !first.ends_with(':') {
            // A mapping's header: range perms offset dev inode [path].
            kind = mapping_kind(fields.nth(4).unwrap_or_default(), exe);
        } else if first == "Pss:" {
            let kb: f64 = fields
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_default();
            *kinds.entry(kind.to_string()).or_default() += kb;
        }
    }
    kinds
}

/// A mapping by its path: the program's own file (`binary`), `heap`,
/// `stack` (the main thread's), `anonymous` (other threads' stacks, the
/// allocator's arenas, the engine's reservations), `libraries` (other
/// files) or `kernel` ([vdso], [vvar] and the like).
fn mapping_kind(path: &str, exe: &str) -> &'static str {
    match path {
        "" => "anonymous",
        "[heap]" => "heap",
        "[stack]" => "stack",
        p if p == exe || exe.strip_suffix(" (deleted)") == Some(p) => "binary",
        p if p.starts_with('[') => "kernel",
        _ => "libraries",
    }
}

/// Sums to means per process.
fn means(name: &str, mut sum: RoleMemory) -> RoleMemory {
    let n = sum.processes.max(1) as f64;
    sum.role = name.to_string();
    sum.pss_kb /= n;
    sum.anonymous_kb /= n;
    sum.private_kb /= n;
    sum.page_tables_kb /= n;
    sum.threads /= n;
    for count in sum
        .thread_names
        .values_mut()
        .chain(sum.pss_kb_by_mapping.values_mut())
    {
        *count /= n;
    }
    sum
}

fn thread_names(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("comm")).ok())
        .map(|name| name.trim().to_string())
        .collect()
}

fn read(pid: u32, file: &str) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        line.split(' ').map(str::to_string).collect()
    }

    #[test]
    fn test_roles_come_from_the_command_line_before_the_name() {
        // A zygote keeps the shim's program name until it renames itself;
        // its command line tells it apart.
        assert_eq!(
            role(
                "containerd-shim",
                &words("/proc/self/exe --edgeshim-zygote")
            ),
            "zygote"
        );
        assert_eq!(
            role(
                "edgeshim-launch",
                &words("/proc/self/exe --edgeshim-launcher")
            ),
            "launcher"
        );
        assert_eq!(
            role("c1", &words("/proc/self/exe --edgeshim-wasm-container c1")),
            "Wasm container"
        );
        assert_eq!(
            role(
                "containerd-shim",
                &words("/usr/bin/containerd-shim-wasmtime-v1 -namespace k8s.io")
            ),
            "shim"
        );
        assert_eq!(role("pause", &words("/pause")), "pause");
        assert_eq!(role("sleep", &words("sleep 3600")), "other");
    }

    #[test]
    fn test_sums_become_means_per_process() {
        let sum = RoleMemory {
            processes: 2,
            pss_kb: 300.0,
            threads: 6.0,
            thread_names: BTreeMap::from([("events".to_string(), 2.0)]),
            ..RoleMemory::default()
        };
        let mean = means("shim", sum);
        assert_eq!(mean.role, "shim");
        assert_eq!(mean.pss_kb, 150.0);
        assert_eq!(mean.threads, 3.0);
        assert_eq!(mean.thread_names["events"], 1.0);
    }

    #[test]
    fn test_a_process_is_read_whole() {
        // A quiet process (the test runner's own memory moves while other
        // tests run): nobody's shim, zygote or container.
        let mut sleeper = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .expect("sleep");
        // Read it once it sleeps (its loader done), not while it execs:
        // blocked in clock_nanosleep (230) or nanosleep (35) on x86_64.
        while !super::read(sleeper.id(), "syscall")
            .is_some_and(|call| call.starts_with("230 ") || call.starts_with("35 "))
        {
            if let Some(status) = sleeper.try_wait().expect("the sleeper's status") {
                panic!("sleep ended before it slept: {status}");
            }
            std::thread::yield_now();
        }
        let read = process_memory(sleeper.id());
        let _ = sleeper.kill();
        let _ = sleeper.wait();
        let (name, one) = read.expect("the sleeper's memory");
        assert_eq!(name, "other");
        assert_eq!(one.processes, 1);
        assert!(one.pss_kb > 0.0 && one.private_kb > 0.0, "{one:?}");
        assert!(one.page_tables_kb > 0.0, "{one:?}");
        assert_eq!(one.threads, 1.0, "{one:?}");
        assert_eq!(one.thread_names.values().sum::<f64>(), one.threads);
        // The mappings add up to the process's PSS (smaps_rollup sums the
        // same pages; rounding per mapping moves it by a few KB at most).
        let mapped: f64 = one.pss_kb_by_mapping.values().sum();
        assert!((mapped - one.pss_kb).abs() < 16.0, "{mapped} vs {one:?}");
        assert!(one.pss_kb_by_mapping["binary"] > 0.0, "{one:?}");
    }

    #[test]
    fn test_mappings_are_sorted_by_their_path() {
        let smaps = "\
55d0-55d1 r-xp 00000000 fe:01 42 /usr/bin/shim
Size:                  8 kB
Pss:                   4 kB
7f00-7f01 rw-p 00000000 00:00 0
Pss:                  16 kB
7f02-7f03 rw-p 00000000 00:00 0 [heap]
Pss:                  32 kB
7f04-7f05 r-xp 00000000 fe:01 43 /usr/lib/libc.so.6
Pss:                   2 kB
7ffd-7ffe rw-p 00000000 00:00 0 [stack]
Pss:                   8 kB
7ffe-7fff r-xp 00000000 00:00 0 [vdso]
Pss:                   0 kB
";
        let kinds = pss_by_mapping(smaps, "/usr/bin/shim");
        assert_eq!(kinds["binary"], 4.0);
        assert_eq!(kinds["anonymous"], 16.0);
        assert_eq!(kinds["heap"], 32.0);
        assert_eq!(kinds["libraries"], 2.0);
        assert_eq!(kinds["stack"], 8.0);
        assert_eq!(kinds["kernel"], 0.0);
        assert_eq!(
            mapping_kind("/usr/bin/shim", "/usr/bin/shim (deleted)"),
            "binary"
        );
    }
}
