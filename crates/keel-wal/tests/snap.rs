//! Snapshot files: newest valid one wins, broken ones are set aside as `.broken`.

use std::path::Path;

use keel_wal::{Disk, SimDisk, SnapshotMarker, Snapshotter, StdDisk};

fn snap_dir() -> &'static Path {
    Path::new("/data/member/snap")
}

fn marker(term: u64, index: u64) -> SnapshotMarker {
    SnapshotMarker { index, term }
}

fn names(disk: &SimDisk) -> Vec<String> {
    let mut n = disk.list(snap_dir()).expect("list");
    n.sort();
    n
}

#[test]
fn the_newest_snapshot_is_loaded() {
    let disk = SimDisk::new();
    let s = Snapshotter::new(disk.clone(), snap_dir()).expect("new");
    assert_eq!(s.load().expect("load"), None);
    s.save(marker(1, 10), b"ten").expect("save");
    s.save(marker(2, 20), b"twenty").expect("save");
    s.save(marker(1, 15), b"fifteen").expect("save");
    let got = s.load().expect("load").expect("some");
    assert_eq!(
        (got.marker, got.data.as_slice()),
        (marker(2, 20), &b"twenty"[..])
    );
    let filtered = s
        .load_matching(|m| m.index < 20)
        .expect("load")
        .expect("some");
    assert_eq!(filtered.marker, marker(1, 15));
}

#[test]
fn a_broken_snapshot_is_renamed_and_the_previous_one_used() {
    let disk = SimDisk::new();
    let s = Snapshotter::new(disk.clone(), snap_dir()).expect("new");
    s.save(marker(1, 10), b"ten").expect("save");
    let newest = s.save(marker(1, 20), b"twenty").expect("save");
    disk.corrupt(&newest, 45, 0x04).expect("corrupt");
    let got = s.load().expect("load").expect("older one");
    assert_eq!(got.marker, marker(1, 10));
    assert_eq!(
        names(&disk),
        vec![
            "0000000000000001-000000000000000a.snap".to_owned(),
            "0000000000000001-0000000000000014.snap.broken".to_owned(),
        ]
    );
    // The rename is durable: it survives a crash.
    disk.crash(3);
    assert_eq!(names(&disk).len(), 2);
    assert!(names(&disk)[1].ends_with(".broken"));
}

#[test]
fn a_snapshot_whose_contents_disagree_with_its_name_is_broken() {
    let disk = SimDisk::new();
    let s = Snapshotter::new(disk.clone(), snap_dir()).expect("new");
    let path = s.save(marker(1, 10), b"ten").expect("save");
    let renamed = snap_dir().join("0000000000000001-000000000000000b.snap");
    disk.rename(&path, &renamed).expect("rename");
    assert_eq!(s.load().expect("load"), None);
    assert_eq!(
        names(&disk),
        vec!["0000000000000001-000000000000000b.snap.broken".to_owned()]
    );
}

#[test]
fn an_unsynced_snapshot_is_gone_or_whole_after_a_crash() {
    for seed in 0..50 {
        let disk = SimDisk::new();
        let s = Snapshotter::new(disk.clone(), snap_dir()).expect("new");
        s.save(marker(1, 10), b"ten").expect("save");
        disk.fail_syncs_after(seed % 3);
        let second = s.save(marker(1, 20), &[7; 100]);
        disk.crash(seed);
        let s = Snapshotter::new(disk.clone(), snap_dir()).expect("reopen");
        let got = s.load().expect("load").expect("at least the first");
        if second.is_ok() {
            assert_eq!(
                got.marker,
                marker(1, 20),
                "seed {seed}: a saved snapshot was lost"
            );
        }
        assert!(
            names(&disk)
                .iter()
                .all(|n| !n.ends_with(".tmp") && !n.ends_with(".broken")),
            "seed {seed}: {:?}",
            names(&disk)
        );
    }
}

#[test]
fn snapshots_on_the_real_disk() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let s = Snapshotter::new(StdDisk, tmp.path()).expect("new");
    s.save(marker(4, 99), &[1, 2, 3]).expect("save");
    let got = s.load().expect("load").expect("some");
    assert_eq!((got.marker, got.data), (marker(4, 99), vec![1, 2, 3]));
}
