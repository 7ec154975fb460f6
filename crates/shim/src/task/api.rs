//! The Task API as containerd-shim's async ttrpc server calls it.
//!
//! The server runs every connection as tasks on the shim's one runtime
//! thread. The operations themselves are blocking code (libcontainer, the
//! launcher's socket, mounts, the policy gate), so each runs on the
//! runtime's blocking pool, whose threads exist only while requests are
//! in flight (and a moment after). Wait is the exception: it lasts as long
//! as its container, so it is awaited, holding no thread.
//!
//! The sync server this replaces held six to eight threads per connection,
//! and containerd 1.6 opens a connection per task (docs/design.md, "Where
//! a pod's memory goes").

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use containerd_shim::api::*;
use containerd_shim::{Task, TtrpcContext, TtrpcResult};
use edgeshim_engine::Engine;
use edgeshim_telemetry::Step;

use super::{TaskService, reject_exec};
use crate::error::{Result, TaskError};

/// The task service, served.
pub struct TaskApi<E: Engine> {
    service: Arc<TaskService<E>>,
}

impl<E: Engine> TaskApi<E> {
    pub fn new(service: TaskService<E>) -> Self {
        Self {
            service: Arc::new(service),
        }
    }

    /// Runs `operation` on container `id` on the blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        id: &str,
        operation: impl FnOnce(&TaskService<E>) -> Result<T> + Send + 'static,
    ) -> TtrpcResult<T> {
        let service = self.service.clone();
        let done = tokio::task::spawn_blocking(move || operation(&service)).await;
        let answer = done.map_err(|e| TaskError::Io {
            id: id.to_string(),
            what: "request",
            reason: format!("its handler failed: {e}"),
        })?;
        Ok(answer?)
    }
}

#[async_trait]
impl<E: Engine> Task for TaskApi<E> {
    async fn create(
        &self,
        _: &TtrpcContext,
        req: CreateTaskRequest,
    ) -> TtrpcResult<CreateTaskResponse> {
        let id = req.id.clone();
        self.blocking(&id, move |s| {
            let since = Instant::now();
            let created = s.do_create(req);
            s.telemetry.answered(Step::Create, &created, since);
            created
        })
        .await
    }

    async fn start(&self, _: &TtrpcContext, req: StartRequest) -> TtrpcResult<StartResponse> {
        reject_exec(&req.exec_id, "exec")?;
        let id = req.id.clone();
        self.blocking(&req.id, move |s| {
            let since = Instant::now();
            let started = s.do_start(&id);
            s.telemetry.answered(Step::Start, &started, since);
            started
        })
        .await
    }

    async fn kill(&self, _: &TtrpcContext, req: KillRequest) -> TtrpcResult<Empty> {
        reject_exec(&req.exec_id, "exec")?;
        let id = req.id.clone();
        self.blocking(&req.id, move |s| {
            s.do_kill(&id, req.signal, req.all)?;
            Ok(Empty::new())
        })
        .await
    }

    async fn delete(&self, _: &TtrpcContext, req: DeleteRequest) -> TtrpcResult<DeleteResponse> {
        reject_exec(&req.exec_id, "exec")?;
        let id = req.id.clone();
        self.blocking(&req.id, move |s| s.do_delete(&id)).await
    }

    async fn wait(&self, _: &TtrpcContext, req: WaitRequest) -> TtrpcResult<WaitResponse> {
        reject_exec(&req.exec_id, "exec")?;
        Ok(self.service.do_wait(&req.id).await?)
    }

    async fn state(&self, _: &TtrpcContext, req: StateRequest) -> TtrpcResult<StateResponse> {
        reject_exec(&req.exec_id, "exec")?;
        let id = req.id.clone();
        self.blocking(&req.id, move |s| s.do_state(&id)).await
    }

    async fn pids(&self, _: &TtrpcContext, req: PidsRequest) -> TtrpcResult<PidsResponse> {
        let id = req.id.clone();
        self.blocking(&req.id, move |s| s.do_pids(&id)).await
    }

    async fn stats(&self, _: &TtrpcContext, req: StatsRequest) -> TtrpcResult<StatsResponse> {
        let id = req.id.clone();
        self.blocking(&req.id, move |s| s.do_stats(&id)).await
    }

    async fn connect(&self, _: &TtrpcContext, req: ConnectRequest) -> TtrpcResult<ConnectResponse> {
        let id = req.id.clone();
        self.blocking(&req.id, move |s| s.do_connect(&id)).await
    }

    async fn shutdown(&self, _: &TtrpcContext, _: ShutdownRequest) -> TtrpcResult<Empty> {
        if self.service.map().is_empty() {
            self.service.exit.signal();
        }
        Ok(Empty::new())
    }

    async fn close_io(&self, _: &TtrpcContext, _: CloseIORequest) -> TtrpcResult<Empty> {
        // Nothing to do: the container holds its stdin FIFO itself, and
        // containerd closing its end gives it EOF.
        Ok(Empty::new())
    }

    async fn exec(&self, _: &TtrpcContext, _: ExecProcessRequest) -> TtrpcResult<Empty> {
        Err(TaskError::Unsupported("exec").into())
    }

    async fn pause(&self, _: &TtrpcContext, _: PauseRequest) -> TtrpcResult<Empty> {
        Err(TaskError::Unsupported("pause").into())
    }

    async fn resume(&self, _: &TtrpcContext, _: ResumeRequest) -> TtrpcResult<Empty> {
        Err(TaskError::Unsupported("resume").into())
    }

    async fn update(&self, _: &TtrpcContext, req: UpdateTaskRequest) -> TtrpcResult<Empty> {
        let id = req.id.clone();
        self.blocking(&id, move |s| {
            s.do_update(&req)?;
            Ok(Empty::new())
        })
        .await
    }

    async fn checkpoint(&self, _: &TtrpcContext, _: CheckpointTaskRequest) -> TtrpcResult<Empty> {
        Err(TaskError::Unsupported("checkpoint").into())
    }

    async fn resize_pty(&self, _: &TtrpcContext, _: ResizePtyRequest) -> TtrpcResult<Empty> {
        Err(TaskError::Unsupported("terminals (resize_pty)").into())
    }
}
