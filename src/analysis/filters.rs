//! What a model's units look for: its filters, layer by layer (the first
//! layer's weights of a dense model, one 28x28 image per hidden unit; every
//! 3x3 kernel of a conv model).

use crate::data::{IMAGE_SIDE, PIXELS};
use crate::model::Autoencoder;

/// One layer's filters.
#[derive(Clone, Debug, PartialEq)]
pub struct FilterLayer {
    /// The layer's weight name without `.weight` (`enc.0`, `dec.layer2`).
    pub name: String,
    /// How the views and the report caption it.
    pub label: String,
    /// Side of each filter's square image (28 dense, 3 conv).
    pub side: usize,
    /// Each filter's `side * side` weights.
    pub filters: Vec<Vec<f32>>,
}

/// The conv layers, encoder first.
const CONV_LAYERS: [&str; 6] = [
    "enc.conv1",
    "enc.conv2",
    "enc.conv3",
    "dec.layer3",
    "dec.layer2",
    "dec.layer1",
];

fn weights(model: &Autoencoder, name: &str) -> Result<(Vec<f32>, Vec<usize>), String> {
    let t = model.param(&format!("{name}.weight"));
    let dims = t.dims().to_vec();
    let v = t
        .flatten_all()
        .and_then(|t| t.to_vec1::<f32>())
        .map_err(|e| e.to_string())?;
    Ok((v, dims))
}

/// Every filter of `model`: for a dense model the first layer (one filter
/// per hidden unit), for a conv model every kernel of every layer.
pub fn filters(model: &Autoencoder) -> Result<Vec<FilterLayer>, String> {
    if model.config.is_conv() {
        CONV_LAYERS
            .iter()
            .map(|name| {
                let (w, dims) = weights(model, name)?;
                Ok(FilterLayer {
                    name: name.to_string(),
                    label: format!("{name} ({}×{} kernels)", dims[0], dims[1]),
                    side: 3,
                    filters: w.chunks_exact(9).map(<[f32]>::to_vec).collect(),
                })
            })
            .collect()
    } else {
        let (w, dims) = weights(model, "enc.0")?; // [hidden, 784]
        Ok(vec![FilterLayer {
            name: "enc.0".into(),
            label: format!("enc.0: {} units", dims[0]),
            side: IMAGE_SIDE,
            filters: w.chunks_exact(PIXELS).map(<[f32]>::to_vec).collect(),
        }])
    }
}

/// The layer `name` of `filters`.
pub fn layer<'a>(filters: &'a [FilterLayer], name: &str) -> Option<&'a FilterLayer> {
    filters.iter().find(|l| l.name == name)
}

/// What each code unit of a dense model draws.
#[derive(Clone, Debug, PartialEq)]
pub struct Dictionary {
    /// The units, most often firing first.
    pub order: Vec<usize>,
    /// Per unit: the image decoded from the mean code with that unit alone
    /// at its 95th percentile over the test images.
    pub images: Vec<Vec<f32>>,
    /// Per unit: the fraction of test images on which it fires (> 1e-3).
    pub fire_rate: Vec<f64>,
    /// Per unit: its encoder filter, where the code is the first layer
    /// (shallow, sparse and denoising models).
    pub encoder: Option<Vec<Vec<f32>>>,
}

/// Test images behind a dictionary.
pub const DICTIONARY_IMAGES: usize = 2000;

