//! A token bucket pacing compaction writes (`Options::compaction_rate_limit`).
//!
//! Tokens are bytes. They refill at `rate` per second up to one second's worth (the burst),
//! so a compaction that paused does not then write unpaced. A request takes its tokens at
//! once, going into debt if there are too few, and sleeps until the debt would be repaid:
//! writers sharing one limiter queue behind each other's debt, so together they stay under
//! the rate.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A shared limit on bytes per second.
#[derive(Debug)]
pub struct RateLimiter {
    rate: u64,
    bucket: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    /// Bytes that may be written now; negative when writers are in debt.
    tokens: f64,
    refilled_at: Instant,
}

impl Bucket {
    /// Takes `bytes` at `now` and returns how long the taker must wait.
    fn take(&mut self, now: Instant, bytes: u64, rate: u64) -> Duration {
        let rate = rate as f64;
        let elapsed = now
            .saturating_duration_since(self.refilled_at)
            .as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(rate);
        self.refilled_at = now.max(self.refilled_at);
        self.tokens -= bytes as f64;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / rate)
        }
    }
}

impl RateLimiter {
    /// A limiter allowing `bytes_per_second` (at least 1), starting with a full bucket.
    pub fn new(bytes_per_second: u64) -> Self {
        let rate = bytes_per_second.max(1);
        RateLimiter {
            rate,
            bucket: Mutex::new(Bucket {
                tokens: rate as f64,
                refilled_at: Instant::now(),
            }),
        }
    }

    /// Accounts for `bytes` written and sleeps as long as the rate requires, or until
    /// `cancel` is set; returns the time slept.
    pub fn request(&self, bytes: u64, cancel: &AtomicBool) -> Duration {
        /// Sleeps are cut into slices this long, to notice `cancel` soon.
        const SLICE: Duration = Duration::from_millis(50);
        let wait = self
            .bucket
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take(Instant::now(), bytes, self.rate);
        let started = Instant::now();
        while let Some(left) = wait.checked_sub(started.elapsed()).filter(|l| !l.is_zero()) {
            if cancel.load(Ordering::Relaxed) {
                break;
            }
            std::thread::sleep(left.min(SLICE));
        }
        started.elapsed().min(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(tokens: f64, at: Instant) -> Bucket {
        Bucket {
            tokens,
            refilled_at: at,
        }
    }

    #[test]
    fn a_full_bucket_lets_one_second_of_bytes_through_then_charges_time() {
        let t0 = Instant::now();
        let mut b = bucket(1000.0, t0);
        assert_eq!(b.take(t0, 600, 1000), Duration::ZERO);
        assert_eq!(b.take(t0, 400, 1000), Duration::ZERO);
        // Empty: 500 more bytes at 1000 B/s cost half a second.
        assert_eq!(b.take(t0, 500, 1000), Duration::from_millis(500));
        // A second writer queues behind the first one's debt.
        assert_eq!(b.take(t0, 500, 1000), Duration::from_secs(1));
    }

    #[test]
    fn tokens_refill_with_time_but_never_past_one_second_of_burst() {
        let t0 = Instant::now();
        let mut b = bucket(0.0, t0);
        let later = t0 + Duration::from_millis(250);
        assert_eq!(b.take(later, 250, 1000), Duration::ZERO);
        let much_later = later + Duration::from_mins(1);
        assert_eq!(b.take(much_later, 1000, 1000), Duration::ZERO);
        assert_eq!(b.take(much_later, 100, 1000), Duration::from_millis(100));
    }

    #[test]
    fn a_clock_that_seems_to_go_back_adds_no_tokens() {
        let t0 = Instant::now() + Duration::from_secs(1);
        let mut b = bucket(0.0, t0);
        let earlier = t0.checked_sub(Duration::from_millis(500)).unwrap_or(t0);
        assert_eq!(b.take(earlier, 100, 1000), Duration::from_millis(100));
    }

    #[test]
    fn request_sleeps_for_the_debt() {
        let limiter = RateLimiter::new(1000);
        let go_on = AtomicBool::new(false);
        assert_eq!(limiter.request(1000, &go_on), Duration::ZERO);
        // Only a pause of 100 ms between the two calls could repay the debt in advance.
        let slept = limiter.request(100, &go_on);
        assert!(slept > Duration::ZERO && slept <= Duration::from_millis(100));
    }

    #[test]
    fn a_cancelled_request_returns_without_sleeping_out_its_debt() {
        let limiter = RateLimiter::new(4096);
        let cancelled = AtomicBool::new(true);
        // An hour of debt.
        let slept = limiter.request(4096 * 3600, &cancelled);
        assert!(slept < Duration::from_secs(1), "{slept:?}");
    }
}
