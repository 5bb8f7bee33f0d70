//! The numbers a run produces and the two ways they are printed.
//!
//! [`Summary::new`] is a pure function from what the clients measured
//! (latencies of the requests that succeeded, error messages of those that
//! failed, the run's wall-clock time) to the figures etcd's `benchmark` tool
//! prints. [`Summary::to_text`] lays them out as etcd does (four decimals,
//! tab-separated, `secs.` suffixes, a 10-bucket histogram with 40-character
//! bars); [`Summary::to_json`] emits the same figures as one JSON object.
//!
//! A verb prints one [`Report`]: a single summary (`put`, `range`,
//! `txn-put`, `lease-keepalive`) or several named ones (`txn-mixed`'s reads
//! and writes, the watch verbs' creation, puts and events), each under the
//! heading etcd prints; in JSON the sections are the keys of one object.
//!
//! Two definitions, written down because results from different tools are
//! only comparable when they agree on them:
//!
//! - **Percentiles** use the nearest-rank method: the p-th percentile of `n`
//!   sorted latencies is the one at 1-based rank `ceil(p / 100 * n)`. etcd's
//!   tool takes the first sample whose index reaches `p%` of `n` instead, which
//!   differs by at most one rank and leaves percentiles out for tiny samples;
//!   nearest rank is defined for every `n >= 1`.
//! - **Histogram**: eleven marks, `fastest + i * (slowest - fastest) / 10` for
//!   `i` in `0..10` and then `slowest`; a latency is counted at the first mark
//!   that is `>=` it (so the first bucket holds the samples equal to the
//!   fastest). This is etcd's bucketing, so the two tools' histograms line up.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

/// The percentiles printed under `Latency distribution:`, etcd's list.
pub const PERCENTILES: [f64; 8] = [10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.9];

/// Number of equal-width intervals in the response time histogram; the
/// histogram has one more mark than this (the slowest latency).
pub const HISTOGRAM_INTERVALS: usize = 10;

/// Width in characters of the longest histogram bar.
const BAR_WIDTH_CHARS: usize = 40;

/// The character histogram bars are drawn with (etcd's).
const BAR_CHAR: char = '∎';

/// One histogram mark and the number of latencies counted at it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bucket {
    /// Upper bound of the bucket, in seconds.
    pub mark_secs: f64,
    /// Latencies in `(previous mark, mark_secs]` (the first bucket: `<= mark_secs`).
    pub count: u64,
}

/// One line of the latency distribution.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Percentile {
    /// The percentile, one of [`PERCENTILES`].
    pub percentile: f64,
    /// Its latency in seconds (nearest rank).
    pub secs: f64,
}

/// The figures of one benchmark run. All times are in seconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Requests that succeeded; the latency figures are over these only.
    pub requests: u64,
    /// Requests that failed.
    pub errors: u64,
    /// Wall-clock time of the whole run.
    pub total_secs: f64,
    /// Slowest successful request (0 when none succeeded).
    pub slowest_secs: f64,
    /// Fastest successful request (0 when none succeeded).
    pub fastest_secs: f64,
    /// Mean latency of the successful requests.
    pub average_secs: f64,
    /// Population standard deviation of those latencies.
    pub stddev_secs: f64,
    /// Successful requests divided by `total_secs`.
    pub requests_per_sec: f64,
    /// `HISTOGRAM_INTERVALS + 1` buckets, or none when nothing succeeded.
    pub histogram: Vec<Bucket>,
    /// One entry per [`PERCENTILES`], or none when nothing succeeded.
    pub latency_distribution: Vec<Percentile>,
    /// Failed requests by error message.
    pub error_distribution: BTreeMap<String, u64>,
}

