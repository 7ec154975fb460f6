//! Result files (one JSON per scenario, with the machine, versions and
//! command that produced it) and BENCHMARKS.md with its charts, rebuilt
//! from whatever result files are present.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::charts::{Series, lines};

#[derive(Debug, Serialize)]
pub struct RunInfo {
    pub time: String,
    pub command: String,
    pub machine: String,
    pub versions: String,
}

impl RunInfo {
    pub fn now() -> Self {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|c| {
                c.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_default();
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        let mem_gb = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .next()
                    .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
            })
            .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
        let first_line = |program: &str, arg: &str| {
            Command::new(program)
                .arg(arg)
                .output()
                .ok()
                .map(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .lines()
                        .next()
                        .unwrap_or_default()
                        .to_string()
                })
                .unwrap_or_default()
        };
        let commit = Command::new("git")
            .args(["rev-parse", "--short", "HEAD"])
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        Self {
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            command: std::env::args().collect::<Vec<_>>().join(" "),
            machine: format!(
                "{cpu}, {cores} cores, {mem_gb:.0} GB, kernel {}",
                first_line("uname", "-r")
            ),
            versions: format!(
                "edgeshim {commit}; {}; runc {}",
                first_line("containerd", "--version"),
                first_line("runc", "--version")
            ),
        }
    }
}

/// Writes `<dir>/<name>.json` with the run's info and `results`.
pub fn save<T: Serialize>(dir: &Path, name: &str, results: &T) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let value = serde_json::json!({ "run": RunInfo::now(), "results": results });
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, serde_json::to_string_pretty(&value)?)
        .with_context(|| path.display().to_string())?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

pub(crate) fn load(dir: &Path, name: &str) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(dir.join(format!("{name}.json"))).ok()?;
    serde_json::from_str(&text).ok()
}

fn num(value: &serde_json::Value, path: &[&str]) -> f64 {
    let mut v = value;
    for key in path {
        v = &v[key];
    }
    v.as_f64().unwrap_or(f64::NAN)
}

fn run_line(doc: &serde_json::Value) -> String {
    let run = &doc["run"];
    format!(
        "_{} · {} · {} · `{}`_\n\n",
        run["time"].as_str().unwrap_or_default(),
        run["machine"].as_str().unwrap_or_default(),
        run["versions"].as_str().unwrap_or_default(),
        run["command"].as_str().unwrap_or_default()
    )
}

