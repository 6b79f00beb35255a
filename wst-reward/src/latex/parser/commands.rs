//! The parser's LaTeX commands (`\frac`, `\sqrt`, functions, environments) and number words.

use super::*;

impl Parser<'_> {
    pub(super) fn command(&mut self, name: &str) -> PResult<Node> {
        Ok(match name {
            "frac" => {
                let a = self.arg()?;
                let b = self.arg()?;
                Node::Prod(vec![(false, a), (true, b)])
            }
            "binom" => {
                let a = self.arg()?;
                let b = self.arg()?;
                Node::Binom(Box::new(a), Box::new(b))
            }
            "sqrt" => {
                if self.eat_sym('[') {
                    let n = self.sum()?;
                    if !self.eat_sym(']') {
                        return Err(ParseError);
                    }
                    let x = self.arg()?;
                    Node::Root(Box::new(n), Box::new(x))
                } else {
                    Node::Func("sqrt", Box::new(self.arg()?))
                }
            }
            "pi" => Node::Const(Const::Pi),
            "infty" => Node::Const(Const::Inf),
            "i" => Node::Const(Const::I),
            "emptyset" => Node::Empty,
            "boxed" | "fbox" | "overline" | "underline" | "bar" | "hat" | "vec" | "widehat" => {
                self.arg()?
            }
            "mathbb" => match self.arg()? {
                Node::Var(v) if v == "R" => Node::Reals,
                n => n,
            },
            "begin" => self.matrix()?,
            "log" | "ln" | "lg" => {
                let base = if self.eat_sym('_') {
                    Some(self.arg()?)
                } else {
                    None
                };
                let exp = if self.eat_sym('^') {
                    Some(self.power_arg()?)
                } else {
                    None
                };
                let x = self.func_arg()?;
                let n = match base {
                    Some(b) => Node::Log(Box::new(b), Box::new(x)),
                    None => Node::Func("ln", Box::new(x)),
                };
                wrap_pow(n, exp)
            }
            "sin" | "cos" | "tan" | "sec" | "csc" | "cot" | "arcsin" | "arccos" | "arctan"
            | "sinh" | "cosh" | "tanh" | "exp" => {
                let exp = if self.eat_sym('^') {
                    Some(self.power_arg()?)
                } else {
                    None
                };
                let x = self.func_arg()?;
                let f: &'static str = match name {
                    "sin" => "sin",
                    "cos" => "cos",
                    "tan" => "tan",
                    "sec" => "sec",
                    "csc" => "csc",
                    "cot" => "cot",
                    "arcsin" => "arcsin",
                    "arccos" => "arccos",
                    "arctan" => "arctan",
                    "sinh" => "sinh",
                    "cosh" => "cosh",
                    "tanh" => "tanh",
                    _ => "exp",
                };
                wrap_pow(Node::Func(f, Box::new(x)), exp)
            }
            "lfloor" | "lceil" => {
                let inner = self.sum()?;
                if !(self.eat_cmd("rfloor") || self.eat_cmd("rceil")) {
                    return Err(ParseError);
                }
                Node::Func(
                    if name == "lfloor" { "floor" } else { "ceil" },
                    Box::new(inner),
                )
            }
            // Greek letters and other symbols are variables.
            n if n.chars().all(|c| c.is_ascii_alphabetic()) && !is_structural(n) => {
                Node::Var(format!("\\{n}"))
            }
            _ => return Err(ParseError),
        })
    }

    /// `\begin{pmatrix} a & b \\ c & d \end{pmatrix}` (also bmatrix, array, ...).
    fn matrix(&mut self) -> PResult<Node> {
        let env = self.env_name()?;
        if env == "array" && is_sym(self.peek(), '{') {
            // Column spec.
            let toks = self.toks;
            while let Some(t) = toks.get(self.pos) {
                self.pos += 1;
                if is_sym(Some(t), '}') {
                    break;
                }
            }
        }
        let mut rows = vec![Vec::new()];
        loop {
            if self.eat_cmd("end") {
                self.env_name()?;
                break;
            }
            match self.peek() {
                None => return Err(ParseError),
                Some(Tok::Sym('&')) => {
                    self.pos += 1;
                }
                Some(Tok::RowSep) => {
                    self.pos += 1;
                    rows.push(Vec::new());
                }
                _ => {
                    let cell = self.relation()?;
                    rows.last_mut().ok_or(ParseError)?.push(cell);
                }
            }
        }
        if rows.last().is_some_and(Vec::is_empty) {
            rows.pop();
        }
        if rows.is_empty() {
            return Err(ParseError);
        }
        Ok(Node::Matrix(rows))
    }

    fn env_name(&mut self) -> PResult<String> {
        if !self.eat_sym('{') {
            return Err(ParseError);
        }
        let mut name = String::new();
        let toks = self.toks;
        while let Some(t) = toks.get(self.pos) {
            self.pos += 1;
            match t {
                Tok::Sym('}') => return Ok(name),
                Tok::Letter(c) => name.push(*c),
                Tok::Word(w) => name.push_str(w),
                Tok::Sym('*') => {}
                _ => return Err(ParseError),
            }
        }
        Err(ParseError)
    }
}

pub(super) fn wrap_pow(n: Node, exp: Option<Node>) -> Node {
    match exp {
        Some(e) => Node::Pow(Box::new(n), Box::new(e)),
        None => n,
    }
}

/// Commands that are structure, never a variable.
pub(super) fn is_structural(n: &str) -> bool {
    matches!(
        n,
        "end" | "cup" | "cap" | "pm" | "to" | "in" | "setminus" | "rfloor" | "rceil" | "right"
    )
}

/// `five` -> 5.
pub(crate) fn number_word(w: &str) -> Option<f64> {
    const WORDS: [&str; 21] = [
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
        "twenty",
    ];
    if let Some(i) = WORDS.iter().position(|x| *x == w) {
        return Some(i as f64);
    }
    Some(match w {
        "thirty" => 30.0,
        "forty" => 40.0,
        "fifty" => 50.0,
        "sixty" => 60.0,
        "seventy" => 70.0,
        "eighty" => 80.0,
        "ninety" => 90.0,
        "hundred" => 100.0,
        "thousand" => 1000.0,
        _ => return None,
    })
}
