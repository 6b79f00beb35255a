//! A recursive-descent parser from tokens to [`Node`]s, with a nesting limit so that any input
//! is parsed in bounded stack and time.

use super::lexer::Tok;

mod commands;

pub(crate) use commands::number_word;

/// Deepest nesting the parser follows before giving up.
const MAX_DEPTH: usize = 64;

/// Named constants.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Const {
    /// π.
    Pi,
    /// Euler's number.
    E,
    /// The imaginary unit.
    I,
    /// +∞.
    Inf,
}

/// Relations in an equation or inequality chain.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Rel {
    /// `=`.
    Eq,
    /// `\neq`.
    Ne,
    /// `<`.
    Lt,
    /// `\le`.
    Le,
    /// `>`.
    Gt,
    /// `\ge`.
    Ge,
}

/// A parsed answer or sub-expression. Sums and products are flat so that long inputs never
/// build deep trees.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    /// A number; `Some(base)` when written with a base subscript (`1011_2`).
    Num(f64, Option<u32>),
    /// A free variable.
    Var(String),
    /// A constant.
    Const(Const),
    /// Terms with their signs: `+1`, `-1`, or `0` for `\pm`.
    Sum(Vec<(i8, Node)>),
    /// Factors, `true` when dividing.
    Prod(Vec<(bool, Node)>),
    /// Negation.
    Neg(Box<Node>),
    /// `\pm x` (unary).
    Pm(Box<Node>),
    /// Power.
    Pow(Box<Node>, Box<Node>),
    /// A named function of one argument (`sin`, `ln`, `sqrt`, `abs`, `fact`, ...).
    Func(&'static str, Box<Node>),
    /// `\log_b x`.
    Log(Box<Node>, Box<Node>),
    /// `\sqrt[n]{x}`.
    Root(Box<Node>, Box<Node>),
    /// `\binom{n}{k}`.
    Binom(Box<Node>, Box<Node>),
    /// A bracketed list of two or more items: tuple or interval, with its delimiters.
    Group(char, char, Vec<Node>),
    /// `\{a, b\}`.
    Set(Vec<Node>),
    /// A bare list `a, b` (also `a and b`).
    List(Vec<Node>),
    /// `A \cup B`.
    Union(Vec<Node>),
    /// A matrix, row by row.
    Matrix(Vec<Vec<Node>>),
    /// A chain `a = b`, `a < x \le b`.
    Rel(Vec<Node>, Vec<Rel>),
    /// Text (lower-cased words).
    Text(String),
    /// A multiple-choice letter.
    Choice(char),
    /// `\mathbb{R}`.
    Reals,
    /// `\emptyset`.
    Empty,
}

/// Parse failure (the answer is then compared as text only).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ParseError;

type PResult<T> = Result<T, ParseError>;

/// Parses a whole token stream.
pub(crate) fn parse(toks: &[Tok]) -> Result<Node, ParseError> {
    let mut p = Parser {
        toks,
        pos: 0,
        depth: 0,
        in_abs: 0,
    };
    let n = p.list(&[])?;
    if p.pos != toks.len() {
        return Err(ParseError);
    }
    Ok(n)
}

struct Parser<'a> {
    toks: &'a [Tok],
    pos: usize,
    depth: usize,
    in_abs: usize,
}