/// BENCHMARKS.md's generated part, and the charts beside it.
pub fn markdown(results: &Path, charts: &Path, charts_link: &str) -> Result<String> {
    std::fs::create_dir_all(charts)?;
    let mut md = String::new();
    for (name, title) in [
        (
            "cold",
            "Cold start through CRI (RunPodSandbox to first output), ms",
        ),
        (
            "cold-sensor",
            "Cold start of the sensor module (first 5-second window out), ms",
        ),
        (
            "cold-gate",
            "Policy gate overhead on a cold start (enforce vs off), ms",
        ),
        (
            "cold-exporter",
            "Metrics exporter overhead on a cold start (edgeshim-metrics running vs not), ms",
        ),
    ] {
        if let Some(doc) = load(results, name) {
            cold_table(&doc, name, title, charts, charts_link, &mut md)?;
        }
    }
    if let Some(doc) = load(results, "ctr-run") {
        ctr_run_section(&mut md, &doc);
    }
    if let Some(doc) = load(results, "burst") {
        table_section(
            &mut md,
            &doc,
            "Burst: pods started at once, ms",
            &[
                "variant",
                "pods",
                "all produced output",
                "per pod p50",
                "per pod p99",
                "failures",
            ],
            |r| {
                format!(
                    "{} | {} | {:.0} | {:.0} | {:.0} | {}",
                    r["variant"].as_str().unwrap_or_default(),
                    r["pods"],
                    num(r, &["all_done_ms"]),
                    num(r, &["per_pod", "p50"]),
                    num(r, &["per_pod", "p99"]),
                    r["failures"]
                )
            },
        );
    }
    if let Some(doc) = load(results, "shim-only") {
        table_section(
            &mut md,
            &doc,
            "Shim only: its ttrpc Task API driven directly, no containerd, \
             module already prepared, ms",
            &[
                "shim",
                "runs",
                "create to output p50",
                "p99",
                "create to delete p50",
                "p99",
                "first container",
            ],
            |r| {
                format!(
                    "{} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1}",
                    r["shim"].as_str().unwrap_or_default(),
                    num(r, &["create_to_output", "n"]),
                    num(r, &["create_to_output", "p50"]),
                    num(r, &["create_to_output", "p99"]),
                    num(r, &["create_to_delete", "p50"]),
                    num(r, &["create_to_delete", "p99"]),
                    num(r, &["first_ms"])
                )
            },
        );
    }
    if let Some(doc) = load(results, "aot") {
        aot_section(&mut md, &doc);
    }
    density_markdown(results, charts, charts_link, &mut md)?;
    if let Some(doc) = load(results, "cycles") {
        cycles_section(&mut md, &doc);
    }
    if let Some(doc) = load(results, "network") {
        table_section(
            &mut md,
            &doc,
            "Network: a TCP echo server in a pod (bridge network), a client on the \
             node at the pod's IP, 1 KB messages",
            &[
                "handler",
                "connections",
                "per second",
                "connection p50 µs",
                "p99",
                "round trip p50 µs",
                "p99",
            ],
            |r| {
                format!(
                    "{} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0}",
                    r["handler"].as_str().unwrap_or_default(),
                    r["connections"],
                    num(r, &["connections_per_s"]),
                    num(r, &["connection_us", "p50"]),
                    num(r, &["connection_us", "p99"]),
                    num(r, &["round_trip_us", "p50"]),
                    num(r, &["round_trip_us", "p99"])
                )
            },
        );
    }
    if let Some(doc) = load(results, "egress") {
        table_section(
            &mut md,
            &doc,
            "Network: the egress check's own cost, µs per call",
            &["what", "n", "p50", "p99"],
            |r| {
                format!(
                    "{} | {} | {:.2} | {:.2}",
                    r["what"].as_str().unwrap_or_default(),
                    num(r, &["us", "n"]),
                    num(r, &["us", "p50"]),
                    num(r, &["us", "p99"])
                )
            },
        );
    }
    for (name, heading) in [
        ("policy", "Policy decisions, µs"),
        (
            "policy-in-situ",
            "Policy: each new pod shim's first decision as the gate timed it \
             (the decision log's gate_us, cold scenario), µs",
        ),
    ] {
        let Some(doc) = load(results, name) else {
            continue;
        };
        table_section(
            &mut md,
            &doc,
            heading,
            &["what", "format", "n", "p50", "p99", "max"],
            |r| {
                format!(
                    "{} | {} | {} | {:.1} | {:.1} | {:.1}",
                    r["what"].as_str().unwrap_or_default(),
                    r["format"].as_str().unwrap_or_default(),
                    r["decisions"],
                    num(r, &["latency_us", "p50"]),
                    num(r, &["latency_us", "p99"]),
                    num(r, &["latency_us", "max"])
                )
            },
        );
    }
    Ok(md)
}

/// `fds / threads / RSS MB` of one process in a cycles sample.
fn proc_cell(sample: &serde_json::Value, which: &str) -> String {
    let p = &sample[which];
    if p.is_null() {
        return "-".into();
    }
    format!(
        "{} / {} / {:.2}",
        p["fds"],
        p["threads"],
        num(p, &["rss_kb"]) / 1024.0
    )
}

