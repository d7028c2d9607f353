//! Generators: iterators written as closures that yield, from any depth of
//! their call stack.

use switchback::{Coroutine, ScopedCoroutine, Yielder};

/// A binary tree, walked in order by plain recursion.
enum Tree {
    Leaf,
    Node(Box<Tree>, u32, Box<Tree>),
}

impl Tree {
    fn insert(self, value: u32) -> Tree {
        match self {
            Tree::Leaf => Tree::Node(Box::new(Tree::Leaf), value, Box::new(Tree::Leaf)),
            Tree::Node(left, v, right) if value < v => {
                Tree::Node(Box::new(left.insert(value)), v, right)
            }
            Tree::Node(left, v, right) => Tree::Node(left, v, Box::new(right.insert(value))),
        }
    }
}

/// Yields every value of `tree` in order: the yield happens several calls
/// deep, which a stackless `gen` block could not do.
fn walk(tree: &Tree, yielder: &Yielder<(), u32>) {
    if let Tree::Node(left, value, right) = tree {
        walk(left, yielder);
        yielder.suspend(*value);
        walk(right, yielder);
    }
}

fn main() {
    // An endless generator, cut by an iterator adapter.
    let fibonacci = switchback::generator(|yielder| {
        let (mut a, mut b) = (0u64, 1u64);
        loop {
            yielder.suspend(a);
            (a, b) = (b, a + b);
        }
    });
    let first: Vec<u64> = fibonacci.take(10).collect();
    println!("fibonacci: {first:?}");

    // A recursive tree walk, yielding from every level.
    let tree = [50, 30, 70, 20, 40, 60, 80]
        .into_iter()
        .fold(Tree::Leaf, Tree::insert);
    let in_order: Vec<u32> = switchback::generator(move |yielder| walk(&tree, yielder)).collect();
    println!("tree in order: {in_order:?}");

    // A generator that borrows: a scoped coroutine iterates too.
    let text = String::from("stackful generators yield from nested calls");
    let long_words: Vec<&str> = ScopedCoroutine::new(|yielder, ()| {
        for word in text.split(' ') {
            if word.len() > 6 {
                yielder.suspend(word);
            }
        }
    })
    .scope(|words| words.collect());
    println!("long words: {long_words:?}");

    // Any Coroutine<(), Y, ()> is an iterator; after the end, next keeps
    // returning None.
    let mut countdown: Coroutine<(), u32, ()> = Coroutine::new(|yielder, ()| {
        for i in (1..=3).rev() {
            yielder.suspend(i);
        }
    });
    let items: Vec<Option<u32>> = (0..5).map(|_| countdown.next()).collect();
    println!("countdown, five calls to next: {items:?}");
}
