//! The in-memory key index: for every key, its generations of revisions (etcd's
//! `keyIndex`/`treeIndex`).
//!
//! A generation is the life of a key from its creation to its deletion: the revisions
//! of its puts, then the revision of the tombstone that ended it. The last generation of
//! a key is the live one (empty if the key is currently deleted). Compaction drops
//! every revision that no read at or above the compaction point can see.
//!
//! Invariants: revisions of a key only grow; only the last generation may be empty;
//! a key whose only generation is empty is removed from the tree.
//!
//! Memory: a key costs one tree slot (the boxed key and the boxed history, 32 bytes)
//! plus two heap blocks: the key bytes and the packed history. The history is one
//! `[i64]`: per generation `ver, created.main, created.sub, n`, then `n` pairs
//! `main, sub`; a key put once takes 6 words. Reads walk the packed form in place;
//! writes unpack it into a list of generations, change that and pack it again.

use std::collections::{BTreeMap, HashSet};
use std::ops::Bound;

use crate::revision::Revision;

#[derive(Clone, Debug, PartialEq, Eq)]
struct Generation {
    /// Puts in this generation, counting the ones compacted away.
    ver: i64,
    /// Revision of the put that created the generation.
    created: Revision,
    /// Surviving revisions, ascending; for an ended generation the last is the tombstone.
    revs: Vec<Revision>,
}

impl Generation {
    fn empty() -> Self {
        Self {
            ver: 0,
            created: Revision::default(),
            revs: Vec::new(),
        }
    }

    fn is_empty(&self) -> bool {
        self.revs.is_empty()
    }
}

/// What [`TreeIndex::get`] finds for a key at a revision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    /// Revision of the record holding the key's value at that point.
    pub modified: Revision,
    /// Revision that created the key's generation.
    pub created: Revision,
    /// Version of the key at that point.
    pub version: i64,
}

/// All generations of one key, unpacked for changes.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Generations {
    generations: Vec<Generation>,
}

impl Generations {
    fn new() -> Self {
        Self {
            generations: vec![Generation::empty()],
        }
    }

    /// Revision of the key's last change (put or tombstone).
    fn modified(&self) -> Option<Revision> {
        self.generations
            .iter()
            .rev()
            .find_map(|g| g.revs.last().copied())
    }

    fn last_mut(&mut self) -> &mut Generation {
        self.generations
            .last_mut()
            .expect("a key index always has a generation")
    }

    fn put(&mut self, rev: Revision) {
        if let Some(modified) = self.modified() {
            assert!(
                rev > modified,
                "put at {rev} not after last change {modified}"
            );
        }
        let g = self.last_mut();
        if g.revs.is_empty() {
            g.created = rev;
            g.revs.reserve_exact(1);
        }
        g.revs.push(rev);
        g.ver += 1;
    }

    /// Restores a key first seen in the backend, where earlier revisions may have been
    /// compacted away: `created` and `version` come from the record itself.
    fn restore(&mut self, created: Revision, modified: Revision, version: i64) {
        assert!(
            self.generations.len() == 1 && self.generations[0].is_empty(),
            "restore only starts a fresh key index"
        );
        self.generations[0] = Generation {
            ver: version,
            created,
            revs: vec![modified],
        };
    }

    /// Ends the live generation; `false` if the key is not live.
    fn tombstone(&mut self, rev: Revision) -> bool {
        if self.last_mut().is_empty() {
            return false;
        }
        self.put(rev);
        self.generations.push(Generation::empty());
        true
    }

    /// etcd's backward walk; the reference the packed forward walk is tested against.
    #[cfg(test)]
    fn find_generation(&self, at: i64) -> Option<&Generation> {
        let last = self.generations.len() - 1;
        for (i, g) in self.generations.iter().enumerate().rev() {
            let (Some(first), Some(end)) = (g.revs.first(), g.revs.last()) else {
                continue;
            };
            if i != last && end.main <= at {
                // The generation was ended by a tombstone at or before `at`.
                return None;
            }
            if first.main <= at {
                return Some(g);
            }
        }
        None
    }

    /// The key's state at revision `at` (reference for [`KeyIndex::get`]).
    #[cfg(test)]
    fn get(&self, at: i64) -> Option<IndexEntry> {
        let g = self.find_generation(at)?;
        let n = g.revs.iter().rposition(|r| r.main <= at)?;
        let newer = i64::try_from(g.revs.len() - n - 1).expect("revision count fits i64");
        Some(IndexEntry {
            modified: g.revs[n],
            created: g.created,
            version: g.ver - newer,
        })
    }

