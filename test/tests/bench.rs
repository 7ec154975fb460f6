//! The benchmark tool runs every scenario against the real containerd at a
//! small size and writes well-formed results, Markdown and SVG charts.
//! (Speed is never asserted: the figures belong in BENCHMARKS.md.)

use std::path::Path;
use std::process::Command;

use edgeshim_integration::*;

fn bench(args: &[&str], out: &Path) {
    let output = Command::new(workspace_binary("edgeshim-bench"))
        .args(args)
        .arg("--out")
        .arg(out)
        .env("EDGESHIM_CONTAINERD_ADDRESS", address())
        .output()
        .expect("run edgeshim-bench (cargo build --workspace first)");
    assert!(
        output.status.success(),
        "edgeshim-bench {args:?}: {}",
        stderr(&output)
    );
}

fn results(out: &Path, name: &str) -> serde_json::Value {
    let path = out.join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let doc: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert!(
        doc["run"]["machine"]
            .as_str()
            .is_some_and(|m| m.contains("cores"))
    );
    assert!(
        doc["run"]["command"]
            .as_str()
            .is_some_and(|c| c.contains(name.split('-').next().unwrap_or(name)))
    );
    doc
}

fn report(results: &Path, markdown: &Path, charts: &Path) {
    let output = Command::new(workspace_binary("edgeshim-bench"))
        .args(["report", "--results"])
        .arg(results)
        .arg("--markdown")
        .arg(markdown)
        .arg("--charts")
        .arg(charts)
        .output()
        .expect("report");
    assert!(output.status.success(), "{}", stderr(&output));
}

