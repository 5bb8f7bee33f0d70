//! etcd's v2 statistics: the counters behind `/v2/stats/self` (etcd's `ServerStats`)
//! and `/v2/stats/leader` (etcd's `LeaderStats`), and their JSON as etcd 3.4 prints it.
//!
//! # Where they are counted
//!
//! As etcd 3.4 (`etcdserver/api/v2stats`, `rafthttp/transport.go`, `server.go`):
//! - `sendAppendRequestCnt` and the send rates: every append (`MsgApp`) the node loop
//!   hands to the peer transport for a known peer, sized as its encoded peer message
//!   (`keelpb.Message`; etcd sizes the `raftpb.Message`). Sending an append also makes
//!   the state `StateLeader`.
//! - `recvAppendRequestCnt` and the receive rates: every append the peer transport
//!   receives, before Raft sees it; it makes the state `StateFollower` and its sender the
//!   leader (`leaderInfo.startTime` moves when the leader changes).
//! - Becoming leader (the node loop's leader change to this member) makes the state
//!   `StateLeader` and this member the leader. etcd calls this on every leader change,
//!   so an etcd follower reports `StateLeader` until the next append arrives; Keel only
//!   on its own election.
//!
//! The state is therefore not Raft's live role: as etcd, it is what the last append
//! (sent or received) or election said, and `StateCandidate` is never reported.
//!
//! Rates cover etcd's window: the last [`RATE_WINDOW_REQUESTS`] appends, and none at all
//! once the newest is older than [`RATE_WINDOW`]; packages (or bytes) per second over
//! the span from the oldest to the newest. Zero rates are left out of the JSON, as etcd's
//! `omitempty` does. One deliberate difference: a window whose appends all carry the
//! same instant (a single append) has rate 0 here, where etcd divides by zero and fails
//! to encode the answer (an empty body).
//!
//! # Follower latency: the append round trip
//!
//! etcd 3.4 times how long writing an append to the peer's stream takes (microseconds,
//! nothing of the network), or an HTTP POST's round trip when it falls back to its
//! pipeline. Keel times the append round trip instead, which is what the figure is read
//! for: from the node loop handing an append for a follower to the transport until the
//! follower's answer (`MsgAppResp`, accepting or rejecting) arrives at this member's peer
//! receiver. It includes the follower's WAL fsync, since a follower answers after
//! persisting. A follower answers each append once, in order, on its stream to this
//! member, so answers are matched to the outstanding appends in order: an answer
//! accepting up to index `i` closes the oldest outstanding append ending at `i` (or,
//! when none does, the oldest one if `i` falls inside it: the follower answers an
//! append below its commit index with that index); a rejection naming index `i` closes
//! the oldest append following `i`. Outstanding appends older than the one an answer
//! closes lost their answers and count as failed. Answers matching nothing (a
//! snapshot's, or one for an earlier leadership) change nothing.
//!
//! Each answered append counts one `success` with its latency (etcd's arithmetic:
//! milliseconds as floats, running average and standard deviation, `minimum` starting
//! at 2^63 until the first success). `fail` counts appends that were not delivered: the
//! peer's queue was full or closed when the append was handed over, the stream to the
//! peer broke (or could not connect) with the append unanswered, more than
//! [`MAX_OUTSTANDING_APPENDS`] were unanswered (the oldest is given up), or it was still
//! unanswered when this member was elected again (it belonged to an earlier term), or
//! its answer was lost (a later append was answered first).
//!
//! # Cost on the hot path
//!
//! One std mutex for the server counters and one per follower, each held for a few
//! arithmetic operations and never across an `.await`; the rate windows and the
//! outstanding appends are fixed-size buffers allocated once, so counting an append
//! allocates nothing.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use keel_v2store::time::UnixNanos;

