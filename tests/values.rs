//! Values crossing resume/suspend/return of every kind of type, closure sizes, and `CoroutineResult`.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::mem;

use switchback::{Coroutine, CoroutineResult};

mod common;

#[test]
fn usize_values_both_ways_on_every_switch() {
    let mut co = Coroutine::new(|yielder, first: usize| {
        let mut received = vec![first];
        for i in 0..10usize {
            let input = yielder.suspend(i * 1000 + received.len());
            received.push(input);
        }
        received
    });
    assert!(!co.started());
    assert_eq!(co.resume(7), CoroutineResult::Yield(1));
    assert!(co.started());
    for i in 1..10usize {
        assert_eq!(co.resume(100 + i), CoroutineResult::Yield(i * 1000 + i + 1));
    }
    let expected: Vec<usize> = std::iter::once(7).chain(101..=110).collect();
    assert_eq!(co.resume(110), CoroutineResult::Return(expected));
    assert!(co.done());
}

#[test]
fn zero_sized_values() {
    #[derive(Debug, PartialEq)]
    struct Zst;
    let mut co = Coroutine::new(|yielder, Zst| {
        let Zst = yielder.suspend(());
        let Zst = yielder.suspend(());
        Zst
    });
    assert_eq!(co.resume(Zst), CoroutineResult::Yield(()));
    assert_eq!(co.resume(Zst), CoroutineResult::Yield(()));
    assert_eq!(co.resume(Zst), CoroutineResult::Return(Zst));
    assert!(co.done());

    let mut unit: Coroutine<(), (), ()> = Coroutine::new(|y, ()| y.suspend(()));
    assert_eq!(unit.resume(()), CoroutineResult::Yield(()));
    assert_eq!(unit.resume(()), CoroutineResult::Return(()));
}

#[derive(Clone, PartialEq, Debug)]
struct Big([u64; 512]);

fn big(seed: u64) -> Big {
    let mut a = [0u64; 512];
    for (i, v) in a.iter_mut().enumerate() {
        *v = seed
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(i as u64);
    }
    Big(a)
}

#[test]
fn large_struct_values() {
    let mut co = Coroutine::new(|yielder, input: Big| {
        assert_eq!(input, big(1));
        let input = yielder.suspend(big(2));
        assert_eq!(input, big(3));
        let input = yielder.suspend(big(4));
        assert_eq!(input, big(5));
        big(6)
    });
    assert_eq!(co.resume(big(1)), CoroutineResult::Yield(big(2)));
    assert_eq!(co.resume(big(3)), CoroutineResult::Yield(big(4)));
    assert_eq!(co.resume(big(5)), CoroutineResult::Return(big(6)));
}

#[repr(align(128))]
#[derive(Clone, Copy, PartialEq, Debug)]
struct Aligned(u64);

fn assert_aligned(value: &Aligned) {
    let addr = value as *const Aligned as usize;
    assert_eq!(addr % 128, 0, "value at {addr:#x} is not 128-aligned");
}

#[test]
fn over_aligned_values() {
    let mut co = Coroutine::new(|yielder, input: Aligned| {
        assert_aligned(&input);
        assert_eq!(input.0, 1);
        let local = Aligned(2);
        assert_aligned(&local);
        let input = yielder.suspend(local);
        assert_aligned(&input);
        assert_eq!(input.0, 3);
        Aligned(4)
    });
    let CoroutineResult::Yield(y) = co.resume(Aligned(1)) else {
        panic!("expected a yield")
    };
    assert_aligned(&y);
    assert_eq!(y.0, 2);
    let CoroutineResult::Return(r) = co.resume(Aligned(3)) else {
        panic!("expected a return")
    };
    assert_aligned(&r);
    assert_eq!(r.0, 4);
}

#[test]
fn over_aligned_closure_capture() {
    let captured = Aligned(99);
    let mut co: Coroutine<(), (), u64> = Coroutine::new(move |_, ()| {
        assert_aligned(&captured);
        captured.0
    });
    assert_eq!(co.resume(()), CoroutineResult::Return(99));
}

