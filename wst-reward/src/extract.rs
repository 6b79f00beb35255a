//! Final-answer extraction from a free-text reply (GSM8K references are parsed by
//! [`wst_core::parse_gsm8k_reference`], shared with the dataset loader).

use crate::latex::lexer::matching_brace;

/// How many `\boxed` candidates are examined from the end of a reply (bounds the time on
/// replies full of unclosed boxes).
const MAX_BOX_CANDIDATES: usize = 16;
/// Longest gap between two boxes of one multi-part answer (`x = \boxed{2}` and `x = \boxed{3}`).
const MAX_BOX_GAP: usize = 48;

/// Options of [`extract_answer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtractOptions {
    /// When nothing marks the answer (no box, no "the answer is", no `####`), take the last
    /// number of the reply.
    pub last_number_fallback: bool,
}

impl Default for ExtractOptions {
    fn default() -> Self {
        ExtractOptions {
            last_number_fallback: true,
        }
    }
}

/// The final answer of a reply, in this order: the last `\boxed{...}` / `\fbox{...}` (several
/// boxes of one sentence are joined with `, `), the text after the last "the answer is" /
/// "Final Answer:", the text after `####`, and (if enabled) the last number. Text before a
/// closing `</think>` is ignored. `None` when there is no answer (empty reply, empty box,
/// refusal).
///
/// ```
/// use wst_reward::{extract_answer, ExtractOptions};
/// let o = ExtractOptions::default();
/// assert_eq!(extract_answer("so $x = \\boxed{\\frac{1}{2}}$.", &o).as_deref(), Some("\\frac{1}{2}"));
/// assert_eq!(extract_answer("6 * 7 = 42\n#### 42", &o).as_deref(), Some("42"));
/// ```
pub fn extract_answer(reply: &str, opts: &ExtractOptions) -> Option<String> {
    let body = match reply.rfind("</think>") {
        Some(k) if !reply[k + 8..].trim().is_empty() => &reply[k + 8..],
        _ => reply,
    };
    if let Some(b) = boxed(body) {
        let b = b.trim();
        return (!b.is_empty()).then(|| b.to_string());
    }
    if let Some(a) = answer_is(body) {
        return Some(strip_calculator(&a));
    }
    if let Some(k) = body.rfind("####") {
        let line = body[k + 4..].lines().next().unwrap_or("").trim();
        let line = line.trim_end_matches(['.', ' ']);
        if !line.is_empty() {
            return Some(line.to_string());
        }
    }
    if opts.last_number_fallback {
        return last_number(body);
    }
    None
}

/// Drops GSM8K calculator annotations: `<<6*7=42>>42` -> `42`.
fn strip_calculator(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(k) = rest.find("<<") {
        let Some(e) = rest[k..].find(">>") else {
            break;
        };
        out.push_str(&rest[..k]);
        rest = &rest[k + e + 2..];
    }
    out.push_str(rest);
    out
}

/// One box: byte range of the command and its content.
struct BoxSpan {
    start: usize,
    end: usize,
    content: String,
}

/// The box that starts at `at` (`\boxed` or `\fbox`, name length `len`).
fn box_at(s: &str, at: usize, len: usize) -> Option<BoxSpan> {
    let after = at + len;
    let rest = &s[after..];
    let trimmed = rest.trim_start();
    let j = after + (rest.len() - trimmed.len());
    if trimmed.starts_with('{') {
        let close = matching_brace(s, j)?;
        return Some(BoxSpan {
            start: at,
            end: close + 1,
            content: s[j + 1..close].to_string(),
        });
    }
    if trimmed.starts_with(|c: char| c.is_alphabetic()) && j == after {
        // `\boxedfoo`: another command.
        return None;
    }
    // `\boxed 7`.
    let n = trimmed
        .find(|c: char| c.is_whitespace() || c == '$' || c == '\\')
        .unwrap_or(trimmed.len());
    Some(BoxSpan {
        start: at,
        end: j + n,
        content: trimmed[..n].to_string(),
    })
}

/// Candidate box starts, last first.
fn box_starts(s: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut end = s.len();
    std::iter::from_fn(move || {
        let head = &s[..end];
        let b = head.rfind("\\boxed");
        let f = head.rfind("\\fbox");
        let (at, len) = match (b, f) {
            (Some(b), Some(f)) if f > b => (f, 5),
            (Some(b), _) => (b, 6),
            (None, Some(f)) => (f, 5),
            (None, None) => return None,
        };
        end = at;
        Some((at, len))
    })
    .take(MAX_BOX_CANDIDATES)
}

/// The content of the last box, joined with the other boxes of its sentence.
fn boxed(s: &str) -> Option<String> {
    let mut found: Vec<BoxSpan> = Vec::new();
    for (at, len) in box_starts(s) {
        let Some(b) = box_at(s, at, len) else {
            continue;
        };
        match found.last() {
            None => found.push(b),
            Some(last) => {
                if b.end > last.start {
                    // Nested: the inner (later) box is the answer.
                    break;
                }
                let gap = &s[b.end..last.start];
                if gap.len() > MAX_BOX_GAP || gap.contains(['.', '\n']) {
                    break;
                }
                found.push(b);
            }
        }
    }
    if found.is_empty() {
        return None;
    }
    // `\boxed{15\frac{39}{40}}, or \boxed{\frac{639}{40}}`: one answer in two forms.
    let last = found[0].content.as_str();
    if found[1..]
        .iter()
        .all(|b| crate::equivalent(last, &b.content))
    {
        return Some(last.to_string());
    }
    let parts: Vec<&str> = found.iter().rev().map(|b| b.content.as_str()).collect();
    Some(parts.join(", "))
}

