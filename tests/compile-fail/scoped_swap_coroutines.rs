// Swapping two ScopedCoroutines with different borrow lifetimes ties both to
// the shorter one: the coroutine borrowing `b` cannot run after `b` is gone.
use switchback::{ScopedCoroutine, Yielder};

fn main() {
    let mut a = String::new();
    let mut co1 = ScopedCoroutine::new(|_: &Yielder<(), ()>, ()| a.push('a'));
    {
        let mut b = String::new();
        let mut co2 = ScopedCoroutine::new(|_: &Yielder<(), ()>, ()| b.push('b'));
        std::mem::swap(&mut co1, &mut co2);
    }
    co1.scope(|mut r| r.resume(()));
}
