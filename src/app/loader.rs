//! Start-up work off the UI thread: find (or download) the data set, decode
//! it, fit PCA; progress and results come back over a channel.

use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Receiver};

use crate::data::{Dataset, DatasetKind};
use crate::pca::Pca;

pub enum LoadEvent {
    Progress {
        message: String,
        fraction: Option<f32>,
    },
    Data(Arc<Dataset>),
    Pca(Arc<Pca>),
    Missing(String),
    Failed(String),
}

/// A running load; dropping it leaves the thread to finish on its own
/// (it only decodes files and fits PCA, then exits).
pub struct Loader {
    pub events: Receiver<LoadEvent>,
    /// Set to cancel a download in progress.
    pub cancel: Arc<std::sync::atomic::AtomicBool>,
    _thread: Option<JoinHandle<()>>,
}

impl Loader {
    /// Load `kind` from `root`; with `download`, fetch missing files first.
    pub fn spawn(
        root: PathBuf,
        kind: DatasetKind,
        download: bool,
        wake: Arc<dyn Fn() + Send + Sync>,
    ) -> Loader {
        let (tx, rx) = bounded(256);
        let cancel = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let cancelled = cancel.clone();
        let thread = std::thread::Builder::new()
            .name("aelab-loader".into())
            .spawn(move || {
                let send = |e: LoadEvent| {
                    let _ = tx.send(e);
                    wake();
                };
                let missing = crate::data::registry::missing_files(&root, kind);
                if !missing.is_empty() {
                    if !download {
                        let err = Dataset::load(&root, kind)
                            .err()
                            .map(|e| e.to_string())
                            .unwrap_or_default();
                        send(LoadEvent::Missing(err));
                        return;
                    }
                    let mut last = std::time::Instant::now();
                    let res = crate::data::registry::ensure_files(&root, kind, &mut |p| {
                        if last.elapsed().as_millis() > 100 {
                            last = std::time::Instant::now();
                            let frac = p.total.map(|t| {
                                ((p.file_index as f64 + p.bytes as f64 / t.max(1) as f64)
                                    / p.file_count as f64) as f32
                            });
                            send(LoadEvent::Progress {
                                message: format!(
                                    "downloading {} ({:.1} MB)",
                                    p.file,
                                    p.bytes as f64 / 1e6
                                ),
                                fraction: frac,
                            });
                        }
                        !cancelled.load(std::sync::atomic::Ordering::Relaxed)
                    });
                    if let Err(e) = res {
                        send(LoadEvent::Missing(e.to_string()));
                        return;
                    }
                }
                send(LoadEvent::Progress {
                    message: format!("decoding {}", kind.display_name()),
                    fraction: None,
                });
                let data = match Dataset::load(&root, kind) {
                    Ok(d) => Arc::new(d),
                    Err(e) => {
                        send(LoadEvent::Failed(e.to_string()));
                        return;
                    }
                };
                send(LoadEvent::Data(data.clone()));
                send(LoadEvent::Progress {
                    message: "fitting PCA".into(),
                    fraction: None,
                });
                match Pca::fit(&data.train) {
                    Ok(p) => send(LoadEvent::Pca(Arc::new(p))),
                    Err(e) => send(LoadEvent::Failed(format!("PCA: {e}"))),
                }
            })
            .ok();
        Loader {
            events: rx,
            cancel,
            _thread: thread,
        }
    }
}
