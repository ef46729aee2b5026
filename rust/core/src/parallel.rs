//! The engine's own rayon pool, sized by `set_num_threads` or `PYNN_NUM_THREADS`.
//!
//! Training enters the pool once per call ([`install`]), not once per op: entering a pool from a
//! foreign thread costs a lock and a wake-up. Work is split in fixed-size chunks, never by thread
//! count, so results do not depend on how many threads run them.
//!
//! A forked child process has none of its parent's threads: [`before_fork`] and
//! [`after_fork`] (run around `fork()`) hand the child an empty slot, and its first call builds
//! a pool of its own.

use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use rayon::prelude::*;
use rayon::{ThreadPool, ThreadPoolBuilder};

use crate::error::{CoreError, Result};

/// Element-wise work is split into chunks of this many values.
pub const CHUNK: usize = 16 * 1024;
/// Below this many values, element-wise work stays on one thread: waking others costs more.
const PARALLEL_MIN: usize = 4 * CHUNK;

/// Whether work over `len` values is worth splitting among threads.
pub fn worth_splitting(len: usize) -> bool {
    len >= PARALLEL_MIN
}

/// The most threads a pool may have: more than any machine's cores, and few enough that
/// starting them takes a moment rather than the minutes (and the GIL) a mistyped count would.
pub const MAX_THREADS: usize = 1024;

/// The thread count chosen (by [`set_num_threads`]; `None`: `PYNN_NUM_THREADS` or all cores)
/// and the pool, built on first use.
struct Slot {
    threads: Option<usize>,
    pool: Option<Arc<ThreadPool>>,
}

static POOL: Mutex<Slot> = Mutex::new(Slot {
    threads: None,
    pool: None,
});

thread_local! {
    /// The pool's lock, held by the thread that forks from [`before_fork`] to [`after_fork`],
    /// so that no other thread holds it (mid-update) at the moment of the fork.
    static HELD_FOR_FORK: std::cell::RefCell<Option<std::sync::MutexGuard<'static, Slot>>> =
        const { std::cell::RefCell::new(None) };
}

fn all_cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(MAX_THREADS)
}

/// The thread count `PYNN_NUM_THREADS` asks for (0 or unset: all cores).
fn default_num_threads() -> Result<usize> {
    let Ok(value) = std::env::var("PYNN_NUM_THREADS") else {
        return Ok(all_cores());
    };
    match value.trim().parse::<usize>() {
        Ok(0) => Ok(all_cores()),
        Ok(n) if n <= MAX_THREADS => Ok(n),
        _ => Err(CoreError::invalid(
            "PYNN_NUM_THREADS",
            format!("an integer from 0 (all cores) to {MAX_THREADS}"),
            format!("{value:?}"),
        )),
    }
}

fn build(n: usize) -> Result<Arc<ThreadPool>> {
    ThreadPoolBuilder::new()
        .num_threads(n)
        .thread_name(|i| format!("pynn-{i}"))
        .build()
        .map(Arc::new)
        .map_err(|e| CoreError::State(format!("could not start {n} threads: {e}")))
}

fn lock() -> std::sync::MutexGuard<'static, Slot> {
    // A poisoned lock only means another thread panicked while holding it; the pool is intact.
    POOL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Sets the number of threads used from now on; `0` means all cores.
pub fn set_num_threads(n: usize) -> Result<()> {
    if n > MAX_THREADS {
        return Err(CoreError::invalid(
            "n",
            format!("at most {MAX_THREADS} threads (0 means all cores)"),
            n,
        ));
    }
    let n = if n == 0 { all_cores() } else { n };
    let pool = build(n)?;
    *lock() = Slot {
        threads: Some(n),
        pool: Some(pool),
    };
    Ok(())
}

/// The number of threads the engine uses.
pub fn num_threads() -> Result<usize> {
    match lock().threads {
        Some(n) => Ok(n),
        None => default_num_threads(),
    }
}

fn pool() -> Result<Arc<ThreadPool>> {
    let mut slot = lock();
    if let Some(pool) = &slot.pool {
        return Ok(pool.clone());
    }
    let n = match slot.threads {
        Some(n) => n,
        None => default_num_threads()?,
    };
    let pool = build(n)?;
    *slot = Slot {
        threads: Some(n),
        pool: Some(pool.clone()),
    };
    Ok(pool)
}

/// Call on the thread about to `fork()`: holds the pool's lock until [`after_fork`].
pub fn before_fork() {
    let guard = lock();
    HELD_FOR_FORK.with_borrow_mut(|held| *held = Some(guard));
}

/// Call after `fork()` on the thread that forked, in the parent (`child = false`) and in the
/// child (`child = true`). The child's pool had threads that the child does not have: it is
/// left behind (its memory, never its threads, which are gone), and the child's next call
/// builds a new pool of the same size.
pub fn after_fork(child: bool) {
    HELD_FOR_FORK.with_borrow_mut(|held| {
        if let Some(mut slot) = held.take() {
            if child {
                // Dropping the pool would signal threads that do not exist in this process.
                std::mem::forget(slot.pool.take());
            }
        }
    });
}

/// Runs `f` inside the engine's pool, so every parallel op within it uses that pool.
pub fn install<R: Send>(f: impl FnOnce() -> R + Send) -> Result<R> {
    Ok(pool()?.install(f))
}

