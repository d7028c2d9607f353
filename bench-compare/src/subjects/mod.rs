//! The measured operations and one adapter per coroutine crate.

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;
use std::sync::Once;
use std::time::Duration;

#[cfg(feature = "context")]
mod context;
#[cfg(feature = "corosensei")]
mod corosensei;
mod corosensei_api;
#[cfg(feature = "generator")]
mod generator;
mod switchback;
#[cfg(feature = "wasmtime-fiber")]
mod wasmtime_fiber;

/// An operation timed on every crate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// resume + suspend round trip of an identity coroutine (`usize` in and
    /// out) whose closure loops on `suspend`, created once per batch.
    Switch,
    /// The same with `suspend` called from three `#[inline(never)]` frames
    /// below the closure.
    SwitchDeep,
    /// Create a coroutine on an already-allocated stack, resume it once to
    /// return, drop it.
    Call,
    /// The same with a newly allocated default stack each time.
    CallFresh,
    /// The same with a stack taken from (and returned to) a pool.
    CallPooled,
    /// A generator that yields [`GENERATOR_ITEMS`] values, iterated to the
    /// end: ns per item.
    Generator,
    /// `N` coroutines passing a token around a ring: the driver resumes
    /// coroutine `i`, which suspends back, then resumes `i + 1`. ns per
    /// hand-off.
    Ring(usize),
    /// Create a coroutine on an already-allocated stack, resume it once so
    /// that it is suspended, drop it: the forced unwind of its stack.
    DropSuspended,
    /// A panic crossing a coroutine: the closure panics, `resume` propagates
    /// it, `catch_unwind` in the driver catches it.
    Panic,
    /// `maybe_grow` with enough stack left: the cost of the check alone.
    MaybeGrow,
}

/// The ring sizes that [`Op::ALL`] holds.
pub const RING_SIZES: [usize; 5] = [2, 16, 256, 4096, 100_000];

/// The items of one [`Op::Generator`] batch (`--quick`: [`QUICK_GENERATOR_ITEMS`]).
pub const GENERATOR_ITEMS: u64 = 10_000_000;

/// The items of one [`Op::Generator`] batch with `--quick`.
pub const QUICK_GENERATOR_ITEMS: u64 = 100_000;

/// Usable stack of each coroutine in a ring: 32 KiB, switchback's minimum
/// (`stack::MIN_STACK_SIZE`; it rounds 16 KiB up to that), for every crate.
pub const RING_STACK_SIZE: usize = 32 * 1024;

impl Op {
    /// Every operation, in report order.
    pub const ALL: [Op; 14] = [
        Op::Switch,
        Op::SwitchDeep,
        Op::Call,
        Op::CallFresh,
        Op::CallPooled,
        Op::Generator,
        Op::Ring(RING_SIZES[0]),
        Op::Ring(RING_SIZES[1]),
        Op::Ring(RING_SIZES[2]),
        Op::Ring(RING_SIZES[3]),
        Op::Ring(RING_SIZES[4]),
        Op::DropSuspended,
        Op::Panic,
        Op::MaybeGrow,
    ];

