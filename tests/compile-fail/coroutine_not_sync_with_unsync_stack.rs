// A Coroutine is Sync only if its stack is.
use std::cell::Cell;
use std::num::NonZeroUsize;
use switchback::stack::{Stack, StackPointer};
use switchback::Coroutine;

struct UnsyncStack(Cell<usize>);

unsafe impl Stack for UnsyncStack {
    fn base(&self) -> StackPointer {
        NonZeroUsize::new(self.0.get()).unwrap()
    }
    fn limit(&self) -> StackPointer {
        NonZeroUsize::new(self.0.get() - 4096).unwrap()
    }
}

fn assert_sync<T: Sync>() {}

fn main() {
    assert_sync::<Coroutine<(), (), (), UnsyncStack>>();
}
