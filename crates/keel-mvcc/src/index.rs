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
//! Memory: a key costs one tree slot (a boxed byte slice, 16 bytes) and one heap block
//! holding, as LEB128 varints: the key length, the key bytes, then per generation
//! `ver, created.main, created.sub, n` and `n` pairs `main, sub`. A 12-byte key put
//! once at a revision near a million takes 23 bytes. Reads decode the block in place;
//! writes take the entry out of the tree, unpack it into a list of generations,
//! change that and insert the repacked entry.

use std::borrow::Borrow;
use std::collections::{BTreeSet, HashSet};
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

    /// Restores a key whose only record left in the backend is a tombstone (kept by a
    /// compaction at its revision); its creation was compacted away (etcd PR #19188).
    fn restore_tombstone(&mut self, rev: Revision) {
        self.restore(Revision::default(), rev, 1);
        self.generations.push(Generation::empty());
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
    ///
    /// A generation whose tombstone is exactly at `at` is kept (etcd PR #18274, in
    /// 3.4.34/3.5.15): otherwise a watcher resuming at the compaction point would miss
    /// that deletion.
    fn do_compact(&self, at: i64, available: &mut HashSet<Revision>) -> (usize, Option<usize>) {
        let mut gen_idx = 0;
        while gen_idx < self.generations.len() - 1 {
            let tomb = self.generations[gen_idx]
                .revs
                .last()
                .expect("only the last generation may be empty");
            if tomb.main >= at {
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
        let (gen_idx, rev_idx) = self.do_compact(at, available);
        if let Some(i) = rev_idx {
            self.generations[gen_idx].revs.drain(..i);
        }
        self.generations.drain(..gen_idx);
    }

    /// Unlike `compact`, leaves out a tombstone at exactly `at`, as etcd does, so that
    /// `HashKV` stays the same across versions and compaction progress.
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

/// Appends `n` as LEB128 (7 bits a byte, low bits first).
fn put_varint(out: &mut Vec<u8>, n: i64) {
    let mut n = u64::try_from(n).expect("index integers are never negative");
    loop {
        let low = u8::try_from(n & 0x7f).expect("seven bits fit a byte");
        n >>= 7;
        if n == 0 {
            out.push(low);
            return;
        }
        out.push(low | 0x80);
    }
}

/// Bytes [`put_varint`] writes for `n`.
fn varint_len(n: i64) -> usize {
    let bits = 64
        - u64::try_from(n)
            .expect("index integers are never negative")
            .leading_zeros();
    usize::try_from(bits.max(1).div_ceil(7)).expect("at most 10")
}

/// Reads what [`put_varint`] wrote; the bytes come only from [`Entry::new`].
struct Reader<'a> {
    bytes: &'a [u8],
}

impl Reader<'_> {
    fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    fn int(&mut self) -> i64 {
        let mut n: u64 = 0;
        let mut shift = 0;
        loop {
            let (&b, rest) = self
                .bytes
                .split_first()
                .expect("a packed history ends on a whole integer");
            self.bytes = rest;
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return i64::try_from(n).expect("packed integers were non-negative i64");
            }
            shift += 7;
            assert!(shift < 64, "varint longer than 64 bits");
        }
    }

    fn len(&mut self) -> usize {
        usize::try_from(self.int()).expect("lengths fit usize")
    }

    fn rev(&mut self) -> Revision {
        let main = self.int();
        Revision::new(main, self.int())
    }
}

/// One key and its whole history in a single heap block (see the module docs). Order
/// and equality are the key's, so the tree can be searched with a plain `&[u8]`.
#[derive(Clone, Debug)]
struct Entry(Box<[u8]>);

