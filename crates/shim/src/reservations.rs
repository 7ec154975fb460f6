//! Ids with a create in progress: a create of an id runs for milliseconds
//! before its record exists, and a second create of the same id in that
//! time must be refused, not run beside it.

use std::collections::HashSet;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// The ids being created.
#[derive(Default)]
pub struct Creating(Mutex<HashSet<String>>);

/// Holds an id until dropped.
pub struct Reservation<'a> {
    creating: &'a Creating,
    id: String,
}

impl Creating {
    /// Reserves `id` unless another create holds it or `exists()` (called
    /// under the reservation lock) says a container has it.
    pub fn reserve<'a>(
        &'a self,
        id: &str,
        exists: impl FnOnce() -> bool,
    ) -> Option<Reservation<'a>> {
        let mut ids = self.lock();
        if ids.contains(id) || exists() {
            return None;
        }
        ids.insert(id.to_string());
        Some(Reservation {
            creating: self,
            id: id.to_string(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashSet<String>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.creating.lock().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Barrier;

    #[test]
    fn test_one_of_many_concurrent_creates_of_an_id_wins() {
        let creating = Creating::default();
        let threads = 8;
        let tried = Barrier::new(threads);
        let won = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    scope.spawn(|| {
                        let reservation = creating.reserve("c1", || false);
                        // Everyone tries while the winner still holds it.
                        tried.wait();
                        reservation.is_some()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join())
                .filter(|won| matches!(won, Ok(true)))
                .count()
        });
        assert_eq!(won, 1);
        // Released: the id can be created again, unless a container has it.
        assert!(creating.reserve("c1", || false).is_some());
        assert!(creating.reserve("c1", || true).is_none());
    }
}
