//! The statistics of an evaluation: 95% intervals of a mean from the t distribution (problems
//! are few: n = 25 in the demo), clipped to the range the scores can take, and the paired
//! interval of a difference between two conditions scored on the same problems.

use serde::{Deserialize, Serialize};
use wst_core::special::ln_gamma;

/// Two-sided coverage of every interval.
pub const LEVEL: f64 = 0.95;

/// The normal quantile of `1 - (1 - LEVEL) / 2`, for the Wilson interval.
const Z: f64 = 1.959_963_984_540_054;

/// A mean and its 95% interval over `n` observations.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// The mean.
    pub mean: f64,
    /// Lower end.
    pub lo: f64,
    /// Upper end.
    pub hi: f64,
    /// Observations (problems).
    pub n: usize,
}

/// The range a score can take, when it is known: intervals are clipped to it, and it gives the
/// interval a meaning when every observation is equal (see [`mean_interval`]).
pub type Bounds = Option<(f64, f64)>;

/// `[0, 1]` when every value lies there (accuracies, reward-model probabilities), else none.
pub fn unit_bounds(xs: &[f64]) -> Bounds {
    xs.iter()
        .all(|x| (0.0..=1.0).contains(x))
        .then_some((0.0, 1.0))
}

/// The 95% interval of the mean of `xs`:
/// - `mean ± t(0.975, n - 1) · s / √n`, clipped to `bounds`;
/// - when every value is equal (sample variance 0) and `bounds` are known, the Wilson score
///   interval of a two-valued outcome with that mean over `n` trials, rescaled to `bounds`: the
///   variance of a bounded score with a given mean is at most that of the two-valued one, so
///   the interval is conservative where the sample variance says nothing (all 0 of 25 problems
///   gives `[0, 0.133]`, not `[0, 0]`);
/// - with one value, the whole of `bounds` (infinite without them); with none, NaN.
pub fn mean_interval(xs: &[f64], bounds: Bounds) -> Interval {
    let n = xs.len();
    if n == 0 {
        return Interval {
            mean: f64::NAN,
            lo: f64::NAN,
            hi: f64::NAN,
            n,
        };
    }
    let nf = n as f64;
    let mean = xs.iter().sum::<f64>() / nf;
    let (lo_b, hi_b) = bounds.unwrap_or((f64::NEG_INFINITY, f64::INFINITY));
    if n == 1 {
        return Interval {
            mean,
            lo: lo_b,
            hi: hi_b,
            n,
        };
    }
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (nf - 1.0);
    let (lo, hi) = match bounds {
        Some((a, b)) if var <= f64::EPSILON * mean.abs().max(1.0) && b > a => {
            let p = ((mean - a) / (b - a)).clamp(0.0, 1.0);
            let (wl, wh) = wilson(p, nf);
            (a + wl * (b - a), a + wh * (b - a))
        }
        _ => {
            let half = t_quantile(0.5 + LEVEL / 2.0, nf - 1.0) * (var / nf).sqrt();
            (mean - half, mean + half)
        }
    };
    Interval {
        mean,
        lo: lo.max(lo_b),
        hi: hi.min(hi_b),
        n,
    }
}

/// The Wilson score interval of a proportion `p` over `n` trials.
fn wilson(p: f64, n: f64) -> (f64, f64) {
    let z2 = Z * Z;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = Z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / (1.0 + z2 / n);
    // At p = 0 (p = 1) the bound is 0 (1) exactly; the formula leaves a rounding residue.
    let lo = if p <= 0.0 {
        0.0
    } else {
        (centre - half).max(0.0)
    };
    let hi = if p >= 1.0 {
        1.0
    } else {
        (centre + half).min(1.0)
    };
    (lo, hi)
}

/// The interval of the mean difference `a_j - b_j` over paired observations (two conditions
/// on the same problems): differences of correlated scores vary less than either score, which
/// is what comparing two separate intervals misses. `bounds` are those of one score; the
/// differences lie within `(lo - hi, hi - lo)`.
pub fn paired_interval(pairs: &[(f64, f64)], bounds: Bounds) -> Interval {
    let d: Vec<f64> = pairs.iter().map(|(a, b)| a - b).collect();
    mean_interval(&d, bounds.map(|(lo, hi)| (lo - hi, hi - lo)))
}

