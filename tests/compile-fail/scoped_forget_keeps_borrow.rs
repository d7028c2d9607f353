// Forgetting the ScopedCoroutineRef inside the scope does not end the
// coroutine's borrows: the suspended coroutine still holds `v` until `scope`
// returns, so `v` cannot be used meanwhile.
use switchback::{ScopedCoroutine, Yielder};

fn main() {
    let mut v = vec![1];
    let co = ScopedCoroutine::new(|y: &Yielder<(), ()>, ()| {
        let first = &v[0];
        y.suspend(());
        println!("{first}");
    });
    co.scope(|mut r| {
        r.as_mut().resume(());
        std::mem::forget(r);
        v.clear();
    });
}
