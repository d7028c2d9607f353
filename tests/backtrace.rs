//! Linked backtraces: a backtrace taken in a coroutine, `on_stack` or `on_parent_stack` continues into its caller.

use switchback::stack::DefaultStack;
use switchback::{on_stack, Coroutine, Yielder};

/// Returns `value` after an opaque use, so that the caller's call that
/// produced it is not compiled as a tail call (which would remove the
/// caller's frame from the trace in release builds). `tag` (the caller's
/// `line!()`) makes each caller's code different, so that the linker does
/// not fold identical helpers into one symbol.
#[inline(always)]
fn not_a_tail_call<T>(value: T, tag: u32) -> T {
    std::hint::black_box((&value, tag));
    value
}

/// Symbol names of the frames of a resolved `backtrace::Backtrace`.
fn frame_names(bt: &backtrace::Backtrace) -> Vec<String> {
    bt.frames()
        .iter()
        .flat_map(|f| f.symbols())
        .filter_map(|s| s.name().map(|n| n.to_string()))
        .collect()
}

/// Strips the `::h0123456789abcdef` hash that legacy-mangled names carry.
fn without_hash(name: &str) -> &str {
    match name.rsplit_once("::h") {
        Some((path, hash)) if hash.len() == 16 && hash.chars().all(|c| c.is_ascii_hexdigit()) => {
            path
        }
        _ => name,
    }
}

/// Index of the first frame of the function `func` itself (not a closure in it).
fn position(names: &[String], func: &str) -> Option<usize> {
    let suffix = format!("::{func}");
    names
        .iter()
        .position(|n| without_hash(n).ends_with(&suffix))
}

fn contains(names: &[String], func: &str) -> bool {
    position(names, func).is_some()
}

fn assert_linked(names: &[String], inner: &str, outer: &str) {
    let i = position(names, inner);
    let o = position(names, outer);
    assert!(
        i.is_some(),
        "no frame of {inner} in the backtrace: {names:#?}"
    );
    assert!(
        o.is_some(),
        "backtrace does not continue into {outer}: {names:#?}"
    );
    assert!(i < o, "{inner} must be above {outer}: {names:#?}");
}

#[inline(never)]
fn inside_the_coroutine_zq7(y: &Yielder<(), ()>) -> backtrace::Backtrace {
    let bt = backtrace::Backtrace::new();
    y.suspend(());
    bt
}

#[inline(never)]
fn resumer_of_the_coroutine_zq7(co: &mut Coroutine<(), (), backtrace::Backtrace>) {
    std::hint::black_box(co.resume(()));
}

#[inline(never)]
fn second_resumer_zq7(co: &mut Coroutine<(), (), backtrace::Backtrace>) -> backtrace::Backtrace {
    co.resume(()).as_return().unwrap()
}

#[test]
#[inline(never)]
fn backtrace_in_coroutine_reaches_resumer() {
    let mut co: Coroutine<(), (), backtrace::Backtrace> =
        Coroutine::new(|y, ()| inside_the_coroutine_zq7(y));
    resumer_of_the_coroutine_zq7(&mut co);
    let bt = second_resumer_zq7(&mut co);
    let names = frame_names(&bt);
    assert_linked(
        &names,
        "inside_the_coroutine_zq7",
        "resumer_of_the_coroutine_zq7",
    );
    // The test function itself is further up.
    assert_linked(
        &names,
        "resumer_of_the_coroutine_zq7",
        "backtrace_in_coroutine_reaches_resumer",
    );
}

#[inline(never)]
fn capture_after_suspend_zq7(y: &Yielder<(), ()>) -> backtrace::Backtrace {
    y.suspend(());
    not_a_tail_call(backtrace::Backtrace::new(), line!())
}

#[inline(never)]
fn resume_from_here_zq7(co: &mut Coroutine<(), (), backtrace::Backtrace>) -> backtrace::Backtrace {
    co.resume(()).as_return().unwrap()
}

#[test]
#[inline(never)]
fn backtrace_follows_the_latest_resumer() {
    let mut co: Coroutine<(), (), backtrace::Backtrace> =
        Coroutine::new(|y, ()| capture_after_suspend_zq7(y));
    resumer_of_the_coroutine_zq7(&mut co);
    let names = frame_names(&resume_from_here_zq7(&mut co));
    assert_linked(&names, "capture_after_suspend_zq7", "resume_from_here_zq7");
    assert!(
        !contains(&names, "resumer_of_the_coroutine_zq7"),
        "stale link to the first resumer: {names:#?}"
    );
}

#[inline(never)]
fn inside_nested_zq7() -> backtrace::Backtrace {
    not_a_tail_call(backtrace::Backtrace::new(), line!())
}

#[inline(never)]
fn outer_body_zq7() -> backtrace::Backtrace {
    let mut inner: Coroutine<(), (), backtrace::Backtrace> =
        Coroutine::new(|_, ()| inside_nested_zq7());
    inner.resume(()).as_return().unwrap()
}

