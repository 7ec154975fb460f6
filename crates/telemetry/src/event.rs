//! The events, as they travel: one JSON object per datagram, small and
//! versioned by its fields (an exporter ignores what it does not know and
//! counts a datagram it cannot read as unreadable).

use serde::{Deserialize, Serialize};

/// The step of a container's life an [`Event::Container`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Create,
    Start,
}

/// How the step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It did what was asked.
    Ok,
    /// The policy gate refused it.
    Denied,
    /// Anything else went wrong (a bad bundle or module, a limit, the OS).
    Failed,
}

/// Where a module's compiled code came from at create.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheLookup {
    /// The shim had it prepared, or the disk cache held it.
    Hit,
    /// It was compiled, taking `compile_seconds`.
    Miss,
}

/// One thing a shim saw. `runtime` is the shim's engine (`wasmtime`,
/// `wasmedge`): the handler a pod's runtime class names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A create or start request answered, after `seconds`.
    Container {
        runtime: String,
        step: Step,
        outcome: Outcome,
        seconds: f64,
    },
    /// A Wasm module looked up at create.
    Module {
        runtime: String,
        lookup: CacheLookup,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        compile_seconds: Option<f64>,
    },
    /// The kernel's OOM killer acted in a container's memory cgroup.
    Oom { runtime: String },
}

impl Event {
    pub fn to_bytes(&self) -> Vec<u8> {
        // A value of plain strings, enums and floats always serializes.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads one datagram; `None` for anything that is not an event.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_survives_the_wire_and_garbage_does_not_parse() {
        let event = Event::Module {
            runtime: "wasmedge".into(),
            lookup: CacheLookup::Miss,
            compile_seconds: Some(1.5),
        };
        assert_eq!(Event::from_bytes(&event.to_bytes()), Some(event));
        let text = String::from_utf8(
            Event::Container {
                runtime: "wasmtime".into(),
                step: Step::Start,
                outcome: Outcome::Denied,
                seconds: 0.002,
            }
            .to_bytes(),
        )
        .expect("JSON is UTF-8");
        assert!(text.contains(r#""event":"container""#), "{text}");
        assert!(text.contains(r#""outcome":"denied""#), "{text}");
        assert_eq!(Event::from_bytes(b"{\"event\":\"container\"}"), None);
        assert_eq!(Event::from_bytes(b"\xff\x00"), None);
    }
}
