//! Caps a module's linear memory at the container's memory limit, so a module
//! that grows past it sees `memory.grow` fail (malloc returns NULL) and a clear
//! line on stderr, instead of being OOM-killed without a word.

use wasmtime::ResourceLimiter;

/// Written by hand rather than `StoreLimits` because we want the refusal said
/// on the container's stderr, once.
pub struct MemoryCap {
    limit: Option<usize>,
    reported: bool,
}

impl MemoryCap {
    pub fn new(limit: Option<u64>) -> Self {
        Self {
            limit: limit.map(|l| usize::try_from(l).unwrap_or(usize::MAX)),
            reported: false,
        }
    }
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if maximum.is_some_and(|max| desired > max) {
            return Ok(false);
        }
        match self.limit {
            Some(limit) if desired > limit => {
                if !self.reported {
                    self.reported = true;
                    eprintln!(
                        "edgeshim: memory.grow from {current} to {desired} bytes refused: \
                         the container's memory limit is {limit} bytes"
                    );
                }
                Ok(false)
            }
            _ => Ok(true),
        }
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(maximum.is_none_or(|max| desired <= max))
    }
}