    /// The name used on the command line and in the report.
    pub fn name(self) -> Cow<'static, str> {
        Cow::Borrowed(match self {
            Op::Switch => "switch",
            Op::SwitchDeep => "switch-deep",
            Op::Call => "call",
            Op::CallFresh => "call-fresh",
            Op::CallPooled => "call-pooled",
            Op::Generator => "generator",
            Op::Ring(n) => return Cow::Owned(format!("ring-{n}")),
            Op::DropSuspended => "drop-suspended",
            Op::Panic => "panic",
            Op::MaybeGrow => "maybe-grow",
        })
    }

    /// Parses a [`name`](Op::name); `ring-N` takes any `N` of at least 2.
    pub fn parse(name: &str) -> Option<Op> {
        if let Some(n) = name.strip_prefix("ring-") {
            return n.parse().ok().filter(|&n| n >= 2).map(Op::Ring);
        }
        Op::ALL.into_iter().find(|op| op.name() == name)
    }

    /// The sort key of the report order: rings by size, in `ALL`'s place.
    pub fn order(self) -> (usize, usize) {
        let kind = |op: &Op| std::mem::discriminant(op) == std::mem::discriminant(&self);
        let position = Op::ALL.iter().position(kind).unwrap_or(usize::MAX);
        match self {
            Op::Ring(n) => (position, n),
            _ => (position, 0),
        }
    }

    /// What one iteration is, for the report; `generator_items` is the
    /// length of [`Op::Generator`]'s generator.
    pub fn describe(self, generator_items: u64) -> String {
        match self {
            Op::Switch => {
                "`resume` + `suspend` round trip of an identity coroutine (`usize` in and \
                           out) whose closure loops on `suspend`"
                    .into()
            }
            Op::SwitchDeep => "the same, with `suspend` called three `#[inline(never)]` frames \
                               below the closure"
                .into(),
            Op::Call => "create a coroutine on an already-allocated stack, resume it once to \
                         return, drop it"
                .into(),
            Op::CallFresh => "the same on a newly allocated default stack each time".into(),
            Op::CallPooled => "the same with a stack taken from a pool and returned to it when \
                               the coroutine drops"
                .into(),
            Op::Generator => format!(
                "one item of a generator that yields {} values (`usize`), iterated to the end",
                thousands(generator_items)
            ),
            Op::Ring(n) => Op::describe_ring(&thousands(n as u64)),
            Op::DropSuspended => "create a coroutine on an already-allocated stack, resume it \
                                  once so that it suspends, drop it (the forced unwind)"
                .into(),
            Op::Panic => "create a coroutine on an already-allocated stack whose closure \
                          panics; `resume` propagates the panic to `catch_unwind` in the driver \
                          (a no-op panic hook is set meanwhile)"
                .into(),
            Op::MaybeGrow => "`stack::maybe_grow(32 KiB, 1 MiB, f)` with plenty of stack left, \
                              so `f` runs in place: the cost of finding the stack left"
                .into(),
        }
    }
}

