// Throwaway profiling harness (not committed).
use std::time::{Duration, Instant};
fn main() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args[1].parse().unwrap();
    let lib = args
        .get(2)
        .cloned()
        .unwrap_or_else(|| repo.join("policies/library").display().to_string());
    let cache = tempfile::tempdir().unwrap();
    let mut p = edgeshim_policy::LoadedPolicy::load(
        std::path::Path::new(&lib),
        "edgeshim/decision",
        cache.path(),
    )
    .unwrap();
    let inputs: Vec<serde_json::Value> = match args.get(3) {
        Some(f) => std::fs::read_to_string(f)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect(),
        None => vec![
            serde_json::from_str(
                &std::fs::read_to_string(repo.join("docs/policy/input.example.json")).unwrap(),
            )
            .unwrap(),
        ],
    };
    let mut v = Vec::with_capacity(n);
    let mut out = Vec::new();
    for i in 0..n {
        let input = &inputs[i % inputs.len()];
        let t = Instant::now();
        let (o, _) = p.decide(input, Duration::from_millis(50));
        v.push(t.elapsed().as_secs_f64() * 1e6);
        if i < inputs.len() {
            out.push(format!("{:?}", o));
        }
    }
    if let Some(f) = args.get(4) {
        std::fs::write(f, out.join("\n")).unwrap();
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "p50 {:.1} p99 {:.1} max {:.1}",
        v[n / 2],
        v[n * 99 / 100],
        v[n - 1]
    );
}
