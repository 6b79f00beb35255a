//! AdamW (decoupled weight decay, as `torch.optim.AdamW`) over the trainable variables of a
//! `VarStore`, with f32 master weights for variables kept in a lower precision, its state saved
//! and restored as safetensors, and global-norm clipping.
//!
//! Mixed precision: a model in bf16 or f16 runs its forward and backward passes in that kind,
//! but an update of `lr = 1e-6` is far below bf16's spacing near typical weights (about 2% of
//! N(0, 0.02) weights would change per step, RMSNorm weights at 1.0 never). So the optimiser
//! keeps an f32 master copy of every such variable and f32 moments; clipping, weight decay and
//! the update run in f32 on the master, which is then cast back into the model's variable. An
//! f32 variable is its own master (no copy). The checkpoint's weights are the masters
//! ([`AdamW::save_weights`]) so a resume continues bit for bit.
//!
//! The update is written with in-place operations (`lerp_`, `square_`, `addcdiv_`): one
//! temporary per variable (the denominator) instead of one per arithmetic operation.

use std::path::Path;

use tch::{nn, Kind, Tensor};
use wst_models::WeightStore;

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
    /// f32 copies of the variables that are not f32 (`None`: the variable is its own master).
    master: Vec<Option<Tensor>>,
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

/// The global L2 norm of `grads` as a 0-d f32 tensor on their device (each computed in f32,
/// nothing read back to the host).
fn global_norm(grads: &[Tensor]) -> Option<Tensor> {
    let norms: Vec<Tensor> = grads
        .iter()
        .map(|g| g.norm_scalaropt_dtype(2.0, Kind::Float))
        .collect();
    if norms.is_empty() {
        return None;
    }
    Some(Tensor::stack(&norms, 0).norm())
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
        let Some(total) = global_norm(&grads) else {
            return 0.0;
        };
        if max_norm > 0.0 {
            let coef = clip_coefficient(&total, max_norm);
            for mut g in grads {
                let _ = g.g_mul_(&coef.to_kind(g.kind()));
            }
        }
        total.double_value(&[])
    })
}

/// `min(1, max_norm / (norm + 1e-6))` on the device, as `torch.nn.utils.clip_grad_norm_`.
fn clip_coefficient(norm: &Tensor, max_norm: f64) -> Tensor {
    (norm + 1e-6)
        .reciprocal()
        .g_mul_scalar(max_norm)
        .clamp_max(1.0)
}

impl AdamW {
    /// An optimiser over the trainable variables of `vs`, with zero moments; variables that are
    /// not f32 get an f32 master copy.
    pub fn new(vs: &nn::VarStore, config: AdamWConfig) -> Self {
        let vars = trainable(vs);
        let f32_zeros = |t: &Tensor| Tensor::zeros(t.size(), (Kind::Float, t.device()));
        let m = vars.iter().map(|(_, t)| f32_zeros(t)).collect();
        let v = vars.iter().map(|(_, t)| f32_zeros(t)).collect();
        let master = vars
            .iter()
            .map(|(_, t)| (t.kind() != Kind::Float).then(|| t.detach().to_kind(Kind::Float)))
            .collect();
        let (names, params) = vars.into_iter().unzip();
        AdamW {
            config,
            names,
            params,
            master,
            m,
            v,
            step: 0,
        }
    }

    /// Updates taken so far.
    pub fn steps(&self) -> i64 {
        self.step
    }

    /// Bytes of optimiser state held on the device: the f32 moments and f32 masters.
    pub fn state_bytes(&self) -> u64 {
        let n = |t: &Tensor| t.numel() as u64 * 4;
        self.m.iter().map(n).sum::<u64>()
            + self.v.iter().map(n).sum::<u64>()
            + self.master.iter().flatten().map(n).sum::<u64>()
    }

    /// The f32 weights the optimiser updates, by variable name (the master copy, or the variable
    /// itself when it is f32).
    pub fn master_weights(&self) -> Vec<(String, Tensor)> {
        self.names
            .iter()
            .zip(self.params.iter().zip(&self.master))
            .map(|(n, (p, m))| (n.clone(), m.as_ref().unwrap_or(p).shallow_clone()))
            .collect()
    }

    /// One update with learning rate `lr` from the current gradients (variables without a
    /// gradient are left alone, their moments too). The gradients are consumed: they hold
    /// scratch values afterwards, so zero them before the next backward pass.
    pub fn step(&mut self, lr: f64) {
        self.step_clipped(lr, 0.0);
    }

