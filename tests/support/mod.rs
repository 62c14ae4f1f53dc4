//! What the worker tests share: a small generated data set and a wait
//! for a worker event.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aelab::data::{self, Dataset, DatasetKind};
use aelab::worker::{Event, WorkerHandle};

pub fn tiny() -> (tempfile::TempDir, Arc<Dataset>) {
    let dir = tempfile::tempdir().unwrap();
    data::write_synthetic(dir.path(), DatasetKind::Mnist, 200, 40, 4).unwrap();
    let ds = Dataset::load(dir.path(), DatasetKind::Mnist).unwrap();
    (dir, Arc::new(ds))
}

pub fn wait(worker: &WorkerHandle, what: &str, pred: impl Fn(&Event) -> bool) -> Event {
    let t = Instant::now();
    loop {
        match worker.events.recv_timeout(Duration::from_secs(30)) {
            Ok(e) if pred(&e) => return e,
            Ok(_) => {}
            Err(_) => panic!("no {what} within 30 s"),
        }
        assert!(t.elapsed() < Duration::from_secs(30), "no {what}");
    }
}