/// Runs `f` inside the engine's pool, like [`install`], while the calling thread waits for it
/// and calls `tick` every `interval` until `f` is done. The calling thread stays free for what
/// only it can do during a long call (Python runs signal handlers on the main thread alone).
pub fn install_and_tick<R: Send>(
    f: impl FnOnce() -> R + Send,
    interval: Duration,
    mut tick: impl FnMut(),
) -> Result<R> {
    let pool = pool()?;
    let (sender, receiver) = mpsc::channel();
    pool.in_place_scope(|scope| {
        // Spawned, `f` runs on a worker thread of the pool, so its parallel ops use the pool.
        scope.spawn(move |_| {
            let _ = sender.send(f());
        });
        loop {
            match receiver.recv_timeout(interval) {
                Ok(result) => return Ok(result),
                Err(mpsc::RecvTimeoutError::Timeout) => tick(),
                // `f` panicked; the scope resumes that panic once this returns.
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(CoreError::State("the engine's task ended early".into()))
                }
            }
        }
    })
}

/// Applies `f` to fixed-size chunks of `values`, in parallel where there are many.
pub fn chunks_mut(values: &mut [f32], f: impl Fn(&mut [f32]) + Sync + Send) {
    if !worth_splitting(values.len()) {
        values.chunks_mut(CHUNK).for_each(f);
    } else {
        values.par_chunks_mut(CHUNK).for_each(f);
    }
}

/// Applies `f` to matching fixed-size chunks of `out` and `input` (same length).
pub fn zip_chunks_mut(
    out: &mut [f32],
    input: &[f32],
    f: impl Fn(&mut [f32], &[f32]) + Sync + Send,
) {
    debug_assert_eq!(out.len(), input.len());
    if !worth_splitting(out.len()) {
        out.chunks_mut(CHUNK)
            .zip(input.chunks(CHUNK))
            .for_each(|(o, i)| f(o, i));
    } else {
        out.par_chunks_mut(CHUNK)
            .zip(input.par_chunks(CHUNK))
            .for_each(|(o, i)| f(o, i));
    }
}

/// Applies `f` to matching fixed-size chunks of `out`, `x` and `y` (same length).
pub fn zip3_chunks_mut(
    out: &mut [f32],
    x: &[f32],
    y: &[f32],
    f: impl Fn(&mut [f32], &[f32], &[f32]) + Sync + Send,
) {
    debug_assert!(out.len() == x.len() && out.len() == y.len());
    if !worth_splitting(out.len()) {
        out.chunks_mut(CHUNK)
            .zip(x.chunks(CHUNK).zip(y.chunks(CHUNK)))
            .for_each(|(o, (x, y))| f(o, x, y));
    } else {
        out.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK).zip(y.par_chunks(CHUNK)))
            .for_each(|(o, (x, y))| f(o, x, y));
    }
}

/// Applies `f` to groups of whole rows of `values` (rows `width` wide), in place.
pub fn chunks_of_rows_mut(values: &mut [f32], width: usize, f: impl Fn(&mut [f32]) + Sync + Send) {
    let rows_per_chunk = (CHUNK / width.max(1)).max(1);
    let chunk = rows_per_chunk * width;
    if chunk == 0 {
        return;
    }
    if !worth_splitting(values.len()) {
        values.chunks_mut(chunk).for_each(f);
    } else {
        values.par_chunks_mut(chunk).for_each(f);
    }
}

/// Applies `f` to groups of whole rows: `out` holds rows of `out_width` values and `input` the
/// matching rows of `in_width` values. For row-wise kernels (softmax, losses) that must not split
/// a row.
pub fn rows_mut(
    out: &mut [f32],
    out_width: usize,
    input: &[f32],
    in_width: usize,
    f: impl Fn(&mut [f32], &[f32]) + Sync + Send,
) {
    let rows_per_chunk = (CHUNK / out_width.max(1)).max(1);
    let (out_chunk, in_chunk) = (rows_per_chunk * out_width, rows_per_chunk * in_width);
    if out_chunk == 0 || in_chunk == 0 {
        return;
    }
    if !worth_splitting(out.len()) {
        out.chunks_mut(out_chunk)
            .zip(input.chunks(in_chunk))
            .for_each(|(o, i)| f(o, i));
    } else {
        out.par_chunks_mut(out_chunk)
            .zip(input.par_chunks(in_chunk))
            .for_each(|(o, i)| f(o, i));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_caller_ticks_while_the_pool_works() {
        let mut ticks = 0;
        let sum = install_and_tick(
            || {
                std::thread::sleep(Duration::from_millis(60));
                (0..1000u64).into_par_iter().sum::<u64>()
            },
            Duration::from_millis(5),
            || ticks += 1,
        )
        .unwrap();
        assert_eq!(sum, 499_500);
        assert!(ticks >= 3, "{ticks}");
    }

    #[test]
    fn a_forked_child_gets_a_new_pool_of_the_same_size() {
        set_num_threads(3).unwrap();
        let parent = pool().unwrap();
        before_fork();
        after_fork(false);
        assert!(
            Arc::ptr_eq(&pool().unwrap(), &parent),
            "the parent keeps its pool"
        );
        before_fork();
        after_fork(true); // as the child would
        let child = pool().unwrap();
        assert!(!Arc::ptr_eq(&child, &parent));
        assert_eq!(
            (child.current_num_threads(), num_threads().unwrap()),
            (3, 3)
        );
        assert_eq!(install(rayon::current_num_threads).unwrap(), 3);
        set_num_threads(0).unwrap();
    }

    #[test]
    fn thread_counts_are_bounded() {
        assert!(set_num_threads(MAX_THREADS + 1).is_err());
    }

    #[test]
    fn a_panic_in_the_task_reaches_the_caller() {
        let outcome = std::panic::catch_unwind(|| {
            install_and_tick(|| panic!("in the pool"), Duration::from_millis(5), || {})
        });
        let payload = outcome.expect_err("the panic is resumed in the caller");
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"in the pool"));
    }
}
