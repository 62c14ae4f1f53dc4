//! Parsing of the IDX format used by MNIST and Fashion-MNIST (gzip or raw).
//! Every malformed input yields an [`IdxError`] with a sentence that names
//! the file and what is wrong with it; nothing here panics on bad bytes, and
//! no buffer is sized from a header before the body is known to hold it.

use std::io::Read;
use std::path::{Path, PathBuf};

pub const IMAGE_MAGIC: u32 = 2051;
pub const LABEL_MAGIC: u32 = 2049;

#[derive(Debug, thiserror::Error)]
pub enum IdxError {
    #[error("{path}: cannot read the file: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: the name ends in .gz but the content is not gzip data ({detail}); re-download the file or remove the .gz suffix if it is raw IDX")]
    NotGzip { path: PathBuf, detail: String },
    #[error("{path}: the gzip data is damaged or cut short ({detail}); delete the file and download it again")]
    BadGzip { path: PathBuf, detail: String },
    #[error("{path}: the file is empty")]
    Empty { path: PathBuf },
    #[error("{path}: expected magic {expected} (0x{expected:08x}), found 0x{found:08x}; this is not an IDX {what} file")]
    WrongMagic {
        path: PathBuf,
        expected: u32,
        found: u32,
        what: &'static str,
    },
    #[error("{path}: the header is cut short ({len} bytes, need {need})")]
    ShortHeader {
        path: PathBuf,
        len: usize,
        need: usize,
    },
    #[error("{path}: the header says {header} but the body holds {body} bytes, expected {expected}; the file is truncated or its header is wrong")]
    BodySize {
        path: PathBuf,
        header: String,
        body: usize,
        expected: u128,
    },
    #[error("{path}: images must be 28x28 pixels, the header says {rows}x{cols}")]
    WrongImageSize { path: PathBuf, rows: u32, cols: u32 },
    #[error("{path}: label {label} at index {index} is out of range 0..=9")]
    BadLabel {
        path: PathBuf,
        index: usize,
        label: u8,
    },
    #[error("{images_path} holds {images} images but {labels_path} holds {labels} labels; the two files do not belong together")]
    CountMismatch {
        images_path: PathBuf,
        images: usize,
        labels_path: PathBuf,
        labels: usize,
    },
}