/// The text after the last "answer is" / "answer:" (markdown emphasis around it tolerated:
/// `**Final Answer:** 5`, `**Answer**: 5`).
fn answer_is(s: &str) -> Option<String> {
    let lower = s.to_ascii_lowercase();
    let k = lower.rmatch_indices("answer").find_map(|(k, m)| {
        let after = &lower[k + m.len()..];
        let skipped = after.trim_start_matches(['*', '_', ' ']);
        let off = k + m.len() + (after.len() - skipped.len());
        if skipped.starts_with(':') {
            Some(off + 1)
        } else if skipped.starts_with("is") && !skipped[2..].starts_with(char::is_alphabetic) {
            Some(off + 2)
        } else {
            None
        }
    })?;
    let rest = s[k..]
        .trim_start()
        .trim_start_matches([':', '*', '_', ' '])
        .trim_start();
    let ans = if let Some(r) = rest.strip_prefix("$$") {
        r.split("$$").next().unwrap_or("")
    } else if let Some(r) = rest.strip_prefix('$') {
        r.split('$').next().unwrap_or("")
    } else if let Some(r) = rest.strip_prefix("\\(") {
        r.split("\\)").next().unwrap_or("")
    } else if let Some(r) = rest.strip_prefix("\\[") {
        r.split("\\]").next().unwrap_or("")
    } else {
        sentence(rest)
    };
    let ans = ans
        .trim()
        .trim_matches(['*', '_'])
        .trim()
        .trim_end_matches(['.', ',', ' ']);
    (!ans.is_empty()).then(|| ans.to_string())
}

/// Text up to the end of its sentence (a newline, or a period followed by a space).
fn sentence(s: &str) -> &str {
    let b = s.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        if c == b'\n' {
            return &s[..i];
        }
        if c == b'.' && b.get(i + 1).is_none_or(|n| n.is_ascii_whitespace()) {
            return &s[..i];
        }
    }
    s
}

/// The last number of the text (`1,234`, `-3.5`).
fn last_number(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let end = b.iter().rposition(u8::is_ascii_digit)? + 1;
    let mut start = end;
    while start > 0 {
        let c = b[start - 1];
        let inner_sep =
            (c == b',' || c == b'.') && start >= 2 && b[start - 2].is_ascii_digit() && start < end;
        if c.is_ascii_digit() || inner_sep {
            start -= 1;
        } else {
            break;
        }
    }
    if start > 0 && b[start - 1] == b'-' {
        start -= 1;
    }
    let n: String = s[start..end].chars().filter(|c| *c != ',').collect();
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(s: &str) -> Option<String> {
        extract_answer(s, &ExtractOptions::default())
    }

    #[test]
    fn extraction_order() {
        assert_eq!(
            ex("a $\\boxed{12}$.\n\nso $\\boxed{15}$.").as_deref(),
            Some("15")
        );
        assert_eq!(
            ex("so $x = \\boxed{2}$ and $x = \\boxed{3}$.").as_deref(),
            Some("2, 3")
        );
        assert_eq!(
            ex("$d = \\boxed{15\\frac{39}{40}},$ or $\\boxed{\\frac{639}{40}}$ inches.").as_deref(),
            Some("\\frac{639}{40}")
        );
        assert_eq!(
            ex("the remainder is \\boxed{\\boxed{4}}.").as_deref(),
            Some("4")
        );
        assert_eq!(ex("Answer: $\\boxed 7$").as_deref(), Some("7"));
        assert_eq!(ex("so $x = \\fbox{7}$.").as_deref(), Some("7"));
        assert_eq!(ex("the answer is $\\boxed{}$."), None);
        assert_eq!(
            ex("The answer is 18. (That's 9 eggs.)").as_deref(),
            Some("18")
        );
        assert_eq!(
            ex("Final Answer: The final answer is $\\frac{5}{6}$. I hope it is correct.")
                .as_deref(),
            Some("\\frac{5}{6}")
        );
        assert_eq!(ex("x\n#### 1,234").as_deref(), Some("1,234"));
        assert_eq!(ex("**Final Answer:** 5").as_deref(), Some("5"));
        assert_eq!(ex("The answer is <<5=5>>5.").as_deref(), Some("5"));
        assert_eq!(ex("**Answer**: $x = 3$").as_deref(), Some("x = 3"));
        assert_eq!(ex("The answer is: **17**").as_deref(), Some("17"));
        assert_eq!(
            ex("Answers vary; the answered part is 3. Total 9").as_deref(),
            Some("9")
        );
        assert_eq!(ex("15 * 3 = 45 minutes").as_deref(), Some("45"));
        assert_eq!(ex("it costs 1,150.5 in total.").as_deref(), Some("1150.5"));
        let off = ExtractOptions {
            last_number_fallback: false,
        };
        assert_eq!(extract_answer("15 * 3 = 45 minutes", &off), None);
        assert_eq!(ex(""), None);
        assert_eq!(ex("I am not sure."), None);
    }
}
