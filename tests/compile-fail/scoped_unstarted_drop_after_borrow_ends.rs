// Dropping a never-started ScopedCoroutine drops its closure, whose captures
// may have destructors that use the borrows: so the borrows must outlive the
// coroutine even if it never runs.
use switchback::{ScopedCoroutine, Yielder};

struct PrintOnDrop<'a>(&'a String);

impl Drop for PrintOnDrop<'_> {
    fn drop(&mut self) {
        println!("{}", self.0);
    }
}

fn main() {
    let co;
    {
        let s = String::from("freed");
        let guard = PrintOnDrop(&s);
        co = ScopedCoroutine::new(move |_: &Yielder<(), ()>, ()| {
            let _ = &guard;
        });
    }
    drop(co);
}
