//! Special functions the verifier (`Γ` of factorials) and the evaluation statistics (`ln Γ` of
//! the incomplete beta function) share: one Lanczos approximation (g = 7, 9 terms).

use std::f64::consts::PI;

const LANCZOS: [f64; 9] = [
    0.999_999_999_999_809_9,
    676.520_368_121_885_1,
    -1_259.139_216_722_402_8,
    771.323_428_777_653_1,
    -176.615_029_162_140_6,
    12.507_343_278_686_905,
    -0.138_571_095_265_720_12,
    9.984_369_578_019_572e-6,
    1.505_632_735_149_311_6e-7,
];

/// `(x - 1, x + 6.5, series)` of the Lanczos approximation at `x >= 0.5`.
fn lanczos(x: f64) -> (f64, f64, f64) {
    let x = x - 1.0;
    let mut s = LANCZOS[0];
    for (i, g) in LANCZOS.iter().enumerate().skip(1) {
        s += g / (x + i as f64);
    }
    (x, x + 7.5, s)
}

/// `Γ(x)` for real `x` off the poles, about 15 significant digits.
pub fn gamma(x: f64) -> f64 {
    if x < 0.5 {
        return PI / ((PI * x).sin() * gamma(1.0 - x));
    }
    let (x, t, s) = lanczos(x);
    (2.0 * PI).sqrt() * t.powf(x + 0.5) * (-t).exp() * s
}

/// `ln Γ(x)` for `x > 0` (relative error about 1e-15).
pub fn ln_gamma(x: f64) -> f64 {
    if x < 0.5 {
        // Reflection: Γ(x) Γ(1 - x) = π / sin(πx).
        return (PI / (PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let (x, t, s) = lanczos(x);
    0.5 * (2.0 * PI).ln() + (x + 0.5) * t.ln() - t + s.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factorials_and_half_integers() {
        let mut f = 1.0;
        for n in 1..20 {
            f *= n as f64;
            assert!((gamma(n as f64 + 1.0) / f - 1.0).abs() < 1e-13, "{n}");
            assert!((ln_gamma(n as f64 + 1.0) - f.ln()).abs() < 1e-12, "{n}");
        }
        assert!((gamma(0.5) - PI.sqrt()).abs() < 1e-12);
        assert!((ln_gamma(0.25) - gamma(0.25).ln()).abs() < 1e-13);
    }
}
