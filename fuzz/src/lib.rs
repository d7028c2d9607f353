//! Random programs of operations on several live coroutines, run against a
//! reference model that predicts every value, every panic and the exact
//! number of times each value is dropped.
//!
//! [`run`] decodes a program from fuzzer bytes ([`Program`]) and runs it;
//! any disagreement with the model aborts the process with a message (a
//! panic would not do: the driver catches panics, since many are expected).
//! The libFuzzer target in `fuzz_targets/` and the corpus replay in
//! `tests/` both call it.
//!
//! Every value that crosses a coroutine or lives on its stack is a
//! [`Tracked`] with a fresh id, counted when dropped. The model knows, for
//! each id, whether it must have been dropped once by now or leaked (its
//! frames were abandoned by `force_reset`, or its coroutine was leaked
//! because a panic interrupted its unwinding, as documented), and the
//! counts are compared after every operation.

use arbitrary::{Arbitrary, Unstructured};
use std::any::Any;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::hint::black_box;
use std::panic::{catch_unwind, panic_any, AssertUnwindSafe};
use switchback::stack::{DefaultStack, PooledStack, Stack, StackPointer, StackPool};
use switchback::{Coroutine, CoroutineResult, ForcedUnwind, Yielder};

/// How many coroutines a program juggles at once.
const SLOTS: usize = 4;
/// The deepest a coroutine suspends from, in frames below its closure.
const MAX_DEPTH: u8 = 12;
/// The usable size of every stack the driver makes.
const STACK_SIZE: usize = 64 * 1024;
/// The red zone asked of `maybe_grow`, and the deepest recursion run in it
/// (a few hundred bytes a frame in a debug build, so well within it).
const GROW_RED_ZONE: usize = 32 * 1024;
const MAX_GROW_DEPTH: u8 = 48;
/// Leaked coroutines keep their stacks mapped for the life of the process;
/// past this many, a drop that would leak one unwinds it explicitly first.
const MAX_LEAKED_COROUTINES: usize = 1000;

/// Aborts with a message unless the condition holds.
macro_rules! check {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            // Straight to the stream: libtest's capture of `eprintln!` would
            // be lost with the abort.
            let _ = std::io::Write::write_fmt(
                &mut std::io::stderr(),
                format_args!(
                    "switchback-fuzz: model mismatch{}: {}\n",
                    INPUT_NAME.with(|name| name.borrow().clone()),
                    format_args!($($msg)+)
                ),
            );
            std::process::abort();
        }
    };
}

thread_local! {
    /// Where the input being run came from, for the mismatch message (see
    /// [`run_named`]).
    static INPUT_NAME: RefCell<String> = const { RefCell::new(String::new()) };
    /// How many times each id was dropped.
    static DROPS: RefCell<BTreeMap<u64, u32>> = const { RefCell::new(BTreeMap::new()) };
}

static LEAKED_COROUTINES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A value whose drops are counted; its destructor panics with
/// [`DropPanic`] if asked to, unless the thread is already panicking.
#[derive(Debug)]
pub struct Tracked {
    id: u64,
    panics_on_drop: bool,
}

impl Tracked {
    fn new(id: u64, panics_on_drop: bool) -> Self {
        Tracked { id, panics_on_drop }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        DROPS.with(|drops| *drops.borrow_mut().entry(self.id).or_insert(0) += 1);
        if self.panics_on_drop && !std::thread::panicking() {
            panic_any(DropPanic(self.id));
        }
    }
}

/// The payload of a panic raised by the destructor of the [`Tracked`] with
/// this id.
#[derive(Debug)]
struct DropPanic(u64);

/// Where a program's coroutine gets its stack.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum StackKind {
    /// `Coroutine::new`.
    New,
    /// `Coroutine::with_stack` on a `DefaultStack`.
    Default,
    /// `Coroutine::try_with_pool` on the program's own `StackPool`.
    Pool,
    /// `Coroutine::pooled` (the process-wide pool).
    GlobalPool,
    /// `Coroutine::with_stack` on a user's `Stack` in heap memory.
    Heap,
}

