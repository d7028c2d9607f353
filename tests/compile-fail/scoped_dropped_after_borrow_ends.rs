// A scoped coroutine that is never run still owns its closure; dropping it
// drops the closure, whose captures may read borrowed data in their
// destructors. So the borrow must outlive the coroutine even when the only
// use left is the implicit drop at the end of the scope. (corosensei 0.3.4
// accepts this program and reads freed memory.)
use switchback::ScopedCoroutine;

struct ReadsOnDrop<'a>(&'a String);

impl Drop for ReadsOnDrop<'_> {
    fn drop(&mut self) {
        println!("{}", self.0);
    }
}

fn main() {
    let _coroutine;
    {
        let data = String::from("freed at the end of this block");
        let guard = ReadsOnDrop(&data);
        _coroutine = ScopedCoroutine::<(), (), ()>::new(move |_, ()| {
            let _keep = &guard;
        });
    }
}
