//! Fork-join for the training loop's small pieces of work.
//!
//! At batch 32 a training step is about a millisecond: its halves of a
//! matrix product or of the optimiser pass are 50-200 µs each. rayon's
//! workers go to sleep after a short spin, and on these machines waking one
//! takes longer than such a half (a join after a 200 µs pause took 193 µs
//! for two 90 µs halves, against 180 µs done in series). A training run on
//! two cores therefore gets a [`Helper`]: one thread that keeps spinning
//! for a few milliseconds after each piece of work (so all through a
//! training run) and parks when the run goes quiet. [`join`] hands it the
//! second half; when it is busy the caller takes the half back and runs it
//! itself, so nested joins cannot deadlock.

use std::cell::RefCell;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

/// How long the helper spins for new work before it parks.
const SPIN: Duration = Duration::from_millis(5);
/// How long it parks before it looks again on its own.
const PARK: Duration = Duration::from_millis(100);

const POSTED: u8 = 0;
const DONE: u8 = 1;
const PANICKED: u8 = 2;

/// A half posted to the helper; lives on the poster's stack until the
/// poster has it back or sees it finished.
struct Job {
    run: *const (dyn Fn() + Sync),
    state: AtomicU8,
}

struct Shared {
    slot: AtomicPtr<Job>,
    stop: AtomicBool,
    parked: AtomicBool,
    thread: Thread,
}

/// A spinning helper thread for [`join`] on the thread that created it.
pub struct Helper {
    shared: Arc<Shared>,
    handle: Option<JoinHandle<()>>,
}

thread_local! {
    static HELPER: RefCell<Option<Arc<Shared>>> = const { RefCell::new(None) };
}