/// Appends a rate covers at most (etcd's `queueCapacity`).
pub(crate) const RATE_WINDOW_REQUESTS: usize = 200;
/// A rate is 0 once the newest append in its window is older than this.
pub(crate) const RATE_WINDOW: Duration = Duration::from_secs(1);
/// Unanswered appends remembered per follower; Raft keeps at most 256 in flight (its
/// `max_inflight_msgs`) plus probes, so only a follower that stopped answering fills it.
pub(crate) const MAX_OUTSTANDING_APPENDS: usize = 512;
/// etcd's initial `minimum` latency: `1 << 63` as a float (Go prints it
/// `9223372036854776000`).
const NO_MINIMUM_MS: f64 = 9_223_372_036_854_775_808.0;

/// etcd's `raft.StateType` names that `ServerStats` can hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Follower,
    Leader,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            State::Follower => "StateFollower",
            State::Leader => "StateLeader",
        }
    }
}

/// The last appends' instants and sizes (etcd's `statsQueue`), in a ring.
struct RateWindow {
    /// (nanoseconds since [`Stats::origin`], bytes).
    items: [(u64, u64); RATE_WINDOW_REQUESTS],
    front: usize,
    len: usize,
    total_bytes: u64,
}

impl RateWindow {
    fn new() -> RateWindow {
        RateWindow {
            items: [(0, 0); RATE_WINDOW_REQUESTS],
            front: 0,
            len: 0,
            total_bytes: 0,
        }
    }

    fn insert(&mut self, at_nanos: u64, bytes: u64) {
        if self.len == RATE_WINDOW_REQUESTS {
            self.total_bytes -= self.items[self.front].1;
            self.front = (self.front + 1) % RATE_WINDOW_REQUESTS;
            self.len -= 1;
        }
        let back = (self.front + self.len) % RATE_WINDOW_REQUESTS;
        self.items[back] = (at_nanos, bytes);
        self.len += 1;
        self.total_bytes += bytes;
    }

    /// (appends per second, bytes per second); an idle window is emptied.
    fn rate(&mut self, now_nanos: u64) -> (f64, f64) {
        if self.len == 0 {
            return (0.0, 0.0);
        }
        let first = self.items[self.front].0;
        let last = self.items[(self.front + self.len - 1) % RATE_WINDOW_REQUESTS].0;
        if now_nanos.saturating_sub(last) > RATE_WINDOW.as_nanos() as u64 {
            *self = RateWindow::new();
            return (0.0, 0.0);
        }
        let span = (last - first) as f64;
        if span == 0.0 {
            return (0.0, 0.0);
        }
        // etcd's order of operations, so the floats come out the same.
        let per_second = 1e9;
        (
            self.len as f64 / span * per_second,
            self.total_bytes as f64 / span * per_second,
        )
    }
}

struct ServerCounters {
    state: State,
    /// 0 until a leader is known.
    leader: u64,
    leader_since: Instant,
    leader_since_wall: UnixNanos,
    recv_append_count: u64,
    send_append_count: u64,
    recv_rate: RateWindow,
    send_rate: RateWindow,
}

impl ServerCounters {
    fn become_leader(&mut self, member_id: u64, now: Instant) {
        if self.state != State::Leader {
            self.state = State::Leader;
            self.leader = member_id;
            self.leader_since = now;
            self.leader_since_wall = wall_clock();
        }
    }
}

/// An append sent to a follower and not answered yet.
struct Outstanding {
    /// The index the append follows (what a rejection names).
    prev_index: u64,
    /// The index of its last entry (`prev_index` for an empty append).
    last_index: u64,
    sent: Instant,
}

/// etcd's `FollowerStats` plus the appends awaiting an answer.
struct FollowerCounters {
    current_ms: f64,
    average_ms: f64,
    average_square_ms: f64,
    standard_deviation_ms: f64,
    minimum_ms: f64,
    maximum_ms: f64,
    success: u64,
    fail: u64,
    outstanding: VecDeque<Outstanding>,
}

impl FollowerCounters {
    fn new() -> FollowerCounters {
        FollowerCounters {
            current_ms: 0.0,
            average_ms: 0.0,
            average_square_ms: 0.0,
            standard_deviation_ms: 0.0,
            minimum_ms: NO_MINIMUM_MS,
            maximum_ms: 0.0,
            success: 0,
            fail: 0,
            outstanding: VecDeque::with_capacity(MAX_OUTSTANDING_APPENDS),
        }
    }