impl Op {
    /// What one iteration of a ring of `size` coroutines is.
    pub fn describe_ring(size: &str) -> String {
        format!(
            "one hand-off of a token around a ring of {size} coroutines on 32 KiB stacks: \
             the driver resumes coroutine i, which suspends back, then resumes i + 1"
        )
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Why a crate cannot do an operation; shown as `n/a` with this reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unsupported(pub Cow<'static, str>);

impl Unsupported {
    /// A fixed reason.
    pub const fn new(why: &'static str) -> Self {
        Unsupported(Cow::Borrowed(why))
    }
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
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

    /// Frees what `batch` kept for the next batch of the same op (a ring).
    fn release(&mut self) {}
}

/// A crate's name (as on the command line) and its constructor.
type Entry = (&'static str, fn() -> Box<dyn Subject>);

/// Every crate that the harness knows, in report order: switchback first,
/// corosensei (the reference of the ratios) second. The peers are optional
/// features of this crate.
pub const KNOWN: [&str; 5] = [
    "switchback",
    "corosensei",
    "context",
    "generator",
    "wasmtime-fiber",
];

/// The crates built into this program, in [`KNOWN`] order.
pub fn crates() -> Vec<Entry> {
    let mut crates: Vec<Entry> = vec![("switchback", || {
        Box::new(self::switchback::Switchback::new())
    })];
    #[cfg(feature = "corosensei")]
    crates.push(("corosensei", || {
        Box::new(self::corosensei::Corosensei::new())
    }));
    #[cfg(feature = "context")]
    crates.push(("context", || Box::new(self::context::Context::new())));
    #[cfg(feature = "generator")]
    crates.push(("generator", || Box::new(self::generator::Generator::new())));
    #[cfg(feature = "wasmtime-fiber")]
    crates.push(("wasmtime-fiber", || {
        Box::new(self::wasmtime_fiber::WasmtimeFiber::new())
    }));
    crates
}

/// The known crates that this program was built without.
pub fn left_out() -> Vec<&'static str> {
    let built = crates();
    KNOWN
        .into_iter()
        .filter(|name| !built.iter().any(|(b, _)| b == name))
        .collect()
}

/// The crate whose time divides every other's in the ratios.
pub const REFERENCE: &str = "corosensei";

/// The subjects named in `names` (all when `None`), switchback always
/// first, in [`KNOWN`] order. `Err` names an unknown crate, or one this
/// program was built without.
pub fn select(names: Option<&[String]>) -> Result<Vec<Box<dyn Subject>>, String> {
    let built = crates();
    if let Some(names) = names {
        for name in names {
            if !KNOWN.contains(&name.as_str()) {
                return Err(format!(
                    "unknown crate: {name} (known: {})",
                    KNOWN.join(", ")
                ));
            }
            if !built.iter().any(|(b, _)| b == name) {
                return Err(format!(
                    "{name} is not built in (build with `--features {name}`)"
                ));
            }
        }
    }
    Ok(built
        .iter()
        .filter(|(name, _)| {
            *name == "switchback" || names.is_none_or(|names| names.iter().any(|n| n == name))
        })
        .map(|(_, new)| new())
        .collect())
}

/// A subject's crate name: its report name without the version.
pub fn crate_name(report_name: &str) -> &str {
    report_name.split_whitespace().next().unwrap_or("")
}

/// The value every identity coroutine is resumed with.
const INPUT: usize = 1;

/// Stack size for crates without a default one (wasmtime-fiber): 1 MiB, as
/// switchback's and corosensei's `DefaultStack`.
const STACK_SIZE: usize = 1024 * 1024;

thread_local! {
    /// Set while [`quiet_panics`] runs: the panic hook prints nothing.
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with panics on this thread not printed: [`Op::Panic`] panics
/// on purpose, millions of times.
pub fn quiet_panics<R>(f: impl FnOnce() -> R) -> R {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(Cell::get) {
                previous(info);
            }
        }));
    });
    struct Loud;
    impl Drop for Loud {
        fn drop(&mut self) {
            QUIET.with(|quiet| quiet.set(false));
        }
    }
    QUIET.with(|quiet| quiet.set(true));
    let _loud = Loud;
    f()
}

/// The panic of [`Op::Panic`]'s closures.
#[cold]
#[inline(never)]
fn panic_on_purpose() -> ! {
    panic!("bench-compare: a panic on purpose (op `panic`)")
}

/// Whether a ring of `n` coroutines fits in the memory mappings the
/// process may have: every crate here maps each stack with a guard page
/// below it, two mappings per stack, and Linux allows a process
/// `vm.max_map_count` of them (65,530 by default), so 100,000 guarded
/// stacks do not fit by default. `make` allocates one stack of the kind the
/// ring uses; a few are made to count the mappings each takes.
pub fn ring_fits<S>(n: usize, mut make: impl FnMut() -> S) -> Result<(), Unsupported> {
    let (Some(limit), Some(before)) = (max_map_count(), mapping_count()) else {
        return Ok(());
    };
    const PROBE: usize = 16;
    let probes: Vec<S> = (0..PROBE).map(|_| make()).collect();
    let after = mapping_count().unwrap_or(before);
    drop(probes);
    let per_stack = after.saturating_sub(before).div_ceil(PROBE).max(1);
    // Room for everything else the process maps meanwhile.
    const SPARE: usize = 1024;
    let needed = n * per_stack;
    if before + needed + SPARE > limit {
        return Err(Unsupported(Cow::Owned(format!(
            "{} stacks take {} memory mappings ({per_stack} each: stack and guard page), \
             more than vm.max_map_count = {} allows",
            thousands(n as u64),
            thousands(needed as u64),
            thousands(limit as u64)
        ))));
    }
    Ok(())
}

