//! The soak's part of RELIABILITY.md: per run, the verdict, a table of the
//! samples, the RSS fits and a chart of RSS against cycles.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;

use super::SoakResult;
use super::sample::Sample;
use crate::charts::{Series, lines};

/// Why a run did not pass, in one line.
pub fn why(r: &SoakResult) -> String {
    let mut reasons = Vec::new();
    if let Some(hang) = &r.hang {
        reasons.push(format!("hang: {hang}"));
    }
    if let Some(error) = &r.error {
        reasons.push(error.clone());
    }
    if r.failures > 0 {
        reasons.push(format!(
            "{} cycles failed, first: {:?}",
            r.failures,
            r.failure_list.first()
        ));
    }
    if r.completed != r.target {
        reasons.push(format!("{} of {} cycles run", r.completed, r.target));
    }
    for f in r.flat.iter().filter(|f| !f.flat) {
        let how = if f.exact { "moved" } else { "climbed" };
        reasons.push(format!("{} {how} between {} and {}", f.what, f.min, f.max));
    }
    if r.rss_judged {
        for f in r.rss.iter().filter(|f| !f.pass) {
            reasons.push(format!(
                "{} RSS grows by up to {:.1} KB per 1,000 cycles (limit {})",
                f.process, f.upper_kb_per_1000, r.rss_limit_kb_per_1000
            ));
        }
    }
    if !r.leftovers.is_empty() {
        reasons.push(format!("left: {:?}", r.leftovers));
    }
    let containerd_moved = r
        .flat
        .iter()
        .any(|f| !f.flat && f.what == "containerd descriptors");
    for s in r
        .samples
        .iter()
        .filter(|s| containerd_moved && s.cycle >= r.steady_from)
    {
        for new in &s.containerd_new_descriptors {
            reasons.push(format!(
                "containerd's descriptors new at cycle {}: {new}",
                s.cycle
            ));
        }
    }
    if let (Some(cap), Some(max)) = (
        r.decision_log_cap,
        r.samples
            .iter()
            .filter(|s| s.cycle >= r.steady_from)
            .map(|s| s.decision_log_bytes)
            .max(),
    ) && max > cap
    {
        reasons.push(format!("the decision log reached {max} bytes (cap {cap})"));
    }
    if reasons.is_empty() {
        "no steady samples".into()
    } else {
        reasons.join("; ")
    }
}

fn process_cell(s: &Sample, role: &str) -> String {
    match s
        .processes
        .iter()
        .find(|p| p.role == role)
        .and_then(|p| p.sample.as_ref())
    {
        Some(p) => format!(
            "{} / {} / {:.2}",
            p.fds,
            p.threads,
            p.rss_kb as f64 / 1024.0
        ),
        None => "-".into(),
    }
}

/// A sample as one log line.
pub fn one_line(s: &Sample) -> String {
    let processes: Vec<String> = s
        .processes
        .iter()
        .map(|p| format!("{} {}", p.role, process_cell(s, &p.role)))
        .collect();
    format!(
        "{}; cgroups {} mounts {} sockets {} state {} log {} B",
        processes.join(", "),
        s.cgroups,
        s.mounts,
        s.sockets,
        s.state_dirs,
        s.decision_log_bytes
    )
}