#[inline(never)]
fn run_outer_zq7() -> backtrace::Backtrace {
    let mut outer: Coroutine<(), (), backtrace::Backtrace> =
        Coroutine::new(|_, ()| outer_body_zq7());
    outer.resume(()).as_return().unwrap()
}

#[test]
#[inline(never)]
fn backtrace_through_nested_coroutines() {
    let names = frame_names(&run_outer_zq7());
    assert_linked(&names, "inside_nested_zq7", "outer_body_zq7");
    assert_linked(&names, "outer_body_zq7", "run_outer_zq7");
}

#[inline(never)]
fn inside_on_stack_zq7() -> backtrace::Backtrace {
    not_a_tail_call(backtrace::Backtrace::new(), line!())
}

#[inline(never)]
fn calls_on_stack_zq7() -> backtrace::Backtrace {
    on_stack(DefaultStack::new(256 * 1024).unwrap(), inside_on_stack_zq7)
}

#[test]
#[inline(never)]
fn backtrace_in_on_stack_reaches_caller() {
    let names = frame_names(&calls_on_stack_zq7());
    assert_linked(&names, "inside_on_stack_zq7", "calls_on_stack_zq7");
}

#[inline(never)]
fn on_parent_body_zq7() -> backtrace::Backtrace {
    not_a_tail_call(backtrace::Backtrace::new(), line!())
}

#[inline(never)]
fn coroutine_calling_parent_zq7(y: &Yielder<(), ()>) -> backtrace::Backtrace {
    y.on_parent_stack(on_parent_body_zq7)
}

#[inline(never)]
fn resumes_for_parent_stack_zq7(
    co: &mut Coroutine<(), (), backtrace::Backtrace>,
) -> backtrace::Backtrace {
    co.resume(()).as_return().unwrap()
}

#[test]
#[inline(never)]
fn backtrace_in_on_parent_stack_reaches_coroutine_and_resumer() {
    let mut co: Coroutine<(), (), backtrace::Backtrace> =
        Coroutine::new(|y, ()| coroutine_calling_parent_zq7(y));
    let names = frame_names(&resumes_for_parent_stack_zq7(&mut co));
    assert_linked(&names, "on_parent_body_zq7", "coroutine_calling_parent_zq7");
    assert_linked(
        &names,
        "coroutine_calling_parent_zq7",
        "resumes_for_parent_stack_zq7",
    );
}

#[inline(never)]
fn std_inside_zq7() -> String {
    not_a_tail_call(
        std::backtrace::Backtrace::force_capture().to_string(),
        line!(),
    )
}

#[inline(never)]
fn std_resumer_zq7() -> String {
    let mut co: Coroutine<(), (), String> = Coroutine::new(|_, ()| std_inside_zq7());
    co.resume(()).as_return().unwrap()
}

#[test]
#[inline(never)]
fn std_backtrace_in_coroutine_reaches_resumer() {
    let text = std_resumer_zq7();
    let inner = text.find("std_inside_zq7");
    let outer = text.find("std_resumer_zq7");
    assert!(
        inner.is_some() && outer.is_some() && inner < outer,
        "std backtrace not linked:\n{text}"
    );
    assert!(
        text.contains("std_backtrace_in_coroutine_reaches_resumer"),
        "std backtrace stops early:\n{text}"
    );
}

#[inline(never)]
fn std_on_stack_inside_zq7() -> String {
    not_a_tail_call(
        std::backtrace::Backtrace::force_capture().to_string(),
        line!(),
    )
}

#[inline(never)]
fn std_on_stack_caller_zq7() -> String {
    on_stack(
        DefaultStack::new(256 * 1024).unwrap(),
        std_on_stack_inside_zq7,
    )
}

#[test]
#[inline(never)]
fn std_backtrace_in_on_stack_reaches_caller() {
    let text = std_on_stack_caller_zq7();
    let inner = text.find("std_on_stack_inside_zq7");
    let outer = text.find("std_on_stack_caller_zq7");
    assert!(
        inner.is_some() && outer.is_some() && inner < outer,
        "std backtrace not linked:\n{text}"
    );
}

#[inline(never)]
fn unresolved_frames_zq7() -> usize {
    // Unresolved capture is cheap; walking must terminate and go past the
    // coroutine root (more frames than the coroutine's own).
    backtrace::Backtrace::new_unresolved().frames().len()
}

#[test]
#[inline(never)]
fn unresolved_walk_terminates_and_crosses_root() {
    let mut co: Coroutine<(), (), usize> = Coroutine::new(|_, ()| unresolved_frames_zq7());
    let in_coroutine = co.resume(()).as_return().unwrap();
    let here = backtrace::Backtrace::new_unresolved().frames().len();
    // The coroutine's walk includes the frames of this test thread.
    assert!(
        in_coroutine > here,
        "coroutine backtrace has {in_coroutine} frames, the test thread {here}"
    );
}
