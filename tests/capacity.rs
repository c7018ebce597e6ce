//! Issue 11, point 4: a capacity too large to allocate up front is refused with a typed error
//! (or, from the infallible constructors, a panic with a clear message), never an allocator
//! abort. On 5.0.0 before the fix each of these calls aborted the whole test process.

use std::panic;

use clocked_dispatch::{BuildError, Builder, SpillSetupError, MAX_PREALLOCATED_BYTES};

const HUGE: usize = 1 << 40;

#[test]
fn try_build_refuses_a_huge_bound() {
    let err = Builder::new().bound(HUGE).try_build::<u64>().unwrap_err();
    let BuildError::Capacity(err) = err else {
        panic!("expected a capacity error, got {err:?}");
    };
    assert_eq!(err.setting(), "bound");
    assert_eq!(err.capacity(), HUGE);
    assert!(err.max_capacity() < HUGE);
    assert!(err.max_capacity() * std::mem::size_of::<u64>() <= MAX_PREALLOCATED_BYTES);
    assert!(err.to_string().contains("MAX_PREALLOCATED_BYTES"));
}

#[test]
fn try_build_refuses_a_huge_inbox_capacity() {
    let err = Builder::new()
        .bound(4)
        .inbox_capacity(HUGE)
        .try_build::<u64>()
        .unwrap_err();
    assert!(matches!(err, BuildError::Capacity(e) if e.setting() == "inbox_capacity"));
}

#[test]
fn the_limit_depends_on_the_message_size() {
    // A bound fine for u8 is too much for a 4 KiB message.
    let bound = MAX_PREALLOCATED_BYTES / 1024;
    let err = Builder::new()
        .bound(bound)
        .try_build::<[u8; 4096]>()
        .unwrap_err();
    assert!(matches!(err, BuildError::Capacity(_)));
    let err = Builder::new()
        .bound(usize::MAX)
        .try_build::<()>()
        .unwrap_err();
    assert!(matches!(err, BuildError::Capacity(_)));
}

#[test]
fn new_and_build_panic_with_a_clear_message() {
    for build in [
        (|| drop(clocked_dispatch::new::<u64>(HUGE))) as fn(),
        || drop(clocked_dispatch::new_with_seed::<u64>(HUGE, 7)),
        || drop(Builder::new().bound(HUGE).build::<u64>()),
    ] {
        let panic = panic::catch_unwind(build).unwrap_err();
        let message = panic
            .downcast_ref::<String>()
            .expect("the panic carries a formatted message");
        assert!(message.contains("bound"), "{message}");
        assert!(message.contains("MAX_PREALLOCATED_BYTES"), "{message}");
    }
}

#[test]
fn build_spilling_refuses_a_huge_bound_or_memory_capacity() {
    let dir = tempfile::tempdir().unwrap();
    let err = Builder::new()
        .bound(HUGE)
        .spill_to(dir.path().join("a"))
        .build_spilling::<u64>()
        .unwrap_err();
    assert!(matches!(err, SpillSetupError::Capacity(e) if e.setting() == "bound"));
    let err = Builder::new()
        .bound(4)
        .memory_capacity(HUGE)
        .spill_to(dir.path().join("b"))
        .build_spilling::<u64>()
        .unwrap_err();
    assert!(matches!(err, SpillSetupError::Capacity(e) if e.setting() == "memory_capacity"));
}

#[test]
fn a_large_but_reasonable_bound_still_works() {
    let d = Builder::new().bound(1 << 16).try_build::<u64>().unwrap();
    let (tx, rx) = d.new("tx", "rx");
    tx.send(5).unwrap();
    assert_eq!(rx.recv(), Ok((Some(5), 1)));
}
