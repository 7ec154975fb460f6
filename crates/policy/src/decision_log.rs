//! The decision log: one JSON line per decision, appended by every shim
//! process of the node to one file, rotated at a size cap.
//!
//! A write that fails (full disk, missing folder, read-only mount) never
//! blocks or fails the decision: the line is counted as lost, the count is
//! logged in the shim log and carried in the next line that is written
//! (`"lost": N`).
//!
//! Shims write with `O_APPEND` (one `write` per line, so lines from
//! different processes do not mix) and rotate under an exclusive `flock` on
//! the log, re-checking the size first so that two shims do not rotate
//! twice. A shim whose file was rotated away by another reopens the path.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::fcntl::{Flock, FlockArg};
use serde::Serialize;

/// One logged decision.
#[derive(Debug, Serialize)]
pub struct LogLine<'a> {
    pub time: String,
    pub action: &'a str,
    pub container: &'a str,
    pub kind: &'a str,
    pub pod: Option<String>,
    pub image: &'a str,
    pub module_sha256: Option<&'a str>,
    /// `allow` or `deny`: what was decided for the request.
    pub decision: &'a str,
    /// `enforce` or `audit`.
    pub mode: &'a str,
    /// In audit mode, what enforce would have decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub would_deny: Option<bool>,
    pub reasons: &'a [String],
    pub revision: &'a str,
    /// The policy's evaluation alone.
    pub eval_us: u64,
    /// The whole gate, from the request asking it to the decision: waiting
    /// for a load in progress (a new shim's first decision), the reload
    /// check, the input and the evaluation.
    pub gate_us: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lost: Option<u64>,
    /// The input decided, env values redacted (`log_inputs` in the config).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<serde_json::Value>,
}

/// One refused use of an address by a Wasm container (its engine checked
/// it against the decision's network grant; the shim names the container).
#[derive(Debug, Serialize)]
pub struct NetworkLine<'a> {
    pub time: String,
    /// `connect` or `listen`.
    pub action: &'a str,
    pub container: &'a str,
    pub address: String,
    /// The rule that decided, or `default` (no rule matched).
    pub rule: &'a str,
    pub decision: &'a str,
    /// Refusals of this container not logged since the last line (rate
    /// limit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_back: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lost: Option<u64>,
}

pub struct DecisionLog {
    path: PathBuf,
    max_bytes: u64,
    keep: u32,
    file: Option<File>,
    lost: AtomicU64,
}

impl DecisionLog {
    pub fn new(path: &Path, max_bytes: u64, keep: u32) -> Self {
        Self {
            path: path.to_path_buf(),
            max_bytes,
            keep,
            file: None,
            lost: AtomicU64::new(0),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this log writes to `path` rotated at `max_bytes`, keeping
    /// `keep` old files.
    pub fn is_configured_as(&self, path: &Path, max_bytes: u64, keep: u32) -> bool {
        self.path == path && self.max_bytes == max_bytes && self.keep == keep
    }

    /// Lines lost since the last line written.
    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }

    /// Appends `line`; failures are counted, never returned.
    pub fn record(&mut self, mut line: LogLine<'_>) {
        let lost = self.lost();
        if lost > 0 {
            line.lost = Some(lost);
        }
        self.write_line(&line);
    }

    /// Appends a network refusal's line, as [`Self::record`].
    pub fn record_network(&mut self, mut line: NetworkLine<'_>) {
        let lost = self.lost();
        if lost > 0 {
            line.lost = Some(lost);
        }
        self.write_line(&line);
    }

    fn write_line(&mut self, line: &impl Serialize) {
        let mut bytes = match serde_json::to_vec(line) {
            Ok(bytes) => bytes,
            Err(e) => return self.count_loss(&e.to_string()),
        };
        bytes.push(b'\n');
        match self.append(&bytes) {
            Ok(()) => self.lost.store(0, Ordering::Relaxed),
            Err(e) => {
                // Reopen next time: the file may have been removed or the
                // disk remounted.
                self.file = None;
                self.count_loss(&e.to_string());
            }
        }
    }

    fn count_loss(&self, why: &str) {
        let lost = self.lost.fetch_add(1, Ordering::Relaxed) + 1;
        if lost.is_power_of_two() {
            log::warn!(
                "decision log {}: {lost} line(s) lost, last because: {why}",
                self.path.display()
            );
        }
    }

    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if self.rotated_away() {
            self.file = None;
        }
        if self.file.is_none() {
            self.file = Some(open_append(&self.path)?);
        }
        let needs_rotation = self
            .file
            .as_ref()
            .map(|f| f.metadata().map(|m| m.len()))
            .transpose()?
            .is_some_and(|len| len > 0 && len + bytes.len() as u64 > self.max_bytes);
        if needs_rotation && self.path.is_file() {
            self.rotate()?;
        }
        match &mut self.file {
            Some(file) => file.write_all(bytes),
            None => Err(std::io::Error::other("log not open")),
        }
    }

