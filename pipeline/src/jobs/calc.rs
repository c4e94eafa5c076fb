//! The calc language: what a task's expression may say, and its value.
//!
//! ```text
//! expr    := term    (("+" | "-") term)*          left-associative
//! term    := unary   (("*" | "/" | "%") unary)*   left-associative
//! unary   := ("-" | "+") unary | power
//! power   := primary ("^" unary)?                 right-associative
//! primary := number | "pi" | "e" | name "(" expr ("," expr)* ")" | "(" expr ")"
//! number  := digits ["." digits] [("e" | "E") ["+" | "-"] digits]   (".5" and "5." too)
//! ```
//!
//! So `^` binds tighter than unary minus (`-2^2` = -4), and is right-associative
//! (`2^3^2` = 512); its exponent may carry a sign (`2^-1` = 0.5). `%` is the
//! remainder with the sign of the dividend. Functions: `sqrt abs ln log exp sin
//! cos tan round floor ceil` take one argument, `min max` one or more; `log` is
//! base 10, `ln` natural, angles are radians, `round` rounds half away from zero.
//!
//! Evaluation is in IEEE 754 double precision. A failure names its reason and,
//! where it has one, the 1-based character position: a parse error, division
//! by zero (also `0^-1`), a non-finite result, an unknown name or function, a
//! wrong number of arguments, more than [`MAX_BYTES`] bytes, more than
//! [`MAX_TOKENS`] tokens, or more than [`MAX_DEPTH`] levels of nesting. The
//! parser recurses at most [`MAX_DEPTH`] levels, so no input can overflow the
//! stack.

/// Longest expression, bytes.
pub const MAX_BYTES: usize = 4096;
/// Most tokens in an expression.
pub const MAX_TOKENS: usize = 2048;
/// Deepest nesting (parentheses, function calls, signs, exponents).
pub const MAX_DEPTH: usize = 256;

/// Why an expression has no value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CalcError {
    /// Over [`MAX_BYTES`].
    #[error("too long: {0} bytes, at most 4096")]
    TooLong(usize),
    /// Over [`MAX_TOKENS`].
    #[error("too many tokens: more than 2048")]
    TooManyTokens,
    /// Over [`MAX_DEPTH`].
    #[error("too deeply nested at position {0}: more than 256 levels")]
    TooDeep(usize),
    /// Not an expression of the language.
    #[error("parse error at position {pos}: {message}")]
    Parse {
        /// 1-based character position.
        pos: usize,
        /// What was expected or found.
        message: String,
    },
    /// A name that is neither a constant nor a function.
    #[error("unknown name {name:?} at position {pos}")]
    UnknownName {
        /// The name.
        name: String,
        /// Position.
        pos: usize,
    },
    /// A call of a function that does not exist.
    #[error("unknown function {name:?} at position {pos}")]
    UnknownFunction {
        /// The name.
        name: String,
        /// Position.
        pos: usize,
    },
    /// A call with the wrong number of arguments.
    #[error("{name} takes {expected}, got {got} at position {pos}")]
    Arity {
        /// The function.
        name: &'static str,
        /// What it takes, in words.
        expected: &'static str,
        /// Arguments given.
        got: usize,
        /// Position.
        pos: usize,
    },
    /// `x / 0`, `x % 0` or `0 ^ -n`.
    #[error("division by zero at position {0}")]
    DivisionByZero(usize),
    /// An infinite or undefined value (overflow, `sqrt(-1)`, `ln(0)`, …).
    #[error("non-finite result at position {0}")]
    NonFinite(usize),
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Tok<'a> {
    Num(f64),
    Name(&'a str),
    Op(char),
}