    /// Finds the generation and the newest revision at or below `at` that compaction at
    /// `at` keeps, adding that revision to `available`.
    fn do_compact(&self, at: i64, available: &mut HashSet<Revision>) -> (usize, Option<usize>) {
        let mut gen_idx = 0;
        while gen_idx < self.generations.len() - 1 {
            let tomb = self.generations[gen_idx]
                .revs
                .last()
                .expect("only the last generation may be empty");
            if tomb.main > at {
                break;
            }
            gen_idx += 1;
        }
        let g = &self.generations[gen_idx];
        let rev_idx = g.revs.iter().rposition(|r| r.main <= at);
        if let Some(i) = rev_idx {
            available.insert(g.revs[i]);
        }
        (gen_idx, rev_idx)
    }

    fn compact(&mut self, at: i64, available: &mut HashSet<Revision>) {
        assert!(!self.is_empty(), "compacting an empty key index");
        let (mut gen_idx, rev_idx) = self.do_compact(at, available);
        let last = self.generations.len() - 1;
        let g = &mut self.generations[gen_idx];
        if !g.is_empty() {
            if let Some(i) = rev_idx {
                g.revs.drain(..i);
            }
            if g.revs.len() == 1 && gen_idx != last {
                available.remove(&g.revs[0]);
                gen_idx += 1;
            }
        }
        self.generations.drain(..gen_idx);
    }

    fn keep(&self, at: i64, available: &mut HashSet<Revision>) {
        if self.is_empty() {
            return;
        }
        let (gen_idx, rev_idx) = self.do_compact(at, available);
        let g = &self.generations[gen_idx];
        if let Some(i) = rev_idx
            && i == g.revs.len() - 1
            && gen_idx != self.generations.len() - 1
        {
            available.remove(&g.revs[i]);
        }
    }

    fn is_empty(&self) -> bool {
        self.generations.len() == 1 && self.generations[0].is_empty()
    }
}

const GEN_HEADER_WORDS: usize = 4;

/// All generations of one key, packed into one heap block (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyIndex {
    packed: Box<[i64]>,
}

/// One generation read in place from the packed form.
struct GenView<'a> {
    ver: i64,
    created: Revision,
    /// `main, sub` pairs.
    revs: &'a [i64],
}

impl GenView<'_> {
    fn len(&self) -> usize {
        self.revs.len() / 2
    }

    fn rev(&self, i: usize) -> Revision {
        Revision::new(self.revs[2 * i], self.revs[2 * i + 1])
    }
}

fn word(n: usize) -> i64 {
    i64::try_from(n).expect("revision count fits i64")
}

impl KeyIndex {
    fn pack(gens: &Generations) -> Self {
        let words: usize = gens
            .generations
            .iter()
            .map(|g| GEN_HEADER_WORDS + 2 * g.revs.len())
            .sum();
        let mut packed = Vec::with_capacity(words);
        for g in &gens.generations {
            packed.extend_from_slice(&[g.ver, g.created.main, g.created.sub, word(g.revs.len())]);
            for r in &g.revs {
                packed.extend_from_slice(&[r.main, r.sub]);
            }
        }
        assert_eq!(packed.len(), words, "packed size computed exactly");
        Self {
            packed: packed.into_boxed_slice(),
        }
    }

