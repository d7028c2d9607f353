// Two ScopedCoroutineRefs from different scopes cannot be swapped: otherwise
// the inner scope's coroutine (borrowing `b`) could be resumed from the outer
// scope after `b` is gone.
use switchback::{ScopedCoroutine, Yielder};

fn main() {
    let mut a = String::new();
    let co1 = ScopedCoroutine::new(|y: &Yielder<(), ()>, ()| {
        a.push('x');
        y.suspend(());
        a.push('y');
    });
    co1.scope(|mut r1| {
        let mut b = String::new();
        let co2 = ScopedCoroutine::new(|y: &Yielder<(), ()>, ()| {
            b.push('x');
            y.suspend(());
            b.push('y');
        });
        co2.scope(|mut r2| {
            std::mem::swap(&mut r1, &mut r2);
        });
        drop(b);
        r1.resume(());
    });
}
