//! The string form of a selector, as list calls take it (Kubernetes' syntax):
//!
//! ```text
//! selector    := "" | requirement ("," requirement)*
//! requirement := key | "!" key | key ("=" | "==" | "!=") value
//!              | key ("in" | "notin") "(" value ("," value)* ")"
//! ```
//!
//! Blanks around tokens are ignored. Values may be empty (`tier=`, `env in (a,)`), as label
//! values may be. `=` and `==` become `matchLabels` (a second `=` on the same key with another
//! value becomes an In expression, so the conjunction still matches nothing, as written);
//! `!=` becomes NotIn with one value.

use super::{
    LabelSelector, Operator, Requirement, SelectorProblem, validate_label_key, validate_label_value,
};

/// Why a selector string does not parse: `"at offset {position}: {problem}"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at offset {position}: {problem}")]
pub struct ParseError {
    /// The byte offset in the string where the problem starts.
    pub position: usize,
    /// What is wrong there.
    pub problem: ParseProblem,
}

/// What is wrong in a selector string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseProblem {
    /// A token other than the grammar allows.
    #[error("expected {expected}, found {found}")]
    Unexpected {
        /// What the grammar allows here.
        expected: &'static str,
        /// What the string has, e.g. `','` or `end of input`.
        found: String,
    },
    /// `key in ()` or `key notin ()`.
    #[error("{key:?} {operator} (): the value list must not be empty")]
    EmptyValueList {
        /// The key.
        key: String,
        /// `in` or `notin`.
        operator: &'static str,
    },
    /// An operator of another selector dialect (`<`, `>`).
    #[error("operator {0:?} is not supported (use =, ==, !=, in, notin, key or !key)")]
    UnsupportedOperator(String),
    /// A key or value that is no valid label key or value.
    #[error(transparent)]
    Invalid(#[from] SelectorProblem),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token<'a> {
    Word(&'a str),
    Eq,
    NotEq,
    Bang,
    Comma,
    Open,
    Close,
    Unsupported(&'a str),
    End,
}

impl Token<'_> {
    fn describe(&self) -> String {
        match self {
            Token::Word(w) => format!("{w:?}"),
            Token::Eq => "'='".to_string(),
            Token::NotEq => "'!='".to_string(),
            Token::Bang => "'!'".to_string(),
            Token::Comma => "','".to_string(),
            Token::Open => "'('".to_string(),
            Token::Close => "')'".to_string(),
            Token::Unsupported(op) => format!("{op:?}"),
            Token::End => "end of input".to_string(),
        }
    }
}

fn is_special(c: char) -> bool {
    c.is_whitespace() || matches!(c, ',' | '=' | '!' | '(' | ')' | '<' | '>')
}

struct Lexer<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    /// The next token and its offset, without consuming it.
    fn peek(&self) -> (usize, Token<'a>, usize) {
        let rest = &self.text[self.pos..];
        let trimmed = rest.trim_start();
        let start = self.pos + (rest.len() - trimmed.len());
        let Some(c) = trimmed.chars().next() else {
            return (start, Token::End, start);
        };
        let two = |t: Token<'a>| (start, t, start + 2);
        let one = |t: Token<'a>| (start, t, start + 1);
        match c {
            '=' if trimmed.starts_with("==") => two(Token::Eq),
            '=' => one(Token::Eq),
            '!' if trimmed.starts_with("!=") => two(Token::NotEq),
            '!' => one(Token::Bang),
            ',' => one(Token::Comma),
            '(' => one(Token::Open),
            ')' => one(Token::Close),
            '<' | '>' => {
                let len = if trimmed[1..].starts_with('=') { 2 } else { 1 };
                (start, Token::Unsupported(&trimmed[..len]), start + len)
            }
            _ => {
                let len = trimmed.find(is_special).unwrap_or(trimmed.len());
                (start, Token::Word(&trimmed[..len]), start + len)
            }
        }
    }

    fn next(&mut self) -> (usize, Token<'a>) {
        let (start, token, end) = self.peek();
        self.pos = end;
        (start, token)
    }
}

fn unexpected(position: usize, expected: &'static str, found: Token<'_>) -> ParseError {
    ParseError {
        position,
        problem: ParseProblem::Unexpected {
            expected,
            found: found.describe(),
        },
    }
}

fn invalid(position: usize, problem: SelectorProblem) -> ParseError {
    ParseError {
        position,
        problem: ParseProblem::Invalid(problem),
    }
}

