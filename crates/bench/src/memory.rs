//! Memory as users measure it: proportional set size (PSS, from
//! /proc/PID/smaps_rollup) of the shims and every process under them, and
//! the node's available memory.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct MemorySample {
    /// PSS of every shim process and its descendants (pause, containers).
    pub pss_kb: u64,
    pub processes: usize,
    /// MemAvailable from /proc/meminfo.
    pub node_available_kb: u64,
}

/// Reads the PSS of the processes whose program name starts with
/// `containerd-shim` and of all their descendants.
pub fn sample() -> MemorySample {
    let parents = parent_map();
    let shims: HashSet<u32> = parents
        .keys()
        .copied()
        .filter(|pid| comm(*pid).is_some_and(|c| c.starts_with("containerd-shim")))
        .collect();
    let mut pss_kb = 0;
    let mut processes = 0;
    for pid in parents.keys() {
        if under_any(*pid, &shims, &parents)
            && let Some(pss) = pss_kb_of(*pid)
        {
            pss_kb += pss;
            processes += 1;
        }
    }
    MemorySample {
        pss_kb,
        processes,
        node_available_kb: meminfo("MemAvailable:").unwrap_or_default(),
    }
}

/// Writes dirty pages back and drops what the kernel can reclaim at once
/// (clean page cache, dentries, inodes), so that a MemAvailable read next
/// counts memory in use, not the kernel's estimate of how much of its
/// caches it could give back, which moved node memory per container by
/// about 1 MB from one density run to the next for every runtime alike
/// (memory of cgroups removed earlier comes back only as their cached
/// pages go). Best effort: a failure is reported and the reading taken.
pub fn drop_caches() {
    nix::unistd::sync();
    if let Err(e) = std::fs::write("/proc/sys/vm/drop_caches", "3") {
        eprintln!("density: cannot drop the kernel's caches ({e}); node memory read as it is");
    }
}

/// Waits, at most `limit`, until no shim runs a launcher (edgeshim's
/// shims stop an idle one after a few seconds, so a node whose pods are
/// all started holds none); returns how many are left. Polled: this is a
/// benchmark's settling step, and /proc offers nothing to wait on.
pub fn await_idle_launchers(limit: std::time::Duration) -> usize {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let left = launchers();
        if left == 0 || std::time::Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Processes started as a shim's launcher (`--edgeshim-launcher`). A Wasm
/// container made by libcontainer carries that command line too and is
/// told apart by the name libcontainer gives its init (`youki:...`); one
/// made on the direct launch path rewrites its command line
/// (`--edgeshim-wasm-container <id>`).
fn launchers() -> usize {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| {
            std::fs::read(e.path().join("cmdline"))
                .is_ok_and(|c| c.split(|b| *b == 0).any(|w| w == b"--edgeshim-launcher"))
                && std::fs::read(e.path().join("comm")).is_ok_and(|c| !c.starts_with(b"youki"))
        })
        .count()
}

pub(crate) fn under_any(mut pid: u32, roots: &HashSet<u32>, parents: &HashMap<u32, u32>) -> bool {
    for _ in 0..64 {
        if roots.contains(&pid) {
            return true;
        }
        match parents.get(&pid) {
            Some(parent) if *parent > 1 => pid = *parent,
            _ => return false,
        }
    }
    false
}

pub(crate) fn parent_map() -> HashMap<u32, u32> {
    let mut map = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return map;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The field after the parenthesised name: state, then ppid.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse().ok());
        if let Some(ppid) = ppid {
            map.insert(pid, ppid);
        }
    }
    map
}

fn comm(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|c| c.trim().to_string())
}

fn pss_kb_of(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    field_kb(&text, "Pss:")
}

/// The node's memory a container can cost outside any process's PSS, as
/// /proc/meminfo names it: kernel objects (slab, stacks, page tables,
/// per-CPU areas) and shared memory (tmpfs, such as `/run`'s state files).
const NODE_PARTS: &[(&str, &str)] = &[
    ("slab unreclaimable", "SUnreclaim:"),
    ("slab reclaimable", "SReclaimable:"),
    ("kernel stacks", "KernelStack:"),
    ("page tables", "PageTables:"),
    ("per-CPU", "Percpu:"),
    ("shared memory", "Shmem:"),
];

/// The node's [`NODE_PARTS`] now, in KB.
pub fn node_parts_kb() -> Vec<(&'static str, u64)> {
    let Ok(text) = std::fs::read_to_string("/proc/meminfo") else {
        return Vec::new();
    };
    NODE_PARTS
        .iter()
        .filter_map(|(name, key)| field_kb(&text, key).map(|kb| (*name, kb)))
        .collect()
}

/// `pid`'s PSS in KB (containerd's, in the density scenario).
pub fn process_pss_kb(pid: u32) -> Option<u64> {
    pss_kb_of(pid)
}

fn meminfo(key: &str) -> Option<u64> {
    field_kb(&std::fs::read_to_string("/proc/meminfo").ok()?, key)
}

pub(crate) fn field_kb(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// Memory usage of the CRI namespace's cgroup (every pod's containers).
pub fn cri_cgroup_bytes() -> u64 {
    std::fs::read_to_string("/sys/fs/cgroup/memory/k8s.io/memory.usage_in_bytes")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_fields_are_read_in_kilobytes() {
        let text = "Rss:     100 kB\nPss:      42 kB\n";
        assert_eq!(field_kb(text, "Pss:"), Some(42));
        assert_eq!(field_kb(text, "Swap:"), None);
    }

    #[test]
    fn test_own_process_has_a_pss() {
        assert!(pss_kb_of(std::process::id()).is_some_and(|kb| kb > 0));
        assert!(sample().node_available_kb > 0);
    }
}
