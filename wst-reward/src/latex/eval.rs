//! Numeric evaluation of a [`Node`] over the complex numbers, with free variables bound to
//! fixed pseudo-random points.

use super::parser::{Const, Node};
use wst_core::special::gamma;

/// A complex number.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct C {
    pub re: f64,
    pub im: f64,
}

impl C {
    pub const fn real(re: f64) -> C {
        C { re, im: 0.0 }
    }
    fn add(self, o: C) -> C {
        C::new(self.re + o.re, self.im + o.im)
    }
    const fn new(re: f64, im: f64) -> C {
        C { re, im }
    }
    fn neg(self) -> C {
        C::new(-self.re, -self.im)
    }
    fn mul(self, o: C) -> C {
        if self.im == 0.0 && o.im == 0.0 {
            return C::real(self.re * o.re);
        }
        C::new(
            self.re * o.re - self.im * o.im,
            self.re * o.im + self.im * o.re,
        )
    }
    fn div(self, o: C) -> Option<C> {
        if o.im == 0.0 {
            if o.re == 0.0 {
                return None;
            }
            return Some(C::new(self.re / o.re, self.im / o.re));
        }
        let d = o.re * o.re + o.im * o.im;
        if d == 0.0 {
            return None;
        }
        Some(C::new(
            (self.re * o.re + self.im * o.im) / d,
            (self.im * o.re - self.re * o.im) / d,
        ))
    }
    fn abs(self) -> f64 {
        self.re.hypot(self.im)
    }
    fn is_real(self) -> bool {
        self.im.abs() <= 1e-12 * self.re.abs().max(1.0)
    }
    fn exp(self) -> C {
        let m = self.re.exp();
        if self.im == 0.0 {
            return C::real(m);
        }
        C::new(m * self.im.cos(), m * self.im.sin())
    }
    fn ln(self) -> Option<C> {
        if self.re == 0.0 && self.im == 0.0 {
            return None;
        }
        Some(C::new(self.abs().ln(), self.im.atan2(self.re)))
    }
    fn sqrt(self) -> C {
        if self.im == 0.0 {
            return if self.re >= 0.0 {
                C::real(self.re.sqrt())
            } else {
                C::new(0.0, (-self.re).sqrt())
            };
        }
        let r = self.abs();
        let re = ((r + self.re) / 2.0).sqrt();
        let im = ((r - self.re) / 2.0).sqrt().copysign(self.im);
        C::new(re, im)
    }
    fn powi(self, n: i64) -> Option<C> {
        if n < 0 {
            return C::real(1.0).div(self.powi(-n)?);
        }
        let mut acc = C::real(1.0);
        let mut b = self;
        let mut e = n;
        while e > 0 {
            if e & 1 == 1 {
                acc = acc.mul(b);
            }
            b = b.mul(b);
            e >>= 1;
        }
        Some(acc)
    }
    fn pow(self, e: C) -> Option<C> {
        if e.im == 0.0 && e.re.fract() == 0.0 && e.re.abs() <= 1e6 {
            return self.powi(e.re as i64);
        }
        if self.im == 0.0 && e.im == 0.0 && self.re > 0.0 {
            return Some(C::real(self.re.powf(e.re)));
        }
        if self.re == 0.0 && self.im == 0.0 {
            return if e.re > 0.0 { Some(C::real(0.0)) } else { None };
        }
        Some(e.mul(self.ln()?).exp())
    }
    fn sin(self) -> C {
        C::new(
            self.re.sin() * self.im.cosh(),
            self.re.cos() * self.im.sinh(),
        )
    }
    fn cos(self) -> C {
        C::new(
            self.re.cos() * self.im.cosh(),
            -self.re.sin() * self.im.sinh(),
        )
    }
}

/// Are two values equal within a tight relative tolerance? Infinities must match exactly.
pub(crate) fn close(a: C, b: C) -> bool {
    if !(a.re.is_finite() && a.im.is_finite() && b.re.is_finite() && b.im.is_finite()) {
        return a == b && !a.re.is_nan() && !a.im.is_nan();
    }
    let scale = a.abs().max(b.abs());
    let d = C::new(a.re - b.re, a.im - b.im).abs();
    d <= 1e-9 * scale + 1e-12
}