/// One parsed term, before it is placed in `matchLabels` or `matchExpressions`.
enum Term {
    Equals(String, String),
    Requirement(Requirement),
}

pub(super) fn parse(text: &str) -> Result<LabelSelector, ParseError> {
    let mut lexer = Lexer { text, pos: 0 };
    let mut selector = LabelSelector::default();
    if lexer.peek().1 == Token::End {
        return Ok(selector);
    }
    loop {
        match term(&mut lexer)? {
            Term::Equals(key, value) => match selector.match_labels.get(&key) {
                Some(existing) if *existing == value => {}
                Some(_) => {
                    selector
                        .match_expressions
                        .push(Requirement::new(key, Operator::In, [value]))
                }
                None => {
                    selector.match_labels.insert(key, value);
                }
            },
            Term::Requirement(r) => selector.match_expressions.push(r),
        }
        match lexer.next() {
            (_, Token::Comma) => {}
            (_, Token::End) => return Ok(selector),
            (position, found) => {
                return Err(unexpected(position, "',' or end of input", found));
            }
        }
    }
}

fn key(lexer: &mut Lexer<'_>) -> Result<String, ParseError> {
    match lexer.next() {
        (position, Token::Word(key)) => {
            validate_label_key(key).map_err(|p| invalid(position, p))?;
            Ok(key.to_string())
        }
        (position, found) => Err(unexpected(position, "a label key", found)),
    }
}

fn term(lexer: &mut Lexer<'_>) -> Result<Term, ParseError> {
    if let (_, Token::Bang, _) = lexer.peek() {
        lexer.next();
        let key = key(lexer)?;
        return Ok(Term::Requirement(Requirement::new(
            key,
            Operator::DoesNotExist,
            Vec::<String>::new(),
        )));
    }
    if let (position, found @ (Token::Comma | Token::End), _) = lexer.peek() {
        return Err(unexpected(position, "a label key or '!'", found));
    }
    let key = key(lexer)?;
    let (position, token, _) = lexer.peek();
    match token {
        Token::Comma | Token::End => Ok(Term::Requirement(Requirement::new(
            key,
            Operator::Exists,
            Vec::<String>::new(),
        ))),
        Token::Eq => {
            lexer.next();
            Ok(Term::Equals(key, value(lexer)?))
        }
        Token::NotEq => {
            lexer.next();
            let value = value(lexer)?;
            Ok(Term::Requirement(Requirement::new(
                key,
                Operator::NotIn,
                [value],
            )))
        }
        Token::Word(word @ ("in" | "notin")) => {
            lexer.next();
            let (operator, name) = if word == "in" {
                (Operator::In, "in")
            } else {
                (Operator::NotIn, "notin")
            };
            let values = value_list(lexer, &key, name)?;
            Ok(Term::Requirement(Requirement::new(key, operator, values)))
        }
        Token::Unsupported(op) => Err(ParseError {
            position,
            problem: ParseProblem::UnsupportedOperator(op.to_string()),
        }),
        found => Err(unexpected(
            position,
            "an operator (=, ==, !=, in, notin), ',' or end of input",
            found,
        )),
    }
}

/// A value after `=`, `==` or `!=`, or inside a list; empty when a separator follows at once.
fn value(lexer: &mut Lexer<'_>) -> Result<String, ParseError> {
    match lexer.peek() {
        (position, Token::Word(value), _) => {
            lexer.next();
            validate_label_value(value).map_err(|p| invalid(position, p))?;
            Ok(value.to_string())
        }
        (_, Token::Comma | Token::End | Token::Close, _) => Ok(String::new()),
        (position, found, _) => Err(unexpected(position, "a label value", found)),
    }
}

fn value_list(
    lexer: &mut Lexer<'_>,
    key: &str,
    operator: &'static str,
) -> Result<Vec<String>, ParseError> {
    match lexer.next() {
        (_, Token::Open) => {}
        (position, found) => return Err(unexpected(position, "'('", found)),
    }
    if let (position, Token::Close, _) = lexer.peek() {
        return Err(ParseError {
            position,
            problem: ParseProblem::EmptyValueList {
                key: key.to_string(),
                operator,
            },
        });
    }
    let mut values = Vec::new();
    loop {
        if let (position, found @ Token::End, _) = lexer.peek() {
            return Err(unexpected(position, "a label value, ',' or ')'", found));
        }
        values.push(value(lexer)?);
        match lexer.next() {
            (_, Token::Comma) => {}
            (_, Token::Close) => return Ok(values),
            (position, found) => return Err(unexpected(position, "',' or ')'", found)),
        }
    }
}