/// Splits `src` into tokens with their 1-based character positions.
fn tokens(src: &str) -> Result<Vec<(Tok<'_>, usize)>, CalcError> {
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    // Character position of byte `i` (the input may hold any UTF-8).
    let pos = |i: usize| src[..i].chars().count() + 1;
    while i < bytes.len() {
        let b = bytes[i];
        let start = i;
        if b.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if out.len() >= MAX_TOKENS {
            return Err(CalcError::TooManyTokens);
        }
        if b.is_ascii_digit() || b == b'.' {
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            if i < bytes.len() && bytes[i] == b'.' {
                i += 1;
                while i < bytes.len() && bytes[i].is_ascii_digit() {
                    i += 1;
                }
            }
            if src[start..i] == *"." {
                return Err(CalcError::Parse {
                    pos: pos(start),
                    message: "a lone '.' is not a number".into(),
                });
            }
            if i < bytes.len() && (bytes[i] == b'e' || bytes[i] == b'E') {
                let mut j = i + 1;
                if j < bytes.len() && (bytes[j] == b'+' || bytes[j] == b'-') {
                    j += 1;
                }
                if j < bytes.len() && bytes[j].is_ascii_digit() {
                    while j < bytes.len() && bytes[j].is_ascii_digit() {
                        j += 1;
                    }
                    i = j;
                }
            }
            let v: f64 = src[start..i].parse().map_err(|_| CalcError::Parse {
                pos: pos(start),
                message: format!("bad number {:?}", &src[start..i]),
            })?;
            if !v.is_finite() {
                return Err(CalcError::NonFinite(pos(start)));
            }
            out.push((Tok::Num(v), pos(start)));
        } else if b.is_ascii_alphabetic() {
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            out.push((Tok::Name(&src[start..i]), pos(start)));
        } else if b"+-*/%^(),".contains(&b) {
            out.push((Tok::Op(b as char), pos(start)));
            i += 1;
        } else {
            let c = src[start..].chars().next().expect("in bounds");
            return Err(CalcError::Parse {
                pos: pos(start),
                message: format!("unexpected character {c:?}"),
            });
        }
    }
    Ok(out)
}

struct Parser<'a> {
    toks: Vec<(Tok<'a>, usize)>,
    i: usize,
    depth: usize,
    end: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<Tok<'a>> {
        self.toks.get(self.i).map(|t| t.0)
    }

    fn pos(&self) -> usize {
        self.toks.get(self.i).map_or(self.end, |t| t.1)
    }

    fn eat(&mut self, op: char) -> bool {
        if self.peek() == Some(Tok::Op(op)) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, op: char) -> Result<(), CalcError> {
        if self.eat(op) {
            Ok(())
        } else {
            Err(self.unexpected(&format!("'{op}'")))
        }
    }

    fn unexpected(&self, wanted: &str) -> CalcError {
        let found = match self.peek() {
            None => "the end".to_owned(),
            Some(Tok::Num(_)) => "a number".to_owned(),
            Some(Tok::Name(n)) => format!("{n:?}"),
            Some(Tok::Op(c)) => format!("'{c}'"),
        };
        CalcError::Parse {
            pos: self.pos(),
            message: format!("expected {wanted}, found {found}"),
        }
    }

    /// Enters one level of nesting, opened by the token at `pos`.
    fn descend(&mut self, pos: usize) -> Result<(), CalcError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            Err(CalcError::TooDeep(pos))
        } else {
            Ok(())
        }
    }

    fn expr(&mut self) -> Result<f64, CalcError> {
        let mut v = self.term()?;
        loop {
            let pos = self.pos();
            if self.eat('+') {
                v = finite(v + self.term()?, pos)?;
            } else if self.eat('-') {
                v = finite(v - self.term()?, pos)?;
            } else {
                return Ok(v);
            }
        }
    }

    fn term(&mut self) -> Result<f64, CalcError> {
        let mut v = self.unary()?;
        loop {
            let pos = self.pos();
            if self.eat('*') {
                v = finite(v * self.unary()?, pos)?;
            } else if self.eat('/') {
                let d = self.unary()?;
                if d == 0.0 {
                    return Err(CalcError::DivisionByZero(pos));
                }
                v = finite(v / d, pos)?;
            } else if self.eat('%') {
                let d = self.unary()?;
                if d == 0.0 {
                    return Err(CalcError::DivisionByZero(pos));
                }
                v = finite(v % d, pos)?;
            } else {
                return Ok(v);
            }
        }
    }

    fn unary(&mut self) -> Result<f64, CalcError> {
        let pos = self.pos();
        if self.eat('-') {
            self.descend(pos)?;
            let v = -self.unary()?;
            self.depth -= 1;
            Ok(v)
        } else if self.eat('+') {
            self.descend(pos)?;
            let v = self.unary()?;
            self.depth -= 1;
            Ok(v)
        } else {
            self.power()
        }
    }

    fn power(&mut self) -> Result<f64, CalcError> {
        let base = self.primary()?;
        let pos = self.pos();
        if !self.eat('^') {
            return Ok(base);
        }
        self.descend(pos)?;
        let exp = self.unary()?;
        self.depth -= 1;
        if base == 0.0 && exp < 0.0 {
            return Err(CalcError::DivisionByZero(pos));
        }
        finite(base.powf(exp), pos)
    }

    fn primary(&mut self) -> Result<f64, CalcError> {
        let pos = self.pos();
        match self.peek() {
            Some(Tok::Num(v)) => {
                self.i += 1;
                Ok(v)
            }
            Some(Tok::Op('(')) => {
                self.i += 1;
                self.descend(pos)?;
                let v = self.expr()?;
                self.expect(')')?;
                self.depth -= 1;
                Ok(v)
            }
            Some(Tok::Name(name)) => {
                self.i += 1;
                if self.peek() != Some(Tok::Op('(')) {
                    return match name {
                        "pi" => Ok(std::f64::consts::PI),
                        "e" => Ok(std::f64::consts::E),
                        _ if FUNCTIONS.contains(&name) => {
                            Err(self.unexpected("'(' after a function"))
                        }
                        _ => Err(CalcError::UnknownName {
                            name: name.to_owned(),
                            pos,
                        }),
                    };
                }
                if !FUNCTIONS.contains(&name) {
                    return Err(CalcError::UnknownFunction {
                        name: name.to_owned(),
                        pos,
                    });
                }
                self.i += 1;
                self.descend(pos)?;
                let mut args = vec![self.expr()?];
                while self.eat(',') {
                    args.push(self.expr()?);
                }
                self.expect(')')?;
                self.depth -= 1;
                call(name, &args, pos)
            }
            _ => Err(self.unexpected("a number, a name or '('")),
        }
    }
}