fn cycles_section(md: &mut String, doc: &serde_json::Value) {
    table_section(
        md,
        doc,
        "Cycles: containers created, run to exit and removed one after another \
         in one pod, ms",
        &[
            "handler",
            "shim",
            "cycles",
            "failures",
            "hangs",
            "cycle p50",
            "p99",
            "max",
            "shim fds / threads / RSS MB, cycle 500",
            "at end",
            "launcher, cycle 500",
            "at end",
            "left after pod removal",
        ],
        |r| {
            let samples = r["samples"].as_array().cloned().unwrap_or_default();
            let early = samples
                .iter()
                .find(|s| s["cycle"] == 500)
                .or_else(|| samples.iter().find(|s| s["cycle"].as_u64() > Some(0)))
                .cloned()
                .unwrap_or_default();
            let last = samples.last().cloned().unwrap_or_default();
            let binary = r["shim_binary"].as_str().unwrap_or_default();
            let build = if binary.contains("/release/") {
                "release"
            } else if binary.contains("/debug/") {
                "debug"
            } else {
                binary
            };
            let hang = match r["hang"].as_object() {
                Some(h) => format!(
                    "1: cycle {} in {}",
                    h["cycle"],
                    h["step"].as_str().unwrap_or_default()
                ),
                None => "0".into(),
            };
            let left = r["leftovers"].as_array().map_or(0, Vec::len);
            format!(
                "{} | {build} | {} of {} | {} | {hang} | {:.1} | {:.1} | {:.1} | {} | {} | {} | {} | {}",
                r["handler"].as_str().unwrap_or_default(),
                r["completed"],
                r["target"],
                r["failures"],
                num(r, &["cycle_ms", "p50"]),
                num(r, &["cycle_ms", "p99"]),
                num(r, &["cycle_ms", "max"]),
                proc_cell(&early, "shim"),
                proc_cell(&last, "shim"),
                proc_cell(&early, "launcher"),
                proc_cell(&last, "launcher"),
                if left == 0 && r["hang"].is_null() {
                    "nothing".to_string()
                } else {
                    format!("{left} items")
                },
            )
        },
    );
    for r in doc["results"].as_array().into_iter().flatten() {
        let _ = writeln!(
            md,
            "Samples ({}): state folders as all / this pod's.\n\n\
             | cycle | shim fds / threads / RSS MB | launcher | containerd task dirs | CRI dirs | /run/edgeshim/k8s.io |\n\
             |---|---|---|---|---|---|",
            r["handler"].as_str().unwrap_or_default()
        );
        for s in r["samples"].as_array().into_iter().flatten() {
            let dirs = |key: &str| format!("{} / {}", s[key]["total"], s[key]["ours"]);
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} |",
                s["cycle"],
                proc_cell(s, "shim"),
                proc_cell(s, "launcher"),
                dirs("task_dirs"),
                dirs("cri_dirs"),
                dirs("shim_dirs"),
            );
        }
        if let Some(h) = r["hang"].as_object() {
            let _ = writeln!(
                md,
                "\nHung at cycle {} in {} after {:.0} s; the shim's processes then:\n\n```\n{}\n```",
                h["cycle"],
                h["step"].as_str().unwrap_or_default(),
                h["waited_s"].as_f64().unwrap_or_default(),
                h["processes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|p| p.as_str())
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        for item in r["leftovers"].as_array().into_iter().flatten() {
            let _ = writeln!(md, "\n> left: {}", item.as_str().unwrap_or_default());
        }
        md.push('\n');
    }
}

/// One scenario's table: its heading, the run line, the column header,
/// then `row`'s cells (without the outer `|`) for each result.
/// `ctr run --rm` per handler, with each one's p50 as a ratio of the peer
/// handlers' (every handler that is neither edgeshim's nor runc).
fn ctr_run_section(md: &mut String, doc: &serde_json::Value) {
    let rows = doc["results"].as_array().cloned().unwrap_or_default();
    let p50 = |r: &serde_json::Value| num(r, &["total", "p50"]);
    let peers: Vec<&serde_json::Value> = rows
        .iter()
        .filter(|r| {
            !matches!(
                r["handler"].as_str().unwrap_or_default(),
                "wasmtime" | "wasmedge" | "runc"
            )
        })
        .collect();
    let mut columns = vec!["handler", "runtime", "runs", "p50", "p90", "p99"];
    let peer_names: Vec<String> = peers
        .iter()
        .map(|r| format!("p50 / {}'s", r["handler"].as_str().unwrap_or_default()))
        .collect();
    columns.extend(peer_names.iter().map(String::as_str));
    table_section(
        md,
        doc,
        "`ctr run --rm` of a hello program (the command's whole run), ms",
        &columns,
        |r| {
            let mut line = format!(
                "{} | {} | {} | {:.1} | {:.1} | {:.1}",
                r["handler"].as_str().unwrap_or_default(),
                r["runtime"].as_str().unwrap_or_default(),
                num(r, &["total", "n"]),
                p50(r),
                num(r, &["total", "p90"]),
                num(r, &["total", "p99"]),
            );
            for peer in &peers {
                let _ = write!(line, " | {:.2}x", p50(r) / p50(peer));
            }
            line
        },
    );
}

/// The compiled-module cache, a row per program and handler, with each
/// first start against Wasmtime's for the same program.
fn aot_section(md: &mut String, doc: &serde_json::Value) {
    let wasmtime_first = |program: &serde_json::Value| {
        doc["results"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["handler"] == "wasmtime" && &r["program"] == program)
            .map(|r| num(r, &["first_container", "p50"]))
            .unwrap_or(f64::NAN)
    };
    table_section(
        md,
        doc,
        "Compiled-module cache: first start (empty cache) vs second (cached), ms",
        &[
            "program",
            "handler",
            "runs",
            "StartContainer first p50",
            "second p50",
            "to output first p50",
            "second p50",
            "first / second",
            "first / Wasmtime's first",
            "background O2 compile p50 s",
        ],
        |r| {
            format!(
                "{} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1}x | {:.2}x | {:.1}",
                r["program"].as_str().unwrap_or_default(),
                r["handler"].as_str().unwrap_or_default(),
                num(r, &["first_container", "n"]),
                num(r, &["first_start", "p50"]),
                num(r, &["second_start", "p50"]),
                num(r, &["first_container", "p50"]),
                num(r, &["second_container", "p50"]),
                num(r, &["speedup_p50"]),
                num(r, &["first_container", "p50"]) / wasmtime_first(&r["program"]),
                num(r, &["background_compile_ms", "p50"]) / 1000.0
            )
        },
    );
}

fn table_section(
    md: &mut String,
    doc: &serde_json::Value,
    heading: &str,
    columns: &[&str],
    row: impl Fn(&serde_json::Value) -> String,
) {
    let _ = write!(md, "### {heading}\n\n{}", run_line(doc));
    let _ = writeln!(
        md,
        "| {} |\n|{}",
        columns.join(" | "),
        "---|".repeat(columns.len())
    );
    for r in doc["results"].as_array().into_iter().flatten() {
        let _ = writeln!(md, "| {} |", row(r));
    }
    md.push('\n');
}

fn cold_table(
    doc: &serde_json::Value,
    name: &str,
    title: &str,
    charts: &Path,
    charts_link: &str,
    md: &mut String,
) -> Result<()> {
    let _ = writeln!(md, "### {title}\n");
    md.push_str(&run_line(doc));
    md.push_str("| variant | n | p50 | p90 | p99 | sandbox p50 | create p50 | start p50 | first output p50 |\n|---|---|---|---|---|---|---|---|---|\n");
    let mut series = Vec::new();
    for r in doc["results"].as_array().into_iter().flatten() {
        let _ = writeln!(
            md,
            "| {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
            r["variant"].as_str().unwrap_or_default(),
            num(r, &["total", "n"]),
            num(r, &["total", "p50"]),
            num(r, &["total", "p90"]),
            num(r, &["total", "p99"]),
            num(r, &["sandbox", "p50"]),
            num(r, &["create", "p50"]),
            num(r, &["start", "p50"]),
            num(r, &["first_output", "p50"]),
        );
        let mut totals: Vec<f64> = r["runs"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| num(t, &["total_ms"]))
            .collect();
        totals.sort_by(f64::total_cmp);
        let n = totals.len().max(1) as f64;
        series.push(Series {
            name: r["variant"].as_str().unwrap_or_default().to_string(),
            points: totals
                .iter()
                .enumerate()
                .map(|(i, t)| ((i + 1) as f64 / n * 100.0, *t))
                .collect(),
        });
    }
    let file = format!("{name}.svg");
    lines(&charts.join(&file), title, "percentile", "ms", &series)?;
    let _ = writeln!(md, "\n![{name}]({charts_link}/{file})\n");
    Ok(())
}

/// containerd's descriptors per container, total and by kind
/// (`8.0: socket 3.0, fifo 4.0, ...`); `-` where the run did not count them.
fn fd_cell(kinds: &serde_json::Value) -> String {
    let Some(kinds) = kinds.as_object().filter(|k| !k.is_empty()) else {
        return "-".into();
    };
    let total: f64 = kinds.values().filter_map(serde_json::Value::as_f64).sum();
    let parts: Vec<String> = kinds
        .iter()
        .map(|(kind, n)| format!("{kind} {:.1}", n.as_f64().unwrap_or_default()))
        .collect();
    format!("{total:.1}: {}", parts.join(", "))
}

/// A density run's processes by role at its last point: means per process.
fn breakdown_markdown(result: &serde_json::Value, md: &mut String) {
    let Some(roles) = result["breakdown"].as_array().filter(|r| !r.is_empty()) else {
        return;
    };
    let last = result["points"]
        .as_array()
        .and_then(|p| p.last())
        .cloned()
        .unwrap_or_default();
    let _ = writeln!(
        md,
        "\n#### Where the memory goes: {} ({} per pod) at {} containers\n",
        result["variant"].as_str().unwrap_or_default(),
        result["per_pod"].as_u64().unwrap_or(1),
        result["reached"]
    );
    md.push_str("Means per process (KB); page tables are kernel memory outside PSS.\n\n");
    md.push_str("| role | processes | PSS | anonymous | private | page tables | PSS by mapping | threads by name |\n|---|---|---|---|---|---|---|---|\n");
    for role in roles {
        let _ = writeln!(
            md,
            "| {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {} | {:.2}: {} |",
            role["role"].as_str().unwrap_or_default(),
            role["processes"],
            num(role, &["pss_kb"]),
            num(role, &["anonymous_kb"]),
            num(role, &["private_kb"]),
            num(role, &["page_tables_kb"]),
            named_values(&role["pss_kb_by_mapping"], 0),
            num(role, &["threads"]),
            named_values(&role["thread_names"], 2)
        );
    }
    let by_part = &last["node_kb_per_container_by_part"];
    if by_part.as_object().is_some_and(|parts| !parts.is_empty()) {
        let _ = writeln!(
            md,
            "\nNode memory per container ({:.0} KB, MemAvailable's fall) by part, KB: {}.",
            num(&last, &["node_used_kb_per_container"]),
            named_values(by_part, 0)
        );
    }
}

/// A JSON object of numbers as `name value, ...` with `decimals`.
fn named_values(object: &serde_json::Value, decimals: usize) -> String {
    object
        .as_object()
        .map(|values| {
            values
                .iter()
                .map(|(name, v)| format!("{name} {:.decimals$}", v.as_f64().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

fn density_markdown(
    results: &Path,
    charts: &Path,
    charts_link: &str,
    md: &mut String,
) -> Result<()> {
    let mut docs: Vec<(String, serde_json::Value)> = std::fs::read_dir(results)?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let stem = name.strip_suffix(".json")?.to_string();
            stem.starts_with("density-")
                .then(|| load(results, &stem).map(|d| (stem, d)))?
        })
        .collect();
    if docs.is_empty() {
        return Ok(());
    }
    docs.sort_by(|a, b| a.0.cmp(&b.0));
    md.push_str("### Density: sleeping containers\n\n");
    md.push_str("| variant | per pod | target | reached | running at end | PSS per container (MB) | node memory per container (MB) | cgroup per container (MB) | containerd fds per container | ms per container at end | run |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
    let (mut memory, mut ramp, mut notes) = (Vec::new(), Vec::new(), Vec::new());
    for (_, doc) in &docs {
        let r = &doc["results"];
        let last = r["points"]
            .as_array()
            .and_then(|p| p.last())
            .cloned()
            .unwrap_or_default();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {:.2} | {:.2} | {:.2} | {} | {:.0} | {} |",
            r["variant"].as_str().unwrap_or_default(),
            r["per_pod"].as_u64().unwrap_or(1),
            r["target"],
            r["reached"],
            r["running_at_end"],
            num(&last, &["pss_kb_per_container"]) / 1024.0,
            num(&last, &["node_used_kb_per_container"]) / 1024.0,
            num(&last, &["cgroup_kb_per_container"]) / 1024.0,
            fd_cell(&last["containerd_fds_per_container"]),
            num(&last, &["ms_per_container"]),
            doc["run"]["time"].as_str().unwrap_or_default()
        );
        let name = format!(
            "{} ({} per pod)",
            r["variant"].as_str().unwrap_or_default(),
            r["per_pod"].as_u64().unwrap_or(1)
        );
        let points = r["points"].as_array().cloned().unwrap_or_default();
        memory.push(Series {
            name: name.clone(),
            points: points
                .iter()
                .map(|p| {
                    (
                        num(p, &["containers"]),
                        num(p, &["pss_kb_per_container"]) / 1024.0,
                    )
                })
                .collect(),
        });
        ramp.push(Series {
            name,
            points: points
                .iter()
                .map(|p| (num(p, &["containers"]), num(p, &["ms_per_container"])))
                .collect(),
        });
        if let Some(error) = r["error"].as_str() {
            notes.push(format!(
                "> {}: {error}\n",
                r["variant"].as_str().unwrap_or_default()
            ));
        }
    }
    if !notes.is_empty() {
        md.push('\n');
        md.push_str(&notes.join("\n"));
    }
    for (_, doc) in &docs {
        breakdown_markdown(&doc["results"], md);
    }
    lines(
        &charts.join("density-memory.svg"),
        "PSS per running container",
        "containers",
        "MB",
        &memory,
    )?;
    lines(
        &charts.join("density-ramp.svg"),
        "Start time per container while ramping",
        "containers",
        "ms",
        &ramp,
    )?;
    let _ = writeln!(
        md,
        "\n![memory per container]({charts_link}/density-memory.svg)\n![ramp]({charts_link}/density-ramp.svg)\n"
    );
    Ok(())
}