#[test]
fn string_and_box_values() {
    let mut co = Coroutine::new(|yielder, input: Box<String>| {
        let mut log = vec![*input];
        let next = yielder.suspend(format!("got {}", log[0]));
        log.push(*next);
        let next = yielder.suspend(format!("got {}", log[1]));
        log.push(*next);
        Box::new(log)
    });
    assert_eq!(
        co.resume(Box::new("a".to_string())),
        CoroutineResult::Yield("got a".to_string())
    );
    assert_eq!(
        co.resume(Box::new("bb".to_string())),
        CoroutineResult::Yield("got bb".to_string())
    );
    let CoroutineResult::Return(log) = co.resume(Box::new("ccc".to_string())) else {
        panic!("expected return")
    };
    assert_eq!(*log, vec!["a", "bb", "ccc"]);
}

#[test]
fn boxed_trait_objects_cross() {
    let mut co = Coroutine::new(|yielder, f: Box<dyn Fn(u32) -> u32>| {
        let g = yielder.suspend(Box::new(move |x: u32| f(x) + 1) as Box<dyn Fn(u32) -> u32>);
        g(10)
    });
    let CoroutineResult::Yield(h) = co.resume(Box::new(|x| x * 2)) else {
        panic!("expected yield")
    };
    assert_eq!(h(5), 11);
    assert_eq!(co.resume(Box::new(|x| x * 3)).as_return(), Some(30));
}

#[test]
fn coroutine_result_accessors() {
    let y: CoroutineResult<u8, String> = CoroutineResult::Yield(3);
    let r: CoroutineResult<u8, String> = CoroutineResult::Return("done".into());
    assert_eq!(y.clone().as_yield(), Some(3));
    assert_eq!(y.as_return(), None);
    assert_eq!(r.clone().as_yield(), None);
    assert_eq!(r.as_return(), Some("done".to_string()));
}

#[test]
fn coroutine_result_derives() {
    fn hash_of<T: Hash>(t: &T) -> u64 {
        let mut h = DefaultHasher::new();
        t.hash(&mut h);
        h.finish()
    }
    fn assert_copy<T: Copy>(_: T) {}

    let a: CoroutineResult<u32, u32> = CoroutineResult::Yield(1);
    let b = a; // Copy
    assert_copy(a);
    assert_eq!(a, b);
    #[allow(clippy::clone_on_copy)]
    let c = a.clone();
    assert_eq!(a, c);
    assert_ne!(a, CoroutineResult::Return(1));
    assert_ne!(a, CoroutineResult::Yield(2));
    assert_eq!(hash_of(&a), hash_of(&CoroutineResult::<u32, u32>::Yield(1)));
    assert_ne!(
        hash_of(&CoroutineResult::<u32, u32>::Yield(1)),
        hash_of(&CoroutineResult::<u32, u32>::Return(1))
    );
    assert_eq!(format!("{a:?}"), "Yield(1)");
    assert_eq!(
        format!("{:?}", CoroutineResult::<u32, &str>::Return("x")),
        "Return(\"x\")"
    );
    // Eq
    fn assert_eq_trait<T: Eq>() {}
    assert_eq_trait::<CoroutineResult<u32, String>>();
    let set: std::collections::HashSet<CoroutineResult<u8, u8>> = [
        CoroutineResult::Yield(1),
        CoroutineResult::Yield(1),
        CoroutineResult::Return(1),
    ]
    .into_iter()
    .collect();
    assert_eq!(set.len(), 2);
}

#[test]
fn closure_capturing_64_kib() {
    let mut data = vec![0u8; 64 * 1024];
    for (i, b) in data.iter_mut().enumerate() {
        *b = (i * 31 % 251) as u8;
    }
    let array: [u8; 64 * 1024] = data.clone().try_into().unwrap();
    let mut co = Coroutine::new(move |yielder, ()| {
        let sum: u64 = array.iter().map(|&b| b as u64).sum();
        yielder.suspend(sum);
        array.to_vec()
    });
    let expected: u64 = data.iter().map(|&b| b as u64).sum();
    assert_eq!(co.resume(()), CoroutineResult::Yield(expected));
    assert_eq!(co.resume(()), CoroutineResult::Return(data));
}