    /// etcd's `FollowerStats.Succ`.
    fn succeed(&mut self, latency: Duration) {
        let total = self.success as f64 * self.average_ms;
        let total_square = self.success as f64 * self.average_square_ms;
        self.success += 1;
        self.current_ms = latency.as_nanos() as f64 / 1_000_000.0;
        if self.current_ms > self.maximum_ms {
            self.maximum_ms = self.current_ms;
        }
        if self.current_ms < self.minimum_ms {
            self.minimum_ms = self.current_ms;
        }
        let n = self.success as f64;
        self.average_ms = (total + self.current_ms) / n;
        self.average_square_ms = (total_square + self.current_ms * self.current_ms) / n;
        // Rounding can take the variance a hair below 0, where etcd's square root gives
        // NaN and its JSON encoding fails.
        self.standard_deviation_ms = (self.average_square_ms - self.average_ms * self.average_ms)
            .max(0.0)
            .sqrt();
    }

    fn fail_outstanding(&mut self) {
        self.fail += self.outstanding.len() as u64;
        self.outstanding.clear();
    }

    /// An answer from the follower: it accepted an append up to `index`, or rejected the
    /// append following `index`.
    fn answered(&mut self, index: u64, reject: bool, now: Instant) {
        let matches = |e: &Outstanding| {
            if reject {
                e.prev_index == index
            } else {
                e.last_index == index
            }
        };
        if let Some(at) = self.outstanding.iter().position(matches) {
            // Answers come back one for one and in order: those skipped were lost.
            self.fail += at as u64;
            self.outstanding.drain(..at);
            let answered = self
                .outstanding
                .pop_front()
                .expect("the matching append is in the queue");
            self.succeed(now.saturating_duration_since(answered.sent));
        } else if !reject
            && self
                .outstanding
                .front()
                .is_some_and(|e| e.prev_index < index && index < e.last_index)
        {
            // An append below the follower's commit index is answered with that index.
            let answered = self
                .outstanding
                .pop_front()
                .expect("the front was just seen");
            self.succeed(now.saturating_duration_since(answered.sent));
        }
    }
}

/// One member's v2 statistics; see the module docs. Shared by the node loop, the peer
/// transport (both directions) and the v2 API.
pub(crate) struct Stats {
    member_id: u64,
    start_wall: UnixNanos,
    /// The zero of the rate windows' instants.
    origin: Instant,
    // Std locks: held for a few arithmetic operations, never across an `.await`, and
    // taken from the node loop's OS thread as well as from tokio tasks.
    server: Mutex<ServerCounters>,
    /// Every other member of the cluster (membership is fixed while Keel cannot change
    /// it), as etcd lists each peer its transport was started with.
    followers: BTreeMap<u64, Mutex<FollowerCounters>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().expect("stats lock poisoned")
}

fn wall_clock() -> UnixNanos {
    crate::v2::now()
}

impl Stats {
    /// Statistics of member `member_id` with peers `peers`, starting now.
    pub(crate) fn new(member_id: u64, peers: impl IntoIterator<Item = u64>) -> Stats {
        let now = Instant::now();
        let start_wall = wall_clock();
        Stats {
            member_id,
            start_wall,
            origin: now,
            server: Mutex::new(ServerCounters {
                state: State::Follower,
                leader: 0,
                leader_since: now,
                leader_since_wall: start_wall,
                recv_append_count: 0,
                send_append_count: 0,
                recv_rate: RateWindow::new(),
                send_rate: RateWindow::new(),
            }),
            followers: peers
                .into_iter()
                .filter(|&id| id != member_id)
                .map(|id| (id, Mutex::new(FollowerCounters::new())))
                .collect(),
        }
    }

