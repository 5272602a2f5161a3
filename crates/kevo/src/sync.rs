//! The synchronisation primitives of the modules that are model-checked with `shuttle`:
//! the commit queue (`db::commit`) and the table cache (`db::tables`).
//!
//! Normally these are std's own types, re-exported: the engine is built exactly as without
//! this module. In the library's unit tests built with the cargo feature `shuttle` they are
//! shuttle's, so a shuttle scheduler sees every lock, wait, notification, atomic access
//! and yield of those modules and chooses which thread runs next at each of them (see
//! `docs/reliability.md`, "Model checking"). Only the model checks may use the two modules
//! then: shuttle's types panic outside a shuttle execution, so a unit test that opens a
//! `Db` must not run in that build (hence the test filter `shuttle` in the command).
//! Integration tests, doc tests and every other build always get std.
//!
//! The model checks compile in every test build (shuttle is a dev-dependency), so the
//! usual clippy run lints them; without the feature they are ignored.
//!
//! The rest of the engine uses std directly: it is not under test here, and shuttle would
//! have to run every test that touched it.

#[cfg(not(all(test, feature = "shuttle")))]
pub(crate) use std::sync::atomic::{AtomicBool, Ordering};
#[cfg(not(all(test, feature = "shuttle")))]
pub(crate) use std::sync::{Condvar, Mutex, MutexGuard};
#[cfg(not(all(test, feature = "shuttle")))]
pub(crate) use std::thread::yield_now;

// Shuttle's `Arc` is std's: reference counts need no scheduling point of their own.
#[cfg(all(test, feature = "shuttle"))]
pub(crate) use shuttle::sync::atomic::{AtomicBool, Ordering};
#[cfg(all(test, feature = "shuttle"))]
pub(crate) use shuttle::sync::{Condvar, Mutex, MutexGuard};
#[cfg(all(test, feature = "shuttle"))]
pub(crate) use shuttle::thread::yield_now;

pub(crate) use std::sync::{Arc, PoisonError};

/// Locks `m`, taking over a poisoned lock: every user of this module leaves the data it
/// guards consistent before anything that can panic, so a poisoned lock is still usable.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs a shuttle model check of `test` under two schedulers, each from a fixed seed so a
/// run is repeatable: a random scheduler (a random thread at every scheduling point), then
/// PCT (random priorities with a few priority changes, which finds bugs that need a
/// particular short sequence of preemptions far more often).
///
/// `KEVO_SHUTTLE_ITERATIONS` sets the schedules per scheduler (`default` if unset) and
/// `KEVO_SHUTTLE_SEED` the seed, for longer or different runs. A failure prints the
/// schedule, which `shuttle::replay` reruns exactly.
#[cfg(test)]
pub(crate) fn model_check(name: &str, default: usize, test: impl Fn() + Send + Sync + 'static) {
    use shuttle::scheduler::{PctScheduler, RandomScheduler};
    use shuttle::{Config, Runner};

    /// The bug depth PCT aims at (it changes thread priorities `PCT_DEPTH - 1` times per
    /// schedule).
    const PCT_DEPTH: usize = 3;
    let number = |var: &str, default: u64| {
        std::env::var(var)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let iterations = number("KEVO_SHUTTLE_ITERATIONS", default as u64) as usize;
    let seed = number("KEVO_SHUTTLE_SEED", 0x6b65_766f);
    let config = || {
        let mut config = Config::new();
        // Shuttle warns that it treats every atomic ordering as SeqCst: said once, in
        // docs/reliability.md.
        config.silence_warnings = true;
        config
    };
    let test = Arc::new(test);
    let started = std::time::Instant::now();
    let random = {
        let test = test.clone();
        Runner::new(RandomScheduler::new_from_seed(seed, iterations), config()).run(move || test())
    };
    let pct = Runner::new(
        PctScheduler::new_from_seed(seed, PCT_DEPTH, iterations),
        config(),
    )
    .run(move || test());
    println!(
        "{name}: {random} random and {pct} PCT schedules in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
