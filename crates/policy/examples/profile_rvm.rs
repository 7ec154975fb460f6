// Throwaway profiling harness (not committed): phases of one RVM decision.
use regorus::Value;
use serde::Deserialize;
use std::time::Instant;
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args[1].parse().unwrap();
    let lib = std::path::Path::new(&args[2]);
    let inputs: Vec<serde_json::Value> = std::fs::read_to_string(&args[3])
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut e = regorus::Engine::new();
    for f in std::fs::read_dir(lib).unwrap() {
        let p = f.unwrap().path();
        if p.extension().map(|x| x == "rego").unwrap_or(false) {
            e.add_policy_from_file(&p).unwrap();
        }
    }
    let data = Value::from_json_file(lib.join("data.json")).unwrap();
    e.add_data(data.clone()).unwrap();
    let rule = "data.edgeshim.decision";
    let compiled = e.compile_with_entrypoint(&rule.into()).unwrap();
    let program =
        regorus::languages::rego::compiler::Compiler::compile_from_policy(&compiled, &[rule])
            .unwrap();
    if std::env::var_os("LISTING").is_some() {
        println!(
            "{}",
            regorus::rvm::program::generate_assembly_listing(&program, &Default::default())
        );
        return;
    }
    let mut vm = regorus::rvm::vm::RegoVM::new();
    vm.load_program(program);
    vm.set_max_instructions(10_000_000);
    vm.set_data(data).unwrap();
    if std::env::var_os("COUNT").is_some() {
        // Executed instructions per decision, found by bisecting the VM's instruction limit.
        let mut total = 0usize;
        for input in inputs.iter().take(n) {
            let v = Value::deserialize(input).unwrap();
            let (mut lo, mut hi) = (1usize, 1_000_000usize);
            while lo < hi {
                let mid = (lo + hi) / 2;
                vm.set_max_instructions(mid);
                vm.set_input(v.clone());
                if vm.execute_entry_point_by_name(rule).is_ok() {
                    hi = mid
                } else {
                    lo = mid + 1
                }
            }
            total += lo;
        }
        println!(
            "instructions per decision: {:.1}",
            total as f64 / n.min(inputs.len()) as f64
        );
        return;
    }
    let (mut a, mut b, mut c, mut d) = (0f64, 0f64, 0f64, 0f64);
    for i in 0..n {
        let input = &inputs[i % inputs.len()];
        let t0 = Instant::now();
        let v = if std::env::var_os("DIRECT").is_some() {
            conv(input)
        } else {
            Value::deserialize(input).unwrap()
        };
        let t1 = Instant::now();
        vm.set_input(v);
        let out = vm.execute_entry_point_by_name(rule).unwrap();
        let t2 = Instant::now();
        let j = serde_json::to_value(&out).unwrap();
        let t3 = Instant::now();
        drop(out);
        drop(j);
        let t4 = Instant::now();
        a += (t1 - t0).as_secs_f64();
        b += (t2 - t1).as_secs_f64();
        c += (t3 - t2).as_secs_f64();
        d += (t4 - t3).as_secs_f64();
    }
    let k = 1e6 / n as f64;
    println!(
        "deserialize {:.1} execute {:.1} to_json {:.1} drop {:.1} (mean us)",
        a * k,
        b * k,
        c * k,
        d * k
    );
}

fn conv(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::from(*b),
        serde_json::Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                Value::from(u)
            } else if let Some(i) = n.as_i64() {
                Value::from(i)
            } else {
                Value::from(n.as_f64().unwrap_or(0.0))
            }
        }
        serde_json::Value::String(s) => Value::from(s.as_str()),
        serde_json::Value::Array(a) => Value::from(a.iter().map(conv).collect::<Vec<_>>()),
        serde_json::Value::Object(o) => Value::from(
            o.iter()
                .map(|(k, v)| (Value::from(k.as_str()), conv(v)))
                .collect::<std::collections::BTreeMap<_, _>>(),
        ),
    }
}
