//! Inference and analysis off the UI thread. Views submit closures on named
//! lanes; a newer request on a lane replaces one still waiting there (the
//! slider moved on, only the latest position matters). Results come back on
//! a channel per request, and the UI is woken when one is ready.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Receiver, TryRecvError};

type Task = Box<dyn FnOnce() + Send>;
type Wake = Arc<dyn Fn() + Send + Sync>;

struct Shared {
    pending: Mutex<VecDeque<(String, Task)>>,
    ready: Condvar,
    stop: AtomicBool,
}

/// One worker thread with its queue of lanes.
struct Queue {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Queue {
    fn spawn(name: &str) -> std::io::Result<Queue> {
        let shared = Arc::new(Shared {
            pending: Mutex::new(VecDeque::new()),
            ready: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || loop {
                let task = {
                    let mut q = s.pending.lock().unwrap_or_else(|e| e.into_inner());
                    loop {
                        if s.stop.load(Ordering::Relaxed) {
                            return;
                        }
                        if let Some((_, t)) = q.pop_front() {
                            break t;
                        }
                        q = s.ready.wait(q).unwrap_or_else(|e| e.into_inner());
                    }
                };
                // a panicking task must not take the thread down
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(task));
            })?;
        Ok(Queue {
            shared,
            thread: Some(thread),
        })
    }

    fn push(&self, lane: &str, task: Task) {
        let mut q = self
            .shared
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        q.retain(|(l, _)| l != lane);
        q.push_back((lane.to_string(), task));
        drop(q);
        self.shared.ready.notify_one();
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.ready.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Two compute threads (joined on drop): one for what follows the pointer
/// (reconstructions on a slider or a stroke), one for slower analyses
/// (curves over the test set, probes) so these never hold up the first.
pub struct Compute {
    live: Queue,
    slow: Queue,
    wake: Wake,
    pub models: super::ModelCache,
}

impl Compute {
    pub fn spawn(wake: Wake) -> std::io::Result<Compute> {
        Ok(Compute {
            live: Queue::spawn("aelab-compute")?,
            slow: Queue::spawn("aelab-analysis")?,
            wake,
            models: super::ModelCache::default(),
        })
    }

    fn task<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> (Task, Receiver<T>) {
        let (tx, rx) = bounded(1);
        let wake = self.wake.clone();
        let task: Task = Box::new(move || {
            let _ = tx.send(f());
            wake();
        });
        (task, rx)
    }

    /// Run `f` on the interactive thread; a request still waiting on the
    /// same lane is dropped (its receiver sees a disconnect).
    pub fn submit<T: Send + 'static>(
        &self,
        lane: &str,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Receiver<T> {
        let (task, rx) = self.task(f);
        self.live.push(lane, task);
        rx
    }

    /// Like [`Self::submit`], on the thread for slow analyses.
    pub fn submit_slow<T: Send + 'static>(
        &self,
        lane: &str,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Receiver<T> {
        let (task, rx) = self.task(f);
        self.slow.push(lane, task);
        rx
    }
}

/// A value computed in the background for a key: the latest result, and
/// the request in flight.
pub struct Pending<K, T> {
    rx: Option<(K, Receiver<T>)>,
    pub value: Option<(K, T)>,
}

impl<K, T> Default for Pending<K, T> {
    fn default() -> Self {
        Pending {
            rx: None,
            value: None,
        }
    }
}

impl<K: PartialEq + Clone, T> Pending<K, T> {
    /// Take a finished result, if any. Returns true when one arrived.
    pub fn poll(&mut self) -> bool {
        let Some((_, rx)) = &self.rx else {
            return false;
        };
        match rx.try_recv() {
            Ok(v) => {
                let (k, _) = self.rx.take().expect("checked above");
                self.value = Some((k, v));
                true
            }
            Err(TryRecvError::Empty) => false,
            Err(TryRecvError::Disconnected) => {
                self.rx = None;
                false
            }
        }
    }

    /// Whether `key` is shown or being computed.
    pub fn wants(&self, key: &K) -> bool {
        let shown = self.value.as_ref().is_some_and(|(k, _)| k == key);
        let asked = self.rx.as_ref().is_some_and(|(k, _)| k == key);
        !shown && !asked
    }

    /// Ask for `key` unless it is already shown or in flight.
    pub fn request(&mut self, key: K, start: impl FnOnce() -> Receiver<T>) {
        if self.wants(&key) {
            self.rx = Some((key, start()));
        }
    }

    pub fn is_busy(&self) -> bool {
        self.rx.is_some()
    }

    /// The latest value, whatever key it belongs to.
    pub fn get(&self) -> Option<&T> {
        self.value.as_ref().map(|(_, v)| v)
    }

    /// The value only if it belongs to `key`.
    pub fn get_for(&self, key: &K) -> Option<&T> {
        self.value
            .as_ref()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    pub fn clear(&mut self) {
        self.rx = None;
        self.value = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn latest_request_on_a_lane_wins_and_results_arrive() {
        let c = Compute::spawn(Arc::new(|| {})).unwrap();
        // block the thread so that the next requests queue up
        let (gate_tx, gate_rx) = bounded::<()>(0);
        let first = c.submit("a", move || gate_rx.recv().is_ok());
        let older = c.submit("b", || 1);
        let newer = c.submit("b", || 2);
        let other = c.submit("c", || 3);
        gate_tx.send(()).unwrap();
        assert!(first.recv_timeout(Duration::from_secs(5)).unwrap());
        assert!(
            older.recv_timeout(Duration::from_secs(5)).is_err(),
            "replaced"
        );
        assert_eq!(newer.recv_timeout(Duration::from_secs(5)).unwrap(), 2);
        assert_eq!(other.recv_timeout(Duration::from_secs(5)).unwrap(), 3);
        // a panicking task leaves the thread alive
        let p = c.submit("d", || -> i32 { panic!("boom") });
        assert!(p.recv_timeout(Duration::from_secs(5)).is_err());
        assert_eq!(
            c.submit("e", || 5)
                .recv_timeout(Duration::from_secs(5))
                .unwrap(),
            5
        );
    }

    #[test]
    fn pending_tracks_keys() {
        let c = Compute::spawn(Arc::new(|| {})).unwrap();
        let mut p: Pending<u32, u32> = Pending::default();
        p.request(1, || c.submit("x", || 10));
        assert!(!p.wants(&1));
        let t = std::time::Instant::now();
        while !p.poll() {
            assert!(t.elapsed() < Duration::from_secs(5));
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(p.get_for(&1), Some(&10));
        assert_eq!(p.get_for(&2), None);
        assert!(p.wants(&2));
    }
}
