//! The quickcheck harness of the differential model tests (`tests/xarray/model.rs`,
//! `tests/lock/model.rs`): random operation sequences, each operation decoded from its
//! own random bytes by the fuzzer's decoder, shrunk by the driver's shrinker, and run
//! with a fixed seed, so a failure reproduces. `QUICKCHECK_TESTS` runs more cases.

use std::fmt::Debug;

use arbitrary::Unstructured;
use quickcheck::{Arbitrary, Gen, QuickCheck};

/// An operation of a differential driver.
pub trait DriverOp: for<'a> arbitrary::Arbitrary<'a> + Clone + Debug + 'static {
    /// Runs a sequence against the tree and the model; panics on a divergence.
    const RUN: fn(&[Self]);
    /// Simpler versions of a sequence, simplest first.
    const SHRINK_OPS: fn(&[Self]) -> Vec<Vec<Self>>;
}

/// A random operation sequence.
#[derive(Clone, Debug)]
pub struct Ops<T>(pub Vec<T>);

impl<T: DriverOp> Arbitrary for Ops<T> {
    fn arbitrary(g: &mut Gen) -> Self {
        // Up to `size` operations, each decoded from its own random bytes (more than
        // the largest operation needs), so the sequence length does not depend on
        // `arbitrary_take_rest`'s continuation bytes.
        let len = usize::arbitrary(g) % (g.size() + 1);
        let ops = (0..len)
            .map(|_| {
                let bytes: Vec<u8> = (0..32).map(|_| u8::arbitrary(g)).collect();
                <T as arbitrary::Arbitrary>::arbitrary(&mut Unstructured::new(&bytes))
                    .expect("the operation decoder never fails")
            })
            .collect();
        Ops(ops)
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Self>> {
        Box::new(T::SHRINK_OPS(&self.0).into_iter().map(Ops))
    }
}

fn prop_matches_model<T: DriverOp>(ops: Ops<T>) -> bool {
    T::RUN(&ops.0);
    true
}

/// Cases, generator size (about the largest number of operations) and seed.
fn config() -> (u64, usize, u64) {
    if cfg!(miri) {
        (4, 12, 0x5eed)
    } else {
        (500, 120, 0x5eed)
    }
}

/// Runs the driver of `T` on [`config`]'s cases (`QUICKCHECK_TESTS` overrides their
/// number), shrinking a failing sequence before reporting it.
pub fn check_matches_model<T: DriverOp>() {
    let (tests, size, seed) = config();
    let tests = std::env::var("QUICKCHECK_TESTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(tests);
    QuickCheck::new()
        .rng(Gen::from_size_and_seed(size, seed))
        .tests(tests)
        .max_tests(tests)
        .quickcheck(prop_matches_model::<T> as fn(Ops<T>) -> bool);
}
