//! The download path against a local HTTP server on 127.0.0.1: a good file,
//! one with a wrong checksum, one whose connection drops halfway, and a
//! whole data set fetched through `ensure_files`.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;

use aelab::data::idx;
use aelab::data::registry::{self, DataFile, DownloadError};

/// Serve `routes` (path -> (declared length, bytes actually sent)) until the test ends.
fn serve(routes: Vec<(String, usize, Vec<u8>)>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let routes = Arc::new(routes);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let routes = routes.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let n = s.read(&mut buf).unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]);
                let path = req.split_whitespace().nth(1).unwrap_or("/").to_string();
                match routes.iter().find(|(p, _, _)| *p == path) {
                    Some((_, declared, body)) => {
                        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {declared}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n");
                        let _ = s.write_all(head.as_bytes());
                        let _ = s.write_all(body);
                    }
                    None => {
                        let _ = s.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                    }
                }
                let _ = s.flush();
            });
        }
    });
    format!("http://{addr}/")
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn files_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|r| {
            r.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn good_bad_and_dropped_downloads() {
    let raw = idx::encode_labels(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 0].repeat(500));
    let gz = idx::gzip(&raw);
    let sha = registry::sha256_hex(&raw);
    let other = idx::gzip(&idx::encode_labels(&[3; 5000]));
    let half = gz[..gz.len() / 2].to_vec();
    let base = serve(vec![
        ("/good/labels.gz".into(), gz.len(), gz.clone()),
        ("/bad/labels.gz".into(), other.len(), other),
        ("/drop/labels.gz".into(), gz.len(), half),
    ]);
    let file = DataFile {
        name: "labels.gz",
        sha256: leak(sha.clone()),
    };
    let dir = tempfile::tempdir().unwrap();

    // wrong checksum: refused, nothing written
    let mut calls = 0;
    let err = registry::download_file(&[format!("{base}bad/")], &file, dir.path(), &mut |_, _| {
        calls += 1;
        true
    })
    .unwrap_err();
    assert!(matches!(err, DownloadError::Checksum { .. }), "{err}");
    assert!(
        err.to_string().contains("expected ") && err.to_string().contains(&sha),
        "{err}"
    );
    assert!(
        files_in(dir.path()).is_empty(),
        "{:?}",
        files_in(dir.path())
    );

    // connection dropped halfway: refused, nothing written
    let err = registry::download_file(&[format!("{base}drop/")], &file, dir.path(), &mut |_, _| {
        true
    })
    .unwrap_err();
    assert!(matches!(err, DownloadError::Transfer { .. }), "{err}");
    assert!(files_in(dir.path()).is_empty());

    // the bad mirrors first, then the good one: the good one wins
    let mut last = (0, None);
    let path = registry::download_file(
        &[
            format!("{base}bad/"),
            format!("{base}drop/"),
            format!("{base}good/"),
        ],
        &file,
        dir.path(),
        &mut |b, t| {
            last = (b, t);
            true
        },
    )
    .unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), gz);
    assert_eq!(
        last,
        (gz.len() as u64, Some(gz.len() as u64)),
        "progress reaches the total"
    );
    assert_eq!(files_in(dir.path()), vec!["labels.gz".to_string()]);
    assert!(calls > 0);

    // cancel from the progress callback
    let dir2 = tempfile::tempdir().unwrap();
    let err = registry::download_file(
        &[format!("{base}good/")],
        &file,
        dir2.path(),
        &mut |_, _| false,
    )
    .unwrap_err();
    assert!(matches!(err, DownloadError::Cancelled));
    assert!(files_in(dir2.path()).is_empty());
}

#[test]
fn unreachable_mirror_gives_the_offline_message() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on a port we just closed.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::env::set_var("AELAB_MIRRORS", format!("http://127.0.0.1:{port}/"));
    let err = registry::ensure_files(dir.path(), registry::DatasetKind::Mnist, &mut |_| true)
        .unwrap_err();
    std::env::remove_var("AELAB_MIRRORS");
    let msg = err.to_string();
    assert!(msg.starts_with("MNIST is missing train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz in "), "{msg}");
    assert!(msg.contains("Put the official files"), "{msg}");
    assert!(!msg.contains('\n'));
}
