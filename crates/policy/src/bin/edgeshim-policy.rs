//! `edgeshim-policy`: try a policy before deploying it.
//!
//! - `eval`: evaluates a policy (Rego or OPA Wasm, any shape the shim takes)
//!   against an input document exactly as the shim would, and prints the
//!   decision, the reasons and the evaluation time (like `opa eval`); with
//!   `--inputs FILE.jsonl` it decides every line and prints one JSON line
//!   each.
//! - `input`: prints the input document the shim would build from an OCI
//!   bundle folder (its rootfs must hold the entrypoint).
//! - `verify`: checks a policy bundle before it ships (its policy.toml
//!   parses, its policy loads and passes its load check, and it decides a
//!   JSON-lines file of cases as expected); exit 1 when it does not.
//! - `diff`: decides a recorded decision log (lines with their input,
//!   `log_inputs = true`) again with a new policy and prints each decision
//!   that would change as a JSON line; `--exit-code`: exit 1 if any.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use edgeshim_bundle::Bundle;
use edgeshim_policy::config::{DEFAULT_ENTRYPOINT, DEFAULT_MAX_MODULE_BYTES};
use edgeshim_policy::{Action, DecisionInput, LoadedPolicy, ShimFacts, WasmHost, rollout};

#[derive(Parser)]
#[command(
    version,
    about = "Evaluate edgeshim policies and show their input documents"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Decide an input document (or a JSON-lines file of them) with a policy
    Eval {
        /// A .rego file, a folder, a policy.wasm or an OPA bundle (.tar.gz)
        #[arg(long)]
        policy: PathBuf,
        /// The input document (JSON)
        #[arg(long, conflicts_with = "inputs")]
        input: Option<PathBuf>,
        /// One input document per line; prints one decision per line
        #[arg(long)]
        inputs: Option<PathBuf>,
        /// The entrypoint whose value is the decision
        #[arg(long, default_value = DEFAULT_ENTRYPOINT)]
        entrypoint: String,
        /// An entrypoint evaluated once at load (the config's `check`): a
        /// policy whose value there is a non-empty set of problems is refused
        #[arg(long)]
        check: Option<String>,
        /// Evaluation budget in milliseconds
        #[arg(long, default_value_t = 50)]
        budget_ms: u64,
        /// Where compiled policies are cached
        #[arg(long, default_value = "/var/lib/edgeshim/cache/policy")]
        cache_dir: PathBuf,
    },
    /// Print the input document the shim builds from a bundle folder
    Input {
        /// The OCI bundle folder (config.json and rootfs)
        bundle: PathBuf,
        #[arg(long, value_enum, default_value_t = CliAction::Create)]
        action: CliAction,
        /// Container id (default: the folder's name)
        #[arg(long)]
        id: Option<String>,
        /// Decide it as the task that started its own shim (the shim's
        /// fact): kind `sandbox` when its id is also its
        /// io.kubernetes.cri.sandbox-id annotation
        #[arg(long)]
        started_shim: bool,
        /// Largest Wasm entrypoint read (the config's max_module_bytes)
        #[arg(long, default_value_t = DEFAULT_MAX_MODULE_BYTES)]
        max_module_bytes: u64,
    },
    /// Check a policy bundle before it ships: config, load check, cases
    Verify {
        /// The policy.toml to ship (its `policy` and `check` are used)
        #[arg(long)]
        config: PathBuf,
        /// JSON lines of {"input": ..., "allow": bool, "reasons": [...]}
        /// (reasons optional; compared as a set)
        #[arg(long)]
        cases: Option<PathBuf>,
    },
    /// Decide recorded decisions again with a new policy; print the changes
    Diff {
        /// The new policy.toml
        #[arg(long)]
        config: PathBuf,
        /// Decision logs recorded with log_inputs = true (repeat for rotated files)
        #[arg(long = "log", required = true)]
        logs: Vec<PathBuf>,
        /// Exit 1 when any decision would change (as `git diff --exit-code`)
        #[arg(long)]
        exit_code: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum CliAction {
    Create,
    Start,
    Update,
}

fn main() {
    if let Err(e) = run(Cli::parse()) {
        eprintln!("edgeshim-policy: {e:#}");
        std::process::exit(2);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Eval {
            policy,
            input,
            inputs,
            entrypoint,
            check,
            budget_ms,
            cache_dir,
        } => {
            let mut loaded = LoadedPolicy::load_checked(
                WasmHost::for_this_build(),
                &policy,
                &entrypoint,
                check.as_deref(),
                &cache_dir,
            )
            .map_err(anyhow::Error::msg)?;
            let budget = Duration::from_millis(budget_ms);
            match (input, inputs) {
                (Some(input), None) => eval_one(&mut loaded, &input, budget),
                (None, Some(inputs)) => eval_lines(&mut loaded, &inputs, budget),
                _ => bail!("give --input FILE or --inputs FILE.jsonl"),
            }
        }
        Command::Verify { config, cases } => {
            let report = rollout::verify(&config, cases.as_deref()).map_err(anyhow::Error::msg)?;
            for mismatch in &report.mismatches {
                println!("{}", serde_json::to_string(mismatch)?);
            }
            eprintln!(
                "policy revision {}: loads and passes its check; {} of {} cases as expected",
                report.revision,
                report.cases - report.mismatches.len(),
                report.cases
            );
            if !report.mismatches.is_empty() {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Diff {
            config,
            logs,
            exit_code,
        } => {
            let report = rollout::diff(&config, &logs).map_err(anyhow::Error::msg)?;
            for change in &report.changes {
                println!("{}", serde_json::to_string(change)?);
            }
            eprintln!(
                "policy revision {}: {} decisions read, {} with their input decided again, {} would change",
                report.revision,
                report.decisions,
                report.with_input,
                report.changes.len()
            );
            if exit_code && !report.changes.is_empty() {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Input {
            bundle,
            action,
            id,
            started_shim,
            max_module_bytes,
        } => {
            let loaded = Bundle::load(&bundle).with_context(|| bundle.display().to_string())?;
            let workload = loaded
                .workload(max_module_bytes)
                .context("resolving the entrypoint")?;
            let id = id.unwrap_or_else(|| {
                bundle
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            });
            let action = match action {
                CliAction::Create => Action::Create,
                CliAction::Start => Action::Start,
                CliAction::Update => Action::Update,
            };
            let facts = ShimFacts::for_task(started_shim, &id, &loaded);
            let input = DecisionInput::from_bundle(action, &id, &loaded, &workload, &facts);
            println!("{}", serde_json::to_string_pretty(&input)?);
            Ok(())
        }
    }
}

fn eval_one(policy: &mut LoadedPolicy, input: &PathBuf, budget: Duration) -> Result<()> {
    let text = std::fs::read_to_string(input).with_context(|| input.display().to_string())?;
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not JSON", input.display()))?;
    let (outcome, took) = policy.decide(&value, budget);
    let answer = outcome.map_err(anyhow::Error::msg)?;
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "allow": answer.allow,
            "reasons": answer.reasons,
            "network": answer.network,
            "revision": policy.revision,
            "format": policy.format.to_string(),
            "eval_us": took.as_secs_f64() * 1e6,
        }))?
    );
    Ok(())
}

fn eval_lines(policy: &mut LoadedPolicy, inputs: &PathBuf, budget: Duration) -> Result<()> {
    let file = std::fs::File::open(inputs).with_context(|| inputs.display().to_string())?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for (number, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line?;
        let value: serde_json::Value = serde_json::from_str(&line)
            .with_context(|| format!("{} line {}: not JSON", inputs.display(), number + 1))?;
        let (outcome, _) = policy.decide(&value, budget);
        let record = match outcome {
            Ok(mut answer) => {
                answer.reasons.sort();
                let mut record =
                    serde_json::json!({"allow": answer.allow, "reasons": answer.reasons});
                if let Some(network) = answer.network {
                    record["network"] = serde_json::json!(network);
                }
                record
            }
            Err(e) => serde_json::json!({"error": e}),
        };
        writeln!(out, "{record}")?;
    }
    Ok(())
}