/// Decoded bytes of a file: gunzipped when the name ends in `.gz`.
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>, IdxError> {
    let raw = std::fs::read(path).map_err(|source| IdxError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if raw.is_empty() {
        return Err(IdxError::Empty {
            path: path.to_path_buf(),
        });
    }
    if path.extension().is_some_and(|e| e == "gz") {
        gunzip(&raw, path)
    } else {
        Ok(raw)
    }
}

/// Largest decoded file accepted (MNIST's training images are 47 MB): a
/// small gzip that unpacks to gigabytes is refused, not allocated.
pub const MAX_DECODED: usize = 512 << 20;

/// Gunzip a whole buffer, with errors that say whether it was gzip at all.
pub fn gunzip(raw: &[u8], path: &Path) -> Result<Vec<u8>, IdxError> {
    if raw.len() < 2 || raw[0] != 0x1f || raw[1] != 0x8b {
        let head: Vec<String> = raw.iter().take(4).map(|b| format!("{b:02x}")).collect();
        return Err(IdxError::NotGzip {
            path: path.to_path_buf(),
            detail: format!("it starts with bytes {}", head.join(" ")),
        });
    }
    let mut out = Vec::with_capacity(raw.len().saturating_mul(4).min(64 << 20));
    flate2::read::GzDecoder::new(raw)
        .take(MAX_DECODED as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| IdxError::BadGzip {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
    if out.len() > MAX_DECODED {
        return Err(IdxError::BadGzip {
            path: path.to_path_buf(),
            detail: format!(
                "it unpacks to more than {} MB, far more than any IDX data set",
                MAX_DECODED >> 20
            ),
        });
    }
    Ok(out)
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn magic(bytes: &[u8], path: &Path, expected: u32, what: &'static str) -> Result<(), IdxError> {
    if bytes.len() < 4 {
        return Err(IdxError::ShortHeader {
            path: path.to_path_buf(),
            len: bytes.len(),
            need: 4,
        });
    }
    let found = be_u32(bytes, 0);
    if found != expected {
        return Err(IdxError::WrongMagic {
            path: path.to_path_buf(),
            expected,
            found,
            what,
        });
    }
    Ok(())
}

/// Parse IDX image bytes: returns (count, pixels of `count*28*28`).
pub fn parse_images(bytes: &[u8], path: &Path) -> Result<(usize, Vec<u8>), IdxError> {
    magic(bytes, path, IMAGE_MAGIC, "image")?;
    if bytes.len() < 16 {
        return Err(IdxError::ShortHeader {
            path: path.to_path_buf(),
            len: bytes.len(),
            need: 16,
        });
    }
    let (n, rows, cols) = (be_u32(bytes, 4), be_u32(bytes, 8), be_u32(bytes, 12));
    if rows != 28 || cols != 28 {
        return Err(IdxError::WrongImageSize {
            path: path.to_path_buf(),
            rows,
            cols,
        });
    }
    let expected = n as u128 * rows as u128 * cols as u128;
    let body = &bytes[16..];
    if body.len() as u128 != expected {
        return Err(IdxError::BodySize {
            path: path.to_path_buf(),
            header: format!("{n} images of {rows}x{cols}"),
            body: body.len(),
            expected,
        });
    }
    Ok((n as usize, body.to_vec()))
}

/// Parse IDX label bytes, checking every label is a digit class 0..=9.
pub fn parse_labels(bytes: &[u8], path: &Path) -> Result<Vec<u8>, IdxError> {
    magic(bytes, path, LABEL_MAGIC, "label")?;
    if bytes.len() < 8 {
        return Err(IdxError::ShortHeader {
            path: path.to_path_buf(),
            len: bytes.len(),
            need: 8,
        });
    }
    let n = be_u32(bytes, 4);
    let body = &bytes[8..];
    if body.len() as u128 != n as u128 {
        return Err(IdxError::BodySize {
            path: path.to_path_buf(),
            header: format!("{n} labels"),
            body: body.len(),
            expected: n as u128,
        });
    }
    if let Some((index, &label)) = body.iter().enumerate().find(|(_, &l)| l > 9) {
        return Err(IdxError::BadLabel {
            path: path.to_path_buf(),
            index,
            label,
        });
    }
    Ok(body.to_vec())
}

/// Read and check a matching pair of image and label files.
pub fn read_pair(images_path: &Path, labels_path: &Path) -> Result<(Vec<u8>, Vec<u8>), IdxError> {
    let (n, pixels) = parse_images(&read_maybe_gz(images_path)?, images_path)?;
    let labels = parse_labels(&read_maybe_gz(labels_path)?, labels_path)?;
    if labels.len() != n {
        return Err(IdxError::CountMismatch {
            images_path: images_path.to_path_buf(),
            images: n,
            labels_path: labels_path.to_path_buf(),
            labels: labels.len(),
        });
    }
    Ok((pixels, labels))
}

/// Encode images as IDX bytes (used by tests, fixtures and the tools that
/// write small data sets).
pub fn encode_images(pixels: &[u8], n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + pixels.len());
    for v in [IMAGE_MAGIC, n as u32, 28, 28] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out.extend_from_slice(pixels);
    out
}

/// Encode labels as IDX bytes.
pub fn encode_labels(labels: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + labels.len());
    out.extend_from_slice(&LABEL_MAGIC.to_be_bytes());
    out.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    out.extend_from_slice(labels);
    out
}

/// Gzip a buffer (default compression).
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).expect("writing to a Vec cannot fail");
    enc.finish().expect("writing to a Vec cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("x-idx3-ubyte")
    }

    #[test]
    fn roundtrip_images_and_labels() {
        let px: Vec<u8> = (0..3 * 784).map(|i| (i % 256) as u8).collect();
        let (n, back) = parse_images(&encode_images(&px, 3), p()).unwrap();
        assert_eq!(n, 3);
        assert_eq!(back, px);
        assert_eq!(
            parse_labels(&encode_labels(&[0, 9, 3]), p()).unwrap(),
            vec![0, 9, 3]
        );
        let gz = gzip(&encode_labels(&[1, 2]));
        assert_eq!(gunzip(&gz, p()).unwrap(), encode_labels(&[1, 2]));
    }

    #[test]
    fn wrong_magic_is_named() {
        let e = parse_images(&encode_labels(&[1]), p()).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("expected magic 2051"), "{msg}");
        assert!(msg.contains("0x00000801"), "{msg}");
    }

    #[test]
    fn truncated_body_and_header() {
        let mut b = encode_images(&[0; 2 * 784], 2);
        b.truncate(b.len() - 10);
        assert!(matches!(
            parse_images(&b, p()),
            Err(IdxError::BodySize { .. })
        ));
        assert!(matches!(
            parse_images(&b[..10], p()),
            Err(IdxError::ShortHeader { .. })
        ));
        assert!(matches!(
            parse_images(&[], p()),
            Err(IdxError::ShortHeader { .. })
        ));
    }

    #[test]
    fn huge_header_count_does_not_allocate() {
        let mut b = encode_images(&[0; 784], 1);
        b[4..8].copy_from_slice(&1_000_000_000u32.to_be_bytes());
        let e = parse_images(&b, p()).unwrap_err();
        assert!(e.to_string().contains("1000000000 images"), "{e}");
    }

    #[test]
    fn wrong_dims() {
        let mut b = encode_images(&[0; 784], 1);
        b[8..12].copy_from_slice(&32u32.to_be_bytes());
        assert!(matches!(
            parse_images(&b, p()),
            Err(IdxError::WrongImageSize { .. })
        ));
    }

    #[test]
    fn label_out_of_range() {
        let e = parse_labels(&encode_labels(&[1, 10]), p()).unwrap_err();
        assert!(matches!(
            e,
            IdxError::BadLabel {
                index: 1,
                label: 10,
                ..
            }
        ));
    }

    #[test]
    fn not_gzip_and_bad_gzip() {
        assert!(matches!(
            gunzip(b"\x00\x00\x08\x03abc", p()),
            Err(IdxError::NotGzip { .. })
        ));
        let gz = gzip(&encode_images(&[7; 784 * 4], 4));
        assert!(matches!(
            gunzip(&gz[..gz.len() / 2], p()),
            Err(IdxError::BadGzip { .. })
        ));
        let mut garbage = vec![0x1f, 0x8b];
        garbage.extend_from_slice(&[0xAB; 64]);
        assert!(matches!(
            gunzip(&garbage, p()),
            Err(IdxError::BadGzip { .. })
        ));
    }
}
