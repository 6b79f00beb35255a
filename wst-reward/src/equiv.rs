//! Equivalence of two final answers: numbers, expressions, equations, tuples, intervals, sets,
//! matrices, choices and text.

use crate::latex::eval::{close, eval, C};
use crate::latex::parser::{Const, Node, Rel};
use crate::latex::{lexer, parse_answer};

/// Points at which expressions with free variables are compared.
const POINTS: usize = 3;
/// Most items of a list or set that are matched pairwise.
const MAX_ITEMS: usize = 1024;

/// Is `pred` an acceptable answer where `gold` is the reference? Both are final answers (LaTeX
/// or plain text, without the surrounding reply). Never panics; bounded time for any input.
///
/// ```
/// use wst_reward::equivalent;
/// assert!(equivalent("\\frac{1}{2}", "0.5"));
/// assert!(equivalent("(-\\infty, 3]", "x \\le 3"));
/// assert!(!equivalent("\\frac{2}{3}", "0.67"));
/// ```
pub fn equivalent(gold: &str, pred: &str) -> bool {
    let g = clean(gold);
    let p = clean(pred);
    if g.is_empty() || p.is_empty() {
        return false;
    }
    if compact(&g) == compact(&p) {
        return true;
    }
    if g.len() > lexer::MAX_ANSWER_BYTES || p.len() > lexer::MAX_ANSWER_BYTES {
        return false;
    }
    let (Some(gn), Some(pn)) = (parse_answer(&g), parse_answer(&p)) else {
        return false;
    };
    if is_text(&gn) || is_text(&pn) {
        let (a, b) = (text_key(&g), text_key(&p));
        return !a.is_empty() && a == b;
    }
    eq(&gn, &pn)
}

/// Strips what surrounds an answer: spaces, trailing sentence punctuation, `{,}` and thin-space
/// thousands separators.
pub(crate) fn clean(s: &str) -> String {
    let mut t = s.trim();
    loop {
        let before = t.len();
        t = t.trim_end_matches(['.', ',', ';', ':', ' ', '\n', '\t']);
        if let Some(x) = t.strip_suffix("\\.") {
            t = x;
        }
        if t.len() == before {
            break;
        }
    }
    if t.len() > 4 * lexer::MAX_ANSWER_BYTES {
        return t.to_string();
    }
    t.replace("{,}", "")
        .replace("\\!", "")
        .replace("\\,", "")
        .replace("\\;", " ")
        .replace("\\:", " ")
}

/// The answer without spaces and presentation markup, for a quick exact match.
fn compact(s: &str) -> String {
    let s = s
        .replace("\\left", "")
        .replace("\\right", "")
        .replace("\\dfrac", "\\frac")
        .replace("\\tfrac", "\\frac");
    s.chars()
        .filter(|c| !c.is_whitespace() && *c != '$')
        .collect()
}

/// Letters and digits of a text answer, lower-cased, with LaTeX commands dropped.
fn text_key(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            while chars.peek().is_some_and(|c| c.is_ascii_alphabetic()) {
                chars.next();
            }
        } else if c.is_alphanumeric() {
            out.extend(c.to_lowercase());
        }
    }
    out
}

fn is_text(n: &Node) -> bool {
    matches!(n, Node::Text(_))
}

/// Does the node hold a `\pm` at scalar level?
fn has_pm(n: &Node) -> bool {
    match n {
        Node::Pm(_) => true,
        Node::Sum(t) => t.iter().any(|(s, x)| *s == 0 || has_pm(x)),
        Node::Prod(f) => f.iter().any(|(_, x)| has_pm(x)),
        Node::Neg(x) | Node::Func(_, x) => has_pm(x),
        Node::Pow(a, b) | Node::Log(a, b) | Node::Root(a, b) | Node::Binom(a, b) => {
            has_pm(a) || has_pm(b)
        }
        _ => false,
    }
}

fn is_scalar(n: &Node) -> bool {
    matches!(
        n,
        Node::Num(..)
            | Node::Var(_)
            | Node::Const(_)
            | Node::Sum(_)
            | Node::Prod(_)
            | Node::Neg(_)
            | Node::Pm(_)
            | Node::Pow(..)
            | Node::Func(..)
            | Node::Log(..)
            | Node::Root(..)
            | Node::Binom(..)
    )
}

fn has_var(n: &Node) -> bool {
    match n {
        Node::Var(_) => true,
        Node::Sum(t) => t.iter().any(|(_, x)| has_var(x)),
        Node::Prod(f) => f.iter().any(|(_, x)| has_var(x)),
        Node::Neg(x) | Node::Pm(x) | Node::Func(_, x) => has_var(x),
        Node::Pow(a, b) | Node::Log(a, b) | Node::Root(a, b) | Node::Binom(a, b) => {
            has_var(a) || has_var(b)
        }
        _ => false,
    }
}

