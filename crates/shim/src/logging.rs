//! The shim's log: the `log` FIFO containerd opens in the bundle folder,
//! in containerd's own line format (`time="..." level=info msg="..."`).
//!
//! Written here rather than using `containerd_shim::logger` for two reasons
//! measured on a container start: that logger issues one `write` per
//! formatted fragment (about 15 system calls a line, in the shim and in
//! every container process forked from it), and it has one level for every
//! crate, so at `info` the engine's WASI tracing logged every WASI call of
//! every module into containerd's log. Here each line is one `write`, and
//! other crates (libcontainer, wasmtime, WASI, ...) log warnings and errors
//! only, unless containerd runs the shim with `--debug` or `RUST_LOG` asks
//! for `debug` or more.
//!
//! Owns: the global `log` logger of the shim's server process. Must not:
//! decide what is logged elsewhere (callers choose their levels).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::str::FromStr;
use std::sync::Mutex;

use log::{Level, LevelFilter, Log, Metadata, Record};

/// The environment variable that sets the level (as containerd-shim's).
const LEVEL_ENV: &str = "RUST_LOG";

/// Crates (and their `_`-suffixed relatives) logged at the configured
/// level; everything else is logged from `warn` up unless the level is
/// `debug` or finer.
const OWN_CRATES: &[&str] = &["edgeshim", "containerd_shim"];

struct ShimLogger {
    sink: Mutex<File>,
    level: LevelFilter,
}

/// Installs the logger on the `log` FIFO in the current folder (the
/// bundle), at `default_level` (or `$RUST_LOG`, or `debug` when containerd
/// runs the shim with `--debug`). Without the FIFO the log goes to stderr.
pub fn init(debug: bool, default_level: &str) {
    let level = std::env::var(LEVEL_ENV)
        .ok()
        .and_then(|text| LevelFilter::from_str(&text).ok())
        .or_else(|| LevelFilter::from_str(default_level).ok())
        .unwrap_or(LevelFilter::Info);
    let level = if debug {
        level.max(LevelFilter::Debug)
    } else {
        level
    };
    let sink = OpenOptions::new()
        .write(true)
        .open("log")
        .or_else(|_| stderr_file());
    let Ok(sink) = sink else {
        return;
    };
    let logger = ShimLogger {
        sink: Mutex::new(sink),
        level,
    };
    if log::set_boxed_logger(Box::new(logger)).is_ok() {
        log::set_max_level(level);
    }
}

fn stderr_file() -> std::io::Result<File> {
    use std::os::fd::AsFd;
    std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map(File::from)
}

/// Whether a record from `target` at `level` is logged under `configured`.
fn wanted(target: &str, level: Level, configured: LevelFilter) -> bool {
    if level > configured {
        return false;
    }
    let krate = target.split("::").next().unwrap_or(target);
    let own = OWN_CRATES.iter().any(|own| {
        krate
            .strip_prefix(own)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('_'))
    });
    own || level <= Level::Warn || configured >= LevelFilter::Debug
}

/// One log line in containerd's format, ending in a newline.
fn line(record: &Record) -> String {
    let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    format!(
        "time=\"{time}\" level={} msg=\"{}\"\n",
        record.level().as_str().to_lowercase(),
        record.args()
    )
}

impl Log for ShimLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        wanted(metadata.target(), metadata.level(), self.level)
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let text = line(record);
        if let Ok(mut sink) = self.sink.lock() {
            // A closed FIFO (containerd restarting) must not stop the shim.
            let _ = sink.write_all(text.as_bytes());
        }
    }

    fn flush(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_own_crates_log_at_the_level_others_only_warnings() {
        let info = LevelFilter::Info;
        assert!(wanted("edgeshim_shim::service", Level::Info, info));
        assert!(wanted("containerd_shim::synchronous", Level::Info, info));
        assert!(!wanted("edgeshim_shim::service", Level::Debug, info));
        assert!(!wanted("wasmtime_wasi::preview1", Level::Info, info));
        assert!(!wanted("libcgroups::common", Level::Info, info));
        assert!(wanted("libcontainer::process", Level::Warn, info));
        assert!(wanted("libcontainer::process", Level::Error, info));
        assert!(!wanted("edgeshimx", Level::Info, LevelFilter::Error));
    }

    #[test]
    fn test_debug_lets_every_crate_through() {
        assert!(wanted(
            "wasmtime_wasi::preview1",
            Level::Debug,
            LevelFilter::Debug
        ));
        assert!(wanted(
            "libcgroups::common",
            Level::Info,
            LevelFilter::Debug
        ));
        assert!(!wanted(
            "libcgroups::common",
            Level::Trace,
            LevelFilter::Debug
        ));
    }

    #[test]
    fn test_a_line_is_containerds_format() {
        let text = line(
            &Record::builder()
                .args(format_args!("container c1 started"))
                .level(Level::Info)
                .target("edgeshim_shim")
                .build(),
        );
        assert!(text.starts_with("time=\""), "{text}");
        assert!(
            text.ends_with(" level=info msg=\"container c1 started\"\n"),
            "{text}"
        );
    }
}
