//! No panic and bounded time on arbitrary, deeply nested and very long inputs.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use wst_reward::{equivalent, extract_answer, verify_reply, ExtractOptions};

/// Generous per-call bound for a debug build on a busy machine; the real figure is microseconds.
const BOUND: Duration = Duration::from_secs(5);

fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let v = f();
    assert!(t.elapsed() < BOUND, "{what} took {:?}", t.elapsed());
    v
}

#[test]
fn deep_nesting_10k() {
    let opts = ExtractOptions::default();
    for (open, close) in [
        ("{", "}"),
        ("(", ")"),
        ("\\boxed{", "}"),
        ("\\text{", "}"),
        ("\\frac{", "}{2}"),
        ("\\sqrt{", "}"),
        ("-", ""),
        ("2^{", "}"),
        ("\\left(", "\\right)"),
    ] {
        let deep = format!("{}1{}", open.repeat(10_000), close.repeat(10_000));
        timed("deep equivalent", || equivalent(&deep, &deep));
        timed("deep equivalent vs 1", || equivalent("1", &deep));
        let reply = format!("The answer is $\\boxed{{{deep}}}$.");
        timed("deep reply", || verify_reply("1", &reply, &opts));
        let unbalanced = open.repeat(10_000);
        timed("unbalanced", || verify_reply("1", &unbalanced, &opts));
    }
}

#[test]
fn one_megabyte_replies() {
    let opts = ExtractOptions::default();
    let filler = "We compute 12 + 30 = 42 and check \\frac{1}{2} again. ".repeat(20_000);
    assert!(filler.len() >= 1_000_000);
    let reply = format!("{filler}So the answer is $\\boxed{{42}}$.");
    assert!(timed("1 MB boxed", || verify_reply("42", &reply, &opts)).verdict);
    timed("1 MB unboxed", || verify_reply("42", &filler, &opts));
    let boxes = "\\boxed{".repeat(150_000);
    timed("1 MB of open boxes", || verify_reply("1", &boxes, &opts));
    let long = "1+".repeat(500_000);
    timed("1 MB answer", || equivalent(&long, &long));
    timed("1 MB answer in a box", || {
        verify_reply("1", &format!("\\boxed{{{long}1}}"), &opts)
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_unicode_never_panics(a in "\\PC{0,64}", b in "\\PC{0,64}") {
        let opts = ExtractOptions::default();
        timed("unicode", || {
            equivalent(&a, &b);
            extract_answer(&b, &opts);
            verify_reply(&a, &b, &opts);
        });
    }

    #[test]
    fn latex_soup_never_panics(
        parts in proptest::collection::vec(
            prop_oneof![
                Just("\\frac"), Just("{"), Just("}"), Just("\\sqrt"), Just("["), Just("]"),
                Just("("), Just(")"), Just("^"), Just("_"), Just("\\boxed"), Just("\\text{"),
                Just("x"), Just("1"), Just("23"), Just(","), Just("="), Just("\\le"),
                Just("\\pm"), Just("\\cup"), Just("\\begin{pmatrix}"), Just("\\end{pmatrix}"),
                Just("&"), Just("\\\\"), Just("|"), Just("\\left("), Just("\\right)"),
                Just("."), Just("\\overline{"), Just("e"), Just("!"), Just("\\%"),
                Just(" "), Just("\\infty"), Just("-"), Just("\\{"), Just("\\}"), Just("é"),
            ],
            0..80,
        )
    ) {
        let s: String = parts.concat();
        let opts = ExtractOptions::default();
        timed("soup", || {
            equivalent(&s, &s);
            equivalent("1", &s);
            verify_reply("x", &format!("so \\boxed{{{s}}}"), &opts);
        });
    }
}

/// Sets of sets: order-free matching must not blow up on a tree of nested sets.
#[test]
fn nested_sets_stay_fast() {
    fn tree(depth: usize, leaf: &str) -> String {
        if depth == 0 {
            return leaf.to_string();
        }
        let t = tree(depth - 1, leaf);
        format!("\\{{{t},{t}\\}}")
    }
    for depth in [4, 6, 8, 9] {
        let a = tree(depth, "1");
        let b = tree(depth, "2");
        let c = format!("{}x", &a);
        timed("nested sets", || {
            equivalent(&a, &b);
            equivalent(&a, &a.replace(' ', "  "));
            equivalent(&a, &c);
        });
    }
    let flat: Vec<String> = (0..300).map(|i| i.to_string()).collect();
    let rev: Vec<String> = flat.iter().rev().cloned().collect();
    let (a, b) = (
        format!("\\{{{}\\}}", flat.join(",")),
        format!("\\{{{}\\}}", rev.join(",")),
    );
    assert!(timed("long set", || equivalent(&a, &b)));
}