/// Bases written as subscripts (`1011_2`).
fn bases(n: &Node, out: &mut Vec<u32>) {
    match n {
        Node::Num(_, Some(b)) => out.push(*b),
        Node::Sum(t) => t.iter().for_each(|(_, x)| bases(x, out)),
        Node::Prod(f) => f.iter().for_each(|(_, x)| bases(x, out)),
        Node::Neg(x) | Node::Pm(x) | Node::Func(_, x) => bases(x, out),
        _ => {}
    }
}

fn neg_inf() -> Node {
    Node::Neg(Box::new(Node::Const(Const::Inf)))
}

/// Canonical form for comparison: one-item lists unwrapped, `\mathbb{R}` and inequalities in
/// one variable turned into intervals, `\{\}` into the empty set.
fn normalize(n: &Node) -> Node {
    match n {
        Node::List(v) | Node::Union(v) if v.len() == 1 => normalize(&v[0]),
        Node::Set(v) if v.is_empty() => Node::Empty,
        Node::Reals => Node::Group('(', ')', vec![neg_inf(), Node::Const(Const::Inf)]),
        Node::Rel(parts, rels) => ineq_to_interval(parts, rels).unwrap_or_else(|| n.clone()),
        _ => n.clone(),
    }
}

fn is_lower(r: Rel) -> bool {
    matches!(r, Rel::Lt | Rel::Le)
}

/// `x < 3` -> `(-\infty, 3)`, `2 \le x < 5` -> `[2, 5)`, `|x| < 1` -> `(-1, 1)`.
fn ineq_to_interval(parts: &[Node], rels: &[Rel]) -> Option<Node> {
    if rels.iter().any(|r| matches!(r, Rel::Eq | Rel::Ne)) {
        return None;
    }
    let open = |r: Rel| matches!(r, Rel::Lt | Rel::Gt);
    let lo = |r: Rel| if open(r) { '(' } else { '[' };
    let hi = |r: Rel| if open(r) { ')' } else { ']' };
    let constant = |n: &Node| is_scalar(n) && !has_var(n);
    match (parts, rels) {
        ([a, b], [r]) => {
            // Orient as `x r c`.
            let (x, c, r) = if constant(b) {
                (a, b, *r)
            } else if constant(a) {
                (b, a, flip(*r))
            } else {
                return None;
            };
            match x {
                Node::Var(_) => Some(if is_lower(r) {
                    Node::Group('(', hi(r), vec![neg_inf(), c.clone()])
                } else {
                    Node::Group(lo(r), ')', vec![c.clone(), Node::Const(Const::Inf)])
                }),
                Node::Func("abs", inner) if matches!(**inner, Node::Var(_)) => {
                    let neg_c = Node::Neg(Box::new(c.clone()));
                    Some(if is_lower(r) {
                        Node::Group(lo(r), hi(r), vec![neg_c, c.clone()])
                    } else {
                        Node::Union(vec![
                            Node::Group('(', hi(r), vec![neg_inf(), neg_c]),
                            Node::Group(lo(r), ')', vec![c.clone(), Node::Const(Const::Inf)]),
                        ])
                    })
                }
                _ => None,
            }
        }
        ([a, x, b], [r1, r2]) if matches!(x, Node::Var(_)) && constant(a) && constant(b) => {
            if is_lower(*r1) && is_lower(*r2) {
                Some(Node::Group(lo(*r1), hi(*r2), vec![a.clone(), b.clone()]))
            } else if !is_lower(*r1) && !is_lower(*r2) {
                Some(Node::Group(lo(*r2), hi(*r1), vec![b.clone(), a.clone()]))
            } else {
                None
            }
        }
        _ => None,
    }
}

fn flip(r: Rel) -> Rel {
    match r {
        Rel::Lt => Rel::Gt,
        Rel::Gt => Rel::Lt,
        Rel::Le => Rel::Ge,
        Rel::Ge => Rel::Le,
        r => r,
    }
}

fn is_eq_chain(n: &Node) -> bool {
    matches!(n, Node::Rel(_, rels) if rels.iter().all(|r| *r == Rel::Eq))
}

fn last_part(n: &Node) -> Option<&Node> {
    match n {
        Node::Rel(parts, _) => parts.last(),
        _ => None,
    }
}

/// A single upper-case letter written as a variable: a choice.
fn as_choice(n: &Node) -> Option<char> {
    match n {
        Node::Choice(c) => Some(*c),
        // `\textbf{(C) }12`: the letter of an AMC-style choice followed by its value.
        Node::Prod(f) if matches!(f.first(), Some((false, Node::Choice(_)))) => as_choice(&f[0].1),
        Node::Var(v) if v.len() == 1 && v.as_bytes()[0].is_ascii_uppercase() => {
            Some(v.as_bytes()[0] as char)
        }
        _ => None,
    }
}