/// The decoder dictionary of a dense model on the first test `images`:
/// for each code unit j, decode the code whose units sit at their means
/// but j at its 95th percentile.
pub fn dictionary(model: &Autoencoder, images: &[f32]) -> Result<Dictionary, String> {
    if model.config.is_conv() {
        return Err(format!(
            "{}: the dictionary is for dense models (a conv code is a map, not units)",
            model.config.preset
        ));
    }
    let dim = model.config.bottleneck();
    let codes = model.encode(images).map_err(|e| e.to_string())?;
    let n = codes.len() / dim.max(1);
    if n == 0 {
        return Err("no test images".into());
    }
    let mut mean = vec![0f32; dim];
    let mut fires = vec![0usize; dim];
    for row in codes.chunks_exact(dim) {
        for ((m, f), &v) in mean.iter_mut().zip(fires.iter_mut()).zip(row) {
            *m += v / n as f32;
            *f += (v > 1e-3) as usize;
        }
    }
    let mut column = vec![0f32; n];
    let mut decode_in = Vec::with_capacity(dim * dim);
    for j in 0..dim {
        for (c, row) in column.iter_mut().zip(codes.chunks_exact(dim)) {
            *c = row[j];
        }
        column.sort_by(f32::total_cmp);
        let high = column[((n - 1) as f32 * 0.95).round() as usize];
        let mut code = mean.clone();
        code[j] = high;
        decode_in.extend(code);
    }
    let decoded = model.decode(&decode_in).map_err(|e| e.to_string())?;
    let fire_rate: Vec<f64> = fires.iter().map(|&f| f as f64 / n as f64).collect();
    let mut order: Vec<usize> = (0..dim).collect();
    order.sort_by(|&a, &b| fire_rate[b].total_cmp(&fire_rate[a]));
    // the code is the first layer's output: unit j's filter is its row
    let encoder = match &model.config.arch {
        crate::model::Arch::Dense { encoder, .. } if encoder.len() == 1 => {
            Some(filters(model)?.remove(0).filters)
        }
        _ => None,
    };
    Ok(Dictionary {
        order,
        images: decoded.chunks_exact(PIXELS).map(<[f32]>::to_vec).collect(),
        fire_rate,
        encoder,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelConfig;
    use candle_core::Device;

    #[test]
    fn every_filter_of_dense_and_conv_models() {
        let dense =
            Autoencoder::new(&ModelConfig::preset("shallow-64").unwrap(), 1, &Device::Cpu).unwrap();
        let f = filters(&dense).unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!((f[0].side, f[0].filters.len()), (28, 64));
        // unit 5's filter is row 5 of the first weight matrix
        let w = dense.param("enc.0.weight").to_vec2::<f32>().unwrap();
        assert_eq!(f[0].filters[5], w[5]);
        let conv =
            Autoencoder::new(&ModelConfig::preset("conv-both").unwrap(), 1, &Device::Cpu).unwrap();
        let f = filters(&conv).unwrap();
        assert_eq!(f.len(), 6);
        assert!(f.iter().all(|l| l.side == 3 && !l.filters.is_empty()));
        let n: usize = f.iter().map(|l| l.filters.len() * 9).sum();
        let weights: usize = CONV_LAYERS
            .iter()
            .map(|l| conv.param(&format!("{l}.weight")).elem_count())
            .sum();
        assert_eq!(n, weights);
        assert!(layer(&f, "dec.layer2").is_some());
    }

    #[test]
    fn a_dictionary_decodes_one_unit_high_at_a_time() {
        let m =
            Autoencoder::new(&ModelConfig::preset("shallow-64").unwrap(), 1, &Device::Cpu).unwrap();
        let mut rng = crate::rng::Rng::new(3);
        let x: Vec<f32> = (0..50 * PIXELS).map(|_| rng.uniform()).collect();
        let d = dictionary(&m, &x).unwrap();
        assert_eq!(
            (d.images.len(), d.order.len(), d.fire_rate.len()),
            (64, 64, 64)
        );
        assert!(d
            .order
            .windows(2)
            .all(|w| d.fire_rate[w[0]] >= d.fire_rate[w[1]]));
        assert_eq!(d.encoder.as_ref().map(Vec::len), Some(64));
        // unit j's image is the decoder's at the mean code with j raised
        let codes = m.encode(&x).unwrap();
        let j = d.order[0];
        let mut col: Vec<f32> = codes.chunks_exact(64).map(|r| r[j]).collect();
        col.sort_by(f32::total_cmp);
        let mut code: Vec<f32> = (0..64)
            .map(|u| codes.chunks_exact(64).map(|r| r[u]).sum::<f32>() / 50.0)
            .collect();
        code[j] = col[(49.0f32 * 0.95).round() as usize];
        let want = m.decode(&code).unwrap();
        let diff = d.images[j]
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(diff < 1e-5, "{diff}");
        let conv = Autoencoder::new(
            &ModelConfig::preset("conv-deconv").unwrap(),
            1,
            &Device::Cpu,
        )
        .unwrap();
        assert!(dictionary(&conv, &x).is_err());
        let deep =
            Autoencoder::new(&ModelConfig::preset("deep").unwrap(), 1, &Device::Cpu).unwrap();
        assert!(dictionary(&deep, &x).unwrap().encoder.is_none());
    }
}
