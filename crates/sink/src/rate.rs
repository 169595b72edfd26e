//! Throughput control: a token bucket for operations and bytes per second, and an adaptive
//! limit that halves when the target pushes back (`BUSY`, `OOM`, `LOADING`, latency over a
//! threshold) and grows back by a quarter each quiet second.

use std::time::{Duration, Instant};

/// Limits on what the sink sends (see [`SinkBuilder::rate`](crate::SinkBuilder::rate)).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[non_exhaustive]
pub struct RateLimit {
    /// Commands per second, at most.
    pub ops_per_sec: Option<f64>,
    /// Bytes per second, at most.
    pub bytes_per_sec: Option<f64>,
    /// Back off when the target pushes back; `Some(latency)` also backs off when a reply
    /// takes longer than `latency`.
    pub adaptive: Option<Duration>,
}

impl RateLimit {
    /// No limit.
    pub fn none() -> Self {
        Self::default()
    }

    /// At most `n` commands per second.
    pub fn ops_per_sec(mut self, n: f64) -> Self {
        self.ops_per_sec = Some(n);
        self
    }

    /// At most `n` bytes per second.
    pub fn bytes_per_sec(mut self, n: f64) -> Self {
        self.bytes_per_sec = Some(n);
        self
    }

    /// Back off on `BUSY`/`OOM`/`LOADING` replies and when a reply takes longer than `latency`.
    pub fn adaptive(mut self, latency: Duration) -> Self {
        self.adaptive = Some(latency);
        self
    }
}

#[derive(Debug)]
struct Bucket {
    rate: f64,
    tokens: f64,
}

impl Bucket {
    fn new(rate: f64) -> Self {
        Bucket {
            rate,
            tokens: burst(rate),
        }
    }
    fn refill(&mut self, secs: f64) {
        self.tokens = (self.tokens + self.rate * secs).min(burst(self.rate));
    }
    /// Time to wait before `n` may be taken; takes them when zero. An amount larger than the
    /// burst goes through when the bucket is full (the balance goes negative).
    fn take(&mut self, n: f64) -> Duration {
        if self.tokens >= n.min(burst(self.rate)) {
            self.tokens -= n;
            Duration::ZERO
        } else {
            let missing = n.min(burst(self.rate)) - self.tokens;
            Duration::from_secs_f64((missing / self.rate).max(0.000_05))
        }
    }
}

fn burst(rate: f64) -> f64 {
    (rate / 20.0).max(1.0)
}

/// The limiter the engine task consults before sending each command.
#[derive(Debug)]
pub(crate) struct Limiter {
    ops: Option<Bucket>,
    bytes: Option<Bucket>,
    ceiling: Option<f64>,
    adaptive: Option<Duration>,
    adaptive_limit: Option<f64>,
    last: Instant,
    period_start: Instant,
    period_acked: u64,
    period_trouble: bool,
    last_cut: Option<Instant>,
}

impl Limiter {
    pub(crate) fn new(limit: RateLimit, now: Instant) -> Self {
        Limiter {
            ops: limit.ops_per_sec.map(Bucket::new),
            bytes: limit.bytes_per_sec.map(Bucket::new),
            ceiling: limit.ops_per_sec,
            adaptive: limit.adaptive,
            adaptive_limit: None,
            last: now,
            period_start: now,
            period_acked: 0,
            period_trouble: false,
            last_cut: None,
        }
    }

    pub(crate) fn is_active(&self) -> bool {
        self.ops.is_some() || self.bytes.is_some() || self.adaptive.is_some()
    }

    /// `None` when a command of `bytes` may go now (and takes its tokens), else when to try again.
    #[cfg(test)]
    pub(crate) fn admit(&mut self, now: Instant, bytes: usize) -> Option<Instant> {
        self.admit_many(now, 1, bytes)
    }

    /// `None` when `ops` commands sent together (a transaction: they count as `ops`
    /// operations) of `bytes` bytes in all may go now, and takes their tokens; else when to
    /// try again.
    pub(crate) fn admit_many(&mut self, now: Instant, ops: usize, bytes: usize) -> Option<Instant> {
        let ops = ops.max(1) as f64;
        let secs = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        let mut wait = Duration::ZERO;
        if let Some(b) = &mut self.ops {
            b.refill(secs);
        }
        if let Some(b) = &mut self.bytes {
            b.refill(secs);
        }
        if let Some(b) = &self.ops
            && b.tokens < ops.min(burst(b.rate))
        {
            wait = wait.max(Duration::from_secs_f64(
                ((ops.min(burst(b.rate)) - b.tokens) / b.rate).max(0.000_05),
            ));
        }
        if let Some(b) = &self.bytes
            && b.tokens < (bytes as f64).min(burst(b.rate))
        {
            wait = wait.max(Duration::from_secs_f64(
                (((bytes as f64).min(burst(b.rate)) - b.tokens) / b.rate).max(0.000_05),
            ));
        }
        if wait > Duration::ZERO {
            return Some(now + wait);
        }
        if let Some(b) = &mut self.ops {
            let _ = b.take(ops);
        }
        if let Some(b) = &mut self.bytes {
            let _ = b.take(bytes as f64);
        }
        None
    }

