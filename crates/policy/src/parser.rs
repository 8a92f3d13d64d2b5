//! The oslo.policy check-string language: tokenizer and greedy shift-reduce parser.
//!
//! Behaviour follows upstream `oslo_policy/_parser.py`: whitespace splits tokens,
//! parentheses are peeled off the front and back of each token, `and`/`or`/`not` are
//! matched case-insensitively, and the token stack is reduced greedily after every
//! shift, which gives `not` > `and` > `or` precedence.

use std::fmt;

use crate::PolicyError;

/// Deepest check tree the parser builds. Upstream has no explicit limit (Python's
/// recursion limit bites at evaluation time instead); a bound keeps evaluation and
/// drop of the tree from overflowing the stack on hostile input.
const MAX_NESTING: usize = 64;

/// A parsed check tree (upstream `_checks.BaseCheck` subclasses).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Check {
    /// `@` or the empty rule: always passes (`TrueCheck`).
    True,
    /// `!`, and any check upstream fails closed on: never passes (`FalseCheck`).
    False,
    /// `rule:NAME`: evaluate another named rule (`RuleCheck`).
    Rule(String),
    /// `role:NAME`: the creds roles contain NAME, case-insensitively (`RoleCheck`).
    /// NAME may itself contain `%(key)s` substitutions from the target.
    Role(String),
    /// `KIND:MATCH` (`GenericCheck`). MATCH is `%`-formatted with the target; KIND is a
    /// Python literal (`'x'`, `True`, `1`, `None`) compared with it, or else a dotted
    /// path into the credentials.
    Generic {
        /// Left-hand side: a literal or a dotted credentials path.
        kind: String,
        /// Right-hand side: a `%(key)s` format string over the target.
        value: String,
    },
    /// `http:URL` / `https:URL` remote checks. Not supported here: always fails closed.
    Remote {
        /// `http` or `https`.
        kind: String,
        /// The URL template.
        url: String,
    },
    /// `not CHECK`.
    Not(Box<Check>),
    /// `A and B and ...`.
    And(Vec<Check>),
    /// `A or B or ...`.
    Or(Vec<Check>),
}

impl fmt::Display for Check {
    /// Canonical form, as upstream `__str__`: `@`, `!`, `kind:match`, `not X`,
    /// `(A and B)`, `(A or B)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Check::True => f.write_str("@"),
            Check::False => f.write_str("!"),
            Check::Rule(name) => write!(f, "rule:{name}"),
            Check::Role(name) => write!(f, "role:{name}"),
            Check::Generic { kind, value } => write!(f, "{kind}:{value}"),
            Check::Remote { kind, url } => write!(f, "{kind}:{url}"),
            Check::Not(inner) => write!(f, "not {inner}"),
            Check::And(rules) => write_joined(f, rules, " and "),
            Check::Or(rules) => write_joined(f, rules, " or "),
        }
    }
}

fn write_joined(f: &mut fmt::Formatter<'_>, rules: &[Check], sep: &str) -> fmt::Result {
    f.write_str("(")?;
    for (i, rule) in rules.iter().enumerate() {
        if i > 0 {
            f.write_str(sep)?;
        }
        write!(f, "{rule}")?;
    }
    f.write_str(")")
}

/// Parses a check string into a [`Check`] tree.
///
/// Mirrors upstream `_parse_text_rule`: the empty string is [`Check::True`]; a single
/// malformed check inside an otherwise valid expression (no `:`, e.g. `foo`) becomes
/// [`Check::False`] as upstream `_parse_check` does. When the token stream does not
/// reduce to one expression (`a b`, `(a`, `and`, a bare `'string'`, whitespace only)
/// upstream logs and uses `!`; here that is reported as [`PolicyError::Parse`] so the
/// caller can see it (the [`Enforcer`](crate::Enforcer) then stores `!`).
pub fn parse(rule: &str) -> Result<Check, PolicyError> {
    if rule.is_empty() {
        return Ok(Check::True);
    }
    let mut state = ParseState::default();
    for word in rule.split(py_isspace).filter(|w| !w.is_empty()) {
        tokenize_word(word, &mut state)?;
    }
    state
        .result()
        .ok_or_else(|| PolicyError::Parse(format!("could not parse rule {rule:?}")))
}