    fn since_origin(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.origin).as_nanos()).unwrap_or(u64::MAX)
    }

    /// This member was elected leader: appends still unanswered from an earlier term
    /// failed.
    pub(crate) fn became_leader(&self) {
        lock(&self.server).become_leader(self.member_id, Instant::now());
        for follower in self.followers.values() {
            lock(follower).fail_outstanding();
        }
    }

    /// Counts an append of `size_bytes` to `to` following `prev_index` and ending at
    /// `last_index`, which `enqueue` hands to the peer's queue (true when it took it).
    /// Returns what `enqueue` returned.
    pub(crate) fn send_append(
        &self,
        to: u64,
        prev_index: u64,
        last_index: u64,
        size_bytes: usize,
        enqueue: impl FnOnce() -> bool,
    ) -> bool {
        let now = Instant::now();
        {
            let mut server = lock(&self.server);
            server.become_leader(self.member_id, now);
            server.send_append_count += 1;
            let at = self.since_origin(now);
            server.send_rate.insert(at, size_bytes as u64);
        }
        let Some(follower) = self.followers.get(&to) else {
            return enqueue();
        };
        // Held across the enqueue so the answer, which takes the same lock, cannot be
        // counted before the append is recorded.
        let mut follower = lock(follower);
        let queued = enqueue();
        if !queued {
            follower.fail += 1;
            return false;
        }
        if follower.outstanding.len() == MAX_OUTSTANDING_APPENDS {
            follower.outstanding.pop_front();
            follower.fail += 1;
        }
        follower.outstanding.push_back(Outstanding {
            prev_index,
            last_index,
            sent: now,
        });
        true
    }

    /// Counts an append of `size_bytes` received from `from`.
    pub(crate) fn received_append(&self, from: u64, size_bytes: usize) {
        let now = Instant::now();
        let mut server = lock(&self.server);
        server.state = State::Follower;
        if server.leader != from {
            server.leader = from;
            server.leader_since = now;
            server.leader_since_wall = wall_clock();
        }
        server.recv_append_count += 1;
        let at = self.since_origin(now);
        server.recv_rate.insert(at, size_bytes as u64);
    }

    /// `from` answered appends: accepted up to `index`, or rejected the one following
    /// `index`.
    pub(crate) fn append_answered(&self, from: u64, index: u64, reject: bool) {
        if let Some(follower) = self.followers.get(&from) {
            lock(follower).answered(index, reject, Instant::now());
        }
    }

    /// The stream to `peer` broke or could not be opened: its unanswered appends failed.
    pub(crate) fn peer_unreachable(&self, peer: u64) {
        if let Some(follower) = self.followers.get(&peer) {
            lock(follower).fail_outstanding();
        }
    }

    /// etcd's `ServerStats` JSON for the member named `name`.
    pub(crate) fn self_json(&self, name: &str) -> String {
        let now = Instant::now();
        let at = self.since_origin(now);
        let mut server = lock(&self.server);
        let (send_pkg, send_bw) = server.send_rate.rate(at);
        let (recv_pkg, recv_bw) = server.recv_rate.rate(at);
        let uptime = now.saturating_duration_since(server.leader_since);
        let mut out = String::with_capacity(512);
        out.push_str(&format!(
            "{{\"name\":{},\"id\":\"{:x}\",\"state\":\"{}\",\"startTime\":\"{}\",",
            go_json_string(name),
            self.member_id,
            server.state.name(),
            go_time(self.start_wall)
        ));
        out.push_str(&format!(
            "\"leaderInfo\":{{\"leader\":\"{}\",\"uptime\":\"{}\",\"startTime\":\"{}\"}},",
            if server.leader == 0 {
                String::new()
            } else {
                format!("{:x}", server.leader)
            },
            go_duration(i64::try_from(uptime.as_nanos()).unwrap_or(i64::MAX)),
            go_time(server.leader_since_wall)
        ));
        out.push_str(&format!(
            "\"recvAppendRequestCnt\":{}",
            server.recv_append_count
        ));
        push_omitempty(&mut out, "recvPkgRate", recv_pkg);
        push_omitempty(&mut out, "recvBandwidthRate", recv_bw);
        out.push_str(&format!(
            ",\"sendAppendRequestCnt\":{}",
            server.send_append_count
        ));
        push_omitempty(&mut out, "sendPkgRate", send_pkg);
        push_omitempty(&mut out, "sendBandwidthRate", send_bw);
        out.push('}');
        out
    }

    /// etcd's `LeaderStats` JSON (the caller checks that this member leads).
    pub(crate) fn leader_json(&self) -> String {
        // Go's encoder sorts map keys as strings.
        let mut followers: Vec<(String, &Mutex<FollowerCounters>)> = self
            .followers
            .iter()
            .map(|(id, f)| (format!("{id:x}"), f))
            .collect();
        followers.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out = format!("{{\"leader\":\"{:x}\",\"followers\":{{", self.member_id);
        for (i, (id, f)) in followers.iter().enumerate() {
            let f = lock(f);
            if i > 0 {
                out.push(',');
            }
            out.push_str(&format!(
                "\"{id}\":{{\"latency\":{{\"current\":{},\"average\":{},\"standardDeviation\":{},\"minimum\":{},\"maximum\":{}}},\"counts\":{{\"fail\":{},\"success\":{}}}}}",
                go_float(f.current_ms),
                go_float(f.average_ms),
                go_float(f.standard_deviation_ms),
                go_float(f.minimum_ms),
                go_float(f.maximum_ms),
                f.fail,
                f.success
            ));
        }
        out.push_str("}}");
        out
    }
}

