// Nor can its Input/Yield/Return types borrow locals.
use switchback::{Coroutine, Yielder};

fn make<'a>(s: &'a str) -> Coroutine<(), &'a str, ()> {
    let _ = s;
    Coroutine::new(|_: &Yielder<(), &'a str>, ()| ())
}

fn main() {
    let s = String::from("x");
    let _co = make(&s);
}
