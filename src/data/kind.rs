//! The data sets aelab knows, their image size, file names and checksums (no I/O here:
//! the checkpoint fuzz target compiles this file on its own).

use serde::{Deserialize, Serialize};

/// Side of every image, in pixels.
pub const IMAGE_SIDE: usize = 28;
/// Pixels of every image.
pub const PIXELS: usize = IMAGE_SIDE * IMAGE_SIDE;

/// The data sets aelab knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum DatasetKind {
    #[default]
    #[serde(rename = "mnist")]
    Mnist,
    #[serde(rename = "fashion-mnist")]
    FashionMnist,
}

impl DatasetKind {
    pub const ALL: [DatasetKind; 2] = [DatasetKind::Mnist, DatasetKind::FashionMnist];

    /// Folder name under the data directory, also the CLI spelling.
    pub fn slug(self) -> &'static str {
        match self {
            DatasetKind::Mnist => "mnist",
            DatasetKind::FashionMnist => "fashion-mnist",
        }
    }

    pub fn display_name(self) -> &'static str {
        match self {
            DatasetKind::Mnist => "MNIST",
            DatasetKind::FashionMnist => "Fashion-MNIST",
        }
    }

    /// Public mirrors, tried in order; `AELAB_MIRRORS_<SLUG>` or `AELAB_MIRRORS` (comma-separated base
    /// URLs, each followed by the file name) replaces them.
    pub fn mirrors(self) -> Vec<String> {
        if let Some(list) = crate::env::mirrors(self.slug()) {
            return list;
        }
        match self {
            DatasetKind::Mnist => vec![
                "https://ossci-datasets.s3.amazonaws.com/mnist/".into(),
                "https://storage.googleapis.com/cvdf-datasets/mnist/".into(),
            ],
            DatasetKind::FashionMnist => vec![
                "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/".into(),
                "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"
                    .into(),
            ],
        }
    }

    /// The four files with the SHA-256 of their decoded content.
    pub fn files(self) -> [DataFile; 4] {
        let sums = match self {
            DatasetKind::Mnist => [
                "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
                "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
                "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
                "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
            ],
            DatasetKind::FashionMnist => [
                "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
                "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
                "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
                "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
            ],
        };
        let names = [TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS];
        std::array::from_fn(|i| DataFile {
            name: names[i],
            sha256: sums[i],
        })
    }
}

impl std::str::FromStr for DatasetKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "mnist" => Ok(DatasetKind::Mnist),
            "fashion-mnist" | "fashion_mnist" | "fashion" => Ok(DatasetKind::FashionMnist),
            _ => Err(format!(
                "unknown data set {s:?}: use mnist or fashion-mnist"
            )),
        }
    }
}

pub const TRAIN_IMAGES: &str = "train-images-idx3-ubyte.gz";
pub const TRAIN_LABELS: &str = "train-labels-idx1-ubyte.gz";
pub const TEST_IMAGES: &str = "t10k-images-idx3-ubyte.gz";
pub const TEST_LABELS: &str = "t10k-labels-idx1-ubyte.gz";

#[derive(Clone, Copy, Debug)]
pub struct DataFile {
    pub name: &'static str,
    /// SHA-256 of the uncompressed IDX bytes.
    pub sha256: &'static str,
}
