use super::*;
use edgeshim_telemetry::Reporter;

fn exposition(registry: &Registry) -> String {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).expect("encode");
    text
}

fn container(runtime: &str, step: Step, outcome: Outcome, seconds: f64) -> Event {
    Event::Container {
        runtime: runtime.into(),
        step,
        outcome,
        seconds,
    }
}

#[test]
fn events_are_counted_by_runtime_step_outcome_and_cache_result() {
    let mut registry = Registry::default();
    let metrics = EventMetrics::new(&mut registry);
    for event in [
        container("wasmtime", Step::Create, Outcome::Ok, 0.003),
        container("wasmtime", Step::Create, Outcome::Ok, 0.004),
        container("wasmtime", Step::Start, Outcome::Denied, 0.0001),
        container("wasmedge", Step::Create, Outcome::Failed, 0.5),
        Event::Module {
            runtime: "wasmedge".into(),
            lookup: CacheLookup::Miss,
            compile_seconds: Some(2.5),
        },
        Event::Module {
            runtime: "wasmedge".into(),
            lookup: CacheLookup::Hit,
            compile_seconds: None,
        },
        Event::Oom {
            runtime: "wasmtime".into(),
        },
    ] {
        metrics.observe(&event.to_bytes());
    }
    let text = exposition(&registry);
    for expected in [
        r#"edgeshim_container_creates_total{runtime="wasmtime",outcome="ok"} 2"#,
        r#"edgeshim_container_creates_total{runtime="wasmedge",outcome="failed"} 1"#,
        r#"edgeshim_container_starts_total{runtime="wasmtime",outcome="denied"} 1"#,
        r#"edgeshim_container_create_duration_seconds_count{runtime="wasmtime"} 2"#,
        r#"edgeshim_container_create_duration_seconds_bucket{le="0.004",runtime="wasmtime"} 2"#,
        r#"edgeshim_container_create_duration_seconds_bucket{le="0.002",runtime="wasmtime"} 0"#,
        r#"edgeshim_module_cache_lookups_total{runtime="wasmedge",result="miss"} 1"#,
        r#"edgeshim_module_cache_lookups_total{runtime="wasmedge",result="hit"} 1"#,
        r#"edgeshim_module_compile_duration_seconds_count{runtime="wasmedge"} 1"#,
        r#"edgeshim_oom_kills_total{runtime="wasmtime"} 1"#,
        "edgeshim_metrics_events_unreadable_total 0",
    ] {
        assert!(text.contains(expected), "no {expected} in\n{text}");
    }
}

#[test]
fn a_hostile_sender_cannot_mint_series_or_poison_histograms() {
    let mut registry = Registry::default();
    let metrics = EventMetrics::new(&mut registry);
    for i in 0..100 {
        metrics.observe(&container(&format!("rt-{i}"), Step::Start, Outcome::Ok, 0.001).to_bytes());
    }
    for bad in [f64::NAN, f64::INFINITY, -1.0, 1e12] {
        metrics.observe(&container("wasmtime", Step::Create, Outcome::Ok, bad).to_bytes());
        metrics.observe(
            &Event::Module {
                runtime: "wasmtime".into(),
                lookup: CacheLookup::Miss,
                compile_seconds: Some(bad),
            }
            .to_bytes(),
        );
    }
    metrics.observe(b"{\"event\":\"container\",\"runtime\":\"wasmtime\"}");
    metrics.observe(&[0xff; MAX_DATAGRAM]);
    let text = exposition(&registry);
    assert!(
        text.contains(r#"edgeshim_container_starts_total{runtime="other",outcome="ok"} 100"#),
        "{text}"
    );
    assert!(!text.contains("rt-"), "{text}");
    // JSON has no NaN or infinity: a duration that is one arrives as
    // `null`, which no container event accepts (a miss whose compile time
    // is `null` is a miss of unknown time). Every other bad value is
    // unreadable; none is observed.
    assert!(
        text.contains("edgeshim_metrics_events_unreadable_total 8"),
        "{text}"
    );
    assert!(
        text.contains(r#"edgeshim_module_cache_lookups_total{runtime="wasmtime",result="miss"} 2"#),
        "{text}"
    );
    for never in [
        r#"edgeshim_container_create_duration_seconds_count{runtime="wasmtime"}"#,
        r#"edgeshim_module_compile_duration_seconds_count{runtime="wasmtime"}"#,
    ] {
        assert!(!text.contains(never), "{never} in\n{text}");
    }
}

#[test]
fn the_socket_takes_a_shims_events_and_replaces_only_an_old_socket() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("metrics").join("events.sock");
    let first = bind(&path).expect("first bind");
    drop(first);
    // A socket left by an exporter that died is replaced.
    let socket = bind(&path).expect("bind over an old socket");
    let mode = std::fs::metadata(&path)
        .expect("socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let folder = path.parent().expect("folder");
    let mode = std::fs::metadata(folder)
        .expect("folder")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700, "a folder it made is root's alone");
    // A folder that was there is left as it was.
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).expect("shared folder");
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    drop(bind(&shared.join("events.sock")).expect("bind in a folder that was there"));
    let mode = std::fs::metadata(&shared)
        .expect("folder")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
    let mut registry = Registry::default();
    let metrics = EventMetrics::new(&mut registry);
    Reporter::new(&path).send(&Event::Oom {
        runtime: "wasmedge".into(),
    });
    let mut buf = [0u8; MAX_DATAGRAM];
    let n = socket.recv(&mut buf).expect("the event");
    metrics.observe(&buf[..n]);
    assert!(exposition(&registry).contains(r#"edgeshim_oom_kills_total{runtime="wasmedge"} 1"#));

    // A file that is not a socket is never removed.
    let file = dir.path().join("not-a-socket");
    std::fs::write(&file, "keep me").expect("file");
    let refused = bind(&file).expect_err("a plain file is refused");
    assert!(
        format!("{refused:#}").contains("not a socket"),
        "{refused:#}"
    );
    assert_eq!(std::fs::read_to_string(&file).expect("file"), "keep me");
}