/// One operation of a program.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Op {
    /// Put a new coroutine in a slot (dropping what was there).
    Create {
        slot: u8,
        stack: StackKind,
        capture_panics_on_drop: bool,
    },
    /// Resume a slot's coroutine with what it should do next.
    Resume { slot: u8, step: Step },
    /// `force_unwind`.
    ForceUnwind { slot: u8 },
    /// `force_reset` (leaks what the coroutine's stack holds).
    ForceReset { slot: u8 },
    /// Drop the slot's coroutine.
    Drop { slot: u8 },
    /// A finished coroutine's stack, taken by `into_stack`, carries a new
    /// coroutine.
    Reuse {
        slot: u8,
        capture_panics_on_drop: bool,
    },
    /// `on_stack` on a fresh stack, recursing there.
    OnStack { depth: u8, value: u32 },
}

/// What a coroutine does when resumed.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Step {
    /// Suspend from `depth` frames down (each holding a [`Tracked`]),
    /// yielding a value.
    Yield {
        depth: u8,
        panics_on_drop: bool,
        /// What it does if unwound while suspended there.
        on_unwind: OnUnwind,
        /// Call `Yielder::on_parent_stack` first, with this value.
        parent_call: Option<u16>,
        /// Call `maybe_grow` first, recursing this deep in it (modulo
        /// [`MAX_GROW_DEPTH`]); with `true`, with a red zone bigger than
        /// the stack, so that it always moves to a new stack.
        grow: Option<(u8, bool)>,
    },
    /// Return a value from the closure.
    Return { panics_on_drop: bool },
    /// Panic with a [`Tracked`] payload.
    Panic,
}

/// What a suspended coroutine does when a forced unwind reaches it.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnUnwind {
    /// Lets it pass.
    Unwind,
    /// Catches it and suspends again, yielding a value.
    YieldAgain { panics_on_drop: bool },
    /// Catches it and returns a value from the closure.
    Return,
    /// Catches it and panics with a [`Tracked`] payload.
    Panic,
}

/// A whole program: what [`run`] decodes from the fuzzer's bytes.
#[derive(Debug)]
pub struct Program {
    pub ops: Vec<Op>,
}

impl Program {
    /// Decodes operations one after another until the bytes run out (so
    /// that every byte of an input matters, and longer inputs are longer
    /// programs).
    pub fn decode(data: &[u8]) -> Self {
        let mut bytes = Unstructured::new(data);
        let mut ops = Vec::new();
        while !bytes.is_empty() {
            match Op::arbitrary(&mut bytes) {
                Ok(op) => ops.push(op),
                Err(_) => break,
            }
        }
        Program { ops }
    }
}

/// What a coroutine is told on each resume: the step and the ids the
/// driver chose for the values it makes.
#[derive(Debug, Clone, Copy)]
struct Command {
    step: Step,
    /// The id of the value it yields, returns or panics with.
    value_id: u64,
    /// The first of `depth` consecutive ids, one per frame's local.
    frame_ids: u64,
    /// The id of the value it yields, returns or panics with after
    /// catching an unwind.
    caught_id: u64,
}

/// How control leaves a suspension point.
enum Flow {
    /// Resumed with the next command.
    Next(Command),
    /// Caught an unwind and returns this from the closure.
    Return(Tracked),
}

/// The closure of every coroutine: obeys commands until one says return or
/// panic.
fn coroutine_body(
    yielder: &Yielder<Command, Tracked>,
    first: Command,
    captured: Tracked,
) -> Tracked {
    let _captured = captured;
    let mut command = first;
    loop {
        match command.step {
            Step::Yield { depth, .. } => {
                match suspend_from_depth(yielder, &command, depth.min(MAX_DEPTH)) {
                    Flow::Next(next) => command = next,
                    Flow::Return(value) => return value,
                }
            }
            Step::Return { panics_on_drop } => {
                return Tracked::new(command.value_id, panics_on_drop)
            }
            Step::Panic => panic_any(Tracked::new(command.value_id, false)),
        }
    }
}

