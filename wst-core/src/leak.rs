//! The answer-leak detector: does an instruction hand the student an answer instead of teaching
//! it how to find one? One detector serves the training metric (`answer_in_instruction`), the
//! evaluation table and the `answer-leak` reward component.

/// True when `instruction` contains the reference answer: as a number (commas and a leading `$`
/// ignored, equal within 1e-9 relative) or, for a non-numeric reference, as a whole-word phrase
/// (case-insensitive).
pub fn contains_answer(instruction: &str, reference: &str) -> bool {
    let r = reference.trim().trim_start_matches('$').replace(',', "");
    if r.is_empty() {
        return false;
    }
    if let Ok(x) = r.parse::<f64>() {
        let text = instruction.replace(',', "");
        return text
            .split(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
            .map(|w| w.trim_end_matches('.'))
            .filter_map(|w| w.parse::<f64>().ok())
            .any(|y| (x - y).abs() <= 1e-9 * x.abs().max(1.0));
    }
    let r = r.to_lowercase();
    let words: Vec<&str> = r.split_whitespace().collect();
    let text = instruction.to_lowercase();
    let toks: Vec<&str> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    !words.is_empty() && toks.windows(words.len()).any(|w| w == words.as_slice())
}

/// Phrases after which a stated value is an answer.
const MARKERS: [&str; 6] = [
    "answer is",
    "answer:",
    "answer =",
    "equals",
    "equal to",
    "=",
];

/// True when `instruction` states a value as an answer: one of "answer is", "answer:", "answer
/// =", "equals", "equal to" or "=" followed (after spaces, `$`, `*`, `\boxed{`) by a number such
/// as `5`, `-3`, `2.5` or `3/4`. "2 + 4 equals 5" and "3 + 4 = 7" state answers (right or
/// wrong); "let x = the first number" and "equals sign" do not.
pub fn states_answer(instruction: &str) -> bool {
    let text = instruction.to_lowercase();
    MARKERS.iter().any(|m| {
        text.match_indices(m).any(|(i, _)| {
            let rest = text[i + m.len()..]
                .trim_start_matches(|c: char| c.is_whitespace() || matches!(c, '$' | '*'));
            let rest = rest.strip_prefix("\\boxed{").unwrap_or(rest);
            let rest = rest.strip_prefix('-').unwrap_or(rest);
            rest.starts_with(|c: char| c.is_ascii_digit())
        })
    })
}

/// The `answer-leak` verdict: the instruction contains the reference answer (when there is one)
/// or states an answer.
pub fn leaks_answer(instruction: &str, reference: Option<&str>) -> bool {
    reference.is_some_and(|r| contains_answer(instruction, r)) || states_answer(instruction)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_found_as_numbers_and_words() {
        assert!(contains_answer("The answer is 12.", "12"));
        assert!(contains_answer("costs $1,200 total", "1200"));
        assert!(contains_answer("about 3.50 each", "3.5"));
        assert!(!contains_answer("add 120 and 3", "12"));
        assert!(!contains_answer("Add the units first.", "7"));
        assert!(contains_answer("It is Seven.", "seven"));
        assert!(!contains_answer("sevenfold", "seven"));
        assert!(contains_answer("x = -4 here", "-4"));
        assert!(contains_answer("12", "12"));
        assert!(contains_answer("so x=12, done", "12"));
        assert!(!contains_answer("add 123 first", "12"));
        assert!(!contains_answer("1.12 is small", "12"));
        assert!(!contains_answer("12.5 is it", "12"));
        assert!(!contains_answer("anything", ""));
        assert!(contains_answer("ü 7", "7"));
    }

    #[test]
    fn stated_answers_are_found_right_or_wrong() {
        for yes in [
            "To add 2 + 4, count up. 2 + 4 equals 5",
            "3 + 4 = 7",
            "The answer is 42.",
            "The Answer: -3",
            "answer = $2.5$",
            "it is equal to 3/4",
            "so the answer is **6**",
            "The answer is \\boxed{9}",
        ] {
            assert!(states_answer(yes), "{yes}");
        }
        for no in [
            "Add the ones first, then carry.",
            "Let x = the first number.",
            "Use the equals sign carefully.",
            "The answer is a whole number.",
            "",
        ] {
            assert!(!states_answer(no), "{no}");
        }
        assert!(leaks_answer("Remember that the total is 9", Some("9")));
        assert!(!leaks_answer("Remember that the total is 9", Some("8")));
        assert!(leaks_answer("so 4 + 4 = 9", None));
        assert!(!leaks_answer("count on your fingers", None));
    }
}