/// The most memory mappings a process may have (Linux), if known.
fn max_map_count() -> Option<usize> {
    std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// How many memory mappings this process has (Linux), if known.
fn mapping_count() -> Option<usize> {
    Some(
        std::fs::read_to_string("/proc/self/maps")
            .ok()?
            .lines()
            .count(),
    )
}

/// Why [`ring_fits`] or a stack allocation failed, as an [`Unsupported`].
fn allocation_failed(n: usize, error: impl fmt::Display) -> Unsupported {
    Unsupported(Cow::Owned(format!(
        "allocating the stacks of a ring of {} failed: {error}",
        thousands(n as u64)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `subject` is expected to do `op`.
    fn supports(subject: &str, op: Op) -> bool {
        match op {
            Op::CallPooled | Op::MaybeGrow => subject == "switchback",
            Op::DropSuspended => !matches!(subject, "context" | "wasmtime-fiber"),
            Op::Panic => subject != "context",
            _ => true,
        }
    }

    #[test]
    fn every_subject_runs_every_op_it_supports() {
        for (name, new) in crates() {
            let mut subject = new();
            assert_eq!(crate_name(&subject.name()), name);
            for op in Op::ALL {
                // The large rings take long in a debug build; ring-256
                // covers the code.
                if matches!(op, Op::Ring(n) if n > 256) {
                    continue;
                }
                for iters in [1, 3, 600] {
                    let result = subject.batch(op, iters);
                    assert_eq!(
                        result.is_ok(),
                        supports(name, op),
                        "{name} {op}: {result:?}"
                    );
                }
                subject.release();
            }
        }
    }

    #[test]
    fn op_names_round_trip() {
        for op in Op::ALL {
            assert_eq!(Op::parse(&op.name()), Some(op));
        }
        assert_eq!(Op::parse("ring-7"), Some(Op::Ring(7)));
        assert_eq!(Op::parse("ring-1"), None);
        assert_eq!(Op::parse("ring-"), None);
        assert_eq!(Op::parse("jump"), None);
    }

    #[test]
    fn ops_sort_in_report_order() {
        let mut ops = vec![
            Op::Panic,
            Op::Ring(300),
            Op::Switch,
            Op::Ring(2),
            Op::MaybeGrow,
        ];
        ops.sort_by_key(|op| op.order());
        assert_eq!(
            ops,
            [
                Op::Switch,
                Op::Ring(2),
                Op::Ring(300),
                Op::Panic,
                Op::MaybeGrow
            ]
        );
    }

    #[test]
    #[cfg(all(feature = "corosensei", feature = "context"))]
    fn selecting_crates() {
        let names = |subjects: Vec<Box<dyn Subject>>| -> Vec<String> {
            subjects
                .iter()
                .map(|s| crate_name(&s.name()).to_string())
                .collect()
        };
        assert_eq!(names(select(None).unwrap()).len(), crates().len());
        let picked = select(Some(&["context".into(), "corosensei".into()])).unwrap();
        assert_eq!(names(picked), ["switchback", "corosensei", "context"]);
        assert!(select(Some(&["may".into()])).is_err());
        assert_eq!(left_out().len(), KNOWN.len() - crates().len());
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(7), "7");
        assert_eq!(thousands(100_000), "100,000");
        assert_eq!(thousands(10_000_000), "10,000,000");
    }

    #[test]
    fn quiet_panics_are_caught_and_silent() {
        let caught = quiet_panics(|| std::panic::catch_unwind(|| panic_on_purpose()));
        assert!(caught.is_err());
        assert!(!QUIET.with(Cell::get));
    }

    #[test]
    fn a_small_ring_fits() {
        assert_eq!(ring_fits(16, || vec![0u8; 16]), Ok(()));
        // A billion stacks of one mapping each do not, where Linux counts.
        if max_map_count().is_some() {
            let many = ring_fits(1_000_000_000, || {
                ::switchback::stack::DefaultStack::new(RING_STACK_SIZE).unwrap()
            });
            assert!(many.is_err());
        }
    }
}
