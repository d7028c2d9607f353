// `on_parent_stack` cannot take the Yielder along: `&Yielder` is not Send.
use switchback::{Coroutine, Yielder};

fn main() {
    let mut co: Coroutine<(), (), ()> = Coroutine::new(|y: &Yielder<(), ()>, ()| {
        y.on_parent_stack(|| y.suspend(()));
    });
    co.resume(());
}