/// The quantile of Student's t distribution with `df` degrees of freedom at probability `p`
/// (bisection on [`t_cdf`]; accurate to about 1e-12).
pub fn t_quantile(p: f64, df: f64) -> f64 {
    if !(0.0..=1.0).contains(&p) || df <= 0.0 {
        return f64::NAN;
    }
    if p == 0.5 {
        return 0.0;
    }
    if p < 0.5 {
        return -t_quantile(1.0 - p, df);
    }
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    while t_cdf(hi, df) < p {
        hi *= 2.0;
        if hi > 1e12 {
            return f64::INFINITY;
        }
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if t_cdf(mid, df) < p {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo <= 1e-14 * hi {
            break;
        }
    }
    0.5 * (lo + hi)
}

/// The distribution function of Student's t: `1 - I_x(df/2, 1/2) / 2` with `x = df/(df + t²)`
/// for `t >= 0`, by symmetry below.
pub fn t_cdf(t: f64, df: f64) -> f64 {
    let x = df / (df + t * t);
    let tail = 0.5 * inc_beta(x, df / 2.0, 0.5);
    if t >= 0.0 {
        1.0 - tail
    } else {
        tail
    }
}

/// The regularised incomplete beta function `I_x(a, b)` (continued fraction, Numerical Recipes
/// §6.4).
fn inc_beta(x: f64, a: f64, b: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln();
    let front = ln_front.exp();
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_cf(x, a, b) / a
    } else {
        1.0 - front * beta_cf(1.0 - x, b, a) / b
    }
}

/// Lentz's evaluation of the continued fraction of the incomplete beta function.
fn beta_cf(x: f64, a: f64, b: f64) -> f64 {
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 / off_zero(1.0 - qab * x / qap);
    let mut h = d;
    for m in 1..=300 {
        let m = m as f64;
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        h *= lentz_step(aa, &mut c, &mut d);
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        let del = lentz_step(aa, &mut c, &mut d);
        h *= del;
        if (del - 1.0).abs() < 1e-16 {
            break;
        }
    }
    h
}

/// `v`, or a tiny positive number in its stead when `|v|` is below it (Lentz's guard against
/// dividing by zero).
fn off_zero(v: f64) -> f64 {
    const TINY: f64 = 1e-300;
    if v.abs() < TINY {
        TINY
    } else {
        v
    }
}

