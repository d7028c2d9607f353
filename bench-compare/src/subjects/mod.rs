//! The measured operations and one adapter per coroutine crate.

use std::fmt;
use std::time::Duration;

mod context;
mod corosensei;
mod corosensei_api;
mod generator;
mod switchback;
mod wasmtime_fiber;

/// An operation timed on every crate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// resume + suspend round trip of an identity coroutine (`usize` in and
    /// out), created once per round.
    Switch,
    /// Create a coroutine on an already-allocated stack, resume it once to
    /// return, drop it.
    Call,
    /// The same with a newly allocated default stack each time.
    CallFresh,
    /// The same with a stack taken from (and returned to) a pool.
    CallPooled,
    /// `maybe_grow` with enough stack left: the cost of the check alone.
    MaybeGrow,
}

impl Op {
    /// Every operation, in report order.
    pub const ALL: [Op; 5] = [
        Op::Switch,
        Op::Call,
        Op::CallFresh,
        Op::CallPooled,
        Op::MaybeGrow,
    ];

    /// The name used on the command line and in the report.
    pub fn name(self) -> &'static str {
        match self {
            Op::Switch => "switch",
            Op::Call => "call",
            Op::CallFresh => "call-fresh",
            Op::CallPooled => "call-pooled",
            Op::MaybeGrow => "maybe-grow",
        }
    }

    /// Parses a [`name`](Op::name).
    pub fn parse(name: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|op| op.name() == name)
    }
}

/// Why a crate cannot do an operation; shown as `n/a` with this reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unsupported(pub &'static str);

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// One coroutine crate under test.
pub trait Subject {
    /// The crate's name and version, as shown in the report.
    fn name(&self) -> String;

    /// What stack [`Op::CallFresh`] allocates, for the report.
    fn fresh_stack(&self) -> &'static str;

    /// Runs `iters` iterations of `op` and returns the time they took,
    /// excluding any per-batch setup and teardown.
    fn batch(&mut self, op: Op, iters: u64) -> Result<Duration, Unsupported>;
}

/// Every subject, switchback (the baseline of the ratios) first.
pub fn all() -> Vec<Box<dyn Subject>> {
    vec![
        Box::new(self::switchback::Switchback::new()),
        Box::new(self::corosensei::Corosensei::new()),
        Box::new(self::context::Context::new()),
        Box::new(self::generator::Generator::new()),
        Box::new(self::wasmtime_fiber::WasmtimeFiber::new()),
    ]
}

/// The value every identity coroutine is resumed with.
const INPUT: usize = 1;

/// Stack size for crates without a default one (wasmtime-fiber): 1 MiB, as
/// switchback's and corosensei's `DefaultStack`.
const STACK_SIZE: usize = 1024 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_subject_runs_every_op_it_supports() {
        for mut subject in all() {
            for op in Op::ALL {
                for iters in [1, 3] {
                    let result = subject.batch(op, iters);
                    // Only pools and maybe_grow are missing, and switchback
                    // has both.
                    let expect_ok = !matches!(op, Op::CallPooled | Op::MaybeGrow)
                        || subject.name().starts_with("switchback ");
                    assert_eq!(
                        result.is_ok(),
                        expect_ok,
                        "{} {}",
                        subject.name(),
                        op.name()
                    );
                }
            }
        }
    }

    #[test]
    fn op_names_round_trip() {
        for op in Op::ALL {
            assert_eq!(Op::parse(op.name()), Some(op));
        }
        assert_eq!(Op::parse("jump"), None);
    }
}
