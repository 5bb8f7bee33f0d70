//! Watchers and the event history, following etcd's watcher_hub / event_history semantics.

use std::sync::Arc;

use keel_v2store::{
    Action, ErrorCode, Event, Store, TtlOptions, WATCHER_CHANNEL_CAPACITY, Watcher,
};

const NOW: i64 = 1_795_305_600_000_000_000;
const P: TtlOptions = TtlOptions::PERMANENT;

fn store() -> Store {
    Store::new(&["/0", "/1"])
}

fn drain(w: &mut Watcher) -> (Vec<Arc<Event>>, bool) {
    let mut out = Vec::new();
    loop {
        match w.events.try_recv() {
            Ok(e) => out.push(e),
            Err(tokio::sync::mpsc::error::TryRecvError::Empty) => return (out, false),
            Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => return (out, true),
        }
    }
}

#[test]
fn one_shot_watcher_gets_the_next_event_then_ends() {
    let mut s = store();
    let mut w = s.watch("/1/foo", false, false, 0).expect("watch");
    assert_eq!(w.start_index, 0);
    assert_eq!(s.watcher_count(), 1);
    s.set("/1/other", false, "x", P, NOW).expect("set");
    assert_eq!(drain(&mut w), (vec![], false), "other keys do not wake it");
    s.set("/1/foo", false, "bar", P, NOW).expect("set");
    s.set("/1/foo", false, "baz", P, NOW).expect("set");
    let (events, closed) = drain(&mut w);
    assert!(closed, "a one-shot watcher is dropped after its event");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].node.value.as_deref(), Some("bar"));
    assert_eq!(events[0].index(), 2);
    assert_eq!(s.watcher_count(), 0);
}