    /// Clips the gradients to a global norm of `max_norm` (0: no clipping), in f32, then takes
    /// one update. Returns the norm before clipping as a 0-d f32 tensor on the device (read it
    /// when convenient: nothing here waits for the device).
    pub fn step_clipped(&mut self, lr: f64, max_norm: f64) -> Option<Tensor> {
        self.step += 1;
        let [b1, b2] = self.config.betas;
        let bc1 = 1.0 - b1.powi(self.step as i32);
        let bc2 = 1.0 - b2.powi(self.step as i32);
        let wd = self.config.weight_decay;
        // p -= lr * m_hat / (sqrt(v_hat) + eps)  ==  p += m / d  with
        // d = -(sqrt(v) + eps * sqrt(bc2)) * bc1 / (lr * sqrt(bc2)).
        let eps_scaled = self.config.eps * bc2.sqrt();
        let d_scale = -bc1 / (lr * bc2.sqrt());
        tch::no_grad(|| {
            let grads: Vec<(usize, Tensor)> = self
                .params
                .iter()
                .enumerate()
                .map(|(i, p)| (i, p.grad()))
                .filter(|(_, g)| g.defined())
                .collect();
            let just_grads: Vec<Tensor> = grads.iter().map(|(_, g)| g.shallow_clone()).collect();
            let norm = global_norm(&just_grads);
            let coef = match (&norm, max_norm > 0.0) {
                (Some(n), true) => Some(clip_coefficient(n, max_norm)),
                _ => None,
            };
            for (i, g) in grads {
                let mut g = if g.kind() == Kind::Float {
                    g
                } else {
                    g.to_kind(Kind::Float)
                };
                if let Some(c) = &coef {
                    let _ = g.g_mul_(c);
                }
                let p = &mut self.params[i];
                let w = self.master[i].as_mut().unwrap_or(p);
                if wd != 0.0 {
                    let _ = w.g_mul_scalar_(1.0 - lr * wd);
                }
                let _ = self.m[i].lerp_(&g, 1.0 - b1);
                let _ = g.square_();
                let _ = self.v[i].lerp_(&g, 1.0 - b2);
                let mut d = self.v[i].sqrt();
                let _ = d.g_add_scalar_(eps_scaled);
                let _ = d.g_mul_scalar_(d_scale);
                let _ = w.addcdiv_(&self.m[i], &d);
                if let Some(master) = &self.master[i] {
                    self.params[i].copy_(master);
                }
            }
            norm
        })
    }

    /// Writes every variable of `vs` to a safetensors file under its name, the trainable ones as
    /// their f32 masters (so a checkpoint of a bf16 model resumes exactly; loaders cast to the
    /// kind they need).
    pub fn save_weights(&self, vs: &nn::VarStore, path: &Path) -> Result<()> {
        let masters: std::collections::HashMap<&str, &Tensor> = self
            .names
            .iter()
            .zip(self.params.iter().zip(&self.master))
            .map(|(n, (p, m))| (n.as_str(), m.as_ref().unwrap_or(p)))
            .collect();
        let mut named: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .map(|(n, t)| {
                let t = masters.get(n.as_str()).map_or(t, |m| m.shallow_clone());
                (n, t)
            })
            .collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        Tensor::write_safetensors(&named, path)?;
        Ok(())
    }

    /// Takes the f32 masters from a weights file written by [`AdamW::save_weights`] (the
    /// variables themselves are loaded by [`crate::lm::load_weights`]).
    pub fn load_masters(&mut self, store: &mut WeightStore) -> Result<()> {
        for ((name, p), master) in self.names.iter().zip(&self.params).zip(&mut self.master) {
            if let Some(dst) = master {
                let src = store.take(name, &p.size())?;
                tch::no_grad(|| dst.f_copy_(&src))?;
            }
        }
        Ok(())
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
        let mut store = WeightStore::open_files(&[path.to_path_buf()])?;
        let step = store.take("step", &[1])?;
        self.step = step.int64_value(&[0]);
        for ((n, m), v) in self.names.iter().zip(&mut self.m).zip(&mut self.v) {
            for (prefix, dst) in [("m", &mut *m), ("v", &mut *v)] {
                let key = format!("{prefix}.{n}");
                if !store.contains(&key) {
                    return Err(bad(format!("optimizer state has no `{key}`")));
                }
                let src = store.take(&key, &dst.size())?;
                tch::no_grad(|| dst.f_copy_(&src))?;
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
