//! corosensei 0.3, whose public API switchback reproduces.

use std::time::Duration;

use ::corosensei::stack::DefaultStack;

use super::corosensei_api::time_corosensei_api_op;
use super::{Op, Subject, Unsupported};

/// corosensei, measured by the same code as switchback
/// ([`time_corosensei_api_op`]).
pub struct Corosensei {
    /// The stack reused by [`Op::Call`].
    stack: DefaultStack,
}

impl Corosensei {
    /// Allocates the reusable stack.
    pub fn new() -> Self {
        Self {
            stack: DefaultStack::default(),
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
        time_corosensei_api_op!(corosensei, &mut self.stack, op, iters).ok_or(match op {
            Op::MaybeGrow => Unsupported("corosensei has no maybe_grow"),
            _ => Unsupported("corosensei has no stack pool"),
        })
    }
}
