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
//! On the CPU the update of every f32 weight (the variable, or its master) is one fused pass
//! over the weight, its gradient and its moments ([`fused`]), spread over the intra-op
//! threads, the gradient only read. Elsewhere (CUDA) it is written with in-place operations
//! (`lerp_`, `square_`, `addcdiv_`): one temporary per variable (the denominator) instead of
//! one per arithmetic operation. The two agree to float rounding.
//!
//! Gradients are dropped, not zeroed, between updates ([`zero_grad`]): the first backward pass
//! writes them, and no gradient memory is held while the forward pass runs.

use std::path::Path;

use tch::{nn, Kind, Tensor};
use wst_models::WeightStore;

use crate::{Error, Result};

mod fused;

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
    /// Whether CPU f32 weights take the fused kernel (tests turn it off to compare).
    fused: bool,
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

/// Drops the gradients of the trainable variables (PyTorch's `zero_grad(set_to_none=True)`):
/// the next backward pass writes fresh ones instead of adding into zeros, and no gradient
/// memory is held until then. A variable the next backward does not reach has no gradient
/// (and [`AdamW::step`] leaves it alone).
pub fn zero_grad(vs: &nn::VarStore) {
    let vars = trainable(vs);
    // libtorch's optimiser `zero_grad` resets each parameter's gradient to undefined; an SGD
    // holding the variables is tch's handle to it (it never steps).
    let dropped = tch::COptimizer::sgd(0.0, 0.0, 0.0, 0.0, false).and_then(|mut opt| {
        for (_, t) in &vars {
            opt.add_parameters(t, 0)?;
        }
        opt.zero_grad()
    });
    if dropped.is_err() {
        for (_, mut t) in vars {
            t.zero_grad();
        }
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
            fused: true,
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
    /// gradient are left alone, their moments too). The gradients are consumed: they may hold
    /// scratch values afterwards, so drop them ([`zero_grad`]) before the next backward pass.
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
        let mut consts = fused::Consts {
            decay: (1.0 - lr * wd) as f32,
            one_minus_b1: (1.0 - b1) as f32,
            one_minus_b2: (1.0 - b2) as f32,
            step_size: (lr / bc1) as f32,
            bc2_sqrt: bc2.sqrt() as f32,
            eps: self.config.eps as f32,
            grad_scale: 1.0,
        };
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
            // (index, f32 gradient) of the variables the fused CPU kernel updates.
            let mut on_cpu: Vec<(usize, Tensor)> = Vec::new();
            for (i, g) in grads {
                let mut g = if g.kind() == Kind::Float {
                    g
                } else {
                    g.to_kind(Kind::Float)
                };
                let w = self.master[i].as_ref().unwrap_or(&self.params[i]);
                if self.fused
                    && [w, &g, &self.m[i], &self.v[i]]
                        .into_iter()
                        .all(fused::usable)
                {
                    on_cpu.push((i, g));
                    continue;
                }
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
            if !on_cpu.is_empty() {
                // On the CPU: reading the 0-d coefficient waits for nothing.
                if let Some(c) = &coef {
                    consts.grad_scale = c.double_value(&[]) as f32;
                }
                let sets: Vec<[&Tensor; 4]> = on_cpu
                    .iter()
                    .map(|(i, g)| {
                        let w = self.master[*i].as_ref().unwrap_or(&self.params[*i]);
                        [w, g, &self.m[*i], &self.v[*i]]
                    })
                    .collect();
                fused::step(&sets, &consts, tch::get_num_threads().max(1) as usize);
                for (i, _) in &on_cpu {
                    if let Some(master) = &self.master[*i] {
                        self.params[*i].copy_(master);
                    }
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

    /// torch.optim.AdamW after clip_grad_norm_, in f64: `params` and `grads` per variable.
    fn reference_steps(
        params: &mut [Vec<f64>],
        grads: &[Vec<f64>],
        steps: i32,
        lr: f64,
        max_norm: f64,
        cfg: &AdamWConfig,
    ) {
        let ([b1, b2], eps, wd) = (cfg.betas, cfg.eps, cfg.weight_decay);
        let mut m: Vec<Vec<f64>> = params.iter().map(|p| vec![0.0; p.len()]).collect();
        let mut v = m.clone();
        let norm = grads.iter().flatten().map(|g| g * g).sum::<f64>().sqrt();
        let c = (max_norm / (norm + 1e-6)).min(1.0);
        for t in 1..=steps {
            for (k, p) in params.iter_mut().enumerate() {
                for i in 0..p.len() {
                    let g = grads[k][i] * c;
                    p[i] *= 1.0 - lr * wd;
                    m[k][i] = b1 * m[k][i] + (1.0 - b1) * g;
                    v[k][i] = b2 * v[k][i] + (1.0 - b2) * g * g;
                    let mh = m[k][i] / (1.0 - b1.powi(t));
                    let vh = v[k][i] / (1.0 - b2.powi(t));
                    p[i] -= lr * mh / (vh.sqrt() + eps);
                }
            }
        }
    }

    #[test]
    fn fused_and_per_tensor_steps_match_the_reference_over_steps_with_clipping() {
        let cfg = AdamWConfig {
            betas: [0.9, 0.999],
            eps: 1e-8,
            weight_decay: 0.01,
        };
        let (lr, max_norm, steps) = (1e-2, 1.0, 5);
        // Lengths around the 4 SIMD lanes, and one bf16 variable (an f32 master).
        let shapes: [(&str, i64, Kind); 4] = [
            ("a", 7, Kind::Float),
            ("b", 64, Kind::Float),
            ("c", 1, Kind::Float),
            ("d", 9, Kind::BFloat16),
        ];
        let (init, grads) = crate::seeded(3, || {
            let init: Vec<Tensor> = shapes
                .iter()
                .map(|&(_, n, k)| Tensor::randn([n], (Kind::Float, tch::Device::Cpu)).to_kind(k))
                .collect();
            let grads: Vec<Tensor> = shapes
                .iter()
                .map(|&(_, n, _)| Tensor::randn([n], (Kind::Float, tch::Device::Cpu)))
                .collect();
            (init, grads)
        });
        let f64s = |t: &Tensor| Vec::<f64>::try_from(t.to_kind(Kind::Double)).unwrap();
        let mut want: Vec<Vec<f64>> = init.iter().map(f64s).collect();
        let g64: Vec<Vec<f64>> = grads.iter().map(f64s).collect();
        reference_steps(&mut want, &g64, steps, lr, max_norm, &cfg);
        let mut results = Vec::new();
        for fused in [true, false] {
            let vs = nn::VarStore::new(tch::Device::Cpu);
            let vars: Vec<Tensor> = shapes
                .iter()
                .zip(&init)
                .map(|(&(name, ..), t)| vs.root().var_copy(name, t))
                .collect();
            let mut opt = AdamW::new(&vs, cfg);
            opt.fused = fused;
            for _ in 0..steps {
                zero_grad(&vs);
                let loss = vars
                    .iter()
                    .zip(&grads)
                    .map(|(w, g)| (w * g.to_kind(w.kind())).sum(Kind::Float))
                    .fold(
                        Tensor::zeros([], (Kind::Float, tch::Device::Cpu)),
                        |a, b| a + b,
                    );
                loss.backward();
                opt.step_clipped(lr, max_norm);
            }
            let got: Vec<Vec<f64>> = opt.master_weights().iter().map(|(_, t)| f64s(t)).collect();
            for (k, (g, w)) in got.iter().zip(&want).enumerate() {
                for (a, b) in g.iter().zip(w) {
                    assert!(
                        (a - b).abs() < 2e-6,
                        "fused {fused}, {}: {a} vs {b}",
                        shapes[k].0
                    );
                }
            }
            results.push(got);
        }
        assert_ne!(results[0], init.iter().map(f64s).collect::<Vec<_>>());
    }

    #[test]
    fn zero_grad_drops_the_gradients() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let w = vs.root().var_copy("w", &Tensor::from_slice(&[1.0f32, 2.0]));
        (&w * 3.0).sum(Kind::Float).backward();
        assert!(w.grad().defined());
        zero_grad(&vs);
        assert!(!w.grad().defined());
        (&w * 2.0).sum(Kind::Float).backward();
        assert_eq!(Vec::<f32>::try_from(w.grad()).unwrap(), [2.0, 2.0]);
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