fn is_sym(t: Option<&Tok>, c: char) -> bool {
    matches!(t, Some(Tok::Sym(x)) if *x == c)
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn peek_at(&self, k: usize) -> Option<&Tok> {
        self.toks.get(self.pos + k)
    }

    fn eat_sym(&mut self, c: char) -> bool {
        if is_sym(self.peek(), c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn eat_cmd(&mut self, name: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Cmd(n)) if n == name) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn enter(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            Err(ParseError)
        } else {
            Ok(())
        }
    }

    /// Items separated by `,`, `;` or `and`/`or`, up to one of `close` (not consumed) or the end.
    fn list(&mut self, close: &[Tok]) -> PResult<Node> {
        self.enter()?;
        let mut items = Vec::new();
        loop {
            if self.peek().is_none_or(|t| close.contains(t)) {
                break;
            }
            if matches!(self.peek(), Some(Tok::Sep)) || is_sym(self.peek(), ',') {
                self.pos += 1;
                continue;
            }
            items.push(self.union()?);
            match self.peek() {
                Some(Tok::Sep) | Some(Tok::Sym(',' | ';')) => self.pos += 1,
                _ => break,
            }
        }
        self.depth -= 1;
        match items.len() {
            0 => Err(ParseError),
            1 => Ok(items.pop().ok_or(ParseError)?),
            _ => Ok(Node::List(items)),
        }
    }

    fn union(&mut self) -> PResult<Node> {
        let first = self.relation()?;
        if self.eat_cmd("in") {
            // `x \in [-2, 7]`: the set is the answer.
            return self.union();
        }
        if !matches!(self.peek(), Some(Tok::Cmd(n)) if n == "cup") {
            return Ok(first);
        }
        let mut parts = vec![first];
        while self.eat_cmd("cup") {
            parts.push(self.relation()?);
        }
        Ok(Node::Union(parts))
    }

    fn relation(&mut self) -> PResult<Node> {
        let first = self.sum()?;
        let mut parts = vec![first];
        let mut rels = Vec::new();
        loop {
            let r = match self.peek() {
                Some(Tok::Sym('=')) => Rel::Eq,
                Some(Tok::Sym('<')) => Rel::Lt,
                Some(Tok::Sym('>')) => Rel::Gt,
                Some(Tok::Le) => Rel::Le,
                Some(Tok::Ge) => Rel::Ge,
                Some(Tok::Ne) => Rel::Ne,
                _ => break,
            };
            self.pos += 1;
            rels.push(r);
            parts.push(self.sum()?);
        }
        if rels.is_empty() {
            Ok(parts.pop().ok_or(ParseError)?)
        } else {
            Ok(Node::Rel(parts, rels))
        }
    }

    fn sum(&mut self) -> PResult<Node> {
        let mut terms = vec![(1i8, self.product()?)];
        loop {
            let sign = match self.peek() {
                Some(Tok::Sym('+')) => 1,
                Some(Tok::Sym('-')) => -1,
                Some(Tok::Cmd(n)) if n == "pm" => 0,
                _ => break,
            };
            self.pos += 1;
            terms.push((sign, self.product()?));
        }
        if terms.len() == 1 {
            Ok(terms.pop().ok_or(ParseError)?.1)
        } else {
            Ok(Node::Sum(terms))
        }
    }

    /// Can the next token start a factor of an implicit product?
    fn starts_factor(&self) -> bool {
        match self.peek() {
            Some(Tok::Num(..) | Tok::Letter(_) | Tok::LSet) => true,
            Some(Tok::Sym('(')) => true,
            Some(Tok::Sym('{')) => true,
            Some(Tok::Sym('|')) => self.in_abs == 0,
            Some(Tok::Cmd(n)) => !matches!(
                n.as_str(),
                "cup" | "pm" | "cap" | "setminus" | "to" | "in" | "end" | "quad" | "cdots"
            ),
            _ => false,
        }
    }

    fn product(&mut self) -> PResult<Node> {
        let mut factors = vec![(false, self.unary()?)];
        loop {
            match self.peek() {
                Some(Tok::Sym('*')) => {
                    self.pos += 1;
                    factors.push((false, self.unary()?));
                }
                Some(Tok::Sym('/')) => {
                    self.pos += 1;
                    factors.push((true, self.unary()?));
                }
                Some(Tok::Word(w)) if number_word(w).is_none() => {
                    // A unit after a value: dropped, with its power (`cm^2`).
                    self.pos += 1;
                    if self.eat_sym('^') {
                        self.power_arg()?;
                    }
                }
                Some(Tok::Cmd(n))
                    if n == "frac"
                        && factors.len() == 1
                        && matches!(factors[0].1, Node::Num(v, None) if v.fract() == 0.0)
                        && matches!(self.peek_at(1), Some(Tok::Num(..)))
                        && matches!(self.peek_at(2), Some(Tok::Num(..))) =>
                {
                    // A mixed number `2\frac14` (brace-less digits) = 2 + 1/4.
                    let f = self.power()?;
                    let whole = factors.pop().ok_or(ParseError)?.1;
                    factors.push((false, Node::Sum(vec![(1, whole), (1, f)])));
                }
                Some(Tok::Cmd(n))
                    if n == "frac"
                        && factors.len() == 1
                        && matches!(factors[0].1, Node::Num(v, None) if v.fract() == 0.0)
                        && self.braced_int_frac_follows() =>
                {
                    // A mixed number `2\frac{1}{4}` = 2 + 1/4.
                    let f = self.power()?;
                    let whole = factors.pop().ok_or(ParseError)?.1;
                    factors.push((false, Node::Sum(vec![(1, whole), (1, f)])));
                }
                _ if self.starts_factor() => {
                    let f = self.power()?;
                    // A parenthesised unit after a value (`3 \text{ (hours)}`) is dropped.
                    if !matches!(f, Node::Text(_)) {
                        factors.push((false, f));
                    }
                }
                _ => break,
            }
        }
        if factors.len() == 1 {
            Ok(factors.pop().ok_or(ParseError)?.1)
        } else {
            Ok(Node::Prod(factors))
        }
    }

    /// `\frac{int}{int}` at the current position.
    fn braced_int_frac_follows(&self) -> bool {
        let int = |k: usize| matches!(self.peek_at(k), Some(Tok::Num(v, true)) if v.fract() == 0.0);
        is_sym(self.peek_at(1), '{')
            && int(2)
            && is_sym(self.peek_at(3), '}')
            && is_sym(self.peek_at(4), '{')
            && int(5)
            && is_sym(self.peek_at(6), '}')
    }

    fn unary(&mut self) -> PResult<Node> {
        self.enter()?;
        let n = match self.peek() {
            Some(Tok::Sym('-')) => {
                self.pos += 1;
                Node::Neg(Box::new(self.unary()?))
            }
            Some(Tok::Sym('+')) => {
                self.pos += 1;
                self.unary()?
            }
            Some(Tok::Cmd(n)) if n == "pm" => {
                self.pos += 1;
                Node::Pm(Box::new(self.unary()?))
            }
            _ => self.power()?,
        };
        self.depth -= 1;
        Ok(n)
    }

    /// The exponent after `^`: a braced group, or one token (with an optional sign).
    fn power_arg(&mut self) -> PResult<Node> {
        self.enter()?;
        let n = if is_sym(self.peek(), '{') {
            self.primary()?
        } else if is_sym(self.peek(), '-') {
            self.pos += 1;
            Node::Neg(Box::new(self.primary()?))
        } else {
            self.primary()?
        };
        self.depth -= 1;
        Ok(n)
    }

    fn power(&mut self) -> PResult<Node> {
        let mut base = self.postfix()?;
        if self.eat_sym('^') {
            let e = self.power_arg()?;
            base = Node::Pow(Box::new(base), Box::new(e));
            base = self.postfix_ops(base);
        }
        Ok(base)
    }

    fn postfix(&mut self) -> PResult<Node> {
        let p = self.primary()?;
        Ok(self.postfix_ops(p))
    }

    fn postfix_ops(&mut self, mut n: Node) -> Node {
        loop {
            if self.eat_sym('!') {
                n = Node::Func("fact", Box::new(n));
            } else if is_sym(self.peek(), '\'') {
                self.pos += 1;
            } else {
                return n;
            }
        }
    }

    /// A brace-or-token argument of a command (`\frac{a}{b}`, `\frac12`, `\sqrt x`).
    fn arg(&mut self) -> PResult<Node> {
        self.enter()?;
        let n = if is_sym(self.peek(), '{') {
            self.pos += 1;
            let n = self.list(&[Tok::Sym('}')])?;
            if !self.eat_sym('}') {
                return Err(ParseError);
            }
            n
        } else {
            self.postfix()?
        };
        self.depth -= 1;
        Ok(n)
    }

    /// A function argument without braces: `\sin 2x`, `\log_2 8`, `\sin(x)`.
    fn func_arg(&mut self) -> PResult<Node> {
        if is_sym(self.peek(), '{') || is_sym(self.peek(), '(') {
            return self.power();
        }
        let mut f = vec![(false, self.power()?)];
        while matches!(self.peek(), Some(Tok::Num(..) | Tok::Letter(_))) {
            f.push((false, self.power()?));
        }
        Ok(if f.len() == 1 {
            f.pop().ok_or(ParseError)?.1
        } else {
            Node::Prod(f)
        })
    }

    fn primary(&mut self) -> PResult<Node> {
        self.enter()?;
        let n = self.primary_inner()?;
        self.depth -= 1;
        Ok(n)
    }

    fn primary_inner(&mut self) -> PResult<Node> {
        let Some(t) = self.peek().cloned() else {
            return Err(ParseError);
        };
        self.pos += 1;
        match t {
            Tok::Num(v, digits) => {
                if digits && is_sym(self.peek(), '_') {
                    self.pos += 1;
                    let b = self.arg()?;
                    let base = match b {
                        Node::Num(b, _) if b.fract() == 0.0 && (2.0..=36.0).contains(&b) => b,
                        _ => return Err(ParseError),
                    };
                    return Ok(Node::Num(v, Some(base as u32)));
                }
                Ok(Node::Num(v, None))
            }
            Tok::Letter(c) => {
                let mut name = c.to_string();
                if self.eat_sym('_') {
                    match self.arg()? {
                        Node::Num(v, _) => name.push_str(&format!("_{v}")),
                        Node::Var(v) => {
                            name.push('_');
                            name.push_str(&v);
                        }
                        // `x_{n-5}`: any subscript names a distinct variable.
                        other => name.push_str(&format!("_{other:?}")),
                    }
                    return Ok(Node::Var(name));
                }
                Ok(match c {
                    'e' => Node::Const(Const::E),
                    'i' => Node::Const(Const::I),
                    _ => Node::Var(name),
                })
            }
            Tok::Word(w) => {
                if let Some(v) = number_word(&w) {
                    // `twenty-five`, `twenty five`.
                    if (20.0..100.0).contains(&v) {
                        let k = usize::from(is_sym(self.peek(), '-'));
                        if let Some(Tok::Word(u)) = self.peek_at(k) {
                            if let Some(u) = number_word(u).filter(|u| (1.0..10.0).contains(u)) {
                                self.pos += k + 1;
                                return Ok(Node::Num(v + u, None));
                            }
                        }
                    }
                    return Ok(Node::Num(v, None));
                }
                let mut words = vec![w];
                while let Some(Tok::Word(w)) = self.peek() {
                    words.push(w.clone());
                    self.pos += 1;
                }
                Ok(Node::Text(words.join(" ")))
            }
            Tok::Choice(c) => Ok(Node::Choice(c)),
            Tok::LSet => {
                if matches!(self.peek(), Some(Tok::RSet)) {
                    self.pos += 1;
                    return Ok(Node::Empty);
                }
                let inner = self.list(&[Tok::RSet])?;
                if !matches!(self.peek(), Some(Tok::RSet)) {
                    return Err(ParseError);
                }
                self.pos += 1;
                Ok(match inner {
                    Node::List(v) => Node::Set(v),
                    n => Node::Set(vec![n]),
                })
            }
            Tok::Sym('{') => {
                let inner = self.list(&[Tok::Sym('}')])?;
                if !self.eat_sym('}') {
                    return Err(ParseError);
                }
                Ok(inner)
            }
            Tok::Sym(open @ ('(' | '[')) => {
                let inner = self.list(&[Tok::Sym(')'), Tok::Sym(']')])?;
                let close = match self.peek() {
                    Some(Tok::Sym(c @ (')' | ']'))) => *c,
                    _ => return Err(ParseError),
                };
                self.pos += 1;
                Ok(match inner {
                    Node::List(items) => Node::Group(open, close, items),
                    n if open == '(' && close == ')' => n,
                    Node::Matrix(m) if open == '[' && close == ']' => Node::Matrix(m),
                    n if open == '[' && close == ']' => n,
                    _ => return Err(ParseError),
                })
            }
            Tok::Sym('|') => {
                self.in_abs += 1;
                let inner = self.sum();
                self.in_abs -= 1;
                let inner = inner?;
                if !self.eat_sym('|') {
                    return Err(ParseError);
                }
                Ok(Node::Func("abs", Box::new(inner)))
            }
            Tok::Cmd(name) => self.command(&name),
            _ => Err(ParseError),
        }
    }
}
