// Throwaway profiling harness (not committed): regorus interpreter vs RVM.
use std::time::Instant;
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args[1].parse().unwrap();
    let lib = std::path::Path::new(&args[2]);
    let inputs: Vec<regorus::Value> = std::fs::read_to_string(&args[3])
        .unwrap()
        .lines()
        .map(|l| regorus::Value::from_json_str(l).unwrap())
        .collect();
    let mut e = regorus::Engine::new();
    for f in std::fs::read_dir(lib).unwrap() {
        let p = f.unwrap().path();
        if p.extension().map(|x| x == "rego").unwrap_or(false) {
            e.add_policy_from_file(&p).unwrap();
        }
    }
    e.add_data(regorus::Value::from_json_file(lib.join("data.json")).unwrap())
        .unwrap();
    let mut v = Vec::new();
    for i in 0..n {
        let t = Instant::now();
        e.set_input(inputs[i % inputs.len()].clone());
        let _ = e.eval_rule("data.edgeshim.decision".into()).unwrap();
        v.push(t.elapsed().as_secs_f64() * 1e6);
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!("interp p50 {:.1} p99 {:.1}", v[n / 2], v[n * 99 / 100]);
}
