// A ScopedCoroutineRef is not Send: it cannot be moved into another thread,
// even a scoped one.
use switchback::{ScopedCoroutine, Yielder};

fn main() {
    let co = ScopedCoroutine::new(|y: &Yielder<(), ()>, ()| y.suspend(()));
    co.scope(|mut r| {
        std::thread::scope(|s| {
            s.spawn(move || {
                r.resume(());
            });
        });
    });
}
