//! Tokens of a LaTeX answer. Presentation-only markup (`\left`, `\!`, `$`, `\%`, `^\circ`, ...)
//! is dropped here, so the parser sees only what carries meaning.

/// Longest answer (in bytes) the lexer accepts; longer ones are not parsed.
pub(crate) const MAX_ANSWER_BYTES: usize = 4096;
/// Deepest nesting of `\text{...}` contents that are lexed as math.
const MAX_TEXT_DEPTH: usize = 8;

/// One token.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// A number; `digits` tells whether it was written with digits only (a base-n candidate).
    Num(f64, bool),
    /// A one-letter variable or constant (`x`, `e`, `i`).
    Letter(char),
    /// A command without its backslash (`frac`, `pi`, `cup`).
    Cmd(String),
    /// A word from running text or `\text{...}` (units, text answers), lower-cased.
    Word(String),
    /// A multiple-choice letter from `\text{(B)}`.
    Choice(char),
    /// `and` / `or`: separates the parts of an answer.
    Sep,
    /// `\{`.
    LSet,
    /// `\}`.
    RSet,
    /// `\\` (matrix row separator).
    RowSep,
    /// `<=`.
    Le,
    /// `>=`.
    Ge,
    /// `\neq`.
    Ne,
    /// Any other meaningful character: `+ - * / ^ _ ( ) [ ] { } , ; = < > | ! & '`.
    Sym(char),
}

/// Commands that are pure presentation and are dropped.
const DROPPED: &[&str] = &[
    "left",
    "right",
    "bigl",
    "bigr",
    "Bigl",
    "Bigr",
    "big",
    "Big",
    "biggl",
    "biggr",
    "displaystyle",
    "textstyle",
    "quad",
    "qquad",
    "circ",
    "degree",
    "%",
    "$",
    ",",
    "!",
    ";",
    ":",
    " ",
    "(",
    ")",
    "[",
    "]",
    "limits",
    "nolimits",
    "mathstrut",
    "hfill",
    "medspace",
    "thinspace",
    "negthinspace",
    "dots",
    "ldots",
    "cdots",
    "bigg",
    "Bigg",
    "biggl",
    "biggr",
    "Biggl",
    "Biggr",
    "middle",
    "nonumber",
    "notag",
];

/// Commands dropped together with their braced argument.
const DROPPED_WITH_ARG: &[&str] = &[
    "hspace", "vspace", "phantom", "hphantom", "vphantom", "label", "tag", "color",
];

/// Commands whose braced argument is text (or math written inside a text box).
const TEXTLIKE: &[&str] = &[
    "text",
    "textbf",
    "textit",
    "textrm",
    "textsf",
    "texttt",
    "mbox",
    "hbox",
    "mathrm",
    "mathbf",
    "mathit",
    "mathsf",
    "mathtt",
    "operatorname",
    "textnormal",
    "emph",
    "textup",
    "boldsymbol",
    "mathbfit",
    "bm",
];

/// Words that are kept together as one word rather than read as a product of letters.
const SHORT_WORDS: &[&str] = &[
    "cm", "mm", "km", "in", "ft", "yd", "mi", "kg", "mg", "mph", "hr", "hrs", "min", "mins", "sec",
    "secs", "sq", "and", "or", "per", "one", "two", "six", "ten", "yes", "no", "odd", "lbs", "lb",
    "oz", "day", "days", "cents", "units", "unit", "feet", "foot", "inch", "km",
];

/// Function names also recognised without a backslash.
const BARE_FUNCS: &[&str] = &[
    "sin", "cos", "tan", "sec", "csc", "cot", "log", "ln", "exp", "sqrt", "arcsin", "arccos",
    "arctan",
];

/// Lexes an answer. `None` when it is too long or malformed beyond repair (e.g. a `\text` box
/// nested too deep).
pub(crate) fn lex(s: &str) -> Option<Vec<Tok>> {
    if s.len() > MAX_ANSWER_BYTES {
        return None;
    }
    let allow_thousands = !s.contains('(') && !s.contains('[') && !s.contains("\\{");
    let mut out = Vec::new();
    lex_into(s, allow_thousands, 0, &mut out)?;
    Some(out)
}