    /// Whether the path now names another file than the one held open.
    fn rotated_away(&self) -> bool {
        let Some(file) = &self.file else {
            return false;
        };
        match (file.metadata(), std::fs::metadata(&self.path)) {
            (Ok(held), Ok(named)) => held.ino() != named.ino() || held.dev() != named.dev(),
            _ => true,
        }
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        let file = self
            .file
            .take()
            .ok_or_else(|| std::io::Error::other("log not open"))?;
        let locked = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, errno)| std::io::Error::from(errno))?;
        // Another shim may have rotated while this one waited for the lock.
        let still_full = std::fs::metadata(&self.path)
            .map(|m| {
                m.ino() == locked.metadata().map(|h| h.ino()).unwrap_or(0)
                    && m.len() >= self.max_bytes / 2
            })
            .unwrap_or(false);
        if still_full {
            for index in (1..self.keep).rev() {
                let _ = std::fs::rename(self.rotated(index), self.rotated(index + 1));
            }
            if self.keep == 0 {
                std::fs::remove_file(&self.path)?;
            } else {
                std::fs::rename(&self.path, self.rotated(1))?;
            }
        }
        drop(locked);
        self.file = Some(open_append(&self.path)?);
        Ok(())
    }

    fn rotated(&self, index: u32) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(format!(".{index}"));
        PathBuf::from(name)
    }
}

fn open_append(path: &Path) -> std::io::Result<File> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    OpenOptions::new().create(true).append(true).open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(reasons: &[String]) -> LogLine<'_> {
        LogLine {
            time: "t".into(),
            action: "create",
            container: "c1",
            kind: "wasm",
            pod: None,
            image: "",
            module_sha256: None,
            decision: "deny",
            mode: "enforce",
            would_deny: None,
            reasons,
            revision: "r1",
            eval_us: 3,
            gate_us: 5,
            error: None,
            lost: None,
            input: None,
        }
    }

    #[test]
    fn test_lines_are_json_and_the_log_rotates_at_its_cap() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("d.log");
        let mut log = DecisionLog::new(&path, 400, 2);
        let reasons = vec!["x".repeat(100)];
        for _ in 0..12 {
            log.record(line(&reasons));
        }
        let current = std::fs::read_to_string(&path).expect("log");
        for text in current.lines() {
            let value: serde_json::Value = serde_json::from_str(text).expect("json line");
            assert_eq!(value["container"], "c1");
        }
        assert!(std::fs::metadata(&path).expect("log").len() <= 400);
        assert!(dir.path().join("d.log.1").exists());
        assert!(dir.path().join("d.log.2").exists());
        assert!(!dir.path().join("d.log.3").exists(), "keeps only 2");
    }

    #[test]
    fn test_a_full_disk_loses_lines_without_failing_and_counts_them() {
        // /dev/full answers every write with ENOSPC.
        let mut log = DecisionLog::new(Path::new("/dev/full"), 1 << 20, 1);
        let reasons = vec![];
        for _ in 0..3 {
            log.record(line(&reasons));
        }
        assert_eq!(log.lost(), 3);
    }

    #[test]
    fn test_the_loss_count_rides_on_the_next_written_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/d.log");
        let mut log = DecisionLog::new(&path, 1 << 20, 1);
        log.lost.store(2, Ordering::Relaxed);
        log.record(line(&[]));
        let text = std::fs::read_to_string(&path).expect("log");
        let value: serde_json::Value = serde_json::from_str(text.trim()).expect("json");
        assert_eq!(value["lost"], 2);
        assert_eq!(log.lost(), 0);
    }
}
