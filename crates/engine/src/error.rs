//! Engine errors: which step failed, and why.

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("engine set-up failed: {0}")]
    Setup(String),
    #[error("invalid Wasm module: {0}")]
    InvalidModule(String),
    #[error("module is not a WASI command: {0}")]
    NotACommand(String),
    #[error("cannot instantiate module: {0}")]
    Instantiate(String),
    #[error("cannot open preopen {path}: {reason}")]
    Preopen { path: String, reason: String },
}