fn lex_into(s: &str, allow_thousands: bool, depth: usize, out: &mut Vec<Tok>) -> Option<()> {
    if depth > MAX_TEXT_DEPTH {
        return None;
    }
    let b = s.as_bytes();
    let mut i = 0;
    // Brace-less `\frac12` / `\sqrt3`: how many single-digit arguments are still expected.
    let mut single_digits = 0usize;
    while i < b.len() {
        let c = b[i];
        match c {
            b' ' | b'\t' | b'\n' | b'\r' | b'~' | b'$' | b'%' => i += 1,
            b'0'..=b'9' | b'.' => {
                if c == b'.' && !b.get(i + 1).is_some_and(u8::is_ascii_digit) {
                    // A sentence period or a stray dot.
                    i += 1;
                    continue;
                }
                if single_digits > 0 && c != b'.' {
                    single_digits -= 1;
                    out.push(Tok::Num(f64::from(c - b'0'), true));
                    i += 1;
                    continue;
                }
                let (mut v, mut digits, mut next) = lex_number(s, i, allow_thousands);
                if let Some(rest) = s[next..].strip_prefix("\\overline") {
                    // A repeating decimal: `0.1\overline{6}`.
                    let (reps, after) = braced_arg(s, s.len() - rest.len())?;
                    v = repeating(s[i..next].trim(), reps.trim())?;
                    digits = false;
                    next = after;
                }
                out.push(Tok::Num(v, digits));
                i = next;
            }
            b'\\' => {
                let (name, next) = command_name(s, i + 1);
                i = next;
                match name {
                    "\\" => out.push(Tok::RowSep),
                    "{" => out.push(Tok::LSet),
                    "}" => out.push(Tok::RSet),
                    "le" | "leq" | "leqslant" => out.push(Tok::Le),
                    "ge" | "geq" | "geqslant" => out.push(Tok::Ge),
                    "lt" => out.push(Tok::Sym('<')),
                    "gt" => out.push(Tok::Sym('>')),
                    "ne" | "neq" => out.push(Tok::Ne),
                    "mid" | "vert" | "lvert" | "rvert" => out.push(Tok::Sym('|')),
                    "dfrac" | "tfrac" | "cfrac" | "frac" | "binom" | "dbinom" | "tbinom" => {
                        out.push(Tok::Cmd(canonical(name).to_string()));
                        single_digits = if starts_digit(s, i) { 2 } else { 0 };
                    }
                    "sqrt" => {
                        out.push(Tok::Cmd("sqrt".into()));
                        single_digits = usize::from(starts_digit(s, i));
                    }
                    "cdot" | "times" | "ast" => out.push(Tok::Sym('*')),
                    "div" => out.push(Tok::Sym('/')),
                    "colon" => out.push(Tok::Sym(':')),
                    "and" => out.push(Tok::Sep),
                    n if TEXTLIKE.contains(&n) => {
                        let (content, next) = braced_arg(s, i)?;
                        i = next;
                        let bold =
                            matches!(n, "mathbf" | "boldsymbol" | "bm" | "mathit" | "mathbfit");
                        if bold && content.len() == 1 && content.as_bytes()[0].is_ascii_alphabetic()
                        {
                            // `\mathbf{a}`: a (vector) variable, not a unit.
                            out.push(Tok::Letter(content.as_bytes()[0] as char));
                            continue;
                        }
                        lex_text(content, allow_thousands, depth, out)?;
                        continue;
                    }
                    n if DROPPED_WITH_ARG.contains(&n) => {
                        let (_, next) = braced_arg(s, i)?;
                        i = next;
                    }
                    n if DROPPED.contains(&n) => {
                        if matches!(n, "left" | "right" | "bigl" | "bigr")
                            && b.get(i) == Some(&b'.')
                        {
                            i += 1;
                        }
                    }
                    "" => {}
                    n => out.push(Tok::Cmd(canonical(n).to_string())),
                }
                continue;
            }
            b'a'..=b'z' | b'A'..=b'Z' => {
                let start = i;
                while i < b.len() && b[i].is_ascii_alphabetic() {
                    i += 1;
                }
                let word = &s[start..i];
                push_letters(word, out);
            }
            b'<' | b'>' if b.get(i + 1) == Some(&b'=') => {
                out.push(if c == b'<' { Tok::Le } else { Tok::Ge });
                i += 2;
            }
            b'{' if s[i..].starts_with("{,}") => i += 3,
            b'^' if circ_follows(s, i + 1).is_some() => {
                i = circ_follows(s, i + 1).unwrap_or(i + 1);
            }
            b'{' => {
                single_digits = 0;
                out.push(Tok::Sym('{'));
                i += 1;
            }
            b'+' | b'-' | b'*' | b'/' | b'^' | b'_' | b'(' | b')' | b'[' | b']' | b'}' | b','
            | b';' | b'=' | b'<' | b'>' | b'|' | b'!' | b'&' | b':' => {
                if c == b'_' && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
                    single_digits = 1;
                }
                out.push(Tok::Sym(c as char));
                i += 1;
            }
            _ => {
                // Non-ASCII: a few symbols mean something, the rest is dropped.
                let ch = s[i..].chars().next().unwrap_or(' ');
                i += ch.len_utf8();
                match ch {
                    'π' => out.push(Tok::Cmd("pi".into())),
                    '∞' => out.push(Tok::Cmd("infty".into())),
                    '≤' => out.push(Tok::Le),
                    '≥' => out.push(Tok::Ge),
                    '≠' => out.push(Tok::Ne),
                    '×' | '·' | '⋅' => out.push(Tok::Sym('*')),
                    '÷' => out.push(Tok::Sym('/')),
                    '−' | '–' => out.push(Tok::Sym('-')),
                    '±' => out.push(Tok::Cmd("pm".into())),
                    '√' => out.push(Tok::Cmd("sqrt".into())),
                    '∪' => out.push(Tok::Cmd("cup".into())),
                    '∅' => out.push(Tok::Cmd("emptyset".into())),
                    _ => {}
                }
            }
        }
    }
    Some(())
}

