// Smuggling the ScopedCoroutineRef out of `scope` through a captured variable
// is rejected too.
use switchback::stack::DefaultStack;
use switchback::{ScopedCoroutine, ScopedCoroutineRef, Yielder};

fn main() {
    let mut s = String::from("borrowed");
    let mut keep: Option<ScopedCoroutineRef<'_, (), (), (), DefaultStack>> = None;
    let co = ScopedCoroutine::new(|y: &Yielder<(), ()>, ()| {
        s.push('!');
        y.suspend(());
        s.push('?');
    });
    co.scope(|r| keep = Some(r));
    drop(s);
    keep.unwrap().resume(());
}
