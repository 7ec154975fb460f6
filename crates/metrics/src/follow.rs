//! Following a log file that others append to and rotate (`log` renamed to
//! `log.1`, a new `log` made), as `tail -F` does: complete lines only, the
//! rest of a rotated file read before the new one, a truncated file read
//! again from its start.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

pub struct Follower {
    path: PathBuf,
    file: Option<File>,
    inode: u64,
    offset: u64,
    /// A line begun but not yet ended by `\n`.
    partial: Vec<u8>,
}

impl Follower {
    /// Follows `path` from its current end (what was logged before the
    /// exporter started is not counted), or from its start with
    /// `from_start`.
    pub fn new(path: &Path, from_start: bool) -> Self {
        let mut follower = Self {
            path: path.to_path_buf(),
            file: None,
            inode: 0,
            offset: 0,
            partial: Vec::new(),
        };
        if follower.open() && !from_start {
            follower.offset = follower
                .file
                .as_ref()
                .and_then(|f| f.metadata().ok())
                .map_or(0, |m| m.len());
        }
        follower
    }

    fn open(&mut self) -> bool {
        match File::open(&self.path) {
            Ok(file) => {
                self.inode = file.metadata().map_or(0, |m| m.ino());
                self.file = Some(file);
                self.offset = 0;
                self.partial.clear();
                true
            }
            Err(_) => false,
        }
    }

    /// Appends what the held file has past the offset to `lines`.
    fn drain(&mut self, lines: &mut Vec<String>) {
        let Some(file) = self.file.as_mut() else {
            return;
        };
        let len = file.metadata().map_or(0, |m| m.len());
        if len < self.offset {
            // Truncated in place: read it again from the start.
            self.offset = 0;
            self.partial.clear();
        }
        if file.seek(SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        let mut bytes = Vec::new();
        if let Ok(read) = file.read_to_end(&mut bytes) {
            self.offset += read as u64;
        }
        self.partial.extend_from_slice(&bytes);
        while let Some(end) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            lines.push(String::from_utf8_lossy(&line[..end]).into_owned());
        }
    }

    /// The complete lines written since the last call.
    pub fn new_lines(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        self.drain(&mut lines);
        let now = std::fs::metadata(&self.path).map(|m| m.ino()).ok();
        if now.is_some_and(|inode| inode != self.inode) || self.file.is_none() {
            // Rotated (or made): the old file was read to its end above.
            if self.open() {
                self.drain(&mut lines);
            }
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn append(path: &Path, text: &str) {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("open");
        file.write_all(text.as_bytes()).expect("write");
    }

    #[test]
    fn test_complete_lines_are_read_across_a_rotation_and_a_truncation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("decisions.log");
        append(&log, "before\n");
        let mut follower = Follower::new(&log, false);
        assert!(
            follower.new_lines().is_empty(),
            "what came before is not counted"
        );
        append(&log, "one\ntw");
        assert_eq!(follower.new_lines(), ["one"]);
        append(&log, "o\nthree\n");
        // Rotated after `three`, a line into the new file.
        std::fs::rename(&log, dir.path().join("decisions.log.1")).expect("rotate");
        append(&log, "four\n");
        assert_eq!(follower.new_lines(), ["two", "three", "four"]);
        // Truncated in place and written again, shorter than before.
        std::fs::write(&log, "5\n").expect("truncate");
        assert_eq!(follower.new_lines(), ["5"]);
    }

    #[test]
    fn test_a_log_that_does_not_exist_yet_is_followed_once_made() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("decisions.log");
        let mut follower = Follower::new(&log, false);
        assert!(follower.new_lines().is_empty());
        append(&log, "first\n");
        assert_eq!(follower.new_lines(), ["first"]);
    }
}