impl Summary {
    /// Computes the figures from the latencies (seconds, any order) of the
    /// successful requests, the failed requests' error counts, and the run's
    /// wall-clock time.
    pub fn new(
        mut latencies_secs: Vec<f64>,
        error_distribution: BTreeMap<String, u64>,
        total: Duration,
    ) -> Summary {
        assert!(
            latencies_secs.iter().all(|l| l.is_finite() && *l >= 0.0),
            "latencies are finite and non-negative"
        );
        latencies_secs.sort_by(f64::total_cmp);
        let requests = u64::try_from(latencies_secs.len()).expect("a Vec length fits in u64");
        let errors = error_distribution.values().sum();
        let total_secs = total.as_secs_f64();
        let requests_per_sec = if total_secs > 0.0 {
            requests as f64 / total_secs
        } else {
            0.0
        };
        let (Some(&fastest_secs), Some(&slowest_secs)) =
            (latencies_secs.first(), latencies_secs.last())
        else {
            return Summary {
                requests,
                errors,
                total_secs,
                slowest_secs: 0.0,
                fastest_secs: 0.0,
                average_secs: 0.0,
                stddev_secs: 0.0,
                requests_per_sec,
                histogram: Vec::new(),
                latency_distribution: Vec::new(),
                error_distribution,
            };
        };
        let n = latencies_secs.len() as f64;
        let average_secs = latencies_secs.iter().sum::<f64>() / n;
        let variance = latencies_secs
            .iter()
            .map(|l| (l - average_secs) * (l - average_secs))
            .sum::<f64>()
            / n;
        Summary {
            requests,
            errors,
            total_secs,
            slowest_secs,
            fastest_secs,
            average_secs,
            stddev_secs: variance.sqrt(),
            requests_per_sec,
            histogram: histogram(&latencies_secs),
            latency_distribution: PERCENTILES
                .iter()
                .map(|&p| Percentile {
                    percentile: p,
                    secs: nearest_rank(&latencies_secs, p),
                })
                .collect(),
            error_distribution,
        }
    }

    /// The latency at `percentile` if it is one of [`PERCENTILES`] and any
    /// request succeeded.
    pub fn percentile_secs(&self, percentile: f64) -> Option<f64> {
        self.latency_distribution
            .iter()
            .find(|p| p.percentile == percentile)
            .map(|p| p.secs)
    }

    /// etcd's text layout. The `Summary:`, histogram and latency sections are
    /// present only if some request succeeded; `Error distribution:` only if
    /// some failed.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        if self.requests > 0 {
            // Writing to a String cannot fail; `let _ =` keeps that visible
            // without an unwrap on every line.
            let _ = writeln!(out, "\nSummary:");
            let _ = writeln!(out, "  Total:\t{:.4} secs.", self.total_secs);
            let _ = writeln!(out, "  Slowest:\t{:.4} secs.", self.slowest_secs);
            let _ = writeln!(out, "  Fastest:\t{:.4} secs.", self.fastest_secs);
            let _ = writeln!(out, "  Average:\t{:.4} secs.", self.average_secs);
            let _ = writeln!(out, "  Stddev:\t{:.4} secs.", self.stddev_secs);
            let _ = writeln!(out, "  Requests/sec:\t{:.4}", self.requests_per_sec);
            let _ = writeln!(out, "\nResponse time histogram:");
            let tallest = self.histogram.iter().map(|b| b.count).max().unwrap_or(0);
            for bucket in &self.histogram {
                let bar_chars = (bucket.count * BAR_WIDTH_CHARS as u64)
                    .checked_div(tallest)
                    .unwrap_or(0);
                let bar: String = std::iter::repeat_n(
                    BAR_CHAR,
                    usize::try_from(bar_chars).expect("at most BAR_WIDTH_CHARS"),
                )
                .collect();
                let _ = writeln!(
                    out,
                    "  {:.4} [{}]\t|{}",
                    bucket.mark_secs, bucket.count, bar
                );
            }
            let _ = writeln!(out, "\nLatency distribution:");
            for p in &self.latency_distribution {
                let _ = writeln!(out, "  {}% in {:.4} secs.", p.percentile, p.secs);
            }
        }
        if !self.error_distribution.is_empty() {
            let _ = writeln!(out, "\nError distribution:");
            for (message, count) in &self.error_distribution {
                let _ = writeln!(out, "  [{count}]\t{message}");
            }
        }
        out
    }

    /// The same figures as one JSON object on one line.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a Summary has string keys and finite numbers")
    }
}

