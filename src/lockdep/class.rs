//! Lock classes: what the order graph's nodes are.
//!
//! A *class* is a set of locks that the checker treats as one: every tree made at one
//! source location (`XArray::new`, `Mapping::new`, `RangeLock::new` are
//! `#[track_caller]` with the feature on), or every tree given one name
//! (`with_class("inode.i_pages")`). The page locks of every `Mapping` are one class of
//! their own, [`page_class`]. A graph node is a class and a *subclass* (0 unless the
//! acquisition declared a nesting level, see `lock_range_nested`), so a declared nesting
//! is ordered like two classes.
//!
//! # Invariants
//!
//! * Class ids are dense indices into a process-wide registry, never reused, and fit in
//!   24 bits (the registry refuses more), so a [`Node`] packs into a `u32` and an edge
//!   into a `u64` (`graph.rs`).
//! * Interning takes the registry's mutex: it happens when a tree is built or named,
//!   never on a lock or unlock path.

use std::collections::HashMap;

use crate::sync::process::{self, LazyLock, Mutex};

/// The most classes a process may have (ids must fit in 24 bits).
const MAX_CLASSES: usize = 1 << 24;

/// What makes two locks the same class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Key {
    /// Built at this source location.
    Site(&'static str, u32, u32),
    /// Given this name.
    Name(&'static str),
}

/// Every class of the process, by key and by id.
struct Registry {
    ids: HashMap<Key, u32>,
    names: Vec<String>,
}

static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(|| {
    Mutex::new(Registry {
        ids: HashMap::new(),
        names: Vec::new(),
    })
});

fn registry() -> process::MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|p| p.into_inner())
}

fn intern(key: Key) -> u32 {
    let mut reg = registry();
    if let Some(&id) = reg.ids.get(&key) {
        return id;
    }
    assert!(
        reg.names.len() < MAX_CLASSES,
        "lockdep: too many lock classes"
    );
    let id = reg.names.len() as u32;
    reg.names.push(match key {
        Key::Site(file, line, column) => format!("{file}:{line}:{column}"),
        Key::Name(name) => name.to_owned(),
    });
    reg.ids.insert(key, id);
    id
}

/// The name of class `id`, for reports.
pub(crate) fn name(id: u32) -> String {
    registry()
        .names
        .get(id as usize)
        .cloned()
        .unwrap_or_else(|| format!("class #{id}"))
}

/// The class of every page lock (`mapping::Page::lock`).
pub(crate) fn page_class() -> u32 {
    static PAGE: LazyLock<u32> = LazyLock::new(|| intern(Key::Name("rangelock::Page::lock")));
    *PAGE
}

/// A tree's lock class (a field of every `XArray`; a zero-sized type without the
/// feature).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TreeClass {
    pub(crate) id: u32,
}

impl TreeClass {
    /// The class of trees built where the `#[track_caller]` chain was entered.
    #[track_caller]
    pub(crate) fn here() -> Self {
        let at = core::panic::Location::caller();
        TreeClass {
            id: intern(Key::Site(at.file(), at.line(), at.column())),
        }
    }

    /// The class named `name` (one class per name, whatever the call site).
    pub(crate) fn named(name: &'static str) -> Self {
        TreeClass {
            id: intern(Key::Name(name)),
        }
    }
}

/// A node of the order graph: a class and the nesting level it was taken at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Node {
    pub(crate) class: u32,
    pub(crate) subclass: u8,
}

impl Node {
    /// The node packed in 32 bits.
    pub(crate) fn key(self) -> u32 {
        self.class << 8 | self.subclass as u32
    }

    /// The class name, with the subclass when there is one.
    pub(crate) fn label(self) -> String {
        match self.subclass {
            0 => name(self.class),
            sub => format!("{}/{sub}", name(self.class)),
        }
    }
}