    fn views(&self) -> impl Iterator<Item = GenView<'_>> {
        let mut rest: &[i64] = &self.packed;
        std::iter::from_fn(move || {
            let (header, tail) = rest.split_first_chunk::<GEN_HEADER_WORDS>()?;
            let n = usize::try_from(header[3]).expect("packed revision count is non-negative");
            let (revs, tail) = tail.split_at(2 * n);
            rest = tail;
            Some(GenView {
                ver: header[0],
                created: Revision::new(header[1], header[2]),
                revs,
            })
        })
    }

    fn unpack(&self) -> Generations {
        Generations {
            generations: self
                .views()
                .map(|v| Generation {
                    ver: v.ver,
                    created: v.created,
                    revs: (0..v.len()).map(|i| v.rev(i)).collect(),
                })
                .collect(),
        }
    }

    fn update(&mut self, f: impl FnOnce(&mut Generations)) {
        let mut gens = self.unpack();
        f(&mut gens);
        *self = Self::pack(&gens);
    }

    /// The key's state at revision `at`, `None` if it did not exist then. Walks the
    /// generations forward: the answer lies in the last non-empty generation created
    /// at or before `at`, unless a tombstone at or before `at` ended it.
    pub fn get(&self, at: i64) -> Option<IndexEntry> {
        let mut found: Option<(GenView<'_>, bool)> = None;
        let mut views = self.views().peekable();
        while let Some(v) = views.next() {
            let is_last = views.peek().is_none();
            if v.len() > 0 && v.rev(0).main <= at {
                found = Some((v, is_last));
            }
        }
        let (g, is_last) = found?;
        if !is_last && g.rev(g.len() - 1).main <= at {
            return None;
        }
        let n = (0..g.len()).rev().find(|&i| g.rev(i).main <= at)?;
        Some(IndexEntry {
            modified: g.rev(n),
            created: g.created,
            version: g.ver - word(g.len() - n - 1),
        })
    }

    fn is_empty(&self) -> bool {
        self.packed.len() == GEN_HEADER_WORDS && self.packed[3] == 0
    }
}

/// The ordered map from key to [`KeyIndex`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TreeIndex {
    tree: BTreeMap<Box<[u8]>, KeyIndex>,
}