impl Entry {
    fn new(key: &[u8], gens: &Generations) -> Self {
        let key_len = i64::try_from(key.len()).expect("key length fits i64");
        let count = |n: usize| i64::try_from(n).expect("count fits i64");
        let gen_size = |g: &Generation| {
            varint_len(g.ver)
                + varint_len(g.created.main)
                + varint_len(g.created.sub)
                + varint_len(count(g.revs.len()))
                + g.revs
                    .iter()
                    .map(|r| varint_len(r.main) + varint_len(r.sub))
                    .sum::<usize>()
        };
        let size =
            varint_len(key_len) + key.len() + gens.generations.iter().map(gen_size).sum::<usize>();
        // Sized exactly, so that turning it into a box does not reallocate.
        let mut out = Vec::with_capacity(size);
        put_varint(&mut out, key_len);
        out.extend_from_slice(key);
        for g in &gens.generations {
            put_varint(&mut out, g.ver);
            put_varint(&mut out, g.created.main);
            put_varint(&mut out, g.created.sub);
            put_varint(&mut out, count(g.revs.len()));
            for r in &g.revs {
                put_varint(&mut out, r.main);
                put_varint(&mut out, r.sub);
            }
        }
        assert_eq!(out.len(), size, "entry size computed exactly");
        Self(out.into_boxed_slice())
    }

    /// Splits the block into the key and a reader positioned on the history.
    fn parts(&self) -> (&[u8], Reader<'_>) {
        let mut r = Reader { bytes: &self.0 };
        let len = r.len();
        let (key, history) = r.bytes.split_at(len);
        (key, Reader { bytes: history })
    }

    fn key(&self) -> &[u8] {
        self.parts().0
    }

    fn unpack(&self) -> Generations {
        let (_, mut r) = self.parts();
        let mut generations = Vec::new();
        while !r.is_empty() {
            let ver = r.int();
            let created = r.rev();
            let n = r.len();
            let revs = (0..n).map(|_| r.rev()).collect();
            generations.push(Generation { ver, created, revs });
        }
        Generations { generations }
    }

    /// The key's state at revision `at`, `None` if it did not exist then. Walks the
    /// generations forward: the answer lies in the last non-empty generation created
    /// at or before `at`, unless a tombstone at or before `at` ended it.
    fn get(&self, at: i64) -> Option<IndexEntry> {
        struct Found {
            ver: i64,
            created: Revision,
            n: usize,
            newest: (usize, Revision),
            end_main: i64,
            is_last: bool,
        }
        let (_, mut r) = self.parts();
        let mut found = None;
        while !r.is_empty() {
            let ver = r.int();
            let created = r.rev();
            let n = r.len();
            let mut first_main = i64::MAX;
            let mut end_main = 0;
            let mut newest = None;
            for i in 0..n {
                let rev = r.rev();
                if i == 0 {
                    first_main = rev.main;
                }
                end_main = rev.main;
                if rev.main <= at {
                    newest = Some((i, rev));
                }
            }
            if first_main <= at {
                found = Some(Found {
                    ver,
                    created,
                    n,
                    newest: newest.expect("the first revision is at or before `at`"),
                    end_main,
                    is_last: r.is_empty(),
                });
            }
        }
        let f = found?;
        if !f.is_last && f.end_main <= at {
            return None;
        }
        let (i, modified) = f.newest;
        let newer = i64::try_from(f.n - i - 1).expect("revision count fits i64");
        Some(IndexEntry {
            modified,
            created: f.created,
            version: f.ver - newer,
        })
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(other.key())
    }
}

impl Borrow<[u8]> for Entry {
    fn borrow(&self) -> &[u8] {
        self.key()
    }
}

/// The ordered set of keys with their histories.
#[derive(Clone, Debug, Default)]
pub struct TreeIndex {
    tree: BTreeSet<Entry>,
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

    /// Changes the history of `key` (an empty one if the key is new) with `f`.
    fn update<T>(&mut self, key: &[u8], f: impl FnOnce(&mut Generations) -> T) -> T {
        let mut gens = match self.tree.take(key) {
            Some(entry) => entry.unpack(),
            None => Generations::new(),
        };
        let out = f(&mut gens);
        if !gens.is_empty() {
            self.tree.insert(Entry::new(key, &gens));
        }
        out
    }