fn push_omitempty(out: &mut String, name: &str, value: f64) {
    if value != 0.0 {
        out.push_str(&format!(",\"{name}\":{}", go_float(value)));
    }
}

/// Go's `encoding/json` form of a finite float64: the shortest digits that read back
/// the same, positional unless the magnitude is below 1e-6 or at least 1e21 (then an
/// exponent with at least one digit, signed when positive).
pub(crate) fn go_float(v: f64) -> String {
    assert!(v.is_finite(), "JSON has no form for {v}");
    let abs = v.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let s = format!("{v:e}");
        return match s.split_once('e') {
            Some((mantissa, exp)) if !exp.starts_with('-') => format!("{mantissa}e+{exp}"),
            _ => s,
        };
    }
    format!("{v}")
}

/// Go's `encoding/json` form of a string: as JSON, plus `<`, `>`, `&` and the two line
/// separators escaped (keel-v2http's [`keel_v2http::reply::go_json`]).
pub(crate) fn go_json_string(s: &str) -> String {
    keel_v2http::reply::go_json(&s)
}

/// Go's `time.Time` JSON form (RFC 3339 with nanoseconds, UTC).
fn go_time(t: UnixNanos) -> String {
    keel_v2store::time::format_rfc3339_nano(t)
}

/// Go's `time.Duration.String()` for a non-negative duration.
pub(crate) fn go_duration(nanos: i64) -> String {
    let nanos = nanos.max(0);
    if nanos == 0 {
        return "0s".to_owned();
    }
    if nanos < 1_000_000_000 {
        return if nanos < 1_000 {
            format!("{nanos}ns")
        } else if nanos < 1_000_000 {
            format!("{}µs", decimal(nanos, 3))
        } else {
            format!("{}ms", decimal(nanos, 6))
        };
    }
    let total_secs = nanos / 1_000_000_000;
    let secs = decimal(nanos % 60_000_000_000, 9);
    let (h, m) = (total_secs / 3600, (total_secs / 60) % 60);
    match (h, m) {
        (0, 0) => format!("{secs}s"),
        (0, m) => format!("{m}m{secs}s"),
        (h, m) => format!("{h}h{m}m{secs}s"),
    }
}

