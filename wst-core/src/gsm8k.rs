//! The one GSM8K `####` parser: the dataset loader (references) and the verifier (gold
//! answers) both read a solution's final answer with it.

/// The number after the last `####` of a GSM8K solution, as written but without what only
/// formats it: thousands separators, a currency sign, spaces, a leading `+` and a closing `.`
/// (`#### 1,000` -> `1000`, `#### $5` -> `5`, `#### 3.5` -> `3.5`, `#### -3` -> `-3`).
/// `None` when there is no marker or what follows it is not a decimal number.
///
/// ```
/// use wst_core::parse_gsm8k_reference;
/// assert_eq!(parse_gsm8k_reference("6 * 7 = 42\n#### 1,042").as_deref(), Some("1042"));
/// assert_eq!(parse_gsm8k_reference("#### $3.50").as_deref(), Some("3.50"));
/// assert_eq!(parse_gsm8k_reference("#### seven"), None);
/// ```
pub fn parse_gsm8k_reference(solution: &str) -> Option<String> {
    let k = solution.rfind("####")?;
    let line = solution[k + 4..].lines().next().unwrap_or("");
    let mut v: String = line
        .chars()
        .filter(|c| !matches!(c, ',' | '$' | ' ' | '\t'))
        .collect();
    while v.ends_with('.') {
        v.pop();
    }
    let v = v.strip_prefix('+').unwrap_or(&v).to_string();
    is_decimal(&v).then_some(v)
}

/// `-?digits(.digits)?` or `-?.digits`.
fn is_decimal(s: &str) -> bool {
    let body = s.strip_prefix('-').unwrap_or(s);
    let (int, frac) = match body.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (body, None),
    };
    let digits = |t: &str| t.chars().all(|c| c.is_ascii_digit());
    match frac {
        None => !int.is_empty() && digits(int),
        Some(f) => !f.is_empty() && digits(f) && digits(int),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_in_every_written_form() {
        let p = |s: &str| parse_gsm8k_reference(s);
        assert_eq!(p("so\n#### 1,000").as_deref(), Some("1000"));
        assert_eq!(p("#### -3").as_deref(), Some("-3"));
        assert_eq!(p("#### +3").as_deref(), Some("3"));
        assert_eq!(p("#### 3.5").as_deref(), Some("3.5"));
        assert_eq!(p("#### .5").as_deref(), Some(".5"));
        assert_eq!(p("#### $5").as_deref(), Some("5"));
        assert_eq!(p("#### $1,234.50.").as_deref(), Some("1234.50"));
        assert_eq!(p("#### 1 000").as_deref(), Some("1000"));
        assert_eq!(p("a #### 1\nb #### 72\n").as_deref(), Some("72"));
        assert_eq!(p("#### 72\nextra text").as_deref(), Some("72"));
        // A closing dot ends the sentence: `3.` is the integer 3.
        assert_eq!(p("#### 3.").as_deref(), Some("3"));
        for bad in [
            "no marker",
            "####",
            "#### ",
            "#### seven",
            "#### 1/2",
            "#### -",
            "#### 1.2.3",
        ] {
            assert_eq!(p(bad), None, "{bad}");
        }
    }
}