impl TreeIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of keys with any history left.
    pub fn len(&self) -> usize {
        self.tree.len()
    }

    /// No key has any history left.
    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }

    /// Records a put of `key` at `rev`.
    pub fn put(&mut self, key: &[u8], rev: Revision) {
        match self.tree.get_mut(key) {
            Some(ki) => ki.update(|g| g.put(rev)),
            None => {
                let mut g = Generations::new();
                g.put(rev);
                self.tree.insert(key.into(), KeyIndex::pack(&g));
            }
        }
    }

    /// Rebuild path: records a put found in the backend.
    pub fn restore_put(&mut self, key: &[u8], created: Revision, rev: Revision, version: i64) {
        match self.tree.get_mut(key) {
            Some(ki) => ki.update(|g| g.put(rev)),
            None => {
                let mut g = Generations::new();
                g.restore(created, rev, version);
                self.tree.insert(key.into(), KeyIndex::pack(&g));
            }
        }
    }

    /// Records the deletion of `key` at `rev`; `false` if the key is not live.
    pub fn tombstone(&mut self, key: &[u8], rev: Revision) -> bool {
        let Some(ki) = self.tree.get_mut(key) else {
            return false;
        };
        let mut ended = false;
        ki.update(|g| ended = g.tombstone(rev));
        ended
    }

    /// State of one key at `at`.
    pub fn get(&self, key: &[u8], at: i64) -> Option<IndexEntry> {
        self.tree.get(key)?.get(at)
    }

    /// Keys live at `at` in `[key, end)`, ascending, with their entries. `end` empty
    /// means only `key`; `end == [0]` means every key from `key` on.
    pub fn range(&self, key: &[u8], end: &[u8], at: i64) -> Vec<(&[u8], IndexEntry)> {
        let mut out = Vec::new();
        if end.is_empty() {
            if let Some((k, ki)) = self.tree.get_key_value(key)
                && let Some(e) = ki.get(at)
            {
                out.push((&**k, e));
            }
            return out;
        }
        let upper = if end == [0] {
            Bound::Unbounded
        } else if end <= key {
            return out;
        } else {
            Bound::Excluded(end)
        };
        for (k, ki) in self.tree.range::<[u8], _>((Bound::Included(key), upper)) {
            if let Some(e) = ki.get(at) {
                out.push((&**k, e));
            }
        }
        out
    }

    /// Compacts every key at `at`; returns the revisions at or below `at` still needed.
    pub fn compact(&mut self, at: i64) -> HashSet<Revision> {
        let mut available = HashSet::new();
        self.tree.retain(|_, ki| {
            ki.update(|g| g.compact(at, &mut available));
            !ki.is_empty()
        });
        available
    }

    /// The revisions at or below `at` a compaction at `at` would keep.
    pub fn keep(&self, at: i64) -> HashSet<Revision> {
        let mut available = HashSet::new();
        for ki in self.tree.values() {
            ki.unpack().keep(at, &mut available);
        }
        available
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rev(main: i64) -> Revision {
        Revision::new(main, 0)
    }

    /// The history of etcd's `TestKeyIndexGet`: puts at 2 and 4, tombstone at 6; puts
    /// at 8 and 10, tombstone at 12; puts at 14 and 14.1, tombstone at 16.
    fn history() -> Generations {
        let mut ki = Generations::new();
        ki.put(rev(2));
        ki.put(rev(4));
        assert!(ki.tombstone(rev(6)));
        ki.put(rev(8));
        ki.put(rev(10));
        assert!(ki.tombstone(rev(12)));
        ki.put(rev(14));
        ki.put(Revision::new(14, 1));
        assert!(ki.tombstone(rev(16)));
        ki
    }

    #[test]
    fn get_follows_generations() {
        let ki = history();
        type Want = Option<(Revision, i64, i64)>;
        let cases: &[(i64, Want)] = &[
            (1, None),
            (2, Some((rev(2), 2, 1))),
            (5, Some((rev(4), 2, 2))),
            (6, None),
            (7, None),
            (8, Some((rev(8), 8, 1))),
            (11, Some((rev(10), 8, 2))),
            (12, None),
            (14, Some((Revision::new(14, 1), 14, 2))),
            (15, Some((Revision::new(14, 1), 14, 2))),
            (16, None),
            (17, None),
        ];
        for (at, want) in cases {
            let got = ki.get(*at).map(|e| (e.modified, e.created.main, e.version));
            assert_eq!(got, *want, "get at {at}");
            let packed = KeyIndex::pack(&ki);
            let got = packed
                .get(*at)
                .map(|e| (e.modified, e.created.main, e.version));
            assert_eq!(got, *want, "packed get at {at}");
        }
    }

    #[test]
    fn packing_round_trips_and_is_small() {
        let ki = history();
        assert_eq!(KeyIndex::pack(&ki).unpack(), ki);
        let mut once = Generations::new();
        once.put(rev(5));
        assert_eq!(
            KeyIndex::pack(&once).packed.len(),
            6,
            "a key put once takes 6 words"
        );
        assert!(KeyIndex::pack(&Generations::new()).is_empty());
    }

    #[test]
    fn tombstone_of_deleted_key_is_refused() {
        let mut ki = Generations::new();
        assert!(!ki.tombstone(rev(1)));
        ki.put(rev(2));
        assert!(ki.tombstone(rev(3)));
        assert!(!ki.tombstone(rev(4)));
    }

    #[test]
    fn compact_keeps_what_reads_need_and_matches_keep() {
        for at in 1..=18 {
            let mut ki = history();
            let mut kept = HashSet::new();
            ki.keep(at, &mut kept);
            let mut available = HashSet::new();
            ki.compact(at, &mut available);
            assert_eq!(kept, available, "keep and compact agree at {at}");
            let full = history();
            let packed = KeyIndex::pack(&ki);
            for read_at in at..=18 {
                let want = full.get(read_at).map(|e| (e.modified, e.version));
                let got = ki.get(read_at).map(|e| (e.modified, e.version));
                assert_eq!(got, want, "read at {read_at} after compact at {at}");
                let got = packed.get(read_at).map(|e| (e.modified, e.version));
                assert_eq!(got, want, "packed read at {read_at} after compact at {at}");
            }
        }
    }

    #[test]
    fn compaction_drops_deleted_keys() {
        let mut tree = TreeIndex::new();
        tree.put(b"a", rev(1));
        tree.put(b"b", rev(2));
        assert!(tree.tombstone(b"a", rev(3)));
        let available = tree.compact(3);
        assert_eq!(tree.len(), 1);
        assert_eq!(available, HashSet::from([rev(2)]));
        assert!(tree.get(b"a", 3).is_none());
    }

    #[test]
    fn range_bounds() {
        let mut tree = TreeIndex::new();
        for (i, k) in [b"a", b"b", b"c"].iter().enumerate() {
            tree.put(*k, rev(i64::try_from(i).expect("small") + 1));
        }
        let keys = |end: &[u8], key: &[u8]| -> Vec<Vec<u8>> {
            tree.range(key, end, 3)
                .into_iter()
                .map(|(k, _)| k.to_vec())
                .collect()
        };
        assert_eq!(keys(b"", b"b"), vec![b"b".to_vec()]);
        assert_eq!(keys(b"c", b"a"), vec![b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(keys(&[0], b"b"), vec![b"b".to_vec(), b"c".to_vec()]);
        assert!(keys(b"a", b"b").is_empty());
        assert_eq!(tree.range(b"a", &[0], 1).len(), 1);
    }
}