/// Recurses `level` frames, each holding a [`Tracked`], and suspends at the
/// bottom as the command says.
#[inline(never)]
fn suspend_from_depth(yielder: &Yielder<Command, Tracked>, command: &Command, level: u8) -> Flow {
    if level > 0 {
        let local = Tracked::new(command.frame_ids + u64::from(level) - 1, false);
        let flow = suspend_from_depth(yielder, command, level - 1);
        black_box(&local);
        return flow;
    }
    let Step::Yield {
        panics_on_drop,
        on_unwind,
        parent_call,
        grow,
        ..
    } = command.step
    else {
        unreachable!("suspend_from_depth is only called for Step::Yield")
    };
    if let Some(x) = parent_call {
        let tripled = yielder.on_parent_stack(move || black_box(u64::from(x)) * 3);
        check!(
            tripled == u64::from(x) * 3,
            "on_parent_stack returned {tripled} for {x}"
        );
    }
    if let Some((depth, always)) = grow {
        let depth = u64::from(depth % MAX_GROW_DEPTH);
        let red_zone = if always {
            4 * STACK_SIZE
        } else {
            GROW_RED_ZONE
        };
        let sum = switchback::stack::maybe_grow(red_zone, 128 * 1024, || sum_recursively(depth));
        let expected = depth * (depth + 1) / 2;
        check!(
            sum == expected,
            "maybe_grow's closure computed {sum}, not {expected}"
        );
    }
    let value = Tracked::new(command.value_id, panics_on_drop);
    if on_unwind == OnUnwind::Unwind {
        return Flow::Next(yielder.suspend(value));
    }
    match catch_unwind(AssertUnwindSafe(|| yielder.suspend(value))) {
        Ok(next) => Flow::Next(next),
        Err(payload) => {
            check!(
                payload.is::<ForcedUnwind>(),
                "a suspend unwound with something other than a ForcedUnwind"
            );
            match on_unwind {
                OnUnwind::YieldAgain { panics_on_drop } => {
                    let next = yielder.suspend(Tracked::new(command.caught_id, panics_on_drop));
                    drop(payload);
                    Flow::Next(next)
                }
                OnUnwind::Return => {
                    drop(payload);
                    Flow::Return(Tracked::new(command.caught_id, false))
                }
                OnUnwind::Panic => panic_any(Tracked::new(command.caught_id, false)),
                OnUnwind::Unwind => unreachable!(),
            }
        }
    }
}

#[inline(never)]
fn sum_recursively(n: u64) -> u64 {
    let frame = black_box([n; 16]);
    if n == 0 {
        0
    } else {
        frame[0] + sum_recursively(n - 1)
    }
}

/// A user's `Stack` in heap memory (no guard page: the driver's frames
/// are far smaller than it).
pub struct HeapStack {
    memory: Box<[u128]>,
}

impl HeapStack {
    fn new() -> Self {
        HeapStack {
            memory: vec![0u128; STACK_SIZE / 16].into_boxed_slice(),
        }
    }
}

// SAFETY: the memory is owned, 16-byte aligned at both ends (u128 slots)
// and lives as long as the stack; nothing else uses it. The driver's
// programs stay far from its low end, so no guard page is needed.
unsafe impl Stack for HeapStack {
    fn base(&self) -> StackPointer {
        StackPointer::new(self.memory.as_ptr_range().end as usize).unwrap()
    }

    fn limit(&self) -> StackPointer {
        StackPointer::new(self.memory.as_ptr() as usize).unwrap()
    }
}

type Co<S> = Coroutine<Command, Tracked, Tracked, S>;

/// A live coroutine of some stack kind.
enum Live {
    Default(Co<DefaultStack>),
    Pooled(Co<PooledStack>, bool),
    Heap(Co<HeapStack>),
}

/// Runs an expression on the coroutine of a [`Live`], whatever its stack.
macro_rules! on_live {
    ($live:expr, $co:ident => $body:expr) => {
        match $live {
            Live::Default($co) => $body,
            Live::Pooled($co, _) => $body,
            Live::Heap($co) => $body,
        }
    };
}

