//! AdamW (decoupled weight decay, as `torch.optim.AdamW`) over the trainable variables of a
//! `VarStore`, with its moments saved and restored as safetensors, and global-norm clipping.

use std::path::Path;

use tch::{nn, Kind, Tensor};

use crate::{Error, Result};

/// AdamW hyper-parameters (the learning rate is given per step).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWConfig {
    /// `beta1`, `beta2`.
    pub betas: [f64; 2],
    /// Added to `sqrt(v_hat)`.
    pub eps: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
}

/// The optimiser and its state.
#[derive(Debug)]
pub struct AdamW {
    config: AdamWConfig,
    names: Vec<String>,
    params: Vec<Tensor>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    step: i64,
}

/// The trainable variables of a store, sorted by name.
pub fn trainable(vs: &nn::VarStore) -> Vec<(String, Tensor)> {
    let mut vars: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .filter(|(_, t)| t.requires_grad())
        .collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

/// Zeroes the gradients of the variables.
pub fn zero_grad(vs: &nn::VarStore) {
    for (_, mut t) in trainable(vs) {
        t.zero_grad();
    }
}

/// Scales the gradients so their global L2 norm is at most `max_norm` (0: no clipping). Returns
/// the norm before clipping.
pub fn clip_grad_norm(vs: &nn::VarStore, max_norm: f64) -> f64 {
    tch::no_grad(|| {
        let grads: Vec<Tensor> = trainable(vs)
            .into_iter()
            .map(|(_, t)| t.grad())
            .filter(|g| g.defined())
            .collect();
        let total: f64 = grads
            .iter()
            .map(|g| {
                g.to_kind(Kind::Double)
                    .square()
                    .sum(Kind::Double)
                    .double_value(&[])
            })
            .sum::<f64>()
            .sqrt();
        if max_norm > 0.0 && total > max_norm {
            let scale = max_norm / (total + 1e-6);
            for mut g in grads {
                let _ = g.g_mul_scalar_(scale);
            }
        }
        total
    })
}

impl AdamW {
    /// An optimiser over the trainable variables of `vs`, with zero moments.
    pub fn new(vs: &nn::VarStore, config: AdamWConfig) -> Self {
        let vars = trainable(vs);
        let m = vars.iter().map(|(_, t)| t.zeros_like().detach()).collect();
        let v = vars.iter().map(|(_, t)| t.zeros_like().detach()).collect();
        let (names, params) = vars.into_iter().unzip();
        AdamW {
            config,
            names,
            params,
            m,
            v,
            step: 0,
        }
    }

    /// Updates taken so far.
    pub fn steps(&self) -> i64 {
        self.step
    }

    /// One update with learning rate `lr` from the current gradients (variables without a
    /// gradient are left alone, their moments too).
    pub fn step(&mut self, lr: f64) {
        self.step += 1;
        let [b1, b2] = self.config.betas;
        let bc1 = 1.0 - b1.powi(self.step as i32);
        let bc2 = 1.0 - b2.powi(self.step as i32);
        let wd = self.config.weight_decay;
        let eps = self.config.eps;
        tch::no_grad(|| {
            for ((p, m), v) in self.params.iter_mut().zip(&mut self.m).zip(&mut self.v) {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                if wd != 0.0 {
                    let _ = p.g_mul_scalar_(1.0 - lr * wd);
                }
                let _ = m.g_mul_scalar_(b1);
                let _ = m.g_add_(&(&g * (1.0 - b1)));
                let _ = v.g_mul_scalar_(b2);
                let _ = v.g_add_(&(g.square() * (1.0 - b2)));
                let denom = (&*v / bc2).sqrt() + eps;
                let upd = (&*m / bc1) / denom * lr;
                let _ = p.g_sub_(&upd);
            }
        });
    }

    /// Writes the moments and the step count to a safetensors file.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut named: Vec<(String, Tensor)> = Vec::with_capacity(2 * self.names.len() + 1);
        named.push(("step".into(), Tensor::from_slice(&[self.step])));
        for ((n, m), v) in self.names.iter().zip(&self.m).zip(&self.v) {
            named.push((format!("m.{n}"), m.shallow_clone()));
            named.push((format!("v.{n}"), v.shallow_clone()));
        }
        Tensor::write_safetensors(&named, path)?;
        Ok(())
    }

    /// Restores what [`AdamW::save`] wrote; every moment must be present with the right shape.
    pub fn load(&mut self, path: &Path) -> Result<()> {
        let bad = |reason: String| Error::Checkpoint {
            path: path.to_path_buf(),
            reason,
        };
        let map: std::collections::HashMap<String, Tensor> =
            Tensor::read_safetensors(path)?.into_iter().collect();
        let step = map
            .get("step")
            .ok_or_else(|| bad("optimizer state has no `step`".into()))?;
        self.step = step.int64_value(&[0]);
        for ((n, m), v) in self.names.iter().zip(&mut self.m).zip(&mut self.v) {
            for (prefix, dst) in [("m", &mut *m), ("v", &mut *v)] {
                let key = format!("{prefix}.{n}");
                let src = map
                    .get(&key)
                    .ok_or_else(|| bad(format!("optimizer state has no `{key}`")))?;
                if src.size() != dst.size() {
                    return Err(bad(format!(
                        "`{key}` has shape {:?}, the model {:?}",
                        src.size(),
                        dst.size()
                    )));
                }
                tch::no_grad(|| dst.f_copy_(src))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_step_matches_a_reference_computed_by_hand() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let w = vs
            .root()
            .var_copy("w", &Tensor::from_slice(&[1.0f32, -2.0, 0.5]));
        let cfg = AdamWConfig {
            betas: [0.9, 0.99],
            eps: 1e-8,
            weight_decay: 0.1,
        };
        let mut opt = AdamW::new(&vs, cfg);
        let g = [0.3f64, -0.1, 2.0];
        let run = |opt: &mut AdamW, steps: usize| {
            for _ in 0..steps {
                zero_grad(&vs);
                let gt = Tensor::from_slice(&[0.3f32, -0.1, 2.0]);
                (&w * gt).sum(Kind::Float).backward();
                opt.step(0.01);
            }
        };
        run(&mut opt, 2);
        // Reference: the torch.optim.AdamW update, by hand in f64, two steps.
        let (lr, b1, b2, eps, wd) = (0.01, 0.9, 0.99, 1e-8, 0.1);
        let mut p = [1.0f64, -2.0, 0.5];
        let (mut m, mut v) = ([0.0f64; 3], [0.0f64; 3]);
        for t in 1..=2 {
            for i in 0..3 {
                p[i] *= 1.0 - lr * wd;
                m[i] = b1 * m[i] + (1.0 - b1) * g[i];
                v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
                let mh = m[i] / (1.0 - b1.powi(t));
                let vh = v[i] / (1.0 - b2.powi(t));
                p[i] -= lr * mh / (vh.sqrt() + eps);
            }
        }
        let got = Vec::<f32>::try_from(&w).unwrap();
        for i in 0..3 {
            assert!((got[i] as f64 - p[i]).abs() < 1e-6, "{got:?} vs {p:?}");
        }
    }

    #[test]
    fn clip_grad_norm_scales_to_the_limit() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let a = vs.root().var_copy("a", &Tensor::from_slice(&[0.0f32, 0.0]));
        let b = vs.root().var_copy("b", &Tensor::from_slice(&[0.0f32]));
        ((&a * Tensor::from_slice(&[3.0f32, 0.0])).sum(Kind::Float)
            + (&b * Tensor::from_slice(&[4.0f32])).sum(Kind::Float))
        .backward();
        let n = clip_grad_norm(&vs, 1.0);
        assert!((n - 5.0).abs() < 1e-9);
        let ga = Vec::<f32>::try_from(a.grad()).unwrap();
        assert!((ga[0] - 0.6).abs() < 1e-5);
    }

    #[test]
    fn state_round_trips() {
        let dir = std::env::temp_dir().join(format!("wst-adamw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let w = vs.root().var_copy("w", &Tensor::from_slice(&[1.0f32, 2.0]));
        let cfg = AdamWConfig {
            betas: [0.9, 0.999],
            eps: 1e-8,
            weight_decay: 0.0,
        };
        let mut a = AdamW::new(&vs, cfg);
        (&w * 3.0).sum(Kind::Float).backward();
        a.step(0.1);
        let path = dir.join("opt.safetensors");
        a.save(&path).unwrap();
        let mut b = AdamW::new(&vs, cfg);
        b.load(&path).unwrap();
        assert_eq!(b.steps(), 1);
        assert!(b.m[0].equal(&a.m[0]) && b.v[0].equal(&a.v[0]));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