#[test]
fn return_value_of_every_kind() {
    let mut a: Coroutine<(), (), Big> = Coroutine::new(|_, ()| big(9));
    assert_eq!(a.resume(()).as_return(), Some(big(9)));
    let mut b: Coroutine<(), (), Aligned> = Coroutine::new(|_, ()| Aligned(5));
    let r = b.resume(()).as_return().unwrap();
    assert_aligned(&r);
    let mut c: Coroutine<(), (), Box<[u8; 100]>> = Coroutine::new(|_, ()| Box::new([1u8; 100]));
    assert_eq!(c.resume(()).as_return().map(|b| b.len()), Some(100));
    assert!(mem::size_of::<CoroutineResult<(), ()>>() <= 1);
}

/// Sends `inputs` in and gets each echoed back through a yield, then returns
/// the last one: checks values both ways for one type.
fn echo<T>(inputs: Vec<T>)
where
    T: Clone + PartialEq + std::fmt::Debug + 'static,
{
    let mut co: Coroutine<T, T, T> = Coroutine::new(|y, mut x| {
        for _ in 0..3 {
            x = y.suspend(x);
        }
        x
    });
    let n = inputs.len();
    assert_eq!(n, 4);
    for (i, v) in inputs.into_iter().enumerate() {
        let r = co.resume(v.clone());
        if i + 1 < n {
            assert_eq!(r, CoroutineResult::Yield(v));
        } else {
            assert_eq!(r, CoroutineResult::Return(v));
        }
    }
}

#[test]
fn small_and_word_sized_values_of_many_types() {
    echo(vec![1u8, 0, 255, 7]);
    echo(vec![true, false, true, true]);
    echo(vec!['a', 'é', '😀', '\0']);
    echo(vec![-1i16, i16::MIN, i16::MAX, 0]);
    echo(vec![u32::MAX, 0, 12345, 1]);
    echo(vec![f32::MIN_POSITIVE, -0.5, 1e30, 0.0]);
    echo(vec![f64::MAX, -2.5, 1e-300, 0.0]);
    echo(vec![u64::MAX, 0, 1 << 63, 42]);
    echo(vec![u128::MAX, 1, 1 << 100, 0]);
    // With padding bytes.
    echo(vec![(1u8, 2u16), (3, 4), (255, u16::MAX), (0, 0)]);
    echo(vec![(1u8, 2u32), (3, 4), (255, u32::MAX), (0, 0)]);
    // Niches and enums.
    echo(vec![Some(1u8), None, Some(0), Some(255)]);
    echo(vec![
        std::num::NonZeroU64::new(5),
        None,
        std::num::NonZeroU64::new(u64::MAX),
        std::num::NonZeroU64::new(1),
    ]);
    echo(vec![Ok::<u32, i32>(1), Err(-1), Ok(0), Err(i32::MIN)]);
    // Odd sizes around a word.
    echo(vec![[1u8; 7], [2; 7], [0; 7], [255; 7]]);
    echo(vec![[1u8; 8], [2; 8], [0; 8], [255; 8]]);
    echo(vec![[1u8; 9], [2; 9], [0; 9], [255; 9]]);
    echo(vec![[1u16; 3], [2; 3], [0; 3], [9; 3]]);
    // Pointers and fat pointers.
    echo(vec!["static", "", "str", "x"]);
    echo(vec![Box::new(1u64), Box::new(2), Box::new(3), Box::new(4)]);
    echo(vec![
        std::rc::Rc::new("rc".to_string()),
        std::rc::Rc::new(String::new()),
        std::rc::Rc::new("b".repeat(100)),
        std::rc::Rc::new("c".into()),
    ]);
    echo(vec![
        Vec::<u8>::new(),
        vec![1, 2, 3],
        vec![0; 1000],
        vec![9],
    ]);
    // Zero-sized with large alignment.
    #[repr(align(64))]
    #[derive(Clone, PartialEq, Debug)]
    struct AlignedZst;
    echo(vec![AlignedZst, AlignedZst, AlignedZst, AlignedZst]);
}
