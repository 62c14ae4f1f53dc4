//! Where the data sets live, how their files are named and checked, and how
//! missing files are fetched from the public mirrors (streamed with progress,
//! checked against the SHA-256 of the decoded IDX bytes, written atomically).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::idx;

pub use super::kind::{
    DataFile, DatasetKind, TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS,
};

/// Where the data directory came from, shown in the status bar.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DataDirSource {
    Flag,
    Env,
    Platform,
}

impl std::fmt::Display for DataDirSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DataDirSource::Flag => "--data-dir",
            DataDirSource::Env => "AELAB_DATA_DIR",
            DataDirSource::Platform => "platform data folder",
        })
    }
}

/// The data directory: `--data-dir`, then `AELAB_DATA_DIR`, then the
/// platform's data folder (e.g. `~/.local/share/aelab/data`).
pub fn resolve_data_dir(flag: Option<&Path>) -> (PathBuf, DataDirSource) {
    if let Some(p) = flag {
        return (p.to_path_buf(), DataDirSource::Flag);
    }
    if let Some(p) = crate::env::data_dir() {
        return (p, DataDirSource::Env);
    }
    (platform_dir().join("data"), DataDirSource::Platform)
}

/// The platform folder for aelab's data and models.
pub fn platform_dir() -> PathBuf {
    directories::ProjectDirs::from("org", "aelab", "aelab")
        .map(|d| d.data_dir().to_path_buf())
        .unwrap_or_else(|| PathBuf::from(".aelab"))
}

#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error("{kind} is missing {} in {dir}; download failed ({reason}). Put the official files (same names) in that folder, or pass --data-dir / set AELAB_DATA_DIR to a folder holding mnist/ and fashion-mnist/", missing.join(", "))]
    Offline {
        kind: &'static str,
        dir: PathBuf,
        missing: Vec<String>,
        reason: String,
    },
    #[error("{file}: checksum mismatch from {url}: expected {expected}, got {got}")]
    Checksum {
        file: String,
        url: String,
        expected: String,
        got: String,
    },
    #[error("{url}: {reason}")]
    Transfer { url: String, reason: String },
    #[error("{path}: cannot write the downloaded file: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("download cancelled")]
    Cancelled,
}

/// Progress of a download, for a terminal bar or the app.
#[derive(Clone, Debug)]
pub struct DownloadProgress {
    pub file: String,
    pub file_index: usize,
    pub file_count: usize,
    pub bytes: u64,
    pub total: Option<u64>,
}

/// Files of `kind` not present in `root/<slug>/`.
pub fn missing_files(root: &Path, kind: DatasetKind) -> Vec<String> {
    let dir = root.join(kind.slug());
    kind.files()
        .iter()
        .filter(|f| !dir.join(f.name).is_file())
        .map(|f| f.name.to_string())
        .collect()
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(10)))
        .timeout_recv_body(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// Fetch `url` into memory, reporting progress; errors when the connection
/// drops before `Content-Length` bytes arrived.
fn fetch(
    agent: &ureq::Agent,
    url: &str,
    progress: &mut dyn FnMut(u64, Option<u64>) -> bool,
) -> Result<Vec<u8>, DownloadError> {
    let transfer = |reason: String| DownloadError::Transfer {
        url: url.to_string(),
        reason,
    };
    let resp = agent.get(url).call().map_err(|e| transfer(e.to_string()))?;
    let (_, body) = resp.into_parts();
    let total = body.content_length();
    let mut reader = body.into_with_config().limit(256 << 20).reader();
    let mut out = Vec::with_capacity(total.unwrap_or(1 << 20).min(64 << 20) as usize);
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = reader.read(&mut buf).map_err(|e| transfer(e.to_string()))?;
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        if !progress(out.len() as u64, total) {
            return Err(DownloadError::Cancelled);
        }
    }
    if let Some(t) = total {
        if out.len() as u64 != t {
            return Err(transfer(format!(
                "connection closed after {} of {t} bytes",
                out.len()
            )));
        }
    }
    Ok(out)
}

