//! A variant of a scenario: a runtime handler, optionally with the policy
//! gate of the private containerd switched to a mode for its runs, or the
//! node's metrics exporter on or off.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};

#[derive(Debug, Clone)]
pub struct Variant {
    pub handler: String,
    /// `enforce` or `off`, written into `policy_config` before each run.
    pub gate: Option<(String, PathBuf)>,
    /// Whether `edgeshim-metrics` runs during its runs.
    pub exporter: Option<(bool, Arc<crate::exporter::Switch>)>,
}

impl Variant {
    pub fn label(&self) -> String {
        match (&self.gate, &self.exporter) {
            (Some((mode, _)), _) => format!("{} (gate {mode})", self.handler),
            (None, Some((on, _))) => format!("{} (exporter {})", self.handler, on_off(*on)),
            (None, None) => self.handler.clone(),
        }
    }

    /// A name part for pods.
    pub fn slug(&self) -> String {
        match (&self.gate, &self.exporter) {
            (Some((mode, _)), _) => format!("{}-{mode}", self.handler),
            (None, Some((on, _))) => format!("{}-exporter-{}", self.handler, on_off(*on)),
            (None, None) => self.handler.clone(),
        }
    }

    /// Sets the gate's mode and the exporter's state. Every pod gets a new
    /// shim, whose gate reads the config at its first decision, so the mode
    /// holds for the whole run.
    pub fn apply(&self) -> Result<()> {
        if let Some((on, switch)) = &self.exporter {
            switch.set(*on)?;
        }
        let Some((mode, config)) = &self.gate else {
            return Ok(());
        };
        let text = std::fs::read_to_string(config)
            .with_context(|| format!("policy config {}", config.display()))?;
        let changed: String = text
            .lines()
            .map(|line| {
                if line.trim_start().starts_with("mode") {
                    format!("mode = \"{mode}\"")
                } else {
                    line.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        if changed.trim() != text.trim() {
            let staged = config.with_extension("toml.bench");
            std::fs::write(&staged, changed + "\n")?;
            std::fs::rename(&staged, config)?;
        }
        Ok(())
    }
}

fn on_off(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}