    /// Records a put of `key` at `rev`.
    pub fn put(&mut self, key: &[u8], rev: Revision) {
        if self.tree.contains(key) {
            self.update(key, |g| g.put(rev));
        } else {
            let created = Generations {
                generations: vec![Generation {
                    ver: 1,
                    created: rev,
                    revs: vec![rev],
                }],
            };
            self.tree.insert(Entry::new(key, &created));
        }
    }

    /// Rebuild path: records a put found in the backend.
    pub fn restore_put(&mut self, key: &[u8], created: Revision, rev: Revision, version: i64) {
        self.update(key, |g| {
            if g.is_empty() {
                g.restore(created, rev, version);
            } else {
                g.put(rev);
            }
        });
    }

    /// Rebuild path: records a tombstone found in the backend. A key seen first as a
    /// tombstone (its history compacted away) is restored as deleted.
    pub fn restore_tombstone(&mut self, key: &[u8], rev: Revision) {
        self.update(key, |g| {
            if g.is_empty() {
                g.restore_tombstone(rev);
            } else {
                let ended = g.tombstone(rev);
                assert!(ended, "backend holds two tombstones in a row for a key");
            }
        });
    }

    /// Records the deletion of `key` at `rev`; `false` if the key is not live.
    pub fn tombstone(&mut self, key: &[u8], rev: Revision) -> bool {
        if !self.tree.contains(key) {
            return false;
        }
        self.update(key, |g| g.tombstone(rev))
    }

    /// State of one key at `at`.
    pub fn get(&self, key: &[u8], at: i64) -> Option<IndexEntry> {
        self.tree.get(key)?.get(at)
    }

    /// Keys live at `at` in `[key, end)`, ascending, with their entries. `end` empty
    /// means only `key`; `end == [0]` means every key from `key` on.
    pub fn range(&self, key: &[u8], end: &[u8], at: i64) -> Vec<(&[u8], IndexEntry)> {
        self.range_limited(key, end, at, usize::MAX).0
    }

    /// The first `limit` keys of [`TreeIndex::range`] and how many keys it holds in all,
    /// counted without collecting the rest (a limited range over many keys).
    pub fn range_limited(
        &self,
        key: &[u8],
        end: &[u8],
        at: i64,
        limit: usize,
    ) -> (Vec<(&[u8], IndexEntry)>, usize) {
        let mut out = Vec::new();
        if end.is_empty() {
            if let Some(entry) = self.tree.get(key)
                && let Some(e) = entry.get(at)
            {
                if limit > 0 {
                    out.push((entry.key(), e));
                }
                return (out, 1);
            }
            return (out, 0);
        }
        let upper = if end == [0] {
            Bound::Unbounded
        } else if end <= key {
            return (out, 0);
        } else {
            Bound::Excluded(end)
        };
        let mut count = 0;
        for entry in self.tree.range::<[u8], _>((Bound::Included(key), upper)) {
            if let Some(e) = entry.get(at) {
                if count < limit {
                    out.push((entry.key(), e));
                }
                count += 1;
            }
        }
        (out, count)
    }

    /// Compacts every key at `at`; returns the revisions at or below `at` still needed.
    pub fn compact(&mut self, at: i64) -> HashSet<Revision> {
        let mut available = HashSet::new();
        let mut changed = Vec::new();
        for entry in &self.tree {
            let before = entry.unpack();
            let mut after = before.clone();
            after.compact(at, &mut available);
            if after != before {
                changed.push((entry.key().to_vec(), after));
            }
        }
        for (key, gens) in changed {
            self.tree.remove(key.as_slice());
            if !gens.is_empty() {
                self.tree.insert(Entry::new(&key, &gens));
            }
        }
        available
    }

    /// The revisions at or below `at` a compaction at `at` would keep.
    pub fn keep(&self, at: i64) -> HashSet<Revision> {
        let mut available = HashSet::new();
        for entry in &self.tree {
            entry.unpack().keep(at, &mut available);
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
            let packed = Entry::new(b"k", &ki);
            let got = packed
                .get(*at)
                .map(|e| (e.modified, e.created.main, e.version));
            assert_eq!(got, *want, "packed get at {at}");
        }
    }

