//! The context switch under Miri, which cannot run inline assembly: every
//! coroutine runs on an OS thread of its own, and control passes between
//! that thread and whoever resumes it in strict alternation.
//!
//! # How it keeps the contract
//!
//! - The stack memory is still the coroutine's: portable code writes the
//!   closure, the switch record and the link there as everywhere, and the
//!   word at `base - 2 * WORD` (beside the link, inside `RESERVED_TOP`) holds
//!   the coroutine's [`Worker`] once it has started. The coroutine's frames
//!   themselves live on its thread's stack, not in that memory.
//! - `init_stack` writes `entry` at `obj - INIT_FRAME_SIZE` and returns that
//!   address as the initial "stack pointer"; nothing runs yet.
//! - The first `switch_and_link` (its `sp` is not `base`) takes an idle
//!   worker thread of the calling thread (or spawns one), stores it beside
//!   the link and hands it `Start`: the worker calls
//!   `entry(input, link, obj)`. Later ones hand it `Resume(word)`, and
//!   `switch_and_unwind` hands it `Unwind`. Each then blocks until the
//!   worker hands something back: a suspended coroutine's state is always
//!   `base` (never the initial token, so `started()` holds), a finished
//!   one's is its exit code.
//! - `switch_yield` (on the worker) hands `(word, suspended)` to the parent
//!   and blocks for the next message: `Resume(word)` returns it, `Unwind`
//!   returns `None`.
//! - `switch_and_reset` (on the worker) hands `(word, exit)` over, and then
//!   keeps its frames (the word may point into them, to a slot the parent
//!   decodes after its switch returns) until the parent thread gives the
//!   worker its next job: the parent takes the worker back into its idle
//!   list as the switch returns, and only that thread hands it a new
//!   coroutine, at its next first `switch_and_link`, by which time it has
//!   decoded the word. The worker then unwinds its finished frames (which
//!   own nothing) back to its loop with a private payload and starts the
//!   new coroutine. An idle worker ends when the thread that holds it
//!   ends: the thread-local list tells each to stop and joins it.
//! - Every hand-over goes through one `Mutex` and a `Condvar` per side, so
//!   each side's writes before handing over happen-before the other side's
//!   reads after (Miri's data-race detector checks that), and exactly one
//!   of the two threads runs at a time.
//! - `on_stack` calls `f(arg)` on the calling thread's own stack: the stack
//!   it is given is not switched to (its memory is still checked and its
//!   lifetime kept by the portable code). `Yielder::on_parent_stack` runs
//!   on the parent's thread, as it runs on the parent's stack elsewhere:
//!   the link holds `base - 1` while the coroutine runs, which
//!   `parent_stack_top` passes on, and `on_stack` given that odd top (a
//!   real top is aligned) hands `Call(f, arg)` to the parent, which runs
//!   it while it waits for the coroutine and hands `Called` back.
//!
//! What differs from the real switch: the coroutine's code runs on another
//! thread, so it sees other thread-locals than its resumer (and
//! `std::thread::current()` is the worker, and `std::thread::panicking()`
//! tells of the coroutine's own unwind only); a coroutine suspended forever
//! (leaked, or `force_reset` while suspended) keeps its worker blocked,
//! which Miri reports at exit as a thread leak (as it reports the memory
//! such a coroutine leaks; `-Zmiri-ignore-leaks` allows both); there are
//! no signals, so trap handlers cannot be set up (`trap_handler_regs`
//! panics with a message) and the overflow report never fires.

use std::boxed::Box;
use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::vec::Vec;

use super::{EntryFn, StackCallFn, TrapEntryFn};
use crate::word::{StackPointer, Word};

/// The trap handler's registers are those of the real architecture, so
/// that code naming them compiles under Miri too; under Miri none can be
/// produced (see [`trap_handler_regs`]).
pub use super::host::TrapHandlerRegs;

const WORD: usize = core::mem::size_of::<usize>();

/// As on every real architecture.
pub const STACK_ALIGNMENT: usize = 16;
/// The link is the top word of the stack.
pub const LINK_OFFSET: usize = WORD;
/// The link and, below it, the pointer to the coroutine's worker.
pub const RESERVED_TOP: usize = 16;
/// The initial frame: the entry function, read by the first resume.
pub const INIT_FRAME_SIZE: usize = 16;