impl Helper {
    /// Starts the helper thread (`setup` runs first on it) and makes it
    /// this thread's helper until the returned value is dropped.
    pub fn start(setup: impl FnOnce() + Send + 'static) -> std::io::Result<Helper> {
        let (tx, rx) = std::sync::mpsc::channel::<Arc<Shared>>();
        let handle = std::thread::Builder::new()
            .name("aelab-helper".into())
            .spawn(move || {
                setup();
                let Ok(shared) = rx.recv() else { return };
                serve(&shared);
            })?;
        let shared = Arc::new(Shared {
            slot: AtomicPtr::new(std::ptr::null_mut()),
            stop: AtomicBool::new(false),
            parked: AtomicBool::new(false),
            thread: handle.thread().clone(),
        });
        // (the receiver is alive until the thread gets this)
        let _ = tx.send(shared.clone());
        HELPER.with(|h| *h.borrow_mut() = Some(shared.clone()));
        Ok(Helper {
            shared,
            handle: Some(handle),
        })
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        HELPER.with(|h| {
            let mut h = h.borrow_mut();
            if h.as_ref().is_some_and(|s| Arc::ptr_eq(s, &self.shared)) {
                *h = None;
            }
        });
        self.shared.stop.store(true, Ordering::Release);
        self.shared.thread.unpark();
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

fn serve(shared: &Shared) {
    let mut last = Instant::now();
    let mut spins = 0u32;
    loop {
        if shared.stop.load(Ordering::Acquire) {
            return;
        }
        let job = shared.slot.swap(std::ptr::null_mut(), Ordering::AcqRel);
        if !job.is_null() {
            // SAFETY: the poster keeps the job (and what it borrows) alive
            // until it sees DONE or PANICKED, and it no longer owns the slot.
            let job = unsafe { &*job };
            let ok = catch_unwind(AssertUnwindSafe(|| unsafe { (*job.run)() })).is_ok();
            job.state
                .store(if ok { DONE } else { PANICKED }, Ordering::Release);
            last = Instant::now();
            continue;
        }
        // (the clock only every 64 spins: reading it on each one was a
        // tenth of a training run's samples, on the helper's core)
        spins = spins.wrapping_add(1);
        if !spins.is_multiple_of(64) || last.elapsed() < SPIN {
            std::hint::spin_loop();
        } else {
            shared.parked.store(true, Ordering::SeqCst);
            let parked = Instant::now();
            if shared.slot.load(Ordering::SeqCst).is_null() && !shared.stop.load(Ordering::SeqCst) {
                std::thread::park_timeout(PARK);
            }
            shared.parked.store(false, Ordering::SeqCst);
            // Woken early: work was posted (if the poster took its half back
            // meanwhile, more follows), so spin again. Timed out: `last`
            // stays and the helper parks again at once, instead of spinning
            // 5 ms in every 105 through a long pause.
            if parked.elapsed() < PARK {
                last = Instant::now();
            }
        }
    }
}

/// Whether [`join`] can run its halves on two cores from this thread.
pub fn can_split() -> bool {
    HELPER.with(|h| h.borrow().is_some())
        || (rayon::current_thread_index().is_some() && rayon::current_num_threads() > 1)
}

/// Runs `a` and `b`, on two cores when this thread has a [`Helper`] (or is
/// in a rayon pool with another thread), else one after the other, and
/// returns both results (as `rayon::join` does).
pub fn join<A, B, RA, RB>(a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    let helper = HELPER.with(|h| h.borrow().clone());
    let Some(shared) = helper else {
        return if rayon::current_thread_index().is_some() {
            rayon::join(a, b)
        } else {
            (a(), b())
        };
    };
    // `b` as a shareable job that runs once, wherever it runs, and leaves
    // its result behind
    let b = Mutex::new(Some(b));
    let rb = Mutex::new(None);
    let run_b = || {
        let f = b.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(f) = f {
            let r = f();
            *rb.lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
        }
    };
    let take_rb = |rb: Mutex<Option<RB>>| {
        rb.into_inner()
            .unwrap_or_else(|e| e.into_inner())
            .expect("the second half ran")
    };
    let run: &(dyn Fn() + Sync) = &run_b;
    // SAFETY (lifetime): the job never outlives this call; see below.
    let run: *const (dyn Fn() + Sync) = unsafe { std::mem::transmute(run) };
    let job = Job {
        run,
        state: AtomicU8::new(POSTED),
    };
    let ptr = &job as *const Job as *mut Job;
    if shared
        .slot
        .compare_exchange(
            std::ptr::null_mut(),
            ptr,
            Ordering::AcqRel,
            Ordering::Acquire,
        )
        .is_err()
    {
        // the slot holds an outer join's half: run both here
        let ra = a();
        run_b();
        return (ra, take_rb(rb));
    }
    if shared.parked.load(Ordering::SeqCst) {
        shared.thread.unpark();
    }
    let outcome = catch_unwind(AssertUnwindSafe(a));
    let reclaimed = shared
        .slot
        .compare_exchange(
            ptr,
            std::ptr::null_mut(),
            Ordering::AcqRel,
            Ordering::Acquire,
        )
        .is_ok();
    if reclaimed {
        let ra = outcome.unwrap_or_else(|p| resume_unwind(p));
        run_b();
        return (ra, take_rb(rb));
    }
    // the helper has it: wait for it to finish before `job` goes away
    let state = loop {
        match job.state.load(Ordering::Acquire) {
            POSTED => std::hint::spin_loop(),
            s => break s,
        }
    };
    let ra = outcome.unwrap_or_else(|p| resume_unwind(p));
    if state == PANICKED {
        panic!("a parallel half of the work panicked on the helper thread");
    }
    (ra, take_rb(rb))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn join_runs_both_halves_with_and_without_a_helper_nested_too() {
        let count = AtomicUsize::new(0);
        let work = |n: usize| {
            join(
                || {
                    count.fetch_add(n, Ordering::Relaxed);
                },
                || {
                    count.fetch_add(10 * n, Ordering::Relaxed);
                },
            )
        };
        work(1);
        assert_eq!(count.load(Ordering::Relaxed), 11);
        let helper = Helper::start(|| {}).unwrap();
        assert!(can_split());
        for _ in 0..1000 {
            // nested: the inner joins find the slot busy or the helper busy
            join(|| work(1), || work(2));
        }
        assert_eq!(count.load(Ordering::Relaxed), 11 + 1000 * 33);
        // the helper really takes halves: it records its own thread
        let seen = std::sync::Mutex::new(Vec::new());
        for _ in 0..200 {
            join(
                || std::thread::sleep(Duration::from_micros(200)),
                || seen.lock().unwrap().push(std::thread::current().id()),
            );
        }
        let me = std::thread::current().id();
        assert!(seen.lock().unwrap().iter().any(|&t| t != me));
        drop(helper);
        assert!(!HELPER.with(|h| h.borrow().is_some()));
    }

    #[test]
    fn a_panic_in_the_helper_half_reaches_the_caller() {
        let _helper = Helper::start(|| {}).unwrap();
        let r = catch_unwind(|| {
            join(
                || std::thread::sleep(Duration::from_millis(5)),
                || panic!("boom"),
            )
        });
        assert!(r.is_err());
        // and the helper still serves
        let count = AtomicUsize::new(0);
        join(
            || {
                count.fetch_add(1, Ordering::Relaxed);
            },
            || {
                count.fetch_add(1, Ordering::Relaxed);
            },
        );
        assert_eq!(count.load(Ordering::Relaxed), 2);
    }
}
