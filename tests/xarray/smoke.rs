use std::sync::Arc;

use rangelock::{Entry, Mark, XArray};

#[test]
fn smoke() {
    let xa: XArray<u64> = XArray::new();
    for i in [0u64, 63, 64, 4095, 4096, 1 << 32, u64::MAX - 1, u64::MAX] {
        assert!(xa.store(i, Arc::new(i)).unwrap().is_empty());
        xa.check_invariants().unwrap();
        assert_eq!(*xa.load(i).unwrap(), i);
    }
    assert_eq!(xa.len(), 8);
    let all: Vec<u64> = xa.iter(..).map(|(s, _)| *s.start()).collect();
    assert_eq!(
        all,
        vec![0, 63, 64, 4095, 4096, 1 << 32, u64::MAX - 1, u64::MAX]
    );
    for i in [0u64, 63, 64, 4095, 4096, 1 << 32, u64::MAX - 1, u64::MAX] {
        assert_eq!(*xa.erase(i).unwrap().item().unwrap().as_ref(), i);
        xa.check_invariants().unwrap();
    }
    assert!(xa.is_empty());
    assert_eq!(xa.node_count(), 0);

    let xa: XArray<u64, 4> = XArray::with_slots();
    xa.store_range(5..1000, 9).unwrap();
    xa.check_invariants().unwrap();
    xa.set_mark(500, Mark::M1);
    xa.check_invariants().unwrap();
    assert!(xa.get_mark(500, Mark::M1));
    assert!(!xa.get_mark(501, Mark::M1));
    xa.store(7, Arc::new(1)).unwrap();
    xa.check_invariants().unwrap();
    assert_eq!(xa.get(6).value(), Some(9));
    assert!(matches!(xa.get(7), Entry::Item(_)));
    xa.erase_range(0..2000).unwrap();
    xa.check_invariants().unwrap();
    assert!(xa.is_empty(), "{:?}", xa);
    xa.store_range(.., 3).unwrap();
    xa.store(12345, Arc::new(5)).unwrap();
    xa.check_invariants().unwrap();
    xa.erase_range(..).unwrap();
    assert!(xa.is_empty());
    xa.check_invariants().unwrap();
}
