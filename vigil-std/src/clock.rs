//! The span clock: wall-clock timestamps read from a monotonic source.
//!
//! Timestamps are the wall time at first use plus monotonic time since, so
//! durations are exact even if the system clock is adjusted meanwhile. On
//! x86-64 with an invariant TSC the monotonic source is the time-stamp
//! counter (about 9 ns a read here, against 22 ns for `Instant::now`), scaled
//! by a ratio that the exporter thread measures against `Instant` and refines
//! as the baseline grows; until the first measurement, and everywhere else,
//! it is `Instant`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use vigil_core::Timestamp;

struct Origin {
    instant: Instant,
    wall: Timestamp,
    tsc: Option<u64>,
}

static ORIGIN: OnceLock<Origin> = OnceLock::new();

/// What a TSC read needs, where a read finds it without going through
/// `ORIGIN`: the origin's counter and wall time, and the nanoseconds per
/// tick as a 32.32 fixed-point number, 0 until measured. The ratio is
/// published last (`Release`), so whoever sees it also sees the other two.
static TSC_START: AtomicU64 = AtomicU64::new(0);
static WALL_START: AtomicU64 = AtomicU64::new(0);
static TSC_RATIO: AtomicU64 = AtomicU64::new(0);

fn origin() -> &'static Origin {
    ORIGIN.get_or_init(|| {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        Origin {
            instant: Instant::now(),
            wall: Timestamp::from_unix_nanos(wall),
            tsc: tsc::read_if_invariant(),
        }
    })
}

/// The current time.
#[inline(always)]
pub(crate) fn now() -> Timestamp {
    let ratio = TSC_RATIO.load(Ordering::Acquire);
    if ratio != 0 {
        let ticks = tsc::read().wrapping_sub(TSC_START.load(Ordering::Relaxed));
        let nanos = ((u128::from(ticks) * u128::from(ratio)) >> 32) as u64;
        let wall = WALL_START.load(Ordering::Relaxed);
        return Timestamp::from_unix_nanos(wall.saturating_add(nanos));
    }
    uncalibrated_now()
}

/// The time by `Instant`: before the first calibration, and where there is
/// no invariant TSC.
#[cold]
fn uncalibrated_now() -> Timestamp {
    let o = origin();
    o.wall.saturating_add(o.instant.elapsed())
}

/// Measures the TSC against `Instant` over everything since the origin; the
/// longer the baseline, the finer the ratio. Cheap: the exporter calls it on
/// every wake-up.
pub(crate) fn calibrate() {
    let o = origin();
    let Some(start) = o.tsc else { return };
    let (ticks, elapsed) = (tsc::read().wrapping_sub(start), o.instant.elapsed());
    // Under 20 ms the error of one sample pair would still show.
    if elapsed < Duration::from_millis(20) || ticks == 0 {
        return;
    }
    let ratio = (elapsed.as_nanos() << 32) / u128::from(ticks);
    if let Ok(ratio) = u64::try_from(ratio) {
        TSC_START.store(start, Ordering::Relaxed);
        WALL_START.store(o.wall.unix_nanos(), Ordering::Relaxed);
        TSC_RATIO.store(ratio.max(1), Ordering::Release);
    }
}

#[cfg(target_arch = "x86_64")]
mod tsc {
    use std::arch::x86_64::{__cpuid, _rdtsc};

    #[inline]
    pub(super) fn read() -> u64 {
        // SAFETY: `rdtsc` exists on every x86-64 CPU.
        unsafe { _rdtsc() }
    }

    /// The counter, if it ticks at a constant rate in every power state and
    /// on every core (CPUID 8000_0007h, EDX bit 8).
    // `__cpuid` is safe from Rust 1.94; `unsafe` keeps older compilers happy.
    #[allow(unused_unsafe)]
    pub(super) fn read_if_invariant() -> Option<u64> {
        // SAFETY: `cpuid` exists on every x86-64 CPU.
        let max = unsafe { __cpuid(0x8000_0000) }.eax;
        let invariant = max >= 0x8000_0007 && unsafe { __cpuid(0x8000_0007) }.edx & (1 << 8) != 0;
        invariant.then(read)
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod tsc {
    pub(super) fn read() -> u64 {
        0
    }
    pub(super) fn read_if_invariant() -> Option<u64> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_calibrated_clock_tracks_instant() {
        let before = now();
        std::thread::sleep(Duration::from_millis(30));
        calibrate();
        let (a, i) = (now(), Instant::now());
        std::thread::sleep(Duration::from_millis(50));
        let (b, j) = (now(), Instant::now());
        assert!(a > before && b > a);
        let measured = b.since(a).as_secs_f64();
        let expected = (j - i).as_secs_f64();
        assert!(
            (measured - expected).abs() < expected * 0.05 + 0.002,
            "{measured} vs {expected}"
        );
    }
}