#[test]
fn recursive_watchers_see_children_but_not_hidden_ones() {
    let mut s = store();
    let mut rec = s.watch("/1/dir", true, true, 0).expect("watch");
    let mut flat = s.watch("/1/dir", false, true, 0).expect("watch");
    let mut hidden = s.watch("/1/dir/_h", false, true, 0).expect("watch");
    s.set("/1/dir/a", false, "1", P, NOW).expect("set");
    s.set("/1/dir/_h", false, "2", P, NOW).expect("set");
    s.set("/1/dir/_hd/x", false, "3", P, NOW).expect("set");
    s.set("/1/dir", false, "4", P, NOW).expect_err("dir exists");
    let keys = |w: &mut Watcher| {
        drain(w)
            .0
            .iter()
            .map(|e| e.node.key.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(keys(&mut rec), vec!["/1/dir/a"]);
    assert!(keys(&mut flat).is_empty());
    assert_eq!(
        keys(&mut hidden),
        vec!["/1/dir/_h"],
        "a hidden key's own watcher sees it"
    );
    assert_eq!(s.watcher_count(), 3, "stream watchers stay");
}

#[test]
fn deleting_a_directory_wakes_watchers_of_its_children_once() {
    let mut s = store();
    s.set("/1/d/e/k", false, "v", P, NOW).expect("set");
    let mut child = s.watch("/1/d/e/k", false, true, 0).expect("watch");
    let mut root_rec = s.watch("/1", true, true, 0).expect("watch");
    let del = s.delete("/1/d", true, true, NOW).expect("delete");
    let (got, closed) = drain(&mut child);
    assert!(!closed);
    assert_eq!(got.len(), 1, "exactly one event per watcher");
    assert_eq!(got[0].action, Action::Delete);
    assert_eq!(got[0].node.key, "/1/d");
    assert_eq!(got[0].index(), del.index());
    assert_eq!(drain(&mut root_rec).0.len(), 1);
    // A later watch from the history also maps the child to its parent's delete.
    let mut w = s.watch("/1/d/e/k", false, false, 2).expect("watch");
    let (got, _) = drain(&mut w);
    assert_eq!(got[0].action, Action::Delete);
    assert_eq!(got[0].etcd_index, s.index());
}

#[test]
fn stream_watcher_on_deleted_key_gets_the_delete_once() {
    let mut s = store();
    s.set("/1/k", false, "v", P, NOW).expect("set");
    let mut w = s.watch("/1/k", false, true, 0).expect("watch");
    s.delete("/1/k", false, false, NOW).expect("delete");
    let (got, closed) = drain(&mut w);
    assert_eq!((got.len(), closed), (1, false));
}

#[test]
fn slow_stream_watcher_is_dropped_when_its_channel_is_full() {
    let mut s = store();
    let mut w = s.watch("/1/k", false, true, 0).expect("watch");
    for i in 0..WATCHER_CHANNEL_CAPACITY + 5 {
        s.set("/1/k", false, &i.to_string(), P, NOW).expect("set");
    }
    assert_eq!(s.watcher_count(), 0, "the slow watcher was removed");
    let (got, closed) = drain(&mut w);
    assert!(closed, "its stream ends after the buffered events");
    assert_eq!(got.len(), WATCHER_CHANNEL_CAPACITY);
    assert!(
        got.windows(2).all(|p| p[0].index() + 1 == p[1].index()),
        "in order, no gaps"
    );
}

#[test]
fn dropped_receivers_and_removed_watchers_are_unregistered() {
    let mut s = store();
    let w = s.watch("/1/k", false, true, 0).expect("watch");
    drop(w);
    let w2 = s.watch("/1/k", false, true, 0).expect("watch");
    assert_eq!(s.watcher_count(), 2);
    s.set("/1/k", false, "v", P, NOW).expect("set");
    assert_eq!(
        s.watcher_count(),
        1,
        "closed receiver removed on the next event"
    );
    assert!(s.remove_watcher(w2.id));
    assert!(!s.remove_watcher(w2.id));
    assert_eq!(s.watcher_count(), 0);
    assert_eq!(s.stats().watchers, 0);
}

#[test]
fn refresh_is_recorded_but_never_delivered() {
    let mut s = store();
    s.set(
        "/1/k",
        false,
        "v",
        TtlOptions::expire_at(NOW + 10_000_000_000),
        NOW,
    )
    .expect("set");
    let mut w = s.watch("/1/k", false, true, 0).expect("watch");
    let refresh = TtlOptions {
        expire_time: Some(NOW + 20_000_000_000),
        refresh: true,
    };
    let e = s.set("/1/k", false, "", refresh, NOW).expect("refresh");
    assert!(e.refresh);
    assert_eq!(
        e.node.value.as_deref(),
        Some("v"),
        "refresh keeps the value"
    );
    s.update("/1/k", "", refresh, NOW)
        .expect("refresh via update");
    s.compare_and_swap("/1/k", "v", 0, "", refresh, NOW)
        .expect("refresh via cas");
    assert_eq!(s.index(), 4);
    assert_eq!(drain(&mut w), (vec![], false));
    // A watch from the history skips refreshes too.
    let mut h = s.watch("/1/k", false, false, 2).expect("watch");
    assert_eq!(drain(&mut h), (vec![], false));
    s.set("/1/k", false, "new", P, NOW).expect("set");
    assert_eq!(drain(&mut h).0[0].index(), 5);
}

#[test]
fn watch_from_the_past_is_answered_from_history_until_it_is_cleared() {
    let mut s = store();
    for i in 0..1005u64 {
        s.set("/1/loop", false, &i.to_string(), P, NOW)
            .expect("set");
    }
    let err = s.watch("/1/loop", false, false, 5).expect_err("cleared");
    assert_eq!(err.code, ErrorCode::EventIndexCleared);
    assert_eq!(err.cause, "the requested history has been cleared [6/5]");
    assert_eq!(err.index, 1005);
    assert_eq!(
        err.to_json(),
        r#"{"errorCode":401,"message":"The event in requested index is outdated and cleared","cause":"the requested history has been cleared [6/5]","index":1005}"#
    );
    let mut w = s.watch("/1/loop", false, false, 6).expect("oldest kept");
    let (got, closed) = drain(&mut w);
    assert!(closed);
    assert_eq!(got[0].index(), 6);
    assert_eq!(
        got[0].etcd_index, 1005,
        "history answers carry the current index"
    );
    assert_eq!(s.watcher_count(), 0, "history answers are not registered");
}

#[test]
fn watch_with_future_index_waits_for_that_index() {
    let mut s = store();
    let mut w = s.watch("/1/k", false, false, 3).expect("watch");
    s.set("/1/k", false, "1", P, NOW).expect("set");
    s.set("/1/k", false, "2", P, NOW).expect("set");
    assert_eq!(
        drain(&mut w),
        (vec![], false),
        "events before waitIndex are skipped"
    );
    s.set("/1/k", false, "3", P, NOW).expect("set");
    let (got, closed) = drain(&mut w);
    assert_eq!((got[0].index(), closed), (3, true));
}

#[test]
fn expiry_wakes_watchers_of_the_key_and_its_children() {
    let mut s = store();
    s.set("/1/d/k", false, "v", P, NOW).expect("set");
    s.update("/1/d", "", TtlOptions::expire_at(NOW + 1_000_000_000), NOW)
        .expect("ttl on dir");
    let mut child = s.watch("/1/d/k", false, false, 0).expect("watch");
    assert!(s.delete_expired_keys(NOW + 999_999_999).is_empty());
    let expired = s.delete_expired_keys(NOW + 1_000_000_000);
    assert_eq!(expired.len(), 1);
    let (got, closed) = drain(&mut child);
    assert!(closed);
    assert_eq!(got[0].action, Action::Expire);
    assert_eq!(got[0].node.key, "/1/d");
    assert!(got[0].node.dir);
}

#[test]
fn recover_ends_every_open_watch() {
    let mut s = store();
    s.set("/1/k", false, "v", P, NOW).expect("set");
    let snap = s.save();
    let mut w = s.watch("/1/k", false, true, 0).expect("watch");
    s.recover(&snap).expect("recover");
    assert_eq!(s.watcher_count(), 0);
    assert_eq!(drain(&mut w), (vec![], true));
}