/// Parses, failing closed: an unparsable rule becomes `!` (upstream logs the error;
/// here it is handed back alongside).
pub(crate) fn parse_or_never(rule: &str) -> (Check, Option<PolicyError>) {
    match parse(rule) {
        Ok(check) => (check, None),
        Err(err) => (Check::False, Some(err)),
    }
}

/// Upstream `_parse_check`: one `kind:match` atom.
pub(crate) fn parse_atom(rule: &str) -> Check {
    match rule {
        "!" => return Check::False,
        "@" => return Check::True,
        _ => {}
    }
    // Upstream logs "Failed to understand rule" and fails closed.
    let Some((kind, matched)) = rule.split_once(':') else {
        return Check::False;
    };
    match kind {
        "rule" => Check::Rule(matched.to_owned()),
        "role" => Check::Role(matched.to_owned()),
        // The stevedore-registered external checks (`oslo_policy._external`).
        "http" | "https" => Check::Remote {
            kind: kind.to_owned(),
            url: matched.to_owned(),
        },
        _ => Check::Generic {
            kind: kind.to_owned(),
            value: matched.to_owned(),
        },
    }
}

/// Python's `\s` for `str` patterns: Unicode whitespace plus the ASCII information
/// separators U+001C..U+001F that `str.isspace()` also accepts.
fn py_isspace(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Upstream `_parse_tokenize` for one whitespace-separated word, shifting each token.
fn tokenize_word(word: &str, state: &mut ParseState) -> Result<(), PolicyError> {
    // Leading parentheses.
    let tok = word.trim_start_matches('(');
    for _ in 0..(word.len() - tok.len()) {
        state.shift(Tok::LParen)?;
    }
    if tok.is_empty() {
        return Ok(());
    }
    // Trailing parentheses.
    let clean = tok.trim_end_matches(')');
    let trail = tok.len() - clean.len();

    let lowered = clean.to_lowercase();
    match lowered.as_str() {
        "and" => state.shift(Tok::And)?,
        "or" => state.shift(Tok::Or)?,
        "not" => state.shift(Tok::Not)?,
        _ if !clean.is_empty() => {
            // Upstream tests the quotes on the token *with* its trailing parentheses.
            let bytes = tok.as_bytes();
            let quoted = bytes.len() >= 2
                && matches!(
                    (bytes[0], bytes[bytes.len() - 1]),
                    (b'"', b'"') | (b'\'', b'\'')
                );
            if quoted {
                state.shift(Tok::Str)?;
            } else {
                state.shift(Tok::Check(parse_atom(clean), 1))?;
            }
        }
        _ => {}
    }
    for _ in 0..trail {
        state.shift(Tok::RParen)?;
    }
    Ok(())
}

/// A parser stack entry. Expression tokens carry the depth of the tree they hold
/// (an upper bound for `OrExpr`), used only to enforce [`MAX_NESTING`].
#[derive(Debug)]
enum Tok {
    Check(Check, usize),
    AndExpr(Vec<Check>, usize),
    /// Children keep their own depth so `a or b and c` can rebuild `b and c`.
    OrExpr(Vec<(Check, usize)>, usize),
    And,
    Or,
    Not,
    LParen,
    RParen,
    /// A quoted string; upstream never reduces it, so it always fails the parse.
    Str,
}

/// Which reduction applies to the top of the stack (upstream `ParseState.reduce`).
enum Reduction {
    Paren,
    CheckAndCheck,
    AndExprAndCheck,
    OrExprAndCheck,
    ToOr,
    OrExprOrCheck,
    Not,
}

#[derive(Default)]
struct ParseState {
    stack: Vec<Tok>,
}

fn too_deep() -> PolicyError {
    PolicyError::Parse(format!("rule nests deeper than {MAX_NESTING} levels"))
}

fn checked(depth: usize) -> Result<usize, PolicyError> {
    if depth > MAX_NESTING {
        Err(too_deep())
    } else {
        Ok(depth)
    }
}

impl ParseState {
    fn shift(&mut self, tok: Tok) -> Result<(), PolicyError> {
        self.stack.push(tok);
        self.reduce()
    }

    fn find_reduction(&self) -> Option<Reduction> {
        let n = self.stack.len();
        if n >= 3 {
            use Tok as T;
            let found = match (&self.stack[n - 3], &self.stack[n - 2], &self.stack[n - 1]) {
                (T::LParen, T::Check(..) | T::AndExpr(..) | T::OrExpr(..), T::RParen) => {
                    Some(Reduction::Paren)
                }
                (T::Check(..), T::And, T::Check(..)) => Some(Reduction::CheckAndCheck),
                (T::AndExpr(..), T::And, T::Check(..)) => Some(Reduction::AndExprAndCheck),
                (T::OrExpr(..), T::And, T::Check(..)) => Some(Reduction::OrExprAndCheck),
                (T::Check(..) | T::AndExpr(..), T::Or, T::Check(..)) => Some(Reduction::ToOr),
                (T::OrExpr(..), T::Or, T::Check(..)) => Some(Reduction::OrExprOrCheck),
                _ => None,
            };
            if found.is_some() {
                return found;
            }
        }
        // Two-token patterns are only tried when no three-token pattern matched.
        if n >= 2
            && matches!(
                (&self.stack[n - 2], &self.stack[n - 1]),
                (Tok::Not, Tok::Check(..))
            )
        {
            return Some(Reduction::Not);
        }
        None
    }

    /// Greedy reduction, repeated until no pattern matches the top of the stack.
    fn reduce(&mut self) -> Result<(), PolicyError> {
        while let Some(reduction) = self.find_reduction() {
            let reduced = if let Reduction::Not = reduction {
                let (Some(Tok::Check(check, depth)), Some(Tok::Not)) =
                    (self.stack.pop(), self.stack.pop())
                else {
                    return Err(internal());
                };
                Tok::Check(Check::Not(Box::new(check)), checked(depth + 1)?)
            } else {
                let (Some(c), Some(b), Some(a)) =
                    (self.stack.pop(), self.stack.pop(), self.stack.pop())
                else {
                    return Err(internal());
                };
                reduce3(reduction, a, b, c)?
            };
            self.stack.push(reduced);
        }
        Ok(())
    }

    /// Upstream `ParseState.result`: exactly one expression must remain.
    fn result(mut self) -> Option<Check> {
        if self.stack.len() != 1 {
            return None;
        }
        match self.stack.pop()? {
            Tok::Check(check, _) => Some(check),
            Tok::AndExpr(rules, _) => Some(Check::And(rules)),
            Tok::OrExpr(rules, _) => Some(Check::Or(strip(rules))),
            _ => None,
        }
    }
}

fn internal() -> PolicyError {
    PolicyError::Parse("internal parser state error".to_owned())
}

fn strip(rules: Vec<(Check, usize)>) -> Vec<Check> {
    rules.into_iter().map(|(check, _)| check).collect()
}

fn reduce3(reduction: Reduction, a: Tok, b: Tok, c: Tok) -> Result<Tok, PolicyError> {
    Ok(match (reduction, a, c) {
        // `( expr )` becomes a plain check.
        (Reduction::Paren, _, _) => match b {
            Tok::Check(check, d) => Tok::Check(check, d),
            Tok::AndExpr(rules, d) => Tok::Check(Check::And(rules), d),
            Tok::OrExpr(rules, d) => Tok::Check(Check::Or(strip(rules)), d),
            _ => return Err(internal()),
        },
        (Reduction::CheckAndCheck, Tok::Check(c1, d1), Tok::Check(c2, d2)) => {
            Tok::AndExpr(vec![c1, c2], checked(d1.max(d2) + 1)?)
        }
        (Reduction::AndExprAndCheck, Tok::AndExpr(mut rules, d1), Tok::Check(c2, d2)) => {
            rules.push(c2);
            Tok::AndExpr(rules, checked(d1.max(d2 + 1))?)
        }
        // `A or B and C`: take B back out of the or-expression and bind it to C.
        (Reduction::OrExprAndCheck, Tok::OrExpr(mut rules, d_or), Tok::Check(c2, d2)) => {
            let Some((last, d_last)) = rules.pop() else {
                return Err(internal());
            };
            let (and, d_and) = match last {
                // Upstream extends an existing AndCheck in place.
                Check::And(mut inner) => {
                    inner.push(c2);
                    (Check::And(inner), checked(d_last.max(d2 + 1))?)
                }
                other => (Check::And(vec![other, c2]), checked(d_last.max(d2) + 1)?),
            };
            rules.push((and, d_and));
            Tok::OrExpr(rules, checked(d_or.max(d_and + 1))?)
        }
        (Reduction::ToOr, first, Tok::Check(c2, d2)) => {
            let (c1, d1) = match first {
                Tok::Check(c1, d1) => (c1, d1),
                Tok::AndExpr(rules, d1) => (Check::And(rules), d1),
                _ => return Err(internal()),
            };
            Tok::OrExpr(vec![(c1, d1), (c2, d2)], checked(d1.max(d2) + 1)?)
        }
        (Reduction::OrExprOrCheck, Tok::OrExpr(mut rules, d1), Tok::Check(c2, d2)) => {
            rules.push((c2, d2));
            Tok::OrExpr(rules, checked(d1.max(d2 + 1))?)
        }
        _ => return Err(internal()),
    })
}

/// Upstream `_parse_list_rule`: the legacy list-of-lists syntax (outer list joined
/// by `or`, inner lists by `and`), where every element is a single atom.
pub(crate) fn parse_list_rule(rule: &[Vec<String>]) -> Check {
    if rule.is_empty() {
        return Check::True;
    }
    let mut or_list: Vec<Check> = rule
        .iter()
        .filter(|inner| !inner.is_empty())
        .map(|inner| {
            let mut and_list: Vec<Check> = inner.iter().map(|r| parse_atom(r)).collect();
            if and_list.len() == 1 {
                and_list.remove(0)
            } else {
                Check::And(and_list)
            }
        })
        .collect();
    match or_list.len() {
        0 => Check::False,
        1 => or_list.remove(0),
        _ => Check::Or(or_list),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(kind: &str, value: &str) -> Check {
        Check::Generic {
            kind: kind.into(),
            value: value.into(),
        }
    }

    fn role(name: &str) -> Check {
        Check::Role(name.into())
    }

    #[test]
    fn special_rules() {
        assert_eq!(parse("").unwrap(), Check::True);
        assert_eq!(parse("@").unwrap(), Check::True);
        assert_eq!(parse("!").unwrap(), Check::False);
        assert_eq!(parse("rule:foo").unwrap(), Check::Rule("foo".into()));
        assert_eq!(parse("role:Admin").unwrap(), role("Admin"));
        // Only the first colon splits.
        assert_eq!(parse("role:compute:admin").unwrap(), role("compute:admin"));
        assert_eq!(
            parse("http://example.com/%(x)s").unwrap(),
            Check::Remote {
                kind: "http".into(),
                url: "//example.com/%(x)s".into()
            }
        );
    }

    #[test]
    fn precedence_not_and_or() {
        // a or b and c == a or (b and c)
        assert_eq!(
            parse("role:a or role:b and role:c").unwrap(),
            Check::Or(vec![role("a"), Check::And(vec![role("b"), role("c")])])
        );
        // a and b or c and d == (a and b) or (c and d)
        assert_eq!(
            parse("role:a and role:b or role:c and role:d").unwrap(),
            Check::Or(vec![
                Check::And(vec![role("a"), role("b")]),
                Check::And(vec![role("c"), role("d")]),
            ])
        );
        // not binds tighter than and
        assert_eq!(
            parse("not role:a and role:b").unwrap(),
            Check::And(vec![Check::Not(Box::new(role("a"))), role("b")])
        );
        assert_eq!(
            parse("role:a and not role:b").unwrap(),
            Check::And(vec![role("a"), Check::Not(Box::new(role("b")))])
        );
        // a or b or c and d and e
        assert_eq!(
            parse("role:a or role:b or role:c and role:d and role:e").unwrap(),
            Check::Or(vec![
                role("a"),
                role("b"),
                Check::And(vec![role("c"), role("d"), role("e")]),
            ])
        );
    }

    #[test]
    fn operators_are_case_insensitive() {
        assert_eq!(
            parse("role:a AND NOT role:b Or role:c").unwrap(),
            Check::Or(vec![
                Check::And(vec![role("a"), Check::Not(Box::new(role("b")))]),
                role("c"),
            ])
        );
    }

    #[test]
    fn nested_parentheses() {
        assert_eq!(
            parse("((role:a or role:b) and (role:c or not role:d))").unwrap(),
            Check::And(vec![
                Check::Or(vec![role("a"), role("b")]),
                Check::Or(vec![role("c"), Check::Not(Box::new(role("d")))]),
            ])
        );
        assert_eq!(
            parse("not (role:a or role:b)").unwrap(),
            Check::Not(Box::new(Check::Or(vec![role("a"), role("b")])))
        );
        assert_eq!(parse("(((role:a)))").unwrap(), role("a"));
        // Parentheses inside a check survive: only leading/trailing ones are peeled.
        assert_eq!(
            parse("(user_id:%(target.user.id)s)").unwrap(),
            g("user_id", "%(target.user.id)s")
        );
        // Separate-word parentheses.
        assert_eq!(parse("( role:a )").unwrap(), role("a"));
    }

    #[test]
    fn quoted_literals_and_substitutions() {
        assert_eq!(
            parse("'Member':%(role.name)s").unwrap(),
            g("'Member'", "%(role.name)s")
        );
        assert_eq!(
            parse("True:%(user.enabled)s").unwrap(),
            g("True", "%(user.enabled)s")
        );
        assert_eq!(
            parse("domain_id:%(target.domain_id)s and not None:%(target.domain_id)s").unwrap(),
            Check::And(vec![
                g("domain_id", "%(target.domain_id)s"),
                Check::Not(Box::new(g("None", "%(target.domain_id)s"))),
            ])
        );
    }

    #[test]
    fn parse_errors() {
        for bad in [
            "role:a role:b",
            "(role:a",
            "role:a)",
            "and",
            "role:a and",
            "or role:a",
            "not",
            "   ",
            "'quoted'",
            "role:a or 'quoted'",
            "()",
        ] {
            assert!(
                matches!(parse(bad), Err(PolicyError::Parse(_))),
                "{bad:?} should not parse"
            );
            assert_eq!(parse_or_never(bad).0, Check::False);
        }
    }

    #[test]
    fn malformed_atom_fails_closed_inside_valid_rule() {
        // Upstream `_parse_check` turns a colon-less atom into FalseCheck.
        assert_eq!(parse("foo").unwrap(), Check::False);
        assert_eq!(
            parse("foo or role:a").unwrap(),
            Check::Or(vec![Check::False, role("a")])
        );
    }

    #[test]
    fn display_is_canonical() {
        let check = parse("role:a or not role:b and rule:c").unwrap();
        assert_eq!(check.to_string(), "(role:a or (not role:b and rule:c))");
        assert_eq!(parse(&check.to_string()).unwrap(), check);
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = format!("{}role:a{}", "(".repeat(10_000), ")".repeat(10_000));
        // Parentheses alone do not deepen the tree.
        assert_eq!(parse(&deep).unwrap(), role("a"));
        let nots = format!("{}role:a", "not ".repeat(10_000));
        assert!(matches!(parse(&nots), Err(PolicyError::Parse(_))));
        let mut nested = String::from("role:a");
        for _ in 0..1000 {
            nested = format!("role:x and (role:y or {nested})");
        }
        assert!(matches!(parse(&nested), Err(PolicyError::Parse(_))));
    }

    #[test]
    fn arbitrary_input_never_panics() {
        const ALPHABET: &[&str] = &[
            "(", ")", " ", "and", "or", "not", "role:a", "rule:b", "'x'", ":", "%(", "@", "!", "é",
            "\u{1c}", "\"", "k:v", "\t",
        ];
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..5000 {
            let mut s = String::new();
            for _ in 0..(seed % 16) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                s.push_str(ALPHABET[(seed % ALPHABET.len() as u64) as usize]);
                if seed.is_multiple_of(3) {
                    s.push(' ');
                }
            }
            let _ = parse(&s);
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        }
    }

    #[test]
    fn list_rules() {
        assert_eq!(parse_list_rule(&[]), Check::True);
        assert_eq!(parse_list_rule(&[vec![]]), Check::False);
        assert_eq!(
            parse_list_rule(&[
                vec!["role:a".into(), "role:b".into()],
                vec!["role:c".into()]
            ]),
            Check::Or(vec![Check::And(vec![role("a"), role("b")]), role("c")])
        );
    }
}
