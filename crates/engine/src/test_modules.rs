//! WAT modules the engines' unit tests share.

/// A minimal WASI command: exports memory and `_start`, exits with 7.
pub const COMMAND: &str = r#"(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start") (call $exit (i32.const 7))))"#;