/// The coroutine's state while it is suspended: its stack's base, which no
/// initial token equals (that lies below the closure).
#[inline(always)]
fn suspended_state(base: StackPointer) -> usize {
    base.get()
}

/// Where a coroutine keeps its worker once started: the word below the
/// link.
#[inline(always)]
fn worker_slot(link: *mut StackPointer) -> *mut *const Worker {
    (link as usize - WORD) as *mut *const Worker
}

/// What a worker is asked to do.
enum ToWorker {
    /// Run a new coroutine: `entry(input, link, obj)`.
    Start {
        entry: EntryFn,
        input: Word,
        link: *mut StackPointer,
        obj: *mut u8,
    },
    /// The pending `switch_yield` returns this word.
    Resume(Word),
    /// The pending `switch_yield` returns `None`.
    Unwind,
    /// An idle worker's thread ends.
    Stop,
    /// The parent has run the `Call` the worker handed it.
    Called,
}

/// The one-slot hand-over between a worker and its parent.
enum Slot {
    /// Nothing in transit: one side runs, the other waits.
    Empty,
    /// A message for the worker.
    ToWorker(ToWorker),
    /// The worker's word and state for the parent: the suspended state, or
    /// the exit code of `switch_and_reset`.
    ToParent(Word, usize),
    /// `f(arg)` for the parent to run on its own thread and stack
    /// (`on_parent_stack`).
    Call(StackCallFn, *mut u8),
}

/// The state of a suspended coroutine's worker, as sent to its parent
/// (then replaced by the stack's base): an exit code is below it.
const SUSPENDED: usize = usize::MAX;

/// One worker thread and its hand-over slot.
struct Worker {
    slot: Mutex<Slot>,
    /// Signalled when the slot holds a message for the worker.
    to_worker: Condvar,
    /// Signalled when the slot holds the worker's answer.
    to_parent: Condvar,
    /// The worker's thread, joined by the thread-local list that holds it
    /// when idle.
    thread: Mutex<Option<JoinHandle<()>>>,
}

// SAFETY: the raw pointers in a `ToWorker::Start` point into the
// coroutine's stack and closure, which the portable code keeps in place
// while the coroutine runs; they are used by one thread at a time, and the
// mutex orders each hand-over. A word may carry any value (or a pointer to
// one): the coroutine contract already lets it cross to whoever resumes
// the coroutine, and here too exactly one side touches it at a time.
unsafe impl Send for Slot {}

/// The payload with which a finished coroutine's frames unwind back to its
/// worker's loop, carrying the worker's next job.
struct NextJob(ToWorker);

// SAFETY: as for `Slot`; the payload never leaves the worker's thread (its
// loop catches it), but `resume_unwind` requires `Send`.
unsafe impl Send for NextJob {}