/// What the model knows of a slot's coroutine.
#[derive(Debug, Clone, PartialEq)]
enum State {
    NotStarted,
    /// Suspended with these frame locals live, reacting to an unwind so.
    Suspended {
        live: Vec<u64>,
        on_unwind: OnUnwind,
        /// The id it yields, returns or panics with if it catches an unwind.
        caught: u64,
    },
    Done,
}

struct Slot {
    live: Live,
    captured: u64,
    captured_panics: bool,
    state: State,
}

/// What an operation should raise.
#[derive(Debug, PartialEq)]
enum Expected {
    Nothing,
    /// The destructor of this id panics.
    DropPanic(u64),
    /// The coroutine panicked with this id's [`Tracked`].
    Payload(u64),
    /// switchback's own panic for misuse (resuming a finished coroutine).
    Misuse,
}

struct Driver {
    slots: Vec<Option<Slot>>,
    pool: StackPool,
    /// Coroutines alive on `pool` (leaked ones included).
    pool_in_use: usize,
    next_id: u64,
    /// How many times the model says each id has been dropped.
    expected_drops: BTreeMap<u64, u32>,
}

/// Decodes a program from fuzzer bytes and runs it against the model,
/// aborting the process on any mismatch.
pub fn run(data: &[u8]) {
    silence_panic_messages();
    run_program(&Program::decode(data));
}

/// [`run`], naming the input (a file, say) in any mismatch message.
pub fn run_named(name: &str, data: &[u8]) {
    INPUT_NAME.with(|current| *current.borrow_mut() = format!(" in {name}"));
    run(data);
    INPUT_NAME.with(|current| current.borrow_mut().clear());
}

/// Runs a decoded program (see [`run`]).
pub fn run_program(program: &Program) {
    DROPS.with(|drops| drops.borrow_mut().clear());
    let mut driver = Driver {
        slots: (0..SLOTS).map(|_| None).collect(),
        pool: StackPool::builder()
            .stack_size(STACK_SIZE)
            .build()
            .expect("cannot map a stack pool"),
        pool_in_use: 0,
        next_id: 0,
        expected_drops: BTreeMap::new(),
    };
    let trace = std::env::var_os("SWITCHBACK_FUZZ_TRACE").is_some();
    for op in &program.ops {
        if trace {
            eprintln!("{op:?}");
        }
        driver.apply(*op);
        driver.check_counts();
    }
    for slot in 0..SLOTS {
        driver.drop_slot(slot);
        driver.check_counts();
    }
}

/// The driver expects many panics; their messages would drown the output.
fn silence_panic_messages() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| std::panic::set_hook(Box::new(|_| {})));
}

fn describe(payload: &(dyn Any + Send)) -> String {
    if let Some(tracked) = payload.downcast_ref::<Tracked>() {
        format!("Tracked({})", tracked.id)
    } else if let Some(DropPanic(id)) = payload.downcast_ref::<DropPanic>() {
        format!("DropPanic({id})")
    } else if let Some(s) = payload.downcast_ref::<&str>() {
        format!("{s:?}")
    } else if let Some(s) = payload.downcast_ref::<String>() {
        format!("{s:?}")
    } else {
        "<unknown payload>".into()
    }
}

/// Checks how an operation ended against what the model expected, and
/// drops a [`Tracked`] payload (counted by the caller's model).
fn check_outcome(what: &str, outcome: Result<(), Box<dyn Any + Send>>, expected: &Expected) {
    match (outcome, expected) {
        (Ok(()), Expected::Nothing) => {}
        (Err(payload), Expected::DropPanic(id)) if matches!(payload.downcast_ref::<DropPanic>(), Some(DropPanic(got)) if got == id) =>
            {}
        (Err(payload), Expected::Payload(id))
            if payload
                .downcast_ref::<Tracked>()
                .is_some_and(|t| t.id == *id) =>
        {
            drop(payload);
        }
        (Err(payload), Expected::Misuse) if describe(&*payload).contains("switchback") => {
            drop(payload)
        }
        (Ok(()), _) => check!(false, "{what}: expected {expected:?}, nothing was raised"),
        (Err(payload), _) => {
            let got = describe(&*payload);
            std::mem::forget(payload);
            check!(
                false,
                "{what}: expected {expected:?}, got a panic with {got}"
            )
        }
    }
}