/// One element of a list or set, with the sign its `\pm` takes.
type Item<'a> = (&'a Node, f64);

/// The elements of a list or set (one level: a set of sets stays nested), each `\pm` scalar
/// expanded into its two values.
fn items(n: &Node) -> Vec<Item<'_>> {
    let expand = |n| {
        if is_scalar(n) && has_pm(n) {
            vec![(n, 1.0), (n, -1.0)]
        } else {
            vec![(n, 1.0)]
        }
    };
    match n {
        Node::List(v) | Node::Set(v) => v.iter().flat_map(expand).collect(),
        n => expand(n),
    }
}

/// Structural equivalence of two parsed answers.
pub(crate) fn eq(g: &Node, p: &Node) -> bool {
    let g = &normalize(g);
    let p = &normalize(p);
    // An equation against a value: compare its right-hand side (`x = 4` vs `4`).
    match (is_eq_chain(g), is_eq_chain(p)) {
        (true, false) => return last_part(g).is_some_and(|l| eq(l, p)),
        (false, true) => return last_part(p).is_some_and(|l| eq(g, l)),
        (true, true) => return equations_eq(g, p),
        _ => {}
    }
    if let (Some(a), Some(b)) = (as_choice(g), as_choice(p)) {
        if matches!(g, Node::Choice(_)) || matches!(p, Node::Choice(_)) {
            return a == b;
        }
    }
    let list_like = |n: &Node| matches!(n, Node::List(_) | Node::Set(_));
    let pm_scalar = |n: &Node| is_scalar(n) && has_pm(n);
    match (g, p) {
        (Node::Group('(', ')', a), Node::List(b)) | (Node::List(a), Node::Group('(', ')', b)) => {
            return pairwise(a, b);
        }
        (Node::Group(o1, c1, a), Node::Group(o2, c2, b)) => {
            return o1 == o2 && c1 == c2 && pairwise(a, b);
        }
        (Node::Matrix(a), Node::Matrix(b)) => {
            return a.len() == b.len() && a.iter().zip(b).all(|(r, s)| pairwise(r, s));
        }
        (Node::Matrix(m), Node::Group('(', ')', v))
        | (Node::Group('(', ')', v), Node::Matrix(m)) => {
            return m.iter().all(|r| r.len() == 1)
                && m.len() == v.len()
                && m.iter().zip(v).all(|(r, x)| eq(&r[0], x));
        }
        (Node::Union(a), Node::Union(b))
        | (Node::Union(a), Node::List(b))
        | (Node::List(a), Node::Union(b)) => {
            let a: Vec<Item> = a.iter().map(|x| (x, 1.0)).collect();
            let b: Vec<Item> = b.iter().map(|x| (x, 1.0)).collect();
            return multiset(&a, &b);
        }
        (Node::Empty, Node::Empty) => return true,
        (Node::Text(a), Node::Text(b)) => return a == b,
        (Node::Rel(pa, ra), Node::Rel(pb, rb)) => return relations_eq(pa, ra, pb, rb),
        _ => {}
    }
    if list_like(g) || list_like(p) || pm_scalar(g) || pm_scalar(p) {
        if matches!(g, Node::Set(_)) && matches!(p, Node::Group(..))
            || matches!(p, Node::Set(_)) && matches!(g, Node::Group(..))
        {
            return false;
        }
        return multiset(&items(g), &items(p));
    }
    if is_scalar(g) && is_scalar(p) {
        return scalar_eq(g, 1.0, p, 1.0);
    }
    false
}

fn pairwise(a: &[Node], b: &[Node]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| eq(x, y))
}

/// Order-free matching of two lists of items.
fn multiset(a: &[Item], b: &[Item]) -> bool {
    if a.len() != b.len() || a.len() > MAX_ITEMS {
        return false;
    }
    let mut used = vec![false; b.len()];
    'outer: for (x, xs) in a {
        for (j, (y, ys)) in b.iter().enumerate() {
            let same = if is_scalar(x) && is_scalar(y) {
                scalar_eq(x, *xs, y, *ys)
            } else {
                eq(x, y)
            };
            if !used[j] && same {
                used[j] = true;
                continue 'outer;
            }
        }
        return false;
    }
    true
}

/// Numeric equality at several points (one when neither side has a variable).
fn scalar_eq(g: &Node, gs: f64, p: &Node, ps: f64) -> bool {
    let (mut bg, mut bp) = (Vec::new(), Vec::new());
    bases(g, &mut bg);
    bases(p, &mut bp);
    if !bg.is_empty() && !bp.is_empty() && bg != bp {
        return false;
    }
    let points = if has_var(g) || has_var(p) { POINTS } else { 1 };
    let mut agreed = 0;
    for k in 0..points {
        match (eval(g, k, gs), eval(p, k, ps)) {
            (Some(a), Some(b)) => {
                if !close(a, b) {
                    return false;
                }
                agreed += 1;
            }
            (None, None) => {}
            _ => return false,
        }
    }
    agreed > 0
}

