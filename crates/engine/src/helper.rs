//! Running a compile helper (a child process that writes one file) so
//! that its result does not depend on its exit status.
//!
//! containerd-shim's reaper thread `waitpid`s every child of the shim, so
//! the shim's own wait for a helper can find it already reaped (`ECHILD`)
//! and its exit status gone. The helper therefore reports its outcome as the
//! last line of its output, a pipe that is both its stdout and stderr; the
//! shim reads the pipe to its end (the helper has exited or closed it),
//! takes the outcome from there, checks that the output file exists and is
//! not empty, and then waits only to collect the zombie (`ECHILD` meaning
//! someone else collected it).

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// Starts the outcome line.
const OUTCOME_PREFIX: &str = "edgeshim-helper-outcome: ";
const OK: &str = "ok";
const NO_COMPILER: &str = "no-compiler: ";
const FAILED: &str = "failed: ";

/// What a helper did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It wrote its output file.
    Ok,
    /// It has no compiler (a library built without one).
    NoCompiler(String),
    /// It failed, or said nothing: why.
    Failed(String),
}

/// In the helper: reports `outcome` as the last line of its stdout.
pub fn report(outcome: &Outcome) {
    let line = match outcome {
        Outcome::Ok => OK.to_string(),
        Outcome::NoCompiler(reason) => format!("{NO_COMPILER}{}", one_line(reason)),
        Outcome::Failed(reason) => format!("{FAILED}{}", one_line(reason)),
    };
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "\n{OUTCOME_PREFIX}{line}");
    let _ = stdout.flush();
}

fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

/// A helper started by [`spawn`]: the child and the read end of its output.
pub struct Running {
    child: Child,
    output: std::io::PipeReader,
}

/// Starts `command` with stdin empty and stdout and stderr one pipe.
pub fn spawn(mut command: Command) -> std::io::Result<Running> {
    let (output, writer) = std::io::pipe()?;
    let child = command
        .stdin(Stdio::null())
        .stdout(writer.try_clone()?)
        .stderr(writer)
        .spawn()?;
    // `command` holds this process's copies of the write end: without
    // dropping them the read below never sees the end.
    drop(command);
    Ok(Running { child, output })
}

impl Running {
    /// The pid of the helper.
    #[cfg(test)]
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Reads the helper's output to its end, collects it, and returns its
    /// outcome; `Ok` only when it said so and `output_file` is a non-empty
    /// file.
    pub fn finish(mut self, output_file: &Path) -> Outcome {
        let mut said = Vec::new();
        let read = self.output.read_to_end(&mut said);
        let status = match self.child.wait() {
            Ok(status) => status.to_string(),
            // Reaped by the shim's reaper: the output has the outcome.
            Err(e) if e.raw_os_error() == Some(libc::ECHILD) => "reaped elsewhere".into(),
            Err(e) => format!("wait: {e}"),
        };
        if let Err(e) = read {
            return Outcome::Failed(format!("cannot read the helper's output: {e}"));
        }
        let said = String::from_utf8_lossy(&said);
        let outcome = said
            .lines()
            .rev()
            .find_map(|line| line.strip_prefix(OUTCOME_PREFIX));
        let rest = || {
            said.lines()
                .filter(|line| !line.starts_with(OUTCOME_PREFIX) && !line.trim().is_empty())
                .collect::<Vec<_>>()
                .join("; ")
        };
        match outcome {
            Some(OK) => match std::fs::metadata(output_file) {
                Ok(file) if file.is_file() && file.len() > 0 => Outcome::Ok,
                _ => Outcome::Failed(format!(
                    "the helper said ok but wrote nothing at {}: {}",
                    output_file.display(),
                    rest()
                )),
            },
            Some(line) => match (line.strip_prefix(NO_COMPILER), line.strip_prefix(FAILED)) {
                (Some(reason), _) => Outcome::NoCompiler(reason.to_string()),
                (None, Some(reason)) => Outcome::Failed(reason.to_string()),
                (None, None) => Outcome::Failed(format!("unknown outcome {line:?}")),
            },
            None => Outcome::Failed(format!(
                "the helper ended without an outcome ({status}): {}",
                rest()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A helper running `script`, with its output file as `$1`.
    fn helper(script: &str, out: &Path) -> Command {
        let mut command = Command::new("/bin/sh");
        command.arg("-c").arg(script).arg("helper").arg(out);
        command
    }

    #[test]
    fn test_outcome_is_read_from_the_output_even_when_the_helper_was_reaped_elsewhere() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("out.so");
        let running = spawn(helper(
            &format!("echo noise >&2; printf lib > \"$1\"; echo '{OUTCOME_PREFIX}{OK}'; exit 7"),
            &out,
        ))
        .expect("spawn");
        // containerd-shim's reaper: collects every child, this one too.
        let mut status = 0;
        // SAFETY: waitpid on a pid of this process's child, with a valid
        // status pointer.
        let reaped = unsafe { libc::waitpid(running.id() as libc::pid_t, &mut status, 0) };
        assert_eq!(reaped, running.id() as libc::pid_t);
        assert_eq!(running.finish(&out), Outcome::Ok);
    }

    #[test]
    fn test_ok_without_the_file_is_a_failure() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("out.so");
        let running = spawn(helper(&format!("echo '{OUTCOME_PREFIX}{OK}'"), &out)).expect("spawn");
        assert!(matches!(running.finish(&out), Outcome::Failed(_)));
        std::fs::write(&out, b"").expect("empty");
        let running = spawn(helper(&format!("echo '{OUTCOME_PREFIX}{OK}'"), &out)).expect("spawn");
        assert!(matches!(running.finish(&out), Outcome::Failed(_)));
    }

    #[test]
    fn test_no_compiler_failure_and_silence_are_told_apart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("out.so");
        let script = format!("echo '{OUTCOME_PREFIX}{NO_COMPILER}built without LLVM'");
        let outcome = spawn(helper(&script, &out)).expect("spawn").finish(&out);
        assert_eq!(outcome, Outcome::NoCompiler("built without LLVM".into()));
        let script = format!("echo '{OUTCOME_PREFIX}{FAILED}bad module'");
        let outcome = spawn(helper(&script, &out)).expect("spawn").finish(&out);
        assert_eq!(outcome, Outcome::Failed("bad module".into()));
        // A crash: no outcome line, whatever the file.
        std::fs::write(&out, b"lib").expect("file");
        let outcome = spawn(helper("echo dying >&2; kill -9 $$", &out))
            .expect("spawn")
            .finish(&out);
        assert!(
            matches!(&outcome, Outcome::Failed(reason) if reason.contains("dying")),
            "{outcome:?}"
        );
    }

    #[test]
    fn test_report_writes_one_outcome_line() {
        assert_eq!(one_line("a\nb\r\nc"), "a b  c");
    }
}