const FUNCTIONS: [&str; 13] = [
    "sqrt", "abs", "min", "max", "ln", "log", "exp", "sin", "cos", "tan", "round", "floor", "ceil",
];

fn finite(v: f64, pos: usize) -> Result<f64, CalcError> {
    if v.is_finite() {
        Ok(v)
    } else {
        Err(CalcError::NonFinite(pos))
    }
}

fn call(name: &str, args: &[f64], pos: usize) -> Result<f64, CalcError> {
    let one = |f: fn(f64) -> f64, name: &'static str| match args {
        [x] => finite(f(*x), pos),
        _ => Err(CalcError::Arity {
            name,
            expected: "1 argument",
            got: args.len(),
            pos,
        }),
    };
    match name {
        "sqrt" => one(f64::sqrt, "sqrt"),
        "abs" => one(f64::abs, "abs"),
        "ln" => one(f64::ln, "ln"),
        "log" => one(f64::log10, "log"),
        "exp" => one(f64::exp, "exp"),
        "sin" => one(f64::sin, "sin"),
        "cos" => one(f64::cos, "cos"),
        "tan" => one(f64::tan, "tan"),
        "round" => one(f64::round, "round"),
        "floor" => one(f64::floor, "floor"),
        "ceil" => one(f64::ceil, "ceil"),
        "min" => Ok(args.iter().copied().fold(f64::INFINITY, f64::min)),
        "max" => Ok(args.iter().copied().fold(f64::NEG_INFINITY, f64::max)),
        _ => unreachable!("checked against FUNCTIONS"),
    }
}

/// The value of `src`, or why it has none.
pub fn evaluate(src: &str) -> Result<f64, CalcError> {
    if src.len() > MAX_BYTES {
        return Err(CalcError::TooLong(src.len()));
    }
    let toks = tokens(src)?;
    let mut p = Parser {
        toks,
        i: 0,
        depth: 0,
        end: src.chars().count() + 1,
    };
    let v = p.expr()?;
    if p.i < p.toks.len() {
        return Err(p.unexpected("an operator or the end"));
    }
    // -0 prints as 0.
    Ok(if v == 0.0 { 0.0 } else { v })
}