impl Driver {
    fn fresh_ids(&mut self, n: u64) -> u64 {
        let first = self.next_id;
        self.next_id += n;
        first
    }

    fn dropped(&mut self, id: u64) {
        *self.expected_drops.entry(id).or_insert(0) += 1;
    }

    fn check_counts(&self) {
        let actual = DROPS.with(|drops| drops.borrow().clone());
        check!(
            actual == self.expected_drops,
            "drop counts differ:\n actual   {actual:?}\n expected {:?}",
            self.expected_drops
        );
        let idle = self.pool.idle_count();
        let allocated = self.pool.allocated_count();
        check!(
            allocated - idle == self.pool_in_use,
            "the pool has {allocated} stacks, {idle} idle, but {} coroutines use it",
            self.pool_in_use
        );
        for slot in self.slots.iter().flatten() {
            let (started, done) = on_live!(&slot.live, co => (co.started(), co.done()));
            let expected = match slot.state {
                State::NotStarted => (false, false),
                State::Suspended { .. } => (true, false),
                State::Done => (started, true),
            };
            check!(
                (started, done) == expected,
                "started/done is {:?}, the model says {:?}",
                (started, done),
                slot.state
            );
        }
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Create {
                slot,
                stack,
                capture_panics_on_drop,
            } => {
                let slot = usize::from(slot) % SLOTS;
                self.drop_slot(slot);
                self.create(slot, stack, capture_panics_on_drop);
            }
            Op::Resume { slot, step } => self.resume(usize::from(slot) % SLOTS, step),
            Op::ForceUnwind { slot } => self.force_unwind(usize::from(slot) % SLOTS),
            Op::ForceReset { slot } => self.force_reset(usize::from(slot) % SLOTS),
            Op::Drop { slot } => self.drop_slot(usize::from(slot) % SLOTS),
            Op::Reuse {
                slot,
                capture_panics_on_drop,
            } => self.reuse(usize::from(slot) % SLOTS, capture_panics_on_drop),
            Op::OnStack { depth, value } => {
                let stack = DefaultStack::new(STACK_SIZE).expect("cannot map a stack");
                let depth = u64::from(depth % MAX_GROW_DEPTH);
                let got =
                    switchback::on_stack(stack, move || sum_recursively(depth) + u64::from(value));
                let expected = depth * (depth + 1) / 2 + u64::from(value);
                check!(got == expected, "on_stack returned {got}, not {expected}");
            }
        }
    }

    fn closure(captured: Tracked) -> impl FnOnce(&Yielder<Command, Tracked>, Command) -> Tracked {
        move |yielder, first| coroutine_body(yielder, first, captured)
    }

    fn create(&mut self, slot: usize, stack: StackKind, captured_panics: bool) {
        let captured = self.fresh_ids(1);
        let f = Self::closure(Tracked::new(captured, captured_panics));
        let live = match stack {
            StackKind::New => Live::Default(Coroutine::new(f)),
            StackKind::Default => Live::Default(Coroutine::with_stack(
                DefaultStack::new(STACK_SIZE).expect("cannot map a stack"),
                f,
            )),
            StackKind::Pool => {
                self.pool_in_use += 1;
                Live::Pooled(
                    Coroutine::try_with_pool(&self.pool, f).expect("cannot map a pooled stack"),
                    true,
                )
            }
            StackKind::GlobalPool => Live::Pooled(Coroutine::pooled(f), false),
            StackKind::Heap => Live::Heap(Coroutine::with_stack(HeapStack::new(), f)),
        };
        self.slots[slot] = Some(Slot {
            live,
            captured,
            captured_panics,
            state: State::NotStarted,
        });
    }

    fn reuse(&mut self, slot: usize, captured_panics: bool) {
        let Some(old) = self.slots[slot].take_if(|old| old.state == State::Done) else {
            return;
        };
        let captured = self.fresh_ids(1);
        let f = Self::closure(Tracked::new(captured, captured_panics));
        let live = match old.live {
            Live::Default(co) => Live::Default(Coroutine::with_stack(co.into_stack(), f)),
            Live::Pooled(co, own) => Live::Pooled(Coroutine::with_stack(co.into_stack(), f), own),
            Live::Heap(co) => Live::Heap(Coroutine::with_stack(co.into_stack(), f)),
        };
        self.slots[slot] = Some(Slot {
            live,
            captured,
            captured_panics,
            state: State::NotStarted,
        });
    }

    fn command(&mut self, step: Step) -> Command {
        let depth = match step {
            Step::Yield { depth, .. } => u64::from(depth.min(MAX_DEPTH)),
            _ => 0,
        };
        Command {
            step,
            value_id: self.fresh_ids(1),
            frame_ids: self.fresh_ids(depth),
            caught_id: self.fresh_ids(1),
        }
    }

    fn resume(&mut self, index: usize, step: Step) {
        let command = self.command(step);
        let Some(slot) = self.slots[index].as_mut() else {
            return;
        };
        // The model's prediction.
        let mut expected = Expected::Nothing;
        let mut dropped = Vec::new();
        let yielded;
        match &slot.state {
            State::Done => {
                expected = Expected::Misuse;
                yielded = None;
            }
            state => {
                if let State::Suspended { live, .. } = state {
                    dropped.extend_from_slice(live);
                }
                match step {
                    Step::Yield {
                        depth, on_unwind, ..
                    } => {
                        let live = (0..u64::from(depth.min(MAX_DEPTH)))
                            .map(|i| command.frame_ids + i)
                            .collect();
                        slot.state = State::Suspended {
                            live,
                            on_unwind,
                            caught: command.caught_id,
                        };
                        yielded = Some(command.value_id);
                    }
                    Step::Return { .. } => {
                        slot.state = State::Done;
                        dropped.push(slot.captured);
                        yielded = None;
                        if slot.captured_panics {
                            // The closure's return value is leaked, not
                            // dropped, when a local's destructor panics
                            // after it was made: Rust does that to any
                            // function (rust-lang/rust#47949).
                            expected = Expected::DropPanic(slot.captured);
                        }
                    }
                    Step::Panic => {
                        slot.state = State::Done;
                        dropped.push(slot.captured);
                        yielded = None;
                        expected = Expected::Payload(command.value_id);
                        dropped.push(command.value_id);
                    }
                }
            }
        }
        // What happens.
        let mut received = None;
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            received = Some(on_live!(&mut slot.live, co => co.resume(command)));
        }));
        check_outcome("resume", outcome, &expected);
        for id in dropped {
            self.dropped(id);
        }
        let Some(result) = received else {
            return;
        };
        let (value, panics_on_drop) = match (result, yielded, step) {
            (CoroutineResult::Yield(value), Some(id), Step::Yield { panics_on_drop, .. }) => {
                check!(value.id == id, "yielded {}, expected {id}", value.id);
                (value, panics_on_drop)
            }
            (CoroutineResult::Return(value), None, Step::Return { panics_on_drop }) => {
                check!(
                    value.id == command.value_id,
                    "returned {}, expected {}",
                    value.id,
                    command.value_id
                );
                (value, panics_on_drop)
            }
            (result, _, _) => {
                let got = format!("{result:?}");
                std::mem::forget(result);
                check!(false, "resume gave {got} for {step:?}");
                unreachable!()
            }
        };
        let id = value.id;
        let outcome = catch_unwind(AssertUnwindSafe(|| drop(value)));
        self.dropped(id);
        let expected = if panics_on_drop {
            Expected::DropPanic(id)
        } else {
            Expected::Nothing
        };
        check_outcome("dropping a received value", outcome, &expected);
    }

    /// Predicts an unwind of the slot's coroutine (by `force_unwind` or by
    /// dropping it): the ids it drops, what it raises, and whether the
    /// coroutine is left suspended in its handler.
    fn predict_unwind(&mut self, index: usize) -> (Vec<u64>, Expected, bool) {
        let slot = self.slots[index].as_ref().unwrap();
        let mut dropped = Vec::new();
        match &slot.state {
            State::Done => (dropped, Expected::Nothing, false),
            State::NotStarted => {
                dropped.push(slot.captured);
                let expected = if slot.captured_panics {
                    Expected::DropPanic(slot.captured)
                } else {
                    Expected::Nothing
                };
                (dropped, expected, false)
            }
            State::Suspended {
                live,
                on_unwind,
                caught,
            } => {
                let caught = *caught;
                match *on_unwind {
                    OnUnwind::Unwind => {
                        dropped.extend_from_slice(live);
                        dropped.push(slot.captured);
                        (dropped, Expected::Nothing, false)
                    }
                    OnUnwind::YieldAgain { panics_on_drop } => {
                        dropped.push(caught);
                        if panics_on_drop {
                            (dropped, Expected::DropPanic(caught), true)
                        } else {
                            dropped.extend_from_slice(live);
                            dropped.push(slot.captured);
                            (dropped, Expected::Nothing, false)
                        }
                    }
                    OnUnwind::Return => {
                        dropped.extend_from_slice(live);
                        dropped.push(slot.captured);
                        // The returned value is leaked if the captured
                        // value's destructor panics (see `resume`).
                        let expected = if slot.captured_panics {
                            Expected::DropPanic(slot.captured)
                        } else {
                            dropped.push(caught);
                            Expected::Nothing
                        };
                        (dropped, expected, false)
                    }
                    OnUnwind::Panic => {
                        dropped.extend_from_slice(live);
                        dropped.push(slot.captured);
                        dropped.push(caught);
                        (dropped, Expected::Payload(caught), false)
                    }
                }
            }
        }
    }

    fn force_unwind(&mut self, index: usize) {
        if self.slots[index].is_none() {
            return;
        }
        let (dropped, expected, stays_suspended) = self.predict_unwind(index);
        let slot = self.slots[index].as_mut().unwrap();
        let outcome = catch_unwind(AssertUnwindSafe(
            || on_live!(&mut slot.live, co => co.force_unwind()),
        ));
        check_outcome("force_unwind", outcome, &expected);
        slot.state = match (&slot.state, stays_suspended) {
            (State::Suspended { live, caught, .. }, true) => State::Suspended {
                live: live.clone(),
                on_unwind: OnUnwind::Unwind,
                caught: *caught,
            },
            _ => State::Done,
        };
        for id in dropped {
            self.dropped(id);
        }
    }

    fn force_reset(&mut self, index: usize) {
        let Some(slot) = self.slots[index].as_mut() else {
            return;
        };
        // SAFETY: the frames on the stack hold only `Tracked` values (and
        // the forced-unwind payload a handler may hold), whose leaking the
        // model expects: nothing relies on their destructors running.
        on_live!(&mut slot.live, co => unsafe { co.force_reset() });
        slot.state = State::Done;
    }

    fn drop_slot(&mut self, index: usize) {
        if self.slots[index].is_none() {
            return;
        }
        let (dropped, expected, leaks) = self.predict_unwind(index);
        if leaks
            && LEAKED_COROUTINES.load(std::sync::atomic::Ordering::Relaxed) >= MAX_LEAKED_COROUTINES
        {
            // Enough coroutines leaked for one process: unwind this one
            // through force_unwind (which leaves it suspended), then drop it.
            self.force_unwind(index);
            return self.drop_slot(index);
        }
        let slot = self.slots[index].take().unwrap();
        let on_own_pool = matches!(slot.live, Live::Pooled(_, true));
        let outcome = catch_unwind(AssertUnwindSafe(|| drop(slot.live)));
        check_outcome("drop", outcome, &expected);
        if leaks {
            // As documented: the coroutine is leaked with its frames, so
            // what they hold is never dropped (only the value it yielded
            // again was), and its stack stays in use.
            LEAKED_COROUTINES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        } else if on_own_pool {
            self.pool_in_use -= 1;
        }
        for id in dropped {
            self.dropped(id);
        }
    }
}
