// The ScopedCoroutine itself cannot be forgotten after it started: it can only
// be resumed inside `scope`, which consumes it.
use switchback::{ScopedCoroutine, Yielder};

fn main() {
    let mut s = String::new();
    let co = ScopedCoroutine::new(|y: &Yielder<(), ()>, ()| {
        s.push('a');
        y.suspend(());
        s.push('b');
    });
    co.scope(|mut r| {
        r.resume(());
    });
    std::mem::forget(co);
}
