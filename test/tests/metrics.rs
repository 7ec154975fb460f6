//! The node's metrics end to end: `edgeshim-metrics` follows this
//! containerd's decision log and takes its shims' events; Debian's
//! Prometheus scrapes it on loopback; after a pod of allowed, denied and
//! OOM-killed containers, PromQL through Prometheus's HTTP API returns
//! their counts. Then every panel query of `deploy/grafana-dashboard.json`
//! runs against the same Prometheus.
//!
//! Its own test binary: the counts are exact only while no other test's
//! containers come and go (cargo runs test binaries one at a time).

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use edgeshim_cri::ContainerSpec;
use edgeshim_integration::pods::*;
use edgeshim_integration::*;

/// Debian's `prometheus` package (hack/install-deps.sh).
const PROMETHEUS: &str = "/usr/bin/prometheus";
/// How long a count may take to reach Prometheus: the exporter reads the
/// log every 100 ms, Prometheus scrapes every second.
const SCRAPED: Duration = Duration::from_secs(30);

/// An instant vector: each series' labels and value.
type Series = Vec<(BTreeMap<String, String>, f64)>;

/// A child process killed with the test, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn env_path(name: &str) -> PathBuf {
    PathBuf::from(std::env::var_os(name).unwrap_or_else(|| {
        panic!("{name} unset: run under hack/test.sh (or eval hack/containerd.sh env)")
    }))
}

fn get(url: &str) -> Result<String, String> {
    ureq::get(url)
        .call()
        .map_err(|e| e.to_string())?
        .body_mut()
        .read_to_string()
        .map_err(|e| e.to_string())
}

fn start_exporter(port: u16) -> Running {
    let child = Command::new(workspace_binary("edgeshim-metrics"))
        .args(["--listen", &format!("127.0.0.1:{port}"), "--poll-ms", "100"])
        .arg("--decision-log")
        .arg(env_path("EDGESHIM_DECISION_LOG"))
        .arg("--events-socket")
        .arg(env_path("EDGESHIM_METRICS_SOCKET"))
        .stdout(Stdio::null())
        .spawn()
        .expect("edgeshim-metrics");
    let exporter = Running(child);
    await_condition("the exporter to serve", LIMIT, || {
        get(&format!("http://127.0.0.1:{port}/metrics")).is_ok()
    });
    exporter
}

struct Prometheus {
    _process: Running,
    port: u16,
}

impl Prometheus {
    /// Prometheus on loopback, scraping the exporter every second.
    fn start(dir: &Path, exporter_port: u16) -> Self {
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: edgeshim\n    static_configs:\n\
                 \x20     - targets: ['127.0.0.1:{exporter_port}']\n"
            ),
        )
        .expect("prometheus.yml");
        let port = free_port();
        let log = std::fs::File::create(dir.join("prometheus.log")).expect("log");
        let child = Command::new(PROMETHEUS)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("prometheus (Debian's package, hack/install-deps.sh)");
        let prometheus = Self {
            _process: Running(child),
            port,
        };
        await_condition("Prometheus to be ready", LIMIT, || {
            get(&format!("http://127.0.0.1:{port}/-/ready")).is_ok()
        });
        prometheus
    }

    /// The instant vector `promql` evaluates to: each series' labels and
    /// value. An error (a query that does not parse) is the Err.
    fn query(&self, promql: &str) -> Result<Series, String> {
        let mut response = ureq::get(&format!("http://127.0.0.1:{}/api/v1/query", self.port))
            .query("query", promql)
            .call()
            .map_err(|e| format!("{promql}: {e}"))?;
        let body: serde_json::Value = serde_json::from_str(
            &response
                .body_mut()
                .read_to_string()
                .map_err(|e| e.to_string())?,
        )
        .map_err(|e| format!("{promql}: {e}"))?;
        if body["status"] != "success" {
            return Err(format!("{promql}: {body}"));
        }
        let series = body["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        Ok(series
            .iter()
            .map(|s| {
                let labels = s["metric"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                            .collect()
                    })
                    .unwrap_or_default();
                let value = s["value"][1]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(f64::NAN);
                (labels, value)
            })
            .collect())
    }

    /// The single value of `promql` (0 when it has no series yet).
    fn value(&self, promql: &str) -> f64 {
        let series = self.query(promql).unwrap_or_else(|e| panic!("{e}"));
        assert!(series.len() <= 1, "{promql} is not one series: {series:?}");
        series.first().map_or(0.0, |(_, v)| *v)
    }

    /// Waits until each query is its expected value, then checks that they
    /// all stay so three scrapes later (a count that goes on rising is as
    /// wrong as a short one).
    fn await_values(&self, expected: &[(String, f64)]) {
        for (promql, value) in expected {
            await_condition(&format!("{promql} == {value}"), SCRAPED, || {
                self.value(promql) == *value
            });
        }
        let settled = std::time::Instant::now() + Duration::from_secs(3);
        await_condition("three more scrapes", SCRAPED, || {
            std::time::Instant::now() >= settled
        });
        for (promql, value) in expected {
            assert_eq!(self.value(promql), *value, "{promql} moved on");
        }
    }
}

fn sleeper(name: &str) -> ContainerSpec {
    container(name, &["sleep", "1000000"])
}

