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
}
