//! A small LaTeX answer language: lexer, parser and numeric evaluator.

pub(crate) mod eval;
pub(crate) mod lexer;
pub(crate) mod parser;

/// Lexes and parses one answer; `None` when it is not a well-formed answer.
pub(crate) fn parse_answer(s: &str) -> Option<parser::Node> {
    let toks = lexer::lex(s)?;
    parser::parse(&toks).ok()
}
