//! generator 0.8 (`Gn::new_scoped`, `send`), the crate behind the `may` runtime.

use std::hint::black_box;
use std::time::{Duration, Instant};

use ::generator::{Gn, Scope};

use super::{Op, Subject, Unsupported, INPUT, RING_STACK_SIZE};
use crate::measure::time_batch;

/// A generator that takes and yields `usize`s.
type UsizeGenerator = ::generator::Generator<'static, usize, usize>;

/// generator, driven through scoped generators.
pub struct Generator {
    /// A finished generator whose stack the ops on an already-allocated
    /// stack reuse: `scoped_init` installs a new body on a done generator,
    /// as `may` does.
    reusable: UsizeGenerator,
    /// The generators of the last [`Op::Ring`], until [`Subject::release`].
    ring: Option<Vec<UsizeGenerator>>,
}

/// [`RING_STACK_SIZE`] in the unit of `Gn::new_scoped_opt`: words.
const RING_STACK_WORDS: usize = RING_STACK_SIZE / size_of::<usize>();

impl Generator {
    /// Allocates the reusable generator and runs it to completion.
    pub fn new() -> Self {
        let mut reusable = Gn::<usize>::new_scoped(identity_once);
        reusable.raw_send(Some(0));
        assert!(reusable.is_done());
        Self {
            reusable,
            ring: None,
        }
    }
}

/// A generator body that returns its input.
fn identity_once(mut s: Scope<'_, 'static, usize, usize>) -> usize {
    s.get_yield().unwrap_or_default()
}

/// A generator body that hands every input back.
fn identity_loop(mut s: Scope<'_, 'static, usize, usize>) -> usize {
    let mut x = s.get_yield().unwrap_or_default();
    loop {
        x = s.yield_(x).unwrap_or_default();
    }
}

/// The same, handing values back three frames down.
fn identity_loop_deep(mut s: Scope<'_, 'static, usize, usize>) -> usize {
    let mut x = s.get_yield().unwrap_or_default();
    loop {
        x = frame1(&mut s, x);
    }
}

// Each frame uses the result of the call below it, so that no call is a
// tail call and the three frames exist.

#[inline(never)]
fn frame1(s: &mut Scope<'_, 'static, usize, usize>, x: usize) -> usize {
    black_box(frame2(s, x))
}

#[inline(never)]
fn frame2(s: &mut Scope<'_, 'static, usize, usize>, x: usize) -> usize {
    black_box(frame3(s, x))
}

#[inline(never)]
fn frame3(s: &mut Scope<'_, 'static, usize, usize>, x: usize) -> usize {
    black_box(s.yield_(x).unwrap_or_default())
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
            Op::Switch | Op::SwitchDeep => {
                let mut g = if op == Op::Switch {
                    Gn::<usize>::new_scoped(identity_loop)
                } else {
                    Gn::<usize>::new_scoped(identity_loop_deep)
                };
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
            Op::Generator => {
                // The body's return value is the last item.
                let last = iters - 1;
                let g = Gn::<()>::new_scoped(move |mut s| {
                    for i in 0..last {
                        s.yield_with(i as usize);
                    }
                    last as usize
                });
                let start = Instant::now();
                for item in g {
                    black_box(item);
                }
                start.elapsed()
            }
            Op::Ring(n) => return self.ring(n, iters),
            Op::DropSuspended => {
                let g = &mut self.reusable;
                super::quiet_panics(|| {
                    time_batch(iters, || {
                        g.scoped_init(identity_loop);
                        black_box(g.raw_send(Some(black_box(INPUT))));
                        g.cancel();
                    })
                })
            }
            Op::Panic => {
                let g = &mut self.reusable;
                super::quiet_panics(|| {
                    time_batch(iters, || {
                        g.scoped_init(|_| {
                            if black_box(true) {
                                super::panic_on_purpose();
                            }
                            0
                        });
                        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            g.raw_send(Some(black_box(INPUT)))
                        }));
                        assert!(caught.is_err());
                    })
                })
            }
            Op::CallPooled => return Err(Unsupported::new("generator has no stack pool")),
            Op::MaybeGrow => return Err(Unsupported::new("generator has no maybe_grow")),
        })
    }

    fn release(&mut self) {
        self.ring = None;
    }
}

impl Generator {
    /// [`Op::Ring`] of `n` generators, `iters` hand-offs.
    fn ring(&mut self, n: usize, iters: u64) -> Result<Duration, Unsupported> {
        if self.ring.as_ref().map(Vec::len) != Some(n) {
            self.ring = None;
            super::ring_fits(n, || {
                Gn::<usize>::new_scoped_opt(RING_STACK_WORDS, identity_once)
            })?;
            let mut ring = Vec::with_capacity(n);
            for _ in 0..n {
                let mut g = Gn::<usize>::new_scoped_opt(RING_STACK_WORDS, identity_loop);
                g.send(0);
                ring.push(g);
            }
            self.ring = Some(ring);
        }
        let ring = self.ring.as_mut().expect("built above");
        let start = Instant::now();
        let (mut token, mut i) = (INPUT, 0);
        for _ in 0..iters {
            token = ring[i].send(token);
            i += 1;
            if i == n {
                i = 0;
            }
        }
        black_box(token);
        Ok(start.elapsed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generator_op_yields_as_many_items_as_iterations() {
        for n in [1, 2, 5] {
            let last = n - 1;
            let g = Gn::<()>::new_scoped(move |mut s| {
                for i in 0..last {
                    s.yield_with(i);
                }
                last
            });
            assert_eq!(g.collect::<Vec<_>>(), (0..n).collect::<Vec<_>>());
        }
    }

    #[test]
    fn ring_stacks_are_32_kib() {
        let g = Gn::<usize>::new_scoped_opt(RING_STACK_WORDS, identity_once);
        let (total_words, _) = g.stack_usage();
        assert!(
            total_words * size_of::<usize>() >= RING_STACK_SIZE,
            "{total_words}"
        );
        assert!(
            total_words * size_of::<usize>() < 2 * RING_STACK_SIZE,
            "{total_words}"
        );
    }
}
