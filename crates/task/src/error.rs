//! Task errors, converted to ttrpc status codes in one place.
//!
//! Every message names the container; containerd prints it as is.

use containerd_shim::protos::ttrpc::{self, Code};

pub type Result<T, E = TaskError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("container {id}: {source}")]
    Bundle {
        id: String,
        source: edgeshim_bundle::BundleError,
    },
    #[error("container {id}: {source}")]
    Engine {
        id: String,
        source: edgeshim_engine::EngineError,
    },
    #[error(transparent)]
    Isolation(#[from] edgeshim_isolation::IsolationError),
    #[error("container {id}: edgeshim: denied by policy (revision {revision}): {}", reasons.join("; "))]
    Denied {
        id: String,
        revision: String,
        reasons: Vec<String>,
    },
    #[error("container {0}: not found")]
    NotFound(String),
    #[error("container {0}: already exists")]
    AlreadyExists(String),
    #[error("container {id}: {reason}")]
    FailedPrecondition { id: String, reason: String },
    #[error("container {id}: process already finished")]
    AlreadyFinished { id: String },
    #[error("container {id}: {what}: {reason}")]
    Io {
        id: String,
        what: &'static str,
        reason: String,
    },
    #[error("{0} is not supported by edgeshim")]
    Unsupported(&'static str),
}

impl From<TaskError> for ttrpc::Error {
    fn from(err: TaskError) -> Self {
        let code = match &err {
            TaskError::Bundle { .. } | TaskError::Engine { .. } => Code::INVALID_ARGUMENT,
            TaskError::Denied { .. } => Code::PERMISSION_DENIED,
            TaskError::NotFound(_) | TaskError::AlreadyFinished { .. } => Code::NOT_FOUND,
            TaskError::AlreadyExists(_) => Code::ALREADY_EXISTS,
            TaskError::FailedPrecondition { .. } => Code::FAILED_PRECONDITION,
            TaskError::Unsupported(_) => Code::UNIMPLEMENTED,
            TaskError::Isolation(_) | TaskError::Io { .. } => Code::INTERNAL,
        };
        log::error!("{err}");
        ttrpc::Error::RpcStatus(ttrpc::get_status(code, err.to_string()))
    }
}
