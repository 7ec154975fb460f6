//! Refusals, as a container reports them to its shim, and the rate limit
//! that keeps a connect flood from filling logs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::Use;

/// One refused use of an address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Refusal {
    pub usage: Use,
    pub address: SocketAddr,
    /// The rule that decided, or `default`.
    pub decided_by: String,
}

/// Where a container's engine sends its refusals (to the shim, which logs
/// them); must never block.
pub type ReportRefusal = Arc<dyn Fn(&Refusal) + Send + Sync>;

/// At most `per_window` events per `window`; the count of those held back
/// is handed to the next one let through.
#[derive(Debug, Clone)]
pub struct RateLimit {
    window: Duration,
    per_window: u32,
    window_start: Option<Instant>,
    let_through: u32,
    held_back: u64,
}

impl RateLimit {
    /// 10 per 10 s: what a container's refusals get, on its stderr and in
    /// the decision log.
    pub fn for_refusals() -> Self {
        Self::new(Duration::from_secs(10), 10)
    }

    pub fn new(window: Duration, per_window: u32) -> Self {
        Self {
            window,
            per_window,
            window_start: None,
            let_through: 0,
            held_back: 0,
        }
    }

    /// `Some(held back since the last one let through)` when an event at
    /// `now` may go through.
    pub fn admit(&mut self, now: Instant) -> Option<u64> {
        let fresh = self
            .window_start
            .is_none_or(|start| now.duration_since(start) >= self.window);
        if fresh {
            self.window_start = Some(now);
            self.let_through = 0;
        }
        if self.let_through < self.per_window {
            self.let_through += 1;
            Some(std::mem::take(&mut self.held_back))
        } else {
            self.held_back += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_the_limit_holds_per_window_and_counts_what_it_held_back() {
        let mut limit = RateLimit::new(Duration::from_secs(10), 10);
        let start = Instant::now();
        let through = (0..1000).filter(|_| limit.admit(start).is_some()).count();
        assert_eq!(through, 10);
        assert_eq!(limit.admit(start + Duration::from_secs(10)), Some(990));
        assert_eq!(limit.admit(start + Duration::from_secs(10)), Some(0));
    }

    #[test]
    fn test_a_refusal_round_trips_as_json() {
        let refusal = Refusal {
            usage: Use::Connect,
            address: "10.0.0.1:1883".parse().expect("address"),
            decided_by: "default".into(),
        };
        let text = serde_json::to_string(&refusal).expect("json");
        assert_eq!(
            text,
            r#"{"usage":"connect","address":"10.0.0.1:1883","decided_by":"default"}"#
        );
        assert_eq!(
            serde_json::from_str::<Refusal>(&text).expect("back"),
            refusal
        );
    }
}