/// One named summary of a multi-section report.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    /// The JSON key (`read`, `write`, `creation`, `put`, `events`).
    pub key: &'static str,
    /// The text printed before the summary, etcd's heading for it.
    pub heading: String,
    /// The figures.
    pub summary: Summary,
}

/// What a verb prints.
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    /// One summary, printed as is (JSON: the summary object).
    Single(Summary),
    /// Several summaries after an optional first line (JSON: an object with
    /// one key per section).
    Sections {
        /// Printed first in text mode (etcd's `bench with linearizable
        /// range`), not part of the JSON.
        preamble: Option<String>,
        /// In print order.
        sections: Vec<Section>,
    },
}

impl Report {
    /// The first section (its key and error count) in which every request
    /// failed, if there is one: such a run measured nothing there.
    pub fn failed_section(&self) -> Option<(&'static str, u64)> {
        let failed = |summary: &Summary| summary.requests == 0 && summary.errors > 0;
        match self {
            Report::Single(summary) => failed(summary).then_some(("summary", summary.errors)),
            Report::Sections { sections, .. } => sections
                .iter()
                .find(|section| failed(&section.summary))
                .map(|section| (section.key, section.summary.errors)),
        }
    }

    /// The section with JSON key `key`.
    pub fn section(&self, key: &str) -> Option<&Summary> {
        match self {
            Report::Single(_) => None,
            Report::Sections { sections, .. } => sections
                .iter()
                .find(|section| section.key == key)
                .map(|section| &section.summary),
        }
    }

    /// etcd's text layout: each section's heading, then its summary.
    pub fn to_text(&self) -> String {
        match self {
            Report::Single(summary) => summary.to_text(),
            Report::Sections { preamble, sections } => {
                let mut out = preamble.clone().unwrap_or_default();
                for section in sections {
                    out.push_str(&section.heading);
                    out.push_str(&section.summary.to_text());
                }
                out
            }
        }
    }

    /// One JSON object on one line.
    pub fn to_json(&self) -> String {
        match self {
            Report::Single(summary) => summary.to_json(),
            Report::Sections { sections, .. } => {
                let object: serde_json::Map<String, serde_json::Value> = sections
                    .iter()
                    .map(|section| {
                        let value = serde_json::to_value(&section.summary)
                            .expect("a Summary has string keys and finite numbers");
                        (section.key.to_string(), value)
                    })
                    .collect();
                serde_json::Value::Object(object).to_string()
            }
        }
    }
}

/// The nearest-rank `percentile` of non-empty, ascending `sorted`.
fn nearest_rank(sorted: &[f64], percentile: f64) -> f64 {
    assert!(!sorted.is_empty(), "percentile of an empty sample");
    assert!(
        percentile > 0.0 && percentile <= 100.0,
        "percentile {percentile} out of (0, 100]"
    );
    // In tenths of a percent, the rank is integer arithmetic: `99.9 / 100 *
    // 1000` in floating point is a hair above 999 and would round up to 1000.
    let permille = (percentile * 10.0).round() as usize;
    let n = sorted.len();
    let rank = (permille * n).div_ceil(1000);
    sorted[rank.clamp(1, n) - 1]
}

