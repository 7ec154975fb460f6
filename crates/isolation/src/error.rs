//! Isolation errors, each naming the container and the step.

pub type Result<T, E = IsolationError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum IsolationError {
    #[error("container {id}: cannot create its process: {reason}")]
    Create { id: String, reason: String },
    /// The spec asks for what this host or edgeshim cannot provide.
    #[error("container {id}: {reason}")]
    Unsupported { id: String, reason: String },
    #[error("container {id}: cannot start: {reason}")]
    Start { id: String, reason: String },
    #[error("container {id}: cannot signal: {reason}")]
    Kill { id: String, reason: String },
    /// The process has exited (it may not be reaped yet).
    #[error("container {id}: process already finished")]
    Finished { id: String },
    #[error("container {id}: cannot delete: {reason}")]
    Delete { id: String, reason: String },
    #[error("container {id}: no state under {root}: {reason}")]
    Load {
        id: String,
        root: String,
        reason: String,
    },
}

/// The whole cause chain of a libcontainer error on one line: its top-level
/// messages alone ("failed operation") say too little to act on.
pub(crate) fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