fn canonical(name: &str) -> &str {
    match name {
        "dfrac" | "tfrac" | "cfrac" => "frac",
        "dbinom" | "tbinom" => "binom",
        "varnothing" => "emptyset",
        "mp" => "pm",
        "leftarrow" | "rightarrow" | "Rightarrow" | "implies" | "to" => "to",
        "varpi" => "pi",
        "infin" | "infinity" => "infty",
        "imath" => "i",
        "lbrace" => "{",
        "rbrace" => "}",
        n => n,
    }
}

fn starts_digit(s: &str, i: usize) -> bool {
    let rest = s[i..].trim_start();
    rest.as_bytes().first().is_some_and(u8::is_ascii_digit)
}

/// Letters: a known word or function name stays whole, anything else is one letter per token.
fn push_letters(word: &str, out: &mut Vec<Tok>) {
    let lower = word.to_ascii_lowercase();
    if word.len() >= 2 && BARE_FUNCS.contains(&word) {
        out.push(Tok::Cmd(word.to_string()));
    } else if lower == "and" || lower == "or" {
        out.push(Tok::Sep);
    } else if word.len() >= 4 || (word.len() >= 2 && SHORT_WORDS.contains(&lower.as_str())) {
        out.push(Tok::Word(lower));
    } else {
        out.extend(word.chars().map(Tok::Letter));
    }
}