#[test]
fn test_prometheus_scrapes_starts_decisions_denials_cache_running_and_oom_and_every_dashboard_panel_returns_series()
 {
    let dir = tempfile::tempdir().expect("temp dir");
    let exporter_port = free_port();
    let _exporter = start_exporter(exporter_port);
    let prometheus = Prometheus::start(dir.path(), exporter_port);
    await_condition("Prometheus to scrape the exporter", SCRAPED, || {
        prometheus.value("up{job=\"edgeshim\"}") == 1.0
    });
    let runtime = handler();
    let running = format!("sum(edgeshim_running_containers{{runtime=\"{runtime}\"}})");
    let running_before = prometheus.value(&running);

    let logs = tempfile::tempdir().expect("log dir");
    let pod = pod("metrics", "uid-metrics-1", true, logs.path());
    let mut cri = cri();
    let pod_id = cri.run_pod(&pod, runtime).expect("RunPodSandbox");
    let mut hellos = Vec::new();
    for name in ["hello-1", "hello-2"] {
        let hello = container(name, &["hello"]);
        let (id, status, log) = run_to_exit(&mut cri, &pod_id, &pod, &hello, logs.path());
        assert_eq!(status.exit_code, 0, "{log}");
        hellos.push(id);
    }
    // The gate refuses it when StartContainer makes its task.
    let denied = cri
        .create_container(
            &pod_id,
            &container("policy-denied-m", &["hello"]).to_cri(),
            &pod,
        )
        .expect("CreateContainer");
    let refused = cri.start_container(&denied).expect_err("a denied start");
    assert!(
        format!("{refused:#}").contains("denied by policy"),
        "{refused:#}"
    );
    let sleeping = cri
        .create_container(&pod_id, &sleeper("sleeper").to_cri(), &pod)
        .expect("CreateContainer");
    cri.start_container(&sleeping).expect("StartContainer");
    let (oom, status, log) = run_to_exit(&mut cri, &pod_id, &pod, &hog(200), logs.path());
    assert_eq!(
        (status.exit_code, status.reason.as_str()),
        (137, "OOMKilled"),
        "{log}"
    );

    // The pause, two hellos, the sleeper and the hog were created and
    // started; the denied container's create was refused.
    let with =
        |metric: &str, labels: &str| format!("sum({metric}{{runtime=\"{runtime}\"{labels}}})");
    let expected = [
        (
            with("edgeshim_container_creates_total", ",outcome=\"ok\""),
            5.0,
        ),
        (
            with("edgeshim_container_creates_total", ",outcome=\"denied\""),
            1.0,
        ),
        (
            with("edgeshim_container_starts_total", ",outcome=\"ok\""),
            5.0,
        ),
        (
            with("edgeshim_container_create_duration_seconds_count", ""),
            6.0,
        ),
        (
            with("edgeshim_container_start_duration_seconds_count", ""),
            5.0,
        ),
        // The three Wasm containers' modules: compiled or found.
        (with("edgeshim_module_cache_lookups_total", ""), 3.0),
        (with("edgeshim_oom_kills_total", ""), 1.0),
        (running.clone(), running_before + 1.0),
        (
            "sum(edgeshim_policy_decisions_total{action=\"create\",decision=\"deny\"})".into(),
            1.0,
        ),
        (
            "sum(edgeshim_policy_decisions_total{action=\"create\",decision=\"allow\"})".into(),
            5.0,
        ),
        (
            "sum(edgeshim_policy_decisions_total{action=\"start\",decision=\"allow\"})".into(),
            5.0,
        ),
        (
            "sum(edgeshim_policy_denials_total{family=\"test\"})".into(),
            1.0,
        ),
        ("sum(edgeshim_metrics_events_unreadable_total)".into(), 0.0),
    ];
    prometheus.await_values(&expected);

    dashboard_panels_return_series(&prometheus);

    // A second pod's sleeper counts while its shim lives, and stops
    // counting when the shim is SIGKILLed.
    let killed =
        edgeshim_integration::pods::pod("metrics-killed", "uid-metrics-2", true, logs.path());
    let killed_id = cri.run_pod(&killed, runtime).expect("RunPodSandbox");
    let orphan = cri
        .create_container(&killed_id, &sleeper("orphan").to_cri(), &killed)
        .expect("CreateContainer");
    cri.start_container(&orphan).expect("StartContainer");
    prometheus.await_values(&[(running.clone(), running_before + 2.0)]);
    let shim = shim_pid_for(&killed_id).expect("the pod's shim");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(shim).expect("pid")),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill the shim");
    prometheus.await_values(&[(running.clone(), running_before + 1.0)]);
    wait_exited(&mut cri, &orphan);
    cri.remove_container(&orphan).expect("RemoveContainer");
    remove_pod(&mut cri, &killed_id, &[&orphan]);

    // The pod gone, so is its sleeper from the count.
    let _ = cri.remove_container(&denied);
    remove_pod(
        &mut cri,
        &pod_id,
        &[&hellos[0], &hellos[1], &sleeping, &oom],
    );
    prometheus.await_values(&[(running, running_before)]);
}

/// Every panel query of the dashboard, with Grafana's variables as Grafana
/// fills them in: it parses, and it returns series.
fn dashboard_panels_return_series(prometheus: &Prometheus) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/grafana-dashboard.json");
    let text = std::fs::read_to_string(&path).expect("the dashboard");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("dashboard JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(!panels.is_empty());
    let mut queries = 0;
    for panel in panels {
        let title = panel["title"].as_str().unwrap_or("(untitled)");
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {title} has no query");
        for target in targets {
            let expr = target["expr"].as_str().expect("expr");
            assert!(expr.contains("edgeshim_"), "panel {title}: {expr}");
            // Grafana's rate window: at least four scrape intervals.
            let promql = expr.replace("$__rate_interval", "1m");
            assert!(
                !promql.contains('$'),
                "panel {title}: unknown variable in {expr}"
            );
            let mut series = Vec::new();
            await_condition(&format!("panel {title}: {promql}"), SCRAPED, || {
                series = prometheus
                    .query(&promql)
                    .unwrap_or_else(|e| panic!("panel {title}: {e}"));
                !series.is_empty()
            });
            queries += 1;
        }
    }
    assert!(queries >= panels.len());
}