/// RELIABILITY.md's soak section for the runs in `results` (the `results`
/// array of soak.json), with a chart per run in `charts`.
pub fn section(doc: &serde_json::Value, charts: &Path, charts_link: &str) -> Result<String> {
    let runs: Vec<SoakResult> = serde_json::from_value(doc["results"].clone())?;
    let run = &doc["run"];
    let mut md = String::new();
    for r in &runs {
        let build = if r.shim_binary.contains("/release/") {
            "release".to_string()
        } else if r.shim_binary.contains("/debug/") {
            "debug".to_string()
        } else {
            format!("`{}`", r.shim_binary)
        };
        writeln!(
            md,
            "### Soak on the {} shim ({build}): {}\n",
            r.handler,
            if r.pass { "passed" } else { "FAILED" }
        )?;
        writeln!(
            md,
            "_{} · {} · {} · `{}`_\n",
            run["time"].as_str().unwrap_or_default(),
            run["machine"].as_str().unwrap_or_default(),
            run["versions"].as_str().unwrap_or_default(),
            run["command"].as_str().unwrap_or_default()
        )?;
        writeln!(
            md,
            "{} of {} cycles in {} long-lived pods, {} failed; {} pods created, run and \
             removed along the way; {} creates refused by the library as due; gate: {}; \
             {:.0} s. Verdict: {}.\n",
            r.completed,
            r.target,
            r.pods,
            r.failures,
            r.pods_along_the_way,
            r.refused_as_due,
            r.gate,
            r.elapsed_s,
            if r.pass {
                "no growth".to_string()
            } else {
                why(r)
            }
        )?;
        let roles: Vec<String> = r
            .samples
            .first()
            .map(|s| s.processes.iter().map(|p| p.role.clone()).collect())
            .unwrap_or_default();
        write!(md, "| cycle |")?;
        for role in &roles {
            write!(md, " {role} fds / threads / RSS MB |")?;
        }
        writeln!(
            md,
            " cgroup folders | mounts | shim sockets | state folders | decision log KB (files) |"
        )?;
        writeln!(md, "|{}", "---|".repeat(roles.len() + 6))?;
        for s in &r.samples {
            write!(md, "| {} |", s.cycle)?;
            for role in &roles {
                write!(md, " {} |", process_cell(s, role))?;
            }
            writeln!(
                md,
                " {} | {} | {} | {} | {:.0} ({}) |",
                s.cgroups,
                s.mounts,
                s.sockets,
                s.state_dirs,
                s.decision_log_bytes as f64 / 1024.0,
                s.decision_log_files
            )?;
        }
        if let (Some(before), Some(after)) = (&r.before, &r.after) {
            writeln!(
                md,
                "\nBefore the run and after its pods were removed: cgroup folders {} / {}, \
                 mounts {} / {}, shim sockets {} / {}, state folders {} / {}; left: {}.",
                before.cgroups,
                after.cgroups,
                before.mounts,
                after.mounts,
                before.sockets,
                after.sockets,
                before.state_dirs,
                after.state_dirs,
                if r.leftovers.is_empty() {
                    "nothing".to_string()
                } else {
                    r.leftovers.join(", ")
                }
            )?;
        }
        let moved: Vec<&str> = r
            .flat
            .iter()
            .filter(|f| !f.flat)
            .map(|f| f.what.as_str())
            .collect();
        let loose: Vec<String> = r
            .flat
            .iter()
            .filter(|f| !f.exact)
            .map(|f| format!("{} {} to {}", f.what, f.min, f.max))
            .collect();
        writeln!(
            md,
            "\nFrom cycle {} on, {} of {} counts flat{} (exactly, except {}: ending at \
             most {} above where it began, as the Go runtime keeps every thread it \
             starts).\n",
            r.steady_from,
            r.flat.len() - moved.len(),
            r.flat.len(),
            if moved.is_empty() {
                String::new()
            } else {
                format!("; moved: {}", moved.join(", "))
            },
            loose.join(", "),
            super::verdict::GO_THREADS_SLACK
        )?;
        writeln!(
            md,
            "RSS against cycles from cycle {} on (least squares; the bound is the upper \
             end of the slope's 95% confidence interval; limit {} KB per 1,000 cycles{}):\n",
            r.steady_from,
            r.rss_limit_kb_per_1000,
            if r.rss_judged {
                ""
            } else {
                ", not judged in a run this short"
            }
        )?;
        writeln!(
            md,
            "| process | samples | RSS MB first / last | slope KB / 1,000 cycles | 95% bound | within |"
        )?;
        writeln!(md, "|---|---|---|---|---|---|")?;
        for f in &r.rss {
            writeln!(
                md,
                "| {} | {} | {:.2} / {:.2} | {:.1} | {:.1} | {} |",
                f.process,
                f.samples,
                f.first_kb as f64 / 1024.0,
                f.last_kb as f64 / 1024.0,
                f.slope_kb_per_1000,
                f.upper_kb_per_1000,
                if f.pass { "yes" } else { "no" }
            )?;
        }
        let file = format!("soak-rss-{}.svg", r.handler);
        let series: Vec<Series> = roles
            .iter()
            .map(|role| Series {
                name: role.clone(),
                points: r
                    .samples
                    .iter()
                    .filter_map(|s| {
                        let p = s.processes.iter().find(|p| &p.role == role)?;
                        Some((s.cycle as f64, p.sample.as_ref()?.rss_kb as f64 / 1024.0))
                    })
                    .collect(),
            })
            .collect();
        lines(
            &charts.join(&file),
            &format!("Soak, {} shim: RSS per process", r.handler),
            "cycles",
            "RSS, MB",
            &series,
        )?;
        writeln!(md, "\n![soak RSS, {}]({charts_link}/{file})\n", r.handler)?;
    }
    Ok(md)
}
