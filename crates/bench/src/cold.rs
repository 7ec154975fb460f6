//! Scenarios 1 and 4: cold starts, one pod after another, variants
//! interleaved (A B A B ...) so that a shared machine's noise hits all alike.

use std::path::Path;

use anyhow::Result;
use edgeshim_cri::Cri;
use serde::Serialize;

use crate::images::{Program, workload};
use crate::pod_run::{self, PodTiming};
use crate::stats::{Summary, summarize};
use crate::variant::Variant;

#[derive(Debug, Serialize)]
pub struct ColdResult {
    pub variant: String,
    pub handler: String,
    pub program: Program,
    pub runs: Vec<PodTiming>,
    pub total: Summary,
    pub sandbox: Summary,
    pub create: Summary,
    pub start: Summary,
    pub first_output: Summary,
}

pub fn run(
    cri: &mut Cri,
    variants: &[Variant],
    program: Program,
    n: usize,
    log_root: &Path,
) -> Result<Vec<ColdResult>> {
    let progress = crate::progress(n * variants.len(), "cold starts");
    let mut runs: Vec<Vec<PodTiming>> = vec![Vec::new(); variants.len()];
    for round in 0..n {
        for (index, variant) in variants.iter().enumerate() {
            variant.apply()?;
            let name = format!("cold-{}-{round}", variant.slug());
            let (pod, timing) = pod_run::start(
                cri,
                &variant.handler,
                &workload(&variant.handler, program),
                &name,
                log_root,
            )?;
            pod_run::remove(cri, &pod)?;
            runs[index].push(timing);
            progress.inc(1);
        }
    }
    progress.finish_and_clear();
    Ok(variants
        .iter()
        .zip(runs)
        .map(|(variant, runs)| {
            let pick =
                |f: fn(&PodTiming) -> f64| summarize(&runs.iter().map(f).collect::<Vec<_>>());
            ColdResult {
                variant: variant.label(),
                handler: variant.handler.clone(),
                program,
                total: pick(|t| t.total_ms),
                sandbox: pick(|t| t.sandbox_ms),
                create: pick(|t| t.create_ms),
                start: pick(|t| t.start_ms),
                first_output: pick(|t| t.first_output_ms),
                runs,
            }
        })
        .collect())
}