    #[test]
    fn packing_round_trips_and_is_small() {
        let ki = history();
        let entry = Entry::new(b"k", &ki);
        assert_eq!(entry.unpack(), ki);
        assert_eq!(entry.key(), b"k");
        let mut once = Generations::new();
        once.put(rev(1_000_000));
        let entry = Entry::new(b"key-00000001", &once);
        assert_eq!(entry.0.len(), 23, "a 12-byte key put once near revision 1M");
        assert_eq!(entry.unpack(), once);
        let mut big = Generations::new();
        big.put(Revision::new(i64::MAX, i64::MAX));
        assert_eq!(Entry::new(&[0xff; 200], &big).unpack(), big);
        assert!(Entry::new(b"k", &Generations::new()).unpack().is_empty());
    }

    #[test]
    fn entries_order_and_compare_by_key_only() {
        let mut one = Generations::new();
        one.put(rev(1));
        let mut two = Generations::new();
        two.put(rev(2));
        assert_eq!(Entry::new(b"a", &one), Entry::new(b"a", &two));
        assert!(Entry::new(b"a", &two) < Entry::new(b"b", &one));
        assert!(Entry::new(b"ab", &one) > Entry::new(b"a", &two));
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
            // Compaction also keeps a tombstone at exactly `at`; keep() leaves it out.
            let tombstones = [rev(6), rev(12), rev(16)];
            let mut expected = kept.clone();
            expected.extend(tombstones.iter().filter(|t| t.main == at));
            assert_eq!(available, expected, "keep and compact agree at {at}");
            let full = history();
            let packed = Entry::new(b"k", &ki);
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
        // A tombstone at the compaction point survives it, for watchers resuming there.
        let available = tree.compact(3);
        assert_eq!(tree.len(), 2);
        assert_eq!(available, HashSet::from([rev(2), rev(3)]));
        assert!(tree.get(b"a", 3).is_none());
        assert_eq!(tree.keep(3), HashSet::from([rev(2)]));
        tree.put(b"b", rev(4));
        let available = tree.compact(4);
        assert_eq!(tree.len(), 1);
        assert_eq!(available, HashSet::from([rev(4)]));
    }

    #[test]
    fn a_limited_range_keeps_the_first_keys_and_counts_them_all() {
        let mut tree = TreeIndex::new();
        for (i, k) in [b"a", b"b", b"c", b"d", b"e"].iter().enumerate() {
            tree.put(*k, rev(i64::try_from(i).expect("small") + 2));
        }
        tree.tombstone(b"c", rev(7));
        let all = tree.range(b"a", &[0], 7);
        assert_eq!(all.len(), 4);
        for limit in [0, 1, 3, 4, 10] {
            let (some, count) = tree.range_limited(b"a", &[0], 7, limit);
            assert_eq!(count, 4, "limit {limit}");
            assert_eq!(some, all[..limit.min(4)], "limit {limit}");
        }
        // At revision 6 the deleted key still counts.
        assert_eq!(tree.range_limited(b"a", b"z", 6, 1).1, 5);
        assert_eq!(tree.range_limited(b"c", b"", 7, 1), (Vec::new(), 0));
        assert_eq!(tree.range_limited(b"b", b"", 7, 0).1, 1);
    }

    #[test]
    fn rebuild_restores_a_lone_tombstone_as_deleted() {
        let mut tree = TreeIndex::new();
        tree.restore_tombstone(b"a", rev(3));
        assert_eq!(tree.len(), 1);
        assert!(tree.get(b"a", 3).is_none());
        assert!(tree.get(b"a", 2).is_none());
        tree.put(b"a", rev(5));
        let e = tree.get(b"a", 5).expect("recreated");
        assert_eq!((e.created, e.version), (rev(5), 1));
        assert!(tree.compact(5).contains(&rev(5)));
        assert_eq!(tree.len(), 1);
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
