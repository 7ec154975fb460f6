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
    #[error("edgeshim: denied by policy (revision {revision}) for container {id}: {}", reasons.join("; "))]
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

impl TaskError {
    /// A maker of [`TaskError::Io`] for container `id` at step `what`.
    pub fn io<'a>(id: &'a str, what: &'static str) -> impl Fn(String) -> TaskError + 'a {
        move |reason| TaskError::Io {
            id: id.to_string(),
            what,
            reason,
        }
    }
}

impl From<TaskError> for ttrpc::Error {
    fn from(err: TaskError) -> Self {
        let code = match &err {
            TaskError::Bundle { .. } | TaskError::Engine { .. } => Code::INVALID_ARGUMENT,
            TaskError::Denied { .. } => Code::PERMISSION_DENIED,
            TaskError::NotFound(_) | TaskError::AlreadyFinished { .. } => Code::NOT_FOUND,
            TaskError::AlreadyExists(_) => Code::ALREADY_EXISTS,
            TaskError::FailedPrecondition { .. }
            | TaskError::Isolation(edgeshim_isolation::IsolationError::Unsupported { .. }) => {
                Code::FAILED_PRECONDITION
            }
            TaskError::Unsupported(_) => Code::UNIMPLEMENTED,
            TaskError::Isolation(_) | TaskError::Io { .. } => Code::INTERNAL,
        };
        log::error!("{err}");
        ttrpc::Error::RpcStatus(ttrpc::get_status(code, err.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_of(err: TaskError) -> (Code, String) {
        match ttrpc::Error::from(err) {
            ttrpc::Error::RpcStatus(status) => (status.code(), status.message().to_string()),
            other => panic!("not a status: {other:?}"),
        }
    }

    #[test]
    fn test_denial_is_permission_denied_with_revision_and_reasons() {
        let (code, message) = status_of(TaskError::Denied {
            id: "c1".into(),
            revision: "abc123".into(),
            reasons: vec!["image not allowed".into(), "no memory limit".into()],
        });
        assert_eq!(code, Code::PERMISSION_DENIED);
        assert!(
            message.starts_with("edgeshim: denied by policy"),
            "{message}"
        );
        assert!(message.contains("container c1"), "{message}");
        assert!(message.contains("abc123"), "{message}");
        assert!(
            message.contains("image not allowed; no memory limit"),
            "{message}"
        );
    }

    #[test]
    fn test_finished_process_is_not_found_as_containerd_expects() {
        let (code, message) = status_of(TaskError::AlreadyFinished { id: "c2".into() });
        assert_eq!(code, Code::NOT_FOUND);
        assert_eq!(message, "container c2: process already finished");
    }

    #[test]
    fn test_unsupported_operation_is_unimplemented_and_says_so() {
        let (code, message) = status_of(TaskError::Unsupported("checkpoint"));
        assert_eq!(code, Code::UNIMPLEMENTED);
        assert_eq!(message, "checkpoint is not supported by edgeshim");
    }
}