/// etcd's histogram of non-empty, ascending `sorted` (see the module docs).
fn histogram(sorted: &[f64]) -> Vec<Bucket> {
    let fastest = sorted[0];
    let slowest = sorted[sorted.len() - 1];
    let width = (slowest - fastest) / HISTOGRAM_INTERVALS as f64;
    let mut buckets: Vec<Bucket> = (0..HISTOGRAM_INTERVALS)
        .map(|i| fastest + width * i as f64)
        .chain(std::iter::once(slowest))
        .map(|mark_secs| Bucket {
            mark_secs,
            count: 0,
        })
        .collect();
    let mut at = 0;
    for &latency in sorted {
        while latency > buckets[at].mark_secs {
            at += 1;
            assert!(at < buckets.len(), "the last mark is the slowest latency");
        }
        buckets[at].count += 1;
    }
    buckets
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(values: &[u64]) -> Vec<f64> {
        values.iter().map(|&v| v as f64 / 1000.0).collect()
    }

    #[test]
    fn moments_and_rate() {
        let summary = Summary::new(
            ms(&[4, 1, 3, 2]),
            BTreeMap::new(),
            Duration::from_millis(500),
        );
        assert_eq!(summary.requests, 4);
        assert_eq!(summary.errors, 0);
        assert_eq!(summary.fastest_secs, 0.001);
        assert_eq!(summary.slowest_secs, 0.004);
        assert!((summary.average_secs - 0.0025).abs() < 1e-12);
        // Population stddev of 1,2,3,4 ms: sqrt(1.25) ms.
        assert!((summary.stddev_secs - 1.25f64.sqrt() / 1000.0).abs() < 1e-12);
        assert!((summary.requests_per_sec - 8.0).abs() < 1e-9);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let latencies: Vec<f64> = (1..=1000).map(|v| v as f64).collect();
        let summary = Summary::new(latencies, BTreeMap::new(), Duration::from_secs(1));
        let got: Vec<f64> = summary
            .latency_distribution
            .iter()
            .map(|p| p.secs)
            .collect();
        assert_eq!(
            got,
            vec![100.0, 250.0, 500.0, 750.0, 900.0, 950.0, 990.0, 999.0]
        );
        assert_eq!(summary.percentile_secs(50.0), Some(500.0));
        assert_eq!(summary.percentile_secs(42.0), None);

        // A single sample is every percentile.
        let one = Summary::new(vec![0.25], BTreeMap::new(), Duration::from_secs(1));
        assert!(one.latency_distribution.iter().all(|p| p.secs == 0.25));

        // Rank rounds up: p50 of 1..=5 is the 3rd, p10 the 1st, p99.9 the 5th.
        let five = Summary::new(
            ms(&[1, 2, 3, 4, 5]),
            BTreeMap::new(),
            Duration::from_secs(1),
        );
        assert_eq!(five.percentile_secs(10.0), Some(0.001));
        assert_eq!(five.percentile_secs(50.0), Some(0.003));
        assert_eq!(five.percentile_secs(99.9), Some(0.005));
    }

    #[test]
    fn histogram_counts_every_sample_at_its_first_mark_at_or_above() {
        let latencies: Vec<f64> = (0..=100).map(|v| v as f64).collect();
        let summary = Summary::new(latencies, BTreeMap::new(), Duration::from_secs(1));
        let marks: Vec<f64> = summary.histogram.iter().map(|b| b.mark_secs).collect();
        let counts: Vec<u64> = summary.histogram.iter().map(|b| b.count).collect();
        assert_eq!(
            marks,
            vec![
                0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0
            ]
        );
        assert_eq!(counts, vec![1, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10]);
        assert_eq!(counts.iter().sum::<u64>(), 101);
    }

    #[test]
    fn histogram_of_equal_latencies_puts_all_in_the_first_bucket() {
        let summary = Summary::new(vec![0.5; 7], BTreeMap::new(), Duration::from_secs(1));
        assert_eq!(summary.histogram.len(), HISTOGRAM_INTERVALS + 1);
        assert_eq!(summary.histogram[0].count, 7);
        assert!(summary.histogram[1..].iter().all(|b| b.count == 0));
    }

    #[test]
    fn text_layout_matches_etcds() {
        let mut errors = BTreeMap::new();
        errors.insert("rpc error: code = Unavailable desc = down".to_string(), 2);
        let summary = Summary::new(ms(&[1, 1, 2, 12]), errors, Duration::from_secs(2));
        let expected = "
Summary:
  Total:\t2.0000 secs.
  Slowest:\t0.0120 secs.
  Fastest:\t0.0010 secs.
  Average:\t0.0040 secs.
  Stddev:\t0.0046 secs.
  Requests/sec:\t2.0000

Response time histogram:
  0.0010 [2]\t|∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎
  0.0021 [1]\t|∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎
  0.0032 [0]\t|
  0.0043 [0]\t|
  0.0054 [0]\t|
  0.0065 [0]\t|
  0.0076 [0]\t|
  0.0087 [0]\t|
  0.0098 [0]\t|
  0.0109 [0]\t|
  0.0120 [1]\t|∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎

Latency distribution:
  10% in 0.0010 secs.
  25% in 0.0010 secs.
  50% in 0.0010 secs.
  75% in 0.0020 secs.
  90% in 0.0120 secs.
  95% in 0.0120 secs.
  99% in 0.0120 secs.
  99.9% in 0.0120 secs.

Error distribution:
  [2]\trpc error: code = Unavailable desc = down
";
        assert_eq!(summary.to_text(), expected);
        assert_eq!(summary.errors, 2);
    }

    #[test]
    fn all_failed_prints_only_the_errors() {
        let mut errors = BTreeMap::new();
        errors.insert("boom".to_string(), 3);
        let summary = Summary::new(Vec::new(), errors, Duration::from_secs(1));
        assert_eq!(summary.requests, 0);
        assert!(summary.histogram.is_empty());
        assert_eq!(summary.to_text(), "\nError distribution:\n  [3]\tboom\n");
    }

    #[test]
    fn sections_print_under_their_headings_and_as_json_keys() {
        let read = Summary::new(ms(&[1, 3]), BTreeMap::new(), Duration::from_secs(1));
        let mut errors = BTreeMap::new();
        errors.insert("boom".to_string(), 1);
        let write = Summary::new(ms(&[2]), errors, Duration::from_secs(1));
        let report = Report::Sections {
            preamble: Some("bench with linearizable range\n".to_string()),
            sections: vec![
                Section {
                    key: "read",
                    heading: "Total Read Ops: 2\nDetails:".to_string(),
                    summary: read.clone(),
                },
                Section {
                    key: "write",
                    heading: "Total Write Ops: 2\nDetails:".to_string(),
                    summary: write.clone(),
                },
            ],
        };
        assert_eq!(report.section("write"), Some(&write));
        assert_eq!(report.section("events"), None);
        assert_eq!(report.failed_section(), None);
        let mut all_failed = BTreeMap::new();
        all_failed.insert("down".to_string(), 4);
        let events_lost = Report::Sections {
            preamble: None,
            sections: vec![
                Section {
                    key: "put",
                    heading: String::new(),
                    summary: read.clone(),
                },
                Section {
                    key: "events",
                    heading: String::new(),
                    summary: Summary::new(Vec::new(), all_failed, Duration::from_secs(1)),
                },
            ],
        };
        assert_eq!(events_lost.failed_section(), Some(("events", 4)));
        let text = report.to_text();
        assert!(
            text.starts_with(
                "bench with linearizable range\nTotal Read Ops: 2\nDetails:\nSummary:\n"
            ),
            "{text}"
        );
        let write_at = text
            .find("Total Write Ops: 2\nDetails:\nSummary:")
            .expect("write heading");
        assert!(
            text[write_at..].contains("Error distribution:\n  [1]\tboom"),
            "{text}"
        );
        let json: serde_json::Value =
            serde_json::from_str(&report.to_json()).expect("to_json emits valid JSON");
        assert_eq!(json["read"]["requests"], 2);
        assert_eq!(json["write"]["errors"], 1);
        assert!(!report.to_json().contains('\n'));
        let single = Report::Single(read.clone());
        assert_eq!(single.to_text(), read.to_text());
        assert_eq!(single.to_json(), read.to_json());
        assert_eq!(single.failed_section(), None);
    }

    #[test]
    fn json_carries_the_same_figures() {
        let summary = Summary::new(ms(&[1, 3]), BTreeMap::new(), Duration::from_secs(1));
        let json: serde_json::Value =
            serde_json::from_str(&summary.to_json()).expect("to_json emits valid JSON");
        assert_eq!(json["requests"], 2);
        assert_eq!(json["errors"], 0);
        assert_eq!(json["slowest_secs"], 0.003);
        assert_eq!(json["fastest_secs"], 0.001);
        assert_eq!(json["average_secs"], 0.002);
        assert_eq!(json["requests_per_sec"], 2.0);
        assert_eq!(json["histogram"].as_array().map(Vec::len), Some(11));
        assert_eq!(json["latency_distribution"][2]["percentile"], 50.0);
        assert_eq!(json["latency_distribution"][2]["secs"], 0.001);
        assert!(!summary.to_json().contains('\n'));
    }
}
