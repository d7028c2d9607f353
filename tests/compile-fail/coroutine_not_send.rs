// A Coroutine is not Send: values on its stack may not be Send.
use std::rc::Rc;
use switchback::Coroutine;

fn main() {
    let rc = Rc::new(1);
    let mut co: Coroutine<(), (), ()> = Coroutine::new(move |y, ()| {
        let mine = rc.clone();
        y.suspend(());
        drop(mine);
    });
    co.resume(());
    std::thread::spawn(move || {
        co.resume(());
    });
}
