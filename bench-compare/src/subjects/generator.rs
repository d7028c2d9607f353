//! generator 0.8 (`Gn::new_scoped`, `send`), the crate behind the `may` runtime.

use std::hint::black_box;
use std::time::Duration;

use ::generator::Gn;

use super::{Op, Subject, Unsupported, INPUT};
use crate::measure::time_batch;

/// generator, driven through scoped generators.
pub struct Generator {
    /// A finished generator whose stack [`Op::Call`] reuses: `scoped_init`
    /// installs a new body on a done generator, as `may` does.
    reusable: ::generator::Generator<'static, usize, usize>,
}

impl Generator {
    /// Allocates the reusable generator and runs it to completion.
    pub fn new() -> Self {
        let mut reusable = Gn::<usize>::new_scoped(identity_once);
        reusable.raw_send(Some(0));
        assert!(reusable.is_done());
        Self { reusable }
    }
}

/// A generator body that returns its input.
fn identity_once(mut s: ::generator::Scope<'_, 'static, usize, usize>) -> usize {
    s.get_yield().unwrap_or_default()
}

impl Subject for Generator {
    fn name(&self) -> String {
        format!("generator {}", env!("BENCH_VERSION_GENERATOR"))
    }

    fn fresh_stack(&self) -> &'static str {
        "`Gn::new_scoped`: `DEFAULT_STACK_SIZE`, 32 KiB + guard page"
    }

    fn batch(&mut self, op: Op, iters: u64) -> Result<Duration, Unsupported> {
        Ok(match op {
            Op::Switch => {
                let mut g = Gn::<usize>::new_scoped(|mut s| {
                    let mut x = s.get_yield().unwrap_or_default();
                    loop {
                        x = s.yield_(x).unwrap_or_default();
                    }
                });
                g.send(0);
                time_batch(iters, || {
                    black_box(g.send(black_box(INPUT)));
                })
            }
            Op::Call => {
                let g = &mut self.reusable;
                time_batch(iters, || {
                    g.scoped_init(identity_once);
                    black_box(g.raw_send(Some(black_box(INPUT))));
                })
            }
            Op::CallFresh => time_batch(iters, || {
                let mut g = Gn::<usize>::new_scoped(identity_once);
                black_box(g.raw_send(Some(black_box(INPUT))));
            }),
            Op::CallPooled => return Err(Unsupported("generator has no stack pool")),
            Op::MaybeGrow => return Err(Unsupported("generator has no maybe_grow")),
        })
    }
}
