// An owned Coroutine cannot borrow from its surroundings: it could be leaked
// (mem::forget) while suspended and outlive the borrow.
use switchback::Coroutine;

fn main() {
    let s = String::from("local");
    let mut co: Coroutine<(), (), usize> = Coroutine::new(|_, ()| s.len());
    co.resume(());
}