/// The shortest decimal that reads back as `v`; whole numbers without a
/// fraction, and an exponent only for magnitudes from 1e21 or below 1e-7.
pub fn format_number(v: f64) -> String {
    let a = v.abs();
    if a != 0.0 && !(1e-7..1e21).contains(&a) {
        format!("{v:e}")
    } else {
        format!("{}", if v == 0.0 { 0.0 } else { v })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> f64 {
        evaluate(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn err(s: &str) -> String {
        evaluate(s).unwrap_err().to_string()
    }

    #[test]
    fn precedence_and_associativity() {
        assert_eq!(ok("-2^2"), -4.0);
        assert_eq!(ok("2^3^2"), 512.0);
        assert_eq!(ok("2^-1"), 0.5);
        assert_eq!(ok("(-2)^2"), 4.0);
        assert_eq!(ok("1 + 2 * 3"), 7.0);
        assert_eq!(ok("10 - 4 - 3"), 3.0);
        assert_eq!(ok("64 / 4 / 2"), 8.0);
        assert_eq!(ok("7 % 4 * 2"), 6.0);
        assert_eq!(ok("-7 % 4"), -3.0);
        assert_eq!(ok("--3"), 3.0);
        assert_eq!(ok("2 * -3"), -6.0);
        assert_eq!(ok("1.5e3 + .5 + 5. + 2E-1"), 1505.7);
    }

    #[test]
    fn functions_and_constants() {
        assert_eq!(ok("sqrt(16)"), 4.0);
        assert_eq!(ok("max(1, 7, 3) - min(4, 2)"), 5.0);
        assert_eq!(
            ok("round(2.5) + round(-2.5) + floor(-1.5) + ceil(1.2)"),
            0.0
        );
        assert_eq!(ok("log(1000)"), 3.0);
        assert_eq!(ok("ln(e)"), 1.0);
        assert!((ok("sin(pi / 2)") - 1.0).abs() < 1e-15);
        assert_eq!(ok("abs(-3) + exp(0) + cos(0) + tan(0)"), 5.0);
    }

    #[test]
    fn failures_carry_reasons_and_positions() {
        assert_eq!(err("1 / 0"), "division by zero at position 3");
        assert_eq!(err("5 % (2 - 2)"), "division by zero at position 3");
        assert_eq!(err("0 ^ -1"), "division by zero at position 3");
        assert_eq!(err("sqrt(-1)"), "non-finite result at position 1");
        // 9^9 fits; 9^387420489 (the second ^, position 4) does not.
        assert_eq!(err("9^9^9^9"), "non-finite result at position 4");
        assert_eq!(err("1e999"), "non-finite result at position 1");
        assert_eq!(err("foo(1)"), "unknown function \"foo\" at position 1");
        assert_eq!(err("x + 1"), "unknown name \"x\" at position 1");
        assert_eq!(
            err("sqrt(1, 2)"),
            "sqrt takes 1 argument, got 2 at position 1"
        );
        assert_eq!(
            err("1 +"),
            "parse error at position 4: expected a number, a name or '(', found the end"
        );
        assert_eq!(
            err("(1 + 2"),
            "parse error at position 7: expected ')', found the end"
        );
        assert_eq!(
            err("1 2"),
            "parse error at position 3: expected an operator or the end, found a number"
        );
        assert_eq!(
            err("é + 1"),
            "parse error at position 1: unexpected character 'é'"
        );
        assert_eq!(
            err("1 + \0"),
            "parse error at position 5: unexpected character '\\0'"
        );
        assert_eq!(
            err(""),
            "parse error at position 1: expected a number, a name or '(', found the end"
        );
        assert_eq!(
            err("."),
            "parse error at position 1: a lone '.' is not a number"
        );
    }

    #[test]
    fn hostile_inputs_fail_without_overflowing_the_stack() {
        assert_eq!(
            err(&"(".repeat(100_000)),
            "too long: 100000 bytes, at most 4096"
        );
        assert_eq!(
            err(&format!("{}1{}", "(".repeat(300), ")".repeat(300))),
            "too deeply nested at position 257: more than 256 levels"
        );
        assert_eq!(
            err(&format!("{}1", "-".repeat(2000))),
            "too deeply nested at position 257: more than 256 levels"
        );
        assert_eq!(
            err(&"2^".repeat(1000)),
            "too deeply nested at position 514: more than 256 levels"
        );
        assert_eq!(
            err(&"9".repeat(1 << 20)),
            "too long: 1048576 bytes, at most 4096"
        );
        assert_eq!(err(&"1+".repeat(1500)), "too many tokens: more than 2048");
        let deep = format!("{}1{}", "(".repeat(256), ")".repeat(256));
        assert_eq!(ok(&deep), 1.0);
    }

    #[test]
    fn shortest_round_trip_formatting() {
        assert_eq!(format_number(2.0), "2");
        assert_eq!(format_number(-0.0), "0");
        assert_eq!(format_number(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(format_number(1.0 / 3.0), "0.3333333333333333");
        assert_eq!(format_number(123456789012.0), "123456789012");
        assert_eq!(format_number(1e21), "1e21");
        assert_eq!(format_number(2.5e-8), "2.5e-8");
        assert_eq!(format_number(-1.5), "-1.5");
        for v in [0.1, 1.0 / 7.0, 6.02214076e23, 1e-300, 123.456] {
            assert_eq!(format_number(v).parse::<f64>().unwrap(), v);
        }
    }
}