    /// Replies arrived: `acked` of them, the oldest sent at `sent_at`.
    pub(crate) fn on_replies(&mut self, now: Instant, acked: u64, sent_at: Option<Instant>) {
        self.period_acked += acked;
        if let (Some(threshold), Some(sent)) = (self.adaptive, sent_at)
            && now.saturating_duration_since(sent) > threshold
        {
            self.on_pushback(now);
        }
        self.tick(now);
    }

    /// The target pushed back (BUSY, OOM, LOADING, slow replies): halve the adaptive limit,
    /// at most once per 100 ms.
    pub(crate) fn on_pushback(&mut self, now: Instant) {
        if self.adaptive.is_none() {
            return;
        }
        self.period_trouble = true;
        if self
            .last_cut
            .is_some_and(|t| now.saturating_duration_since(t) < Duration::from_millis(100))
        {
            return;
        }
        self.last_cut = Some(now);
        let elapsed = now
            .saturating_duration_since(self.period_start)
            .as_secs_f64()
            .max(0.01);
        let observed = self.period_acked as f64 / elapsed;
        let current = self.adaptive_limit.unwrap_or(observed.max(100.0));
        self.set_adaptive(Some((current * 0.5).max(50.0)));
    }

    fn tick(&mut self, now: Instant) {
        if now.saturating_duration_since(self.period_start) < Duration::from_secs(1) {
            return;
        }
        if !self.period_trouble
            && let Some(limit) = self.adaptive_limit
        {
            let grown = limit * 1.25;
            let unlimited = self.ceiling.is_none_or(|c| grown >= c) && grown > 1e7;
            self.set_adaptive(if unlimited { None } else { Some(grown) });
        }
        self.period_start = now;
        self.period_acked = 0;
        self.period_trouble = false;
    }

    fn set_adaptive(&mut self, limit: Option<f64>) {
        self.adaptive_limit = limit;
        let rate = match (limit, self.ceiling) {
            (Some(a), Some(c)) => Some(a.min(c)),
            (a, c) => a.or(c),
        };
        self.ops = rate.map(|r| {
            let mut b = Bucket::new(r);
            b.tokens = b.tokens.min(1.0);
            b
        });
    }

    /// The adaptive limit now in force, commands per second (`None`: unlimited).
    #[cfg(test)]
    pub(crate) fn current_limit(&self) -> Option<f64> {
        self.ops.as_ref().map(|b| b.rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_limit_spaces_commands() {
        let t0 = Instant::now();
        let mut l = Limiter::new(
            RateLimit {
                ops_per_sec: Some(1000.0),
                ..RateLimit::none()
            },
            t0,
        );
        let mut sent = 0;
        let mut now = t0;
        // Simulated second: every command that is refused waits until the limiter says.
        for _ in 0..100_000 {
            match l.admit(now, 10) {
                None => sent += 1,
                Some(at) => now = at,
            }
            if now >= t0 + Duration::from_secs(1) {
                break;
            }
        }
        assert!((1000..=1060).contains(&sent), "sent {sent}");
    }

    #[test]
    fn adaptive_halves_then_recovers() {
        let t0 = Instant::now();
        let mut l = Limiter::new(
            RateLimit {
                adaptive: Some(Duration::from_millis(50)),
                ..RateLimit::none()
            },
            t0,
        );
        assert_eq!(l.current_limit(), None);
        l.on_replies(t0 + Duration::from_millis(500), 5000, None);
        l.on_pushback(t0 + Duration::from_millis(500));
        let cut = l.current_limit().expect("a limit after pushback");
        assert!((4000.0..=6000.0).contains(&cut), "{cut}");
        l.on_replies(t0 + Duration::from_millis(1600), 10, None);
        l.on_replies(t0 + Duration::from_millis(2700), 10, None);
        let grown = l.current_limit().expect("still limited");
        assert!(grown > cut, "{grown} > {cut}");
    }
}
