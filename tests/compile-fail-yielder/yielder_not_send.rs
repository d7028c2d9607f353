// Yielder is documented as neither Send nor Sync.
use switchback::Yielder;

fn assert_send<T: Send>() {}

fn main() {
    assert_send::<Yielder<(), ()>>();
}