/// One partial numerator `aa` of a continued fraction in Lentz's method: updates the ratios `c`
/// and `d` and returns the factor `c d` of the estimate.
fn lentz_step(aa: f64, c: &mut f64, d: &mut f64) -> f64 {
    *d = 1.0 / off_zero(1.0 + aa * *d);
    *c = off_zero(1.0 + aa / *c);
    *d * *c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * b.abs().max(1.0)
    }

    #[test]
    fn t_quantiles_match_scipy() {
        // scipy.stats.t.ppf(0.975, df), scipy 1.16.
        for (df, q) in [
            (1.0, 12.706204736174694),
            (2.0, 4.302652729749462),
            (3.0, 3.1824463052837078),
            (4.0, 2.7764451051977934),
            (5.0, 2.5705818356363146),
            (9.0, 2.262157162798205),
            (11.0, 2.200985160091639),
            (24.0, 2.0638985616280245),
            (30.0, 2.0422724563012378),
            (100.0, 1.9839715185235518),
            (1000.0, 1.9623390808264083),
        ] {
            let got = t_quantile(0.975, df);
            assert!(close(got, q, 1e-10), "df {df}: {got} vs {q}");
            assert!(close(t_quantile(0.025, df), -q, 1e-10));
        }
        // scipy.stats.t.cdf(1.5, 3), t.cdf(-0.7, 7).
        assert!(close(t_cdf(1.5, 3.0), 0.8847080673775886, 1e-12));
        assert!(close(t_cdf(-0.7, 7.0), 0.2532587760978, 1e-12));
        assert_eq!(t_quantile(0.5, 4.0), 0.0);
    }

    #[test]
    fn intervals_match_scipy_and_are_clipped() {
        // scipy.stats.ttest_1samp(x, 0).confidence_interval(0.95).
        let i = mean_interval(&[0.5, 0.25, 1.0, 0.75, 0.0], Some((0.0, 1.0)));
        assert_eq!(i.mean, 0.5);
        assert!(close(i.lo, 0.009189209630610706, 1e-10), "{i:?}");
        assert!(close(i.hi, 0.9908107903693892, 1e-10), "{i:?}");
        // Unclipped: [-0.4187, 1.4187]; clipped to [0, 1].
        let raw = mean_interval(&[0.0, 1.0, 0.0, 1.0], None);
        assert!(close(raw.lo, -0.41869311551853927, 1e-10), "{raw:?}");
        assert!(close(raw.hi, 1.4186931155185394, 1e-10), "{raw:?}");
        let clipped = mean_interval(&[0.0, 1.0, 0.0, 1.0], unit_bounds(&[0.0, 1.0]));
        assert_eq!((clipped.lo, clipped.hi), (0.0, 1.0));
        // Only the end that leaves the range is clipped: [0.8622, 1.0378] -> [0.8622, 1].
        let i = mean_interval(&[0.9, 1.0, 1.0, 0.8, 1.0, 1.0], Some((0.0, 1.0)));
        assert!(close(i.lo, 0.8621979149678822, 1e-10), "{i:?}");
        assert_eq!(i.hi, 1.0);
        assert!(unit_bounds(&[0.2, 1.3]).is_none());
    }

    #[test]
    fn equal_values_get_the_wilson_interval_not_zero_width() {
        // scipy.stats.binomtest(k, n).proportion_ci(0.95, method="wilson").
        let zeros = mean_interval(&[0.0; 25], Some((0.0, 1.0)));
        assert_eq!((zeros.mean, zeros.lo), (0.0, 0.0));
        assert!(close(zeros.hi, 0.1331922509390485, 1e-9), "{zeros:?}");
        let ones = mean_interval(&[1.0; 25], Some((0.0, 1.0)));
        assert!(close(ones.lo, 0.8668077490609516, 1e-9), "{ones:?}");
        assert_eq!(ones.hi, 1.0);
        let six = mean_interval(&[0.0; 6], Some((0.0, 1.0)));
        assert!(close(six.hi, 0.3903342879021653, 1e-9), "{six:?}");
        // Without known bounds nothing can be said beyond the sample: zero width.
        let free = mean_interval(&[2.5; 4], None);
        assert_eq!((free.lo, free.hi), (2.5, 2.5));
        // One problem: the whole range; none: NaN.
        let one = mean_interval(&[0.7], Some((0.0, 1.0)));
        assert_eq!((one.lo, one.hi), (0.0, 1.0));
        assert!(mean_interval(&[], None).mean.is_nan());
    }

    #[test]
    fn paired_interval_matches_scipy_ttest_rel() {
        // scipy.stats.ttest_rel(a, b).confidence_interval(0.95) = [0.049494, 0.638006].
        let a = [1.0, 0.5, 1.0, 0.0, 1.0, 0.75, 1.0, 0.25];
        let b = [0.5, 0.5, 0.0, 0.0, 1.0, 0.25, 0.5, 0.0];
        let pairs: Vec<(f64, f64)> = a.iter().copied().zip(b.iter().copied()).collect();
        let d = paired_interval(&pairs, Some((0.0, 1.0)));
        assert_eq!(d.n, 8);
        assert!(close(d.mean, 0.34375, 1e-12));
        assert!(close(d.lo, 0.049494471969621034, 1e-10), "{d:?}");
        assert!(close(d.hi, 0.6380055280303789, 1e-10), "{d:?}");
        // The separate intervals of a and b overlap although the paired difference is > 0.
        let ia = mean_interval(&a, Some((0.0, 1.0)));
        let ib = mean_interval(&b, Some((0.0, 1.0)));
        assert!(ia.lo < ib.hi, "{ia:?} {ib:?}");
        // Always +1: not [1, 1] but Wilson on the rescaled difference (0.867 * 2 - 1 = 0.734).
        let sure = paired_interval(&[(1.0, 0.0); 25], Some((0.0, 1.0)));
        assert!(
            close(sure.lo, 2.0 * 0.8668077490609516 - 1.0, 1e-9),
            "{sure:?}"
        );
        assert_eq!(sure.hi, 1.0);
        // Identical conditions: mean 0, symmetric interval around it.
        let same = paired_interval(&[(0.5, 0.5); 10], Some((0.0, 1.0)));
        assert_eq!(same.mean, 0.0);
        assert!(same.lo < 0.0 && same.hi > 0.0 && close(same.lo, -same.hi, 1e-12));
    }
}
