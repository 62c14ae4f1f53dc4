//! Input corruption for denoising autoencoders and the Denoise view: additive
//! Gaussian (std = level, clipped to [0, 1]), masking (a fraction = level of
//! pixels set to 0) and salt-and-pepper (a fraction = level of pixels set to
//! 0 or 1 with equal odds). Drawn from a seeded generator.

use serde::{Deserialize, Serialize};

use crate::rng::Rng;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum NoiseKind {
    #[default]
    Gaussian,
    Masking,
    SaltPepper,
}

impl NoiseKind {
    pub const ALL: [NoiseKind; 3] = [
        NoiseKind::Gaussian,
        NoiseKind::Masking,
        NoiseKind::SaltPepper,
    ];

    pub fn label(self) -> &'static str {
        match self {
            NoiseKind::Gaussian => "Gaussian",
            NoiseKind::Masking => "masking",
            NoiseKind::SaltPepper => "salt-and-pepper",
        }
    }

    pub fn slug(self) -> &'static str {
        match self {
            NoiseKind::Gaussian => "gaussian",
            NoiseKind::Masking => "masking",
            NoiseKind::SaltPepper => "salt-pepper",
        }
    }
}

/// A kind of noise at a level in [0, 1]; level 0 is no noise.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct Noise {
    pub kind: NoiseKind,
    pub level: f32,
}

impl Noise {
    pub fn none() -> Self {
        Noise::default()
    }

    pub fn is_none(&self) -> bool {
        self.level <= 0.0
    }

    /// Corrupt `pixels` (values in [0, 1]) in place.
    pub fn apply(&self, pixels: &mut [f32], rng: &mut Rng) {
        if self.is_none() {
            return;
        }
        let level = self.level;
        match self.kind {
            NoiseKind::Gaussian => {
                let mut z = [0f32; 256];
                for chunk in pixels.chunks_mut(z.len()) {
                    let z = &mut z[..chunk.len()];
                    rng.fill_normal(z);
                    for (p, &z) in chunk.iter_mut().zip(z.iter()) {
                        *p = (*p + level * z).clamp(0.0, 1.0);
                    }
                }
            }
            NoiseKind::Masking => {
                for p in pixels {
                    if rng.uniform() < level {
                        *p = 0.0;
                    }
                }
            }
            NoiseKind::SaltPepper => {
                for p in pixels {
                    let u = rng.uniform();
                    if u < level {
                        *p = if u < level * 0.5 { 0.0 } else { 1.0 };
                    }
                }
            }
        }
    }
}

impl std::fmt::Display for Noise {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_none() {
            f.write_str("none")
        } else {
            write!(f, "{}:{}", self.kind.slug(), self.level)
        }
    }
}

impl std::str::FromStr for Noise {
    type Err = String;
    /// `gaussian:0.5`, `masking:0.3`, `salt-pepper:0.1`, or `none`.
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "none" {
            return Ok(Noise::none());
        }
        let (kind, level) = s
            .split_once(':')
            .ok_or_else(|| format!("noise {s:?}: use KIND:LEVEL, e.g. gaussian:0.5"))?;
        let kind = match kind {
            "gaussian" => NoiseKind::Gaussian,
            "masking" | "mask" => NoiseKind::Masking,
            "salt-pepper" | "saltpepper" | "sp" => NoiseKind::SaltPepper,
            _ => {
                return Err(format!(
                    "unknown noise kind {kind:?}: use gaussian, masking or salt-pepper"
                ))
            }
        };
        let level: f32 = level
            .parse()
            .map_err(|_| format!("noise level {level:?} is not a number"))?;
        if !(0.0..=1.0).contains(&level) {
            return Err(format!("noise level {level} must lie in 0..=1"));
        }
        Ok(Noise { kind, level })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display() {
        let n: Noise = "gaussian:0.5".parse().unwrap();
        assert_eq!(
            n,
            Noise {
                kind: NoiseKind::Gaussian,
                level: 0.5
            }
        );
        assert_eq!(n.to_string(), "gaussian:0.5");
        assert!("blur:0.1".parse::<Noise>().is_err());
        assert!("masking:1.5".parse::<Noise>().is_err());
        assert!("none".parse::<Noise>().unwrap().is_none());
    }

    #[test]
    fn masking_fraction_and_clipping() {
        let mut rng = Rng::new(1);
        let mut x = vec![1.0f32; 100_000];
        Noise {
            kind: NoiseKind::Masking,
            level: 0.3,
        }
        .apply(&mut x, &mut rng);
        let zeros = x.iter().filter(|&&v| v == 0.0).count() as f32 / 1e5;
        assert!((zeros - 0.3).abs() < 0.01, "{zeros}");
        let mut g = vec![0.5f32; 10_000];
        Noise {
            kind: NoiseKind::Gaussian,
            level: 0.9,
        }
        .apply(&mut g, &mut rng);
        assert!(g.iter().all(|v| (0.0..=1.0).contains(v)));
        let mut sp = vec![0.5f32; 100_000];
        Noise {
            kind: NoiseKind::SaltPepper,
            level: 0.2,
        }
        .apply(&mut sp, &mut rng);
        let salt = sp.iter().filter(|&&v| v == 1.0).count() as f32 / 1e5;
        let pepper = sp.iter().filter(|&&v| v == 0.0).count() as f32 / 1e5;
        assert!((salt - 0.1).abs() < 0.01 && (pepper - 0.1).abs() < 0.01);
    }
}