#[test]
fn test_bench_scenarios_write_well_formed_results_and_a_report() {
    let out = tempfile::tempdir().expect("tempdir");
    let out = out.path();
    let handler = engine().name;
    bench(
        &["cold", "-n", "2", "--handler", &format!("{handler},runc")],
        out,
    );
    let cold = results(out, "cold");
    let variants = cold["results"].as_array().expect("results");
    assert_eq!(variants.len(), 2);
    for variant in variants {
        assert_eq!(variant["runs"].as_array().map(Vec::len), Some(2));
        let p50 = variant["total"]["p50"].as_f64().expect("p50");
        let parts: f64 = ["sandbox", "create", "start", "first_output"]
            .iter()
            .map(|k| variant[k]["p50"].as_f64().expect("part"))
            .sum();
        assert!(p50 > 0.0 && parts > 0.0, "{variant}");
    }
    // Each Wasm pod shim's first decision, read back from the decision log
    // (hack/containerd.sh env sets EDGESHIM_DECISION_LOG).
    std::env::var("EDGESHIM_DECISION_LOG").expect("EDGESHIM_DECISION_LOG");
    // (Written by the cold run, so its command names cold.)
    let in_situ: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("policy-in-situ.json")).expect("policy-in-situ.json"),
    )
    .expect("json");
    assert_eq!(
        in_situ["run"]["command"], cold["run"]["command"],
        "written by the cold run"
    );
    let in_situ = &in_situ["results"][0];
    assert_eq!(in_situ["decisions"], 2, "{in_situ}");
    assert!(
        in_situ["what"]
            .as_str()
            .is_some_and(|w| w.starts_with(handler)),
        "{in_situ}"
    );
    assert!(
        in_situ["latency_us"]["p50"]
            .as_f64()
            .is_some_and(|us| us > 0.0)
    );

    bench(
        &["ctr", "-n", "1", "--handler", &format!("{handler},runc")],
        out,
    );
    let ctr = results(out, "ctr-run");
    let ctr = ctr["results"].as_array().expect("results");
    assert_eq!(ctr.len(), 2);
    assert_eq!(ctr[0]["runtime"], format!("io.containerd.{handler}.v1"));
    assert_eq!(ctr[1]["runtime"], "io.containerd.runc.v2");
    for row in ctr {
        assert_eq!(row["total"]["n"], 1, "{row}");
        assert!(row["total"]["p50"].as_f64().is_some_and(|ms| ms > 0.0));
    }

    bench(&["burst", "-n", "2", "--handler", handler], out);
    let burst = results(out, "burst");
    assert_eq!(burst["results"][0]["failures"], 0);
    assert_eq!(burst["results"][0]["per_pod"]["n"], 2);

    bench(
        &[
            "density",
            "--count",
            "2",
            "--step",
            "1",
            "--handler",
            handler,
        ],
        out,
    );
    let density = results(out, &format!("density-{handler}-2"));
    assert_eq!(density["results"]["reached"], 2);
    assert_eq!(density["results"]["running_at_end"], 2, "{density}");
    let points = density["results"]["points"].as_array().expect("points");
    assert_eq!(points.len(), 2);
    assert!(points[1]["pss_kb"].as_u64().is_some_and(|kb| kb > 0));
    // Where the memory goes: both pods' shims and containers, sorted by
    // role (other pods on the node may add to the counts, never take).
    let roles = density["results"]["breakdown"]
        .as_array()
        .expect("breakdown");
    let role = |name: &str| {
        roles
            .iter()
            .find(|r| r["role"] == name)
            .unwrap_or_else(|| panic!("no {name} in {roles:?}"))
    };
    for name in ["shim", "pause"] {
        assert!(
            role(name)["processes"].as_u64().is_some_and(|n| n >= 2),
            "{name}: {roles:?}"
        );
        assert!(role(name)["pss_kb"].as_f64().is_some_and(|kb| kb > 0.0));
        assert!(role(name)["threads"].as_f64().is_some_and(|n| n >= 1.0));
    }
    assert!(
        role("Wasm container")["processes"]
            .as_u64()
            .is_some_and(|n| n >= 2),
        "{roles:?}"
    );

    let cache_dir = std::env::var("EDGESHIM_CACHE_DIR")
        .expect("EDGESHIM_CACHE_DIR (hack/containerd.sh env sets it)");
    bench(
        &[
            "aot",
            "-n",
            "1",
            "--handler",
            handler,
            "--cache-dir",
            &cache_dir,
        ],
        out,
    );
    let aot = results(out, "aot");
    let programs: Vec<&serde_json::Value> = aot["results"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|row| &row["program"])
        .collect();
    assert_eq!(programs, ["Compute", "Sqlite"], "{aot}");
    for aot in aot["results"].as_array().into_iter().flatten() {
        assert_eq!(aot["handler"], handler);
        for key in [
            "first_start",
            "second_start",
            "first_container",
            "second_container",
        ] {
            assert_eq!(aot[key]["n"], 1, "{key}: {aot}");
            assert!(aot[key]["p50"].as_f64().is_some_and(|ms| ms > 0.0), "{aot}");
        }
        // Measured, and past once no compile waits (none on Wasmtime).
        assert!(
            aot["background_compile_ms"]["p50"]
                .as_f64()
                .is_some_and(|ms| ms >= 0.0),
            "{aot}"
        );
    }
    let cache = std::fs::read_dir(&cache_dir).expect("cache folder");
    for engine in cache.flatten() {
        let waiting = std::fs::read_dir(engine.path())
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".pending-"))
            .count();
        assert_eq!(waiting, 0, "{}", engine.path().display());
    }

    let shim = workspace_binary(engine().shim_binary);
    bench(&["shim", "-n", "2", "--shim", &shim.to_string_lossy()], out);
    let shim_only = results(out, "shim-only");
    let shim_only = &shim_only["results"][0];
    assert_eq!(shim_only["shim"], engine().shim_binary);
    assert_eq!(shim_only["create_to_output"]["n"], 2, "{shim_only}");
    assert!(shim_only["first_ms"].as_f64().is_some_and(|ms| ms > 0.0));
    // The shim it started has shut down, with its containers.
    assert!(
        !std::fs::read_dir("/proc")
            .expect("/proc")
            .flatten()
            .any(|p| std::fs::read(p.path().join("cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains("shim-only-"))),
        "a shim-only shim is still running"
    );

    bench(
        &[
            "cycles",
            "-n",
            "20",
            "--sample-every",
            "10",
            "--handler",
            handler,
        ],
        out,
    );
    let cycles = results(out, "cycles");
    let cycles = &cycles["results"][0];
    assert_eq!(cycles["handler"], handler);
    assert_eq!(
        (cycles["completed"].as_u64(), cycles["failures"].as_u64()),
        (Some(20), Some(0)),
        "{cycles}"
    );
    assert!(cycles["hang"].is_null(), "{cycles}");
    assert_eq!(
        cycles["leftovers"].as_array().map(Vec::len),
        Some(0),
        "{cycles}"
    );
    assert_eq!(cycles["cycle_ms"]["n"], 20, "{cycles}");
    assert!(
        cycles["cycle_ms"]["p50"]
            .as_f64()
            .is_some_and(|ms| ms > 0.0)
    );
    // Samples at the start, at 10 and at 20 cycles: the shim and its
    // launcher read, no state of a removed container left.
    let samples = cycles["samples"].as_array().expect("samples");
    assert_eq!(
        samples
            .iter()
            .map(|s| s["cycle"].as_u64())
            .collect::<Vec<_>>(),
        [Some(0), Some(10), Some(20)]
    );
    for sample in samples {
        // A launcher idle for 5 s is stopped, so it may be missing from a
        // sample (on the WasmEdge shim in a debug build, it was); when it is
        // there, it is read.
        for process in ["shim", "launcher"] {
            if process == "launcher" && sample[process].is_null() {
                continue;
            }
            assert!(
                sample[process]["fds"].as_u64().is_some_and(|n| n > 0),
                "{process}: {sample}"
            );
            assert!(
                sample[process]["threads"].as_u64().is_some_and(|n| n > 0),
                "{process}: {sample}"
            );
        }
        // Only the pod's own folders (task bundle, CRI sandbox, shim state).
        for dirs in ["task_dirs", "cri_dirs", "shim_dirs"] {
            assert!(
                sample[dirs]["ours"].as_u64().is_some_and(|n| n <= 1),
                "{dirs}: {sample}"
            );
        }
    }

    bench(&["policy", "-n", "50"], out);
    let policy = results(out, "policy");
    assert_eq!(policy["results"].as_array().map(Vec::len), Some(4));

    let markdown = out.join("BENCHMARKS.md");
    std::fs::write(&markdown, "# Benchmarks\n\nhand-written part\n").expect("write");
    let charts = out.join("charts");
    report(out, &markdown, &charts);
    let text = std::fs::read_to_string(&markdown).expect("markdown");
    assert!(
        text.starts_with("# Benchmarks\n\nhand-written part\n"),
        "{text}"
    );
    for heading in [
        "### Cold start",
        "### Burst",
        "### Density",
        "### Compiled-module cache",
        "### Shim only",
        "### Policy decisions",
        "### Cycles",
    ] {
        assert!(text.contains(heading), "{heading} missing from\n{text}");
    }
    for chart in ["cold.svg", "density-memory.svg", "density-ramp.svg"] {
        let svg = std::fs::read_to_string(charts.join(chart)).expect("chart");
        assert!(svg.contains("<svg"), "{chart}");
    }
    // A second report replaces the generated part rather than appending.
    report(out, &markdown, &charts);
    let twice = std::fs::read_to_string(&markdown).expect("markdown");
    assert_eq!(twice.matches("### Burst").count(), 1);
}