/// `v / 10^digits` in decimal, exactly, without trailing zeros (Go's duration digits).
fn decimal(v: i64, digits: u32) -> String {
    let unit = 10i64.pow(digits);
    let (whole, frac) = (v / unit, v % unit);
    if frac == 0 {
        return whole.to_string();
    }
    let frac = format!("{frac:0width$}", width = digits as usize);
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_go_json() {
        assert_eq!(go_float(0.0), "0");
        assert_eq!(go_float(0.00008), "0.00008");
        assert_eq!(go_float(0.0012728923076923075), "0.0012728923076923075");
        assert_eq!(go_float(177.75674130395072), "177.75674130395072");
        assert_eq!(go_float(NO_MINIMUM_MS), "9223372036854776000");
        assert_eq!(go_float(1e-7), "1e-7");
        assert_eq!(go_float(1.5e21), "1.5e+21");
        assert_eq!(go_float(12.0), "12");
    }

    #[test]
    fn strings_escape_like_go_json() {
        assert_eq!(
            go_json_string("m<1>&\"x\""),
            r#""m\u003c1\u003e\u0026\"x\"""#
        );
    }

    #[test]
    fn durations_print_like_go() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(1_500_000_000), "1.5s");
        assert_eq!(go_duration(1_498_909_966), "1.498909966s");
        assert_eq!(go_duration(61_000_000_000), "1m1s");
        assert_eq!(go_duration(3_600_000_000_000), "1h0m0s");
        assert_eq!(go_duration(3_723_250_000_000), "1h2m3.25s");
        assert_eq!(go_duration(2_000_000), "2ms");
        assert_eq!(go_duration(2_345_678), "2.345678ms");
        assert_eq!(go_duration(1_500), "1.5µs");
        assert_eq!(go_duration(999), "999ns");
    }

    #[test]
    fn rates_cover_the_last_requests_within_a_second() {
        let mut w = RateWindow::new();
        assert_eq!(w.rate(0), (0.0, 0.0));
        w.insert(1_000, 100);
        assert_eq!(w.rate(1_000), (0.0, 0.0), "one append spans no time");
        // 11 appends of 100 bytes over 10 ms.
        for i in 1..=10 {
            w.insert(1_000 + i * 1_000_000, 100);
        }
        let (pkg, bw) = w.rate(20_000_000);
        assert!((pkg - 1_100.0).abs() < 1e-6, "{pkg}");
        assert!((bw - 110_000.0).abs() < 1e-6, "{bw}");
        // Only the last 200 count.
        for i in 0..RATE_WINDOW_REQUESTS as u64 {
            w.insert(2_000_000_000 + i * 1_000_000, 10);
        }
        assert_eq!(w.len, RATE_WINDOW_REQUESTS);
        assert_eq!(w.total_bytes, 10 * RATE_WINDOW_REQUESTS as u64);
        let (pkg, _) = w.rate(2_200_000_000);
        assert!((pkg - 200.0 / 0.199).abs() < 1e-6, "{pkg}");
        // Idle for more than a second: nothing.
        assert_eq!(w.rate(3_300_000_000), (0.0, 0.0));
        assert_eq!(w.len, 0);
    }

    #[test]
    fn latency_follows_etcds_arithmetic() {
        let mut f = FollowerCounters::new();
        for ms in [2, 4, 4, 4, 5, 5, 7, 9] {
            f.succeed(Duration::from_millis(ms));
        }
        assert_eq!(f.success, 8);
        assert_eq!(f.current_ms, 9.0);
        assert_eq!(f.average_ms, 5.0);
        assert!((f.standard_deviation_ms - 2.0).abs() < 1e-9);
        assert_eq!((f.minimum_ms, f.maximum_ms), (2.0, 9.0));
    }

    #[test]
    fn answers_close_outstanding_appends_one_for_one() {
        let stats = Stats::new(1, [1, 2, 3]);
        let sent = |prev, last| assert!(stats.send_append(2, prev, last, 10, || true));
        let counts = || {
            let f = lock(&stats.followers[&2]);
            assert!(f.success == 0 || f.minimum_ms <= f.average_ms);
            assert!(f.average_ms <= f.maximum_ms);
            (f.success, f.fail, f.outstanding.len())
        };
        sent(5, 7);
        sent(7, 9);
        // The commit broadcast: an empty append ending where the last one did.
        sent(9, 9);
        assert!(!stats.send_append(2, 9, 12, 10, || false), "queue full");
        stats.append_answered(2, 7, false);
        assert_eq!(counts(), (1, 1, 2));
        // Two answers at 9 close the two appends ending at 9, one each.
        stats.append_answered(2, 9, false);
        assert_eq!(counts(), (2, 1, 1));
        stats.append_answered(2, 9, false);
        assert_eq!(counts(), (3, 1, 0));
        // Rejections name the index the append followed.
        sent(9, 12);
        sent(12, 14);
        stats.append_answered(2, 9, true);
        stats.append_answered(2, 12, true);
        assert_eq!(counts(), (5, 1, 0));
        // A lost answer: the later append is answered first.
        sent(14, 15);
        sent(15, 16);
        stats.append_answered(2, 16, false);
        assert_eq!(counts(), (6, 2, 0));
        // An append below the follower's commit index, answered with that index.
        sent(3, 8);
        stats.append_answered(2, 5, false);
        assert_eq!(counts(), (7, 2, 0));
        // An answer matching nothing changes nothing.
        stats.append_answered(2, 100, false);
        assert_eq!(counts(), (7, 2, 0));
        sent(16, 17);
        stats.peer_unreachable(2);
        assert_eq!(counts(), (7, 3, 0));
        sent(17, 18);
        stats.became_leader();
        assert_eq!(counts(), (7, 4, 0));
        let self_json: serde_json::Value =
            serde_json::from_str(&stats.self_json("m")).expect("JSON");
        assert_eq!(self_json["sendAppendRequestCnt"], 11);
        assert_eq!(self_json["state"], "StateLeader");
        assert_eq!(self_json["leaderInfo"]["leader"], "1");
    }

    #[test]
    fn outstanding_appends_are_bounded() {
        let stats = Stats::new(1, [2]);
        for i in 0..MAX_OUTSTANDING_APPENDS as u64 + 3 {
            stats.send_append(2, i, i + 1, 1, || true);
        }
        let f = lock(&stats.followers[&2]);
        assert_eq!(f.outstanding.len(), MAX_OUTSTANDING_APPENDS);
        assert_eq!(f.fail, 3);
    }

    #[test]
    fn json_has_etcds_fields_in_etcds_order() {
        let stats = Stats::new(0xa, [0xa, 0x1f, 0x2]);
        let json = stats.self_json("n");
        let v: serde_json::Value = serde_json::from_str(&json).expect("JSON");
        assert_eq!(v["state"], "StateFollower");
        assert_eq!(v["leaderInfo"]["leader"], "");
        assert!(json.ends_with("\"recvAppendRequestCnt\":0,\"sendAppendRequestCnt\":0}"));
        stats.received_append(0x2, 50);
        std::thread::sleep(Duration::from_millis(2));
        stats.received_append(0x2, 50);
        let json = stats.self_json("n");
        let v: serde_json::Value = serde_json::from_str(&json).expect("JSON");
        assert_eq!(v["state"], "StateFollower");
        assert_eq!(v["leaderInfo"]["leader"], "2");
        assert_eq!(v["recvAppendRequestCnt"], 2);
        assert!(v["recvPkgRate"].as_f64().is_some_and(|r| r > 0.0), "{json}");
        assert!(v.get("sendPkgRate").is_none(), "{json}");
        let leader = stats.leader_json();
        assert_eq!(
            leader,
            "{\"leader\":\"a\",\"followers\":{\"1f\":{\"latency\":{\"current\":0,\"average\":0,\"standardDeviation\":0,\"minimum\":9223372036854776000,\"maximum\":0},\"counts\":{\"fail\":0,\"success\":0}},\"2\":{\"latency\":{\"current\":0,\"average\":0,\"standardDeviation\":0,\"minimum\":9223372036854776000,\"maximum\":0},\"counts\":{\"fail\":0,\"success\":0}}}}"
        );
    }
}