/// Value of variable `name` at point `k`: a fixed pseudo-random number in (0.3, 2.7), different
/// per name.
pub(crate) fn var_value(name: &str, k: usize) -> C {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= (k as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    let u = (h >> 11) as f64 / (1u64 << 53) as f64;
    C::real(0.3 + 2.4 * u)
}

/// Evaluates `n` with variables at point `k`; `pm` is the sign every `\pm` takes. An overflow
/// (a non-finite value from finite inputs, e.g. `2^{2021}`) is no value: comparing two
/// overflowed numbers would say nothing.
pub(crate) fn eval(n: &Node, k: usize, pm: f64) -> Option<C> {
    let v = eval_inner(n, k, pm)?;
    let finite = v.re.is_finite() && v.im.is_finite();
    (finite || has_inf(n)).then_some(v)
}

fn has_inf(n: &Node) -> bool {
    match n {
        Node::Const(Const::Inf) => true,
        Node::Neg(x) | Node::Pm(x) => has_inf(x),
        Node::Sum(t) => t.iter().any(|(_, x)| has_inf(x)),
        Node::Prod(f) => f.iter().any(|(_, x)| has_inf(x)),
        _ => false,
    }
}

fn eval_inner(n: &Node, k: usize, pm: f64) -> Option<C> {
    let eval = eval_inner;
    Some(match n {
        Node::Num(v, _) => C::real(*v),
        Node::Var(name) => var_value(name, k),
        Node::Const(c) => match c {
            Const::Pi => C::real(std::f64::consts::PI),
            Const::E => C::real(std::f64::consts::E),
            Const::I => C::new(0.0, 1.0),
            Const::Inf => C::real(f64::INFINITY),
        },
        Node::Sum(terms) => {
            let mut acc = C::real(0.0);
            for (s, t) in terms {
                let v = eval(t, k, pm)?;
                let s = if *s == 0 { pm } else { f64::from(*s) };
                acc = acc.add(if s < 0.0 { v.neg() } else { v });
            }
            acc
        }
        Node::Prod(fs) => {
            let mut acc = C::real(1.0);
            for (div, f) in fs {
                let v = eval(f, k, pm)?;
                acc = if *div { acc.div(v)? } else { acc.mul(v) };
            }
            acc
        }
        Node::Neg(x) => eval(x, k, pm)?.neg(),
        Node::Pm(x) => {
            let v = eval(x, k, pm)?;
            if pm < 0.0 {
                v.neg()
            } else {
                v
            }
        }
        Node::Pow(b, e) => {
            let b = eval(b, k, pm)?;
            let e = eval(e, k, pm)?;
            b.pow(e)?
        }
        Node::Func(f, x) => func(f, eval(x, k, pm)?)?,
        Node::Log(b, x) => {
            let b = eval(b, k, pm)?.ln()?;
            eval(x, k, pm)?.ln()?.div(b)?
        }
        Node::Root(r, x) => {
            let r = eval(r, k, pm)?;
            let x = eval(x, k, pm)?;
            if r.im == 0.0 && x.im == 0.0 && x.re < 0.0 && r.re.fract() == 0.0 && r.re % 2.0 != 0.0
            {
                C::real(-(-x.re).powf(1.0 / r.re))
            } else {
                x.pow(C::real(1.0).div(r)?)?
            }
        }
        Node::Binom(a, b) => {
            let a = eval(a, k, pm)?;
            let b = eval(b, k, pm)?;
            if !a.is_real() || !b.is_real() || b.re.fract() != 0.0 || b.re < 0.0 || b.re > 1000.0 {
                return None;
            }
            let mut acc = 1.0;
            for j in 0..b.re as i64 {
                acc = acc * (a.re - j as f64) / (j as f64 + 1.0);
            }
            C::real(acc)
        }
        _ => return None,
    })
}

fn func(f: &str, x: C) -> Option<C> {
    let real = |g: fn(f64) -> f64| {
        if x.is_real() {
            let v = g(x.re);
            v.is_finite().then_some(C::real(v))
        } else {
            None
        }
    };
    Some(match f {
        "sqrt" => x.sqrt(),
        "abs" => C::real(x.abs()),
        "sin" => x.sin(),
        "cos" => x.cos(),
        "tan" => x.sin().div(x.cos())?,
        "sec" => C::real(1.0).div(x.cos())?,
        "csc" => C::real(1.0).div(x.sin())?,
        "cot" => x.cos().div(x.sin())?,
        "exp" => x.exp(),
        "ln" => x.ln()?,
        "arcsin" => real(f64::asin)?,
        "arccos" => real(f64::acos)?,
        "arctan" => real(f64::atan)?,
        "sinh" => real(f64::sinh)?,
        "cosh" => real(f64::cosh)?,
        "tanh" => real(f64::tanh)?,
        "floor" => real(f64::floor)?,
        "ceil" => real(f64::ceil)?,
        "fact" => {
            if !x.is_real() || (x.re < 0.0 && x.re.fract() == 0.0) {
                return None;
            }
            if x.re > 170.0 {
                return Some(C::real(f64::INFINITY));
            }
            if x.re.fract() == 0.0 && x.re >= 0.0 {
                C::real((1..=x.re as u64).map(|j| j as f64).product())
            } else {
                // `n!` at a sample point: Gamma(n + 1).
                C::real(gamma(x.re + 1.0))
            }
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complex_basics() {
        let i = C::new(0.0, 1.0);
        assert!(close(C::real(1.0).div(i).unwrap(), C::new(0.0, -1.0)));
        assert!(close(C::real(-4.0).sqrt(), C::new(0.0, 2.0)));
        assert!(close(C::real(2.0).powi(10).unwrap(), C::real(1024.0)));
        assert!(!close(C::real(2.0 / 3.0), C::real(0.666667)));
        assert!(close(C::real(f64::INFINITY), C::real(f64::INFINITY)));
        assert!(!close(C::real(f64::INFINITY), C::real(f64::NEG_INFINITY)));
        assert_ne!(var_value("m", 0), var_value("n", 0));
        assert!((gamma(5.0) - 24.0).abs() < 1e-9);
        assert!((gamma(0.5) - std::f64::consts::PI.sqrt()).abs() < 1e-12);
    }
}