fn lock(slot: &Mutex<Slot>) -> MutexGuard<'_, Slot> {
    // Nothing panics while holding the lock, but a poisoned slot is still
    // consistent: every change is one assignment.
    slot.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Worker {
    /// Spawns a worker thread, named after the thread that asks for it.
    fn spawn() -> Arc<Worker> {
        let worker = Arc::new(Worker {
            slot: Mutex::new(Slot::Empty),
            to_worker: Condvar::new(),
            to_parent: Condvar::new(),
            thread: Mutex::new(None),
        });
        let theirs = Arc::clone(&worker);
        let name = std::format!(
            "{} (switchback coroutine)",
            thread::current().name().unwrap_or("<unnamed>")
        );
        let handle = thread::Builder::new()
            .name(name)
            .spawn(move || worker_loop(&theirs))
            .unwrap_or_else(|error| {
                panic!("switchback: failed to spawn a coroutine's thread under Miri: {error}")
            });
        *worker.thread.lock().unwrap_or_else(PoisonError::into_inner) = Some(handle);
        worker
    }

    /// From the parent: hands `message` to the worker.
    fn send(&self, message: ToWorker) {
        let mut slot = lock(&self.slot);
        debug_assert!(matches!(*slot, Slot::Empty));
        *slot = Slot::ToWorker(message);
        self.to_worker.notify_one();
    }

    /// From the parent: waits for the worker's answer, running the calls
    /// it hands over meanwhile.
    ///
    /// # Safety
    /// Each call handed over must be sound to make on this thread (see
    /// `on_stack`).
    unsafe fn wait_answer(&self) -> (Word, usize) {
        let mut slot = lock(&self.slot);
        loop {
            match *slot {
                Slot::ToParent(word, state) => {
                    *slot = Slot::Empty;
                    return (word, state);
                }
                Slot::Call(f, arg) => {
                    *slot = Slot::Empty;
                    drop(slot);
                    // SAFETY: per the caller. The call catches its panics
                    // into its slot (as on every architecture's `on_stack`).
                    unsafe { f(arg) };
                    self.send(ToWorker::Called);
                    slot = lock(&self.slot);
                }
                _ => {
                    slot = self
                        .to_parent
                        .wait(slot)
                        .unwrap_or_else(PoisonError::into_inner);
                }
            }
        }
    }

    /// From the worker: hands the parent `f(arg)` to run and waits until
    /// it has.
    fn call_on_parent(&self, f: StackCallFn, arg: *mut u8) {
        {
            let mut slot = lock(&self.slot);
            debug_assert!(matches!(*slot, Slot::Empty));
            *slot = Slot::Call(f, arg);
            self.to_parent.notify_one();
        }
        match self.wait_message() {
            ToWorker::Called => {}
            _ => {
                unreachable!("switchback: a coroutine's thread was resumed inside on_parent_stack")
            }
        }
    }

    /// From the worker: hands the parent `word` and `state`.
    fn answer(&self, word: Word, state: usize) {
        let mut slot = lock(&self.slot);
        debug_assert!(matches!(*slot, Slot::Empty));
        *slot = Slot::ToParent(word, state);
        self.to_parent.notify_one();
    }

    /// From the worker: waits for its next message.
    fn wait_message(&self) -> ToWorker {
        let mut slot = lock(&self.slot);
        loop {
            if let Slot::ToWorker(_) = *slot {
                let Slot::ToWorker(message) = core::mem::replace(&mut *slot, Slot::Empty) else {
                    unreachable!()
                };
                return message;
            }
            slot = self
                .to_worker
                .wait(slot)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// A worker thread: runs each coroutine it is handed until told to stop.
fn worker_loop(worker: &Worker) {
    let mut message = worker.wait_message();
    loop {
        match message {
            ToWorker::Start {
                entry,
                input,
                link,
                obj,
            } => {
                // SAFETY: the parent's first `switch_and_link` made this job
                // from `init_stack`'s frame: `entry` is the coroutine's
                // entry, `link` and `obj` lie in its stack. The entry never
                // returns: the coroutine leaves through `switch_and_reset`,
                // which unwinds to here with the next job.
                let unwound =
                    panic::catch_unwind(AssertUnwindSafe(|| unsafe { entry(input, link, obj) }));
                message = match unwound.map_err(|payload| payload.downcast::<NextJob>()) {
                    Err(Ok(next)) => next.0,
                    // Portable code catches every panic at the coroutine's
                    // root (or aborts without the `unwind` feature).
                    _ => unreachable!("switchback: a panic escaped a coroutine's root under Miri"),
                };
            }
            ToWorker::Stop => return,
            ToWorker::Resume(_) | ToWorker::Unwind | ToWorker::Called => {
                unreachable!("switchback: an idle coroutine thread was resumed under Miri")
            }
        }
    }
}

/// The idle workers of the calling thread: only this thread hands them new
/// coroutines (see the module's header). Each is stopped and joined when
/// the thread ends.
struct IdleWorkers(RefCell<Vec<Arc<Worker>>>);

impl Drop for IdleWorkers {
    fn drop(&mut self) {
        for worker in self.0.get_mut().drain(..) {
            worker.send(ToWorker::Stop);
            let handle = worker
                .thread
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(handle) = handle {
                // A worker's loop does not panic (see `worker_loop`).
                let _ = handle.join();
            }
        }
    }
}

std::thread_local! {
    static IDLE: IdleWorkers = const { IdleWorkers(RefCell::new(Vec::new())) };
}

/// An idle worker of this thread, or a new one.
fn take_worker() -> Arc<Worker> {
    IDLE.try_with(|idle| idle.0.borrow_mut().pop())
        .ok()
        .flatten()
        .unwrap_or_else(Worker::spawn)
}

/// Keeps a worker whose coroutine has finished for this thread's next
/// coroutine. While the thread is ending (its list is gone) the worker is
/// left blocked, as a leaked coroutine's is.
fn keep_idle(worker: Arc<Worker>) {
    let _ = IDLE.try_with(move |idle| idle.0.borrow_mut().push(worker));
}

/// Writes `entry` as the initial frame below `obj`; returns its address,
/// the coroutine's initial state.
///
/// # Safety
/// `obj` must be `STACK_ALIGNMENT`-aligned in the stack, with
/// `INIT_FRAME_SIZE` writable bytes below it.
pub unsafe fn init_stack(_base: StackPointer, obj: usize, entry: EntryFn) -> StackPointer {
    let sp = obj - INIT_FRAME_SIZE;
    // SAFETY: per the caller, the frame is writable and aligned for a
    // function pointer.
    unsafe { (sp as *mut EntryFn).write(entry) };
    // SAFETY: an address inside a stack is not zero.
    unsafe { StackPointer::new_unchecked(sp) }
}

/// Resumes (or starts) the coroutine at `base` whose state is `sp`,
/// passing `arg`. Returns the word it hands back and its new state.
///
/// # Safety
/// The coroutine at `base` must be suspended (or fresh) with state `sp`,
/// and expect `arg`.
pub unsafe fn switch_and_link(arg: Word, sp: StackPointer, base: StackPointer) -> (Word, usize) {
    let link = (base.get() - LINK_OFFSET) as *mut StackPointer;
    // SAFETY: the link and the worker slot lie in the coroutine's reserved
    // top, which only the side that runs touches; the coroutine is not
    // running (per the caller), and a started one stored its worker there.
    unsafe {
        // The link holds a nonzero "parent stack pointer" while it runs:
        // odd, for `on_stack` to tell `on_parent_stack` (see the header).
        link.write(parent_mark(base));
        if sp.get() != suspended_state(base) {
            // SAFETY (of the read): `init_stack` wrote the entry at `sp`.
            let entry = (sp.get() as *const EntryFn).read();
            // The worker reads the slot as soon as it runs: written first.
            let worker = Arc::into_raw(take_worker());
            worker_slot(link).write(worker);
            (*worker).send(ToWorker::Start {
                entry,
                input: arg,
                link,
                obj: (sp.get() + INIT_FRAME_SIZE) as *mut u8,
            });
        } else {
            (*worker_slot(link).read()).send(ToWorker::Resume(arg));
        }
        wait_for(base, link)
    }
}

/// Resumes the started coroutine at `base` so that its pending
/// `switch_yield` returns `None`.
///
/// # Safety
/// As `switch_and_link`, and the coroutine must have started.
#[cfg_attr(not(feature = "unwind"), allow(dead_code))]
pub unsafe fn switch_and_unwind(_sp: StackPointer, base: StackPointer) -> (Word, usize) {
    let link = (base.get() - LINK_OFFSET) as *mut StackPointer;
    // SAFETY: as in `switch_and_link` for a started coroutine.
    unsafe {
        link.write(parent_mark(base));
        (*worker_slot(link).read()).send(ToWorker::Unwind);
        wait_for(base, link)
    }
}

/// The parent's half of a resume: waits for the coroutine's answer; takes
/// its worker back if it finished.
///
/// # Safety
/// The coroutine at `link` has started and was just handed a message.
unsafe fn wait_for(base: StackPointer, link: *mut StackPointer) -> (Word, usize) {
    // SAFETY: the coroutine stored its worker, an `Arc` turned into a raw
    // pointer, beside the link as it started; it stays there while the
    // coroutine lives.
    let worker = unsafe { worker_slot(link).read() };
    // SAFETY: as above; the worker lives while it holds a coroutine. The
    // calls it hands over come from `on_parent_stack`, whose closure is
    // `Send`, run while the coroutine waits.
    let (word, state) = unsafe { (*worker).wait_answer() };
    if state == SUSPENDED {
        return (word, suspended_state(base));
    }
    // SAFETY: the coroutine left for good: the `Arc` that the slot held is
    // taken back once, and the slot is not read again (a new coroutine on
    // this stack writes it anew).
    keep_idle(unsafe { Arc::from_raw(worker) });
    (word, state)
}

/// Suspends the running coroutine, passing `arg` to the parent; returns
/// the word of the next resume, or `None` for `switch_and_unwind`.
///
/// # Safety
/// Must run on the coroutine whose link is `link`.
pub unsafe fn switch_yield(arg: Word, link: *mut StackPointer) -> Option<Word> {
    // SAFETY: per the caller the coroutine started, so its worker (this
    // thread's) is beside the link and lives while we run.
    let worker = unsafe { &*worker_slot(link).read() };
    worker.answer(arg, SUSPENDED);
    match worker.wait_message() {
        ToWorker::Resume(word) => Some(word),
        ToWorker::Unwind => None,
        ToWorker::Start { .. } | ToWorker::Stop | ToWorker::Called => {
            unreachable!("switchback: a suspended coroutine's thread was given a new job")
        }
    }
}

/// Leaves the coroutine for good, handing the parent `arg` and `exit`.
///
/// # Safety
/// Must run on the coroutine whose link is `link`; nothing on its frames
/// may need dropping.
pub unsafe fn switch_and_reset(arg: Word, exit: usize, link: *mut StackPointer) -> ! {
    // SAFETY: as in `switch_yield`. The parent takes the worker back as it
    // receives the answer, so the `Arc` is copied first (the worker's own
    // clone, held by `worker_loop`, keeps it alive meanwhile).
    let worker = unsafe { &*worker_slot(link).read() };
    worker.answer(arg, exit);
    // `arg` may point into the frames below us: they stay until the parent
    // thread, having decoded it, hands us the next job.
    let next = worker.wait_message();
    // The finished frames own nothing: unwinding them is only a way back
    // to the worker's loop.
    #[cfg(panic = "unwind")]
    panic::resume_unwind(Box::new(NextJob(next)));
    // Without unwinding the next job runs here, above the finished frames.
    #[cfg(not(panic = "unwind"))]
    {
        if let ToWorker::Start { .. } = next {
            run_nested(worker, next)
        }
        // Told to stop: nothing can end this thread without unwinding.
        loop {
            thread::park();
        }
    }
}

/// Without unwinding: runs a new coroutine on top of a finished one's
/// frames.
#[cfg(not(panic = "unwind"))]
fn run_nested(_worker: &Worker, job: ToWorker) -> ! {
    let ToWorker::Start {
        entry,
        input,
        link,
        obj,
    } = job
    else {
        unreachable!()
    };
    // SAFETY: as in `worker_loop`.
    unsafe { entry(input, link, obj) }
}

/// The link's value while the coroutine at `base` runs: `base - 1`, odd
/// where every real stack top is aligned.
#[inline(always)]
fn parent_mark(base: StackPointer) -> StackPointer {
    // SAFETY: a stack's base is above the stack, so above 1.
    unsafe { StackPointer::new_unchecked(base.get() - 1) }
}

/// Calls `f(arg)`: on the parent's thread if `top` is a parent mark
/// (`on_parent_stack`, on a coroutine's worker), else on the current
/// thread's own stack (no stack pointer is moved under Miri).
///
/// # Safety
/// As on every architecture: `f` may be called with `arg` on the stack
/// `top` names.
pub unsafe fn on_stack(arg: *mut u8, top: usize, f: StackCallFn) {
    if top % STACK_ALIGNMENT == 0 {
        // SAFETY: per the caller.
        unsafe { f(arg) }
    } else {
        let link = (top + 1 - LINK_OFFSET) as *mut StackPointer;
        // SAFETY: a parent mark comes from the running coroutine's link
        // (`on_parent_stack` runs on it), so its worker, this thread's,
        // is beside the link and lives while we run.
        let worker = unsafe { &*worker_slot(link).read() };
        worker.call_on_parent(f, arg);
    }
}

/// Trap handlers need signals, which Miri does not deliver.
///
/// # Safety
/// None needed: it reads nothing. It is `unsafe` as the contract's
/// `trap_handler_regs` is on every architecture.
///
/// # Panics
/// Always, with a message saying so.
pub unsafe fn trap_handler_regs(
    _base: StackPointer,
    _obj: usize,
    _entry: TrapEntryFn,
) -> TrapHandlerRegs {
    panic!(
        "switchback: trap handlers are not available under Miri (it delivers no signals); \
         leave tests of them out with #[cfg_attr(miri, ignore)]"
    )
}

/// The link holds the parent mark (see `switch_and_link`), passed on for
/// `on_stack` to recognise.
#[inline]
pub fn parent_stack_top(link_value: usize) -> usize {
    link_value
}

/// Not running under Valgrind: Miri is the interpreter.
///
/// # Safety
/// None needed; `unsafe` as on every architecture.
#[inline]
pub unsafe fn valgrind_client_request(default: usize, _args: &[usize; 6]) -> usize {
    default
}
