// The Yielder cannot be used from another thread.
use switchback::{Coroutine, Yielder};

fn main() {
    let mut co: Coroutine<(), (), ()> = Coroutine::new(|y: &Yielder<(), ()>, ()| {
        std::thread::scope(|s| {
            s.spawn(|| y.suspend(()));
        });
    });
    co.resume(());
}