fn diff(l: &Node, r: &Node) -> Node {
    Node::Sum(vec![(1, l.clone()), (-1, r.clone())])
}

/// `a = b` vs `c = d`: the same zero set (`a - b` a constant multiple of `c - d`), or the same
/// sides.
fn equations_eq(g: &Node, p: &Node) -> bool {
    let (Node::Rel(pg, _), Node::Rel(pp, _)) = (g, p) else {
        return false;
    };
    if let ([a, b], [c, d]) = (pg.as_slice(), pp.as_slice()) {
        if is_scalar(a) && is_scalar(b) && is_scalar(c) && is_scalar(d) {
            let (f1, f2) = (diff(a, b), diff(c, d));
            if proportional(&f1, &f2) {
                return true;
            }
        }
    }
    match (pg.first(), pp.first(), pg.last(), pp.last()) {
        (Some(a), Some(c), Some(b), Some(d)) => eq(a, c) && eq(b, d),
        _ => false,
    }
}

/// Is `f1 = k f2` for one non-zero constant `k` at every sample point?
fn proportional(f1: &Node, f2: &Node) -> bool {
    let mut ratio: Option<C> = None;
    for k in 0..POINTS + 1 {
        let (Some(a), Some(b)) = (eval(f1, k, 1.0), eval(f2, k, 1.0)) else {
            return false;
        };
        let tiny = |c: C| c.re.hypot(c.im) < 1e-10;
        match (tiny(a), tiny(b)) {
            (true, true) => continue,
            (false, false) => {}
            _ => return false,
        }
        let d = b.re * b.re + b.im * b.im;
        let q = C {
            re: (a.re * b.re + a.im * b.im) / d,
            im: (a.im * b.re - a.re * b.im) / d,
        };
        match ratio {
            None => ratio = Some(q),
            Some(r) if close(r, q) => {}
            Some(_) => return false,
        }
    }
    ratio.is_some()
}

/// Inequality chains that are not intervals in one variable: the same relations between
/// equivalent sides, possibly written the other way round.
fn relations_eq(pa: &[Node], ra: &[Rel], pb: &[Node], rb: &[Rel]) -> bool {
    if ra.len() != rb.len() {
        return false;
    }
    if ra == rb && pairwise(pa, pb) {
        return true;
    }
    let flipped: Vec<Rel> = rb.iter().rev().map(|r| flip(*r)).collect();
    let reversed: Vec<Node> = pb.iter().rev().cloned().collect();
    ra == flipped.as_slice() && pairwise(pa, &reversed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_classes() {
        let yes = [
            ("7", "007"),
            ("\\frac{1}{2}", "\\tfrac12"),
            ("\\frac{9}{4}", "2\\frac{1}{4}"),
            ("2\\sqrt{3}", "\\sqrt{12}"),
            (
                "(-\\infty,-1)\\cup(1,\\infty)",
                "(1,\\infty)\\cup(-\\infty,-1)",
            ),
            ("-4, 4", "\\pm 4"),
            ("y = 3x - 2", "3x - y - 2 = 0"),
            ("\\text{(B)}", "B"),
            ("1011_2", "1011"),
            ("-1 < x < 1", "|x| < 1"),
            ("x^2+5x+6", "(x+2)(x+3)"),
            ("25", "twenty-five"),
            ("3", "3 \\text{ (hours)}"),
            ("n!", "n \\cdot (n-1)!"),
            ("\\text{(A)}", "\\textbf{(A)}\\ 5"),
            ("(2,3)", "x=2 \\text{ and } y=3"),
            ("(-\\infty, 2) \\cup (3, \\infty)", "x<2 \\text{ or } x>3"),
        ];
        for (g, p) in yes {
            assert!(equivalent(g, p), "{g} vs {p} should be equivalent");
        }
        let no = [
            ("\\frac{2}{3}", "0.666667"),
            ("[2,5)", "(2,5)"),
            ("\\pm 4", "4"),
            ("2n+1", "2m+1"),
            ("2011_3", "2011_4"),
            ("(1,2)", "(2,1)"),
            ("\\frac{1}{2}", "\\frac{}{2}"),
            ("6", ""),
            ("2^{2021}", "3^{2021}"),
            ("15", "twenty-five"),
            ("\\{\\{1,2\\},\\{3\\}\\}", "\\{\\{1\\},\\{2,3\\}\\}"),
        ];
        for (g, p) in no {
            assert!(!equivalent(g, p), "{g} vs {p} should not be equivalent");
        }
    }
}
