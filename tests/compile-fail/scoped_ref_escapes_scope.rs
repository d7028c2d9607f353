// Returning the ScopedCoroutineRef out of `scope` would let the coroutine be
// resumed after the scope dropped it.
use switchback::{ScopedCoroutine, Yielder};

fn main() {
    let co = ScopedCoroutine::new(|y: &Yielder<(), ()>, ()| y.suspend(()));
    let escaped = co.scope(|r| r);
    let _ = escaped;
}
