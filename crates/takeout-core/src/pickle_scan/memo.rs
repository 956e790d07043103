//! The unpickler's memo, keyed like `CPython`'s: any non-negative integer, with `MEMOIZE`
//! storing at the number of distinct keys.
//!
//! Picklers number their keys 0, 1, 2, ..., so a vector indexed by key holds them with no
//! hashing (a `HashMap` made memo-heavy streams ~30x slower to scan). A hostile stream may
//! use any key, so the vector only grows to about twice the number of stored keys; keys
//! beyond that go to a map, and memory stays proportional to the input.

use std::collections::HashMap;

/// Keys below this are always kept in the vector.
const DENSE_SLACK: usize = 1024;

#[derive(Debug)]
pub(crate) struct Memo<V> {
    dense: Vec<Option<V>>,
    sparse: HashMap<u64, V>,
    len: usize,
}

impl<V: Copy> Memo<V> {
    pub(crate) fn new() -> Self {
        Self {
            dense: Vec::new(),
            sparse: HashMap::new(),
            len: 0,
        }
    }

    /// Number of distinct keys stored: where `MEMOIZE` stores next.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn get(&self, key: u64) -> Option<V> {
        match usize::try_from(key) {
            Ok(index) if index < self.dense.len() => self.dense[index],
            _ => self.sparse.get(&key).copied(),
        }
    }

    pub(crate) fn insert(&mut self, key: u64, value: V) {
        let index = usize::try_from(key)
            .ok()
            .filter(|&index| index < self.dense.len() || index < 2 * self.len + DENSE_SLACK);
        let Some(index) = index else {
            if self.sparse.insert(key, value).is_none() {
                self.len += 1;
            }
            return;
        };
        if index >= self.dense.len() {
            self.grow_to(index + 1);
        }
        if self.dense[index].replace(value).is_none() {
            self.len += 1;
        }
    }

    /// Extend the vector, moving in any keys of the new range that went to the map.
    fn grow_to(&mut self, new_len: usize) {
        let old_len = self.dense.len();
        self.dense.resize(new_len, None);
        if self.sparse.is_empty() {
            return;
        }
        for index in old_len..new_len {
            if let Some(value) = self.sparse.remove(&(index as u64)) {
                self.dense[index] = Some(value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_keys_stay_in_the_vector() {
        let mut memo = Memo::new();
        for key in 0..10_000u64 {
            memo.insert(key, key);
        }
        assert_eq!(memo.len(), 10_000);
        assert!(memo.sparse.is_empty());
        assert_eq!(memo.get(1234), Some(1234));
        assert_eq!(memo.get(10_000), None);
    }

    #[test]
    fn far_keys_go_to_the_map_and_move_back_when_reached() {
        let mut memo = Memo::new();
        memo.insert(u64::MAX, 1);
        memo.insert(5000, 2);
        assert_eq!(memo.dense.len(), 0);
        assert_eq!(memo.len(), 2);
        for key in 0..3000u64 {
            memo.insert(key, 3);
        }
        assert_eq!(memo.dense.len(), 3000);
        assert_eq!(memo.get(5000), Some(2));
        // With 3002 keys stored, 5000 is now close enough for the vector, which takes over
        // the entry from the map instead of counting it as a new key.
        memo.insert(5000, 4);
        assert_eq!(memo.dense.len(), 5001);
        assert!(!memo.sparse.contains_key(&5000));
        assert_eq!(memo.get(5000), Some(4));
        assert_eq!(memo.get(u64::MAX), Some(1));
        assert_eq!(memo.len(), 3002);
    }

    #[test]
    fn overwriting_a_key_does_not_count_twice() {
        let mut memo = Memo::new();
        memo.insert(7, 'a');
        memo.insert(7, 'b');
        memo.insert(1 << 40, 'c');
        memo.insert(1 << 40, 'd');
        assert_eq!(memo.len(), 2);
        assert_eq!(memo.get(7), Some('b'));
        assert_eq!(memo.get(1 << 40), Some('d'));
    }

    #[test]
    fn memory_follows_the_number_of_keys_not_their_values() {
        let mut memo = Memo::new();
        for (i, key) in (0..40).map(|shift| 1u64 << shift).enumerate() {
            memo.insert(key, i);
        }
        assert!(memo.dense.len() <= 2 * 40 + DENSE_SLACK);
        for (i, key) in (0..40).map(|shift| 1u64 << shift).enumerate() {
            assert_eq!(memo.get(key), Some(i));
        }
    }
}