/// Hex SHA-256 of a buffer.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Write `bytes` to `path` through a temporary file in the same folder and a
/// rename, so a reader never sees a half-written file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    remove_stale_temps(dir);
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Remove the temporary files in `dir` that writers killed mid-write left
/// behind (their process is gone), so they do not pile up: of every file
/// there, not only `name`'s (a checkpoint's save writes the weights and
/// then the `.json`; a process killed in the second write leaves a temp
/// that the next save of the weights would not otherwise clear). Where it
/// cannot tell whether a process lives (no /proc), it leaves them.
fn remove_stale_temps(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    if !Path::new("/proc/self").exists() {
        return;
    }
    for e in entries.flatten() {
        let file = e.file_name();
        // `.{name}.tmp-{pid}`, as `write_atomic` names them
        let Some(pid) = file
            .to_str()
            .filter(|f| f.starts_with('.'))
            .and_then(|f| f.rsplit_once(".tmp-"))
            .map(|(_, pid)| pid)
        else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Download one file from the first mirror that serves it with the right
/// decoded checksum; the file lands in `dir` only when it checks out.
pub fn download_file(
    mirrors: &[String],
    file: &DataFile,
    dir: &Path,
    progress: &mut dyn FnMut(u64, Option<u64>) -> bool,
) -> Result<PathBuf, DownloadError> {
    let agent = agent();
    let mut last = None;
    for base in mirrors {
        let url = format!("{base}{}", file.name);
        let err = match fetch(&agent, &url, progress) {
            Ok(bytes) => {
                let decoded = idx::gunzip(&bytes, Path::new(file.name));
                let got = match &decoded {
                    Ok(d) => sha256_hex(d),
                    Err(e) => format!("undecodable data ({e})"),
                };
                if got == file.sha256 {
                    let path = dir.join(file.name);
                    write_atomic(&path, &bytes).map_err(|source| DownloadError::Write {
                        path: path.clone(),
                        source,
                    })?;
                    return Ok(path);
                }
                DownloadError::Checksum {
                    file: file.name.into(),
                    url,
                    expected: file.sha256.into(),
                    got,
                }
            }
            Err(DownloadError::Cancelled) => return Err(DownloadError::Cancelled),
            Err(e) => e,
        };
        log::warn!("{err}");
        last = Some(err);
    }
    Err(last.unwrap_or(DownloadError::Transfer {
        url: String::new(),
        reason: "no mirror configured".into(),
    }))
}

/// Make sure every file of `kind` is in `root`, downloading what is missing.
/// `progress` returns false to cancel.
pub fn ensure_files(
    root: &Path,
    kind: DatasetKind,
    progress: &mut dyn FnMut(&DownloadProgress) -> bool,
) -> Result<(), DownloadError> {
    let missing = missing_files(root, kind);
    if missing.is_empty() {
        return Ok(());
    }
    let dir = root.join(kind.slug());
    let offline = |reason: String| DownloadError::Offline {
        kind: kind.display_name(),
        dir: dir.clone(),
        missing: missing.clone(),
        reason,
    };
    if crate::env::offline() {
        return Err(offline("AELAB_OFFLINE is set".into()));
    }
    let files = kind.files();
    let todo: Vec<&DataFile> = files
        .iter()
        .filter(|f| missing.iter().any(|m| m == f.name))
        .collect();
    let mirrors = kind.mirrors();
    for (i, file) in todo.iter().enumerate() {
        let mut cb = |bytes, total| {
            progress(&DownloadProgress {
                file: file.name.to_string(),
                file_index: i,
                file_count: todo.len(),
                bytes,
                total,
            })
        };
        match download_file(&mirrors, file, &dir, &mut cb) {
            Ok(_) => {}
            Err(DownloadError::Cancelled) => return Err(DownloadError::Cancelled),
            Err(e @ DownloadError::Write { .. }) => return Err(e),
            Err(e) => return Err(offline(e.to_string())),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn a_write_clears_the_temps_that_dead_writers_left_of_any_file() {
        let dir = tempfile::tempdir().unwrap();
        // a writer killed in the `.json` write of a checkpoint, and one in
        // the weights' write (pids that cannot be alive)
        let dead = [".m.json.tmp-4294967294", ".m.safetensors.tmp-4294967293"];
        for f in dead {
            std::fs::write(dir.path().join(f), b"torn").unwrap();
        }
        // a live writer's temp (this process's parent) and other files stay
        let live = format!(".m.json.tmp-{}", std::os::unix::process::parent_id());
        std::fs::write(dir.path().join(&live), b"busy").unwrap();
        std::fs::write(dir.path().join("notes.tmp-1.txt"), b"mine").unwrap();
        write_atomic(&dir.path().join("m.safetensors"), b"weights").unwrap();
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, [live.as_str(), "m.safetensors", "notes.tmp-1.txt"]);
    }
}
