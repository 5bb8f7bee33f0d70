//! `--rate`: a token bucket shared by all clients.
//!
//! The bucket holds at most one token (a burst of 1, as etcd's tool configures
//! `golang.org/x/time/rate`), refilled at `rate` tokens per second. In that
//! case the bucket reduces to one number, the instant the next token becomes
//! free: each request reserves the later of "now" and that instant and moves
//! it on by `1 / rate`. An idle period therefore never builds up a burst.
//! [`TokenBucket`] is that arithmetic with the clock passed in, so it is tested
//! without sleeping; [`Limiter`] puts it behind a lock and sleeps.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The arithmetic of a burst-1 token bucket (see the module docs).
#[derive(Debug)]
pub struct TokenBucket {
    interval: Duration,
    next_free: Option<Instant>,
}

impl TokenBucket {
    /// A bucket refilled at `rate_per_sec` tokens per second (at least 1).
    pub fn new(rate_per_sec: u32) -> TokenBucket {
        assert!(rate_per_sec > 0, "a token bucket needs a positive rate");
        TokenBucket {
            interval: Duration::from_secs(1) / rate_per_sec,
            next_free: None,
        }
    }

    /// Takes the next token and returns when it may be used: `now` if one is
    /// free, otherwise the instant it will be.
    pub fn reserve(&mut self, now: Instant) -> Instant {
        let at = match self.next_free {
            Some(free) if free > now => free,
            _ => now,
        };
        self.next_free = Some(at + self.interval);
        at
    }
}

/// An optional shared rate limit: `None` inside means unlimited (`--rate 0`).
#[derive(Debug)]
pub struct Limiter {
    // A std mutex: it guards two words of arithmetic and is never held across
    // an `.await` (the sleep happens after it is released).
    bucket: Option<Mutex<TokenBucket>>,
}

impl Limiter {
    /// `rate_per_sec == 0` means no limit, as in etcd's tool.
    pub fn new(rate_per_sec: u32) -> Limiter {
        Limiter {
            bucket: (rate_per_sec > 0).then(|| Mutex::new(TokenBucket::new(rate_per_sec))),
        }
    }

    /// Waits until this caller may send one request.
    pub async fn wait(&self) {
        let Some(bucket) = &self.bucket else {
            return;
        };
        let at = bucket
            .lock()
            .expect("no code panics while holding the limiter lock")
            .reserve(Instant::now());
        tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_to_back_reservations_are_one_interval_apart() {
        let mut bucket = TokenBucket::new(1000);
        let t0 = Instant::now();
        let times: Vec<Duration> = (0..5).map(|_| bucket.reserve(t0) - t0).collect();
        assert_eq!(times, (0..5).map(Duration::from_millis).collect::<Vec<_>>());
    }

    #[test]
    fn idle_time_does_not_build_a_burst() {
        let mut bucket = TokenBucket::new(10);
        let t0 = Instant::now();
        assert_eq!(bucket.reserve(t0), t0);
        let later = t0 + Duration::from_secs(5);
        assert_eq!(bucket.reserve(later), later);
        assert_eq!(
            bucket.reserve(later),
            later + Duration::from_millis(100),
            "after an idle period only one token is free"
        );
    }

    #[test]
    fn rate_over_a_second_is_the_configured_rate() {
        let mut bucket = TokenBucket::new(250);
        let t0 = Instant::now();
        let within_one_sec = (0..1000)
            .map(|_| bucket.reserve(t0))
            .filter(|at| *at < t0 + Duration::from_secs(1))
            .count();
        assert_eq!(within_one_sec, 250);
    }

    #[tokio::test]
    async fn unlimited_never_waits() {
        let limiter = Limiter::new(0);
        assert!(limiter.bucket.is_none());
        for _ in 0..1000 {
            limiter.wait().await;
        }
    }
}
