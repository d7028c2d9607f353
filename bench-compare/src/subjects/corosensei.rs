//! corosensei 0.3, whose public API switchback reproduces, and the
//! reference of every ratio.

use std::time::Duration;

use ::corosensei::stack::DefaultStack;

use super::corosensei_api::{corosensei_api_ring, time_corosensei_api_op};
use super::{Op, Subject, Unsupported};

/// corosensei, measured by the same code as switchback
/// ([`time_corosensei_api_op`]).
pub struct Corosensei {
    /// The stack reused by the ops on an already-allocated stack.
    stack: DefaultStack,
    /// The coroutines of the last [`Op::Ring`], until [`Subject::release`].
    ring: Option<corosensei_api_ring!(corosensei)>,
}

impl Corosensei {
    /// Allocates the reusable stack.
    pub fn new() -> Self {
        Self {
            stack: DefaultStack::default(),
            ring: None,
        }
    }
}

impl Subject for Corosensei {
    fn name(&self) -> String {
        format!("corosensei {}", env!("BENCH_VERSION_COROSENSEI"))
    }

    fn fresh_stack(&self) -> &'static str {
        "`Coroutine::new`: 1 MiB `DefaultStack` (mmap + guard page)"
    }

    fn batch(&mut self, op: Op, iters: u64) -> Result<Duration, Unsupported> {
        time_corosensei_api_op!(corosensei, &mut self.stack, &mut self.ring, op, iters).unwrap_or(
            Err(match op {
                Op::MaybeGrow => Unsupported::new("corosensei has no maybe_grow"),
                _ => Unsupported::new("corosensei has no stack pool"),
            }),
        )
    }

    fn release(&mut self) {
        self.ring = None;
    }
}