/// `\text{...}` content: a separator, a choice letter, words, or math to lex again.
fn lex_text(content: &str, allow_thousands: bool, depth: usize, out: &mut Vec<Tok>) -> Option<()> {
    let t = content.trim().trim_end_matches('.').trim();
    let lower = t.to_ascii_lowercase();
    if lower == "and" || lower == "or" || lower == "," {
        out.push(Tok::Sep);
        return Some(());
    }
    let inner = t
        .strip_prefix('(')
        .and_then(|x| x.strip_suffix(')'))
        .unwrap_or(t);
    if inner.len() == 1 && inner.as_bytes()[0].is_ascii_uppercase() {
        out.push(Tok::Choice(inner.as_bytes()[0] as char));
        return Some(());
    }
    if !t.is_empty()
        && t.bytes()
            .all(|c| c.is_ascii_alphabetic() || c == b' ' || c == b'-' || c == b'\'')
    {
        for w in t.split([' ', '-']).filter(|w| !w.is_empty()) {
            let lw = w.to_ascii_lowercase();
            if lw == "and" || lw == "or" {
                out.push(Tok::Sep);
            } else {
                out.push(Tok::Word(lw));
            }
        }
        return Some(());
    }
    lex_into(content, allow_thousands, depth + 1, out)
}

/// `^\circ`, `^{\circ}`: returns the index after it.
fn circ_follows(s: &str, i: usize) -> Option<usize> {
    let rest = &s[i..];
    for pat in [
        "\\circ",
        "{\\circ}",
        "{ \\circ }",
        "{\\circ }",
        "{ \\circ}",
        "\\degree",
    ] {
        if let Some(r) = rest.strip_prefix(pat) {
            if pat == "\\circ" && r.as_bytes().first().is_some_and(u8::is_ascii_alphabetic) {
                return None;
            }
            return Some(i + pat.len());
        }
    }
    None
}

/// The command name after a backslash at `i`: letters, or one other character.
fn command_name(s: &str, i: usize) -> (&str, usize) {
    let b = s.as_bytes();
    let mut j = i;
    while j < b.len() && b[j].is_ascii_alphabetic() {
        j += 1;
    }
    if j > i {
        return (&s[i..j], j);
    }
    match s[i..].chars().next() {
        Some(c) => (&s[i..i + c.len_utf8()], i + c.len_utf8()),
        None => ("", i),
    }
}

/// The content of a `{...}` argument starting at or after `i` (spaces skipped), and the index
/// after its closing brace. A missing brace takes one character.
fn braced_arg(s: &str, i: usize) -> Option<(&str, usize)> {
    let b = s.as_bytes();
    let mut j = i;
    while j < b.len() && b[j] == b' ' {
        j += 1;
    }
    if j >= b.len() {
        return Some(("", j));
    }
    if b[j] != b'{' {
        let c = s[j..].chars().next()?;
        return Some((&s[j..j + c.len_utf8()], j + c.len_utf8()));
    }
    let end = matching_brace(s, j)?;
    Some((&s[j + 1..end], end + 1))
}

/// Index of the `}` matching the `{` at `open` (escaped braces skipped).
pub(crate) fn matching_brace(s: &str, open: usize) -> Option<usize> {
    let b = s.as_bytes();
    let mut depth = 0usize;
    let mut j = open;
    while j < b.len() {
        match b[j] {
            b'\\' => j += 1,
            b'{' => depth += 1,
            b'}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return Some(j);
                }
            }
            _ => {}
        }
        j += 1;
    }
    None
}

