//! Start/stop cycles through the worker leave no threads behind and do not
//! grow memory. A test binary of its own: it measures the whole process's
//! threads and resident memory, which tests running alongside would move
//! (seen once: 68 MB -> 836 MB while the other reliability tests ran).

use std::sync::Arc;
use std::time::Duration;

use aelab::data::DatasetKind;
use aelab::model::{ModelConfig, RunConfig, TrainParams};
use aelab::train::TrainEvent;
use aelab::worker::{Event, Job, WorkerHandle};

mod support;
use support::{tiny, wait};

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(0)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// 1,000 start → a few steps → (pause/resume) → stop cycles through the
/// worker handle. Prints thread counts and RSS for the issue note.
#[test]
fn start_stop_soak_leaves_no_threads_and_flat_memory() {
    let (_d, data) = tiny();
    let cycles: usize = std::env::var("AELAB_SOAK_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let run = RunConfig {
        model: ModelConfig::preset("shallow-64").unwrap(),
        train: TrainParams {
            epochs: 1000,
            ..TrainParams::default()
        },
        dataset: DatasetKind::Mnist,
    };
    let threads_before = threads();
    let worker = WorkerHandle::spawn(Arc::new(|| {}), candle_core::Device::Cpu).unwrap();
    let mut rss_after_warmup = 0;
    let mut threads_warm = 0;
    for i in 0..cycles {
        worker
            .start(
                Job {
                    id: i as u64,
                    run: run.clone(),
                    save_dir: None,
                },
                data.clone(),
            )
            .unwrap();
        wait(&worker, "a step", |e| {
            matches!(
                e,
                Event::Train {
                    event: TrainEvent::Step { .. },
                    ..
                }
            )
        });
        if i % 10 == 0 {
            worker.pause();
            worker.resume();
        }
        worker.stop();
        wait(&worker, "the end of the run", |e| {
            matches!(e, Event::Finished { .. } | Event::Failed { .. })
        });
        if i == 0 {
            threads_warm = threads(); // the compute pools start once, lazily
        }
        if i == 50.min(cycles - 1) {
            rss_after_warmup = rss_kib();
        }
    }
    let rss_end = rss_kib();
    let threads_end = threads();
    drop(worker); // joins the worker thread
    std::thread::sleep(Duration::from_millis(100));
    let threads_after = threads();
    eprintln!(
        "soak: {cycles} cycles; threads before {threads_before}, after the first cycle {threads_warm}, after the last {threads_end}, after dropping the handle {threads_after}; RSS after warm-up {rss_after_warmup} KiB, at the end {rss_end} KiB"
    );
    // other tests of this binary run alongside and start threads of their
    // own, so allow a few; one thread left per cycle would be 1,000
    assert!(
        threads_end <= threads_warm + 8,
        "threads left behind by the cycles: {threads_warm} -> {threads_end}"
    );
    assert!(
        rss_end < rss_after_warmup + 64 * 1024,
        "memory grew from {rss_after_warmup} KiB to {rss_end} KiB"
    );
}