/// A number at `i`: digits with an optional decimal part, thousands separators when allowed,
/// and scientific notation. Returns the value, whether it is digits only, and the next index.
fn lex_number(s: &str, i: usize, allow_thousands: bool) -> (f64, bool, usize) {
    let b = s.as_bytes();
    let mut text = String::new();
    let mut j = i;
    let mut group = 0;
    while j < b.len() {
        let c = b[j];
        if c.is_ascii_digit() {
            text.push(c as char);
            group += 1;
            j += 1;
        } else if allow_thousands
            && (c == b',' || c == b' ')
            && !text.contains('.')
            && group <= 3
            && b.len() >= j + 4
            && b[j + 1..j + 4].iter().all(u8::is_ascii_digit)
            && !b.get(j + 4).is_some_and(u8::is_ascii_digit)
            && (c == b',' || (j + 4 == b.len() && !text.is_empty()))
        {
            // `1,234` or `12 345` (the space form only for a whole answer).
            group = 0;
            j += 1;
        } else {
            break;
        }
    }
    let mut digits_only = true;
    if j < b.len() && b[j] == b'.' {
        digits_only = false;
        text.push('.');
        j += 1;
        while j < b.len() && b[j].is_ascii_digit() {
            text.push(b[j] as char);
            j += 1;
        }
    }
    // Scientific notation: `2.5e3`, `1e-4`.
    if j < b.len() && (b[j] == b'e' || b[j] == b'E') && !text.is_empty() {
        let mut k = j + 1;
        if k < b.len() && (b[k] == b'-' || b[k] == b'+') {
            k += 1;
        }
        let start = k;
        while k < b.len() && b[k].is_ascii_digit() {
            k += 1;
        }
        if k > start && !b.get(k).is_some_and(u8::is_ascii_alphabetic) {
            text.push_str(&s[j..k].to_ascii_lowercase());
            j = k;
            digits_only = false;
        }
    }
    let t = if text.ends_with('.') {
        &text[..text.len() - 1]
    } else {
        &text
    };
    let v = t.parse::<f64>().unwrap_or(f64::NAN);
    (v, digits_only, j)
}

/// `0.1\overline{6}` -> 1/6.
fn repeating(prefix: &str, reps: &str) -> Option<f64> {
    if !reps.bytes().all(|c| c.is_ascii_digit()) || reps.len() > 15 {
        return None;
    }
    let (int, frac) = prefix.split_once('.').unwrap_or((prefix, ""));
    let base: f64 = format!("{}.{}", if int.is_empty() { "0" } else { int }, frac)
        .trim_end_matches('.')
        .parse()
        .ok()?;
    let r: f64 = reps.parse().ok()?;
    let d = i32::try_from(frac.len()).ok()?;
    let l = i32::try_from(reps.len()).ok()?;
    Some(base + r / (10f64.powi(d) * (10f64.powi(l) - 1.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_markup() {
        assert_eq!(lex("12,345").unwrap(), vec![Tok::Num(12345.0, true)]);
        assert_eq!(lex("12 345").unwrap(), vec![Tok::Num(12345.0, true)]);
        assert_eq!(lex("2.5e3").unwrap(), vec![Tok::Num(2500.0, false)]);
        assert_eq!(lex("\\$1,234.50").unwrap(), vec![Tok::Num(1234.5, false)]);
        assert_eq!(lex("45^\\circ").unwrap(), vec![Tok::Num(45.0, true)]);
        assert_eq!(lex("45^{\\circ}").unwrap(), vec![Tok::Num(45.0, true)]);
        let t = lex("0.\\overline{36}").unwrap();
        match t[0] {
            Tok::Num(v, _) => assert!((v - 4.0 / 11.0).abs() < 1e-12),
            _ => panic!("{t:?}"),
        }
        assert_eq!(
            lex("\\frac12").unwrap(),
            vec![
                Tok::Cmd("frac".into()),
                Tok::Num(1.0, true),
                Tok::Num(2.0, true)
            ]
        );
        assert_eq!(lex("\\text{(B)}").unwrap(), vec![Tok::Choice('B')]);
        assert_eq!(lex("\\text{ or }").unwrap(), vec![Tok::Sep]);
        assert_eq!(
            lex("\\biggl(5\\hspace{1cm}\\biggr)").unwrap(),
            vec![Tok::Sym('('), Tok::Num(5.0, true), Tok::Sym(')')]
        );
        assert!(lex(&"1".repeat(MAX_ANSWER_BYTES + 1)).is_none());
    }
}
