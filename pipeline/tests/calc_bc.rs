//! The calc language against GNU `bc -l` on 10,000 seeded random
//! expressions of the subset both understand: numbers, `+ - * /`, integer
//! powers, unary minus, parentheses, and `sqrt sin cos ln exp` of positive
//! literals. Every operation is parenthesised, because the two disagree on
//! precedence (`-2^2` is -4 in pace, 4 in bc). Values must agree within 1e-9
//! relative (1e-12 absolute near zero), and pace must fail exactly where bc
//! reports a division by zero.
//!
//! `bc` is Debian's package; `make test` installs it if missing.
#![allow(clippy::print_stdout)] // the figures are the point

use std::io::Write;
use std::process::{Command, Stdio};

use pace_pipeline::jobs::calc::{CalcError, evaluate};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// An expression in pace's syntax and in bc's.
struct Expr {
    pace: String,
    bc: String,
}

fn literal(rng: &mut StdRng) -> String {
    match rng.random_range(0..3) {
        0 => rng.random_range(0..1000).to_string(),
        1 => format!("{}.{}", rng.random_range(0..100), rng.random_range(1..1000)),
        _ => format!("0.{:03}", rng.random_range(1..1000)),
    }
}

fn expr(rng: &mut StdRng, depth: u32) -> Expr {
    let leaf = depth == 0 || rng.random_bool(0.25);
    if leaf {
        if rng.random_bool(0.2) {
            // A function of a positive literal.
            let x = format!("{}.{}", rng.random_range(0..6), rng.random_range(1..100));
            let (p, b) = [
                ("sqrt", "sqrt"),
                ("sin", "s"),
                ("cos", "c"),
                ("ln", "l"),
                ("exp", "e"),
            ][rng.random_range(0..5)];
            return Expr {
                pace: format!("{p}({x})"),
                bc: format!("{b}({x})"),
            };
        }
        let l = literal(rng);
        return Expr {
            pace: l.clone(),
            bc: l,
        };
    }
    match rng.random_range(0..40) {
        0..=3 => {
            let a = expr(rng, depth - 1);
            Expr {
                pace: format!("(-{})", a.pace),
                bc: format!("(-{})", a.bc),
            }
        }
        4..=7 => {
            let a = expr(rng, depth - 1);
            let k = rng.random_range(-2..=3);
            Expr {
                pace: format!("({}^({k}))", a.pace),
                bc: format!("({}^({k}))", a.bc),
            }
        }
        8 => {
            // Divides by an exact zero now and then.
            let a = expr(rng, depth - 1);
            let z = literal(rng);
            Expr {
                pace: format!("({}/({z}-{z}))", a.pace),
                bc: format!("({}/({z}-{z}))", a.bc),
            }
        }
        n => {
            let (a, b) = (expr(rng, depth - 1), expr(rng, depth - 1));
            let op = ["+", "-", "*", "/"][n % 4];
            Expr {
                pace: format!("({} {op} {})", a.pace, b.pace),
                bc: format!("({} {op} {})", a.bc, b.bc),
            }
        }
    }
}

/// bc's answers: `Some(value)`, or `None` where it reported an error.
fn bc(exprs: &[Expr]) -> (Vec<Option<String>>, String) {
    let mut child = Command::new("bc")
        .arg("-l")
        .env("BC_LINE_LENGTH", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("GNU bc (Debian package bc; make test installs it)");
    let mut input = String::from("scale=60\n");
    for e in exprs {
        input.push_str(&format!("print \"@\\n\"; {}\n", e.bc));
    }
    input.push_str("print \"@\\n\"\nquit\n");
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let mut answers: Vec<Option<String>> = stdout
        .split("@\n")
        .skip(1)
        .map(|s| {
            let s = s.trim();
            (!s.is_empty()).then(|| s.to_owned())
        })
        .collect();
    answers.pop(); // after the final marker
    (answers, String::from_utf8(out.stderr).unwrap())
}

#[test]
fn ten_thousand_random_expressions_agree_with_bc() {
    let mut rng = StdRng::seed_from_u64(2026);
    let exprs: Vec<Expr> = (0..10_000).map(|_| expr(&mut rng, 4)).collect();
    let (answers, stderr) = bc(&exprs);
    assert_eq!(answers.len(), exprs.len(), "one answer per expression");
    assert_eq!(
        stderr.matches("Divide by zero").count(),
        answers.iter().filter(|a| a.is_none()).count(),
        "bc's only errors are divisions by zero"
    );
    let (mut values, mut zeros, mut bad) = (0, 0, Vec::new());
    for (e, answer) in exprs.iter().zip(&answers) {
        let ours = evaluate(&e.pace);
        match (answer, &ours) {
            (None, Err(CalcError::DivisionByZero { .. })) => zeros += 1,
            (Some(text), Ok(v)) => {
                let want: f64 = text.parse().unwrap_or_else(|_| panic!("bc said {text:?}"));
                let diff = (v - want).abs();
                if diff <= 1e-12 || diff <= 1e-9 * want.abs().max(v.abs()) {
                    values += 1;
                } else {
                    bad.push(format!("{} = {v} (bc: {text})", e.pace));
                }
            }
            _ => bad.push(format!("{} = {ours:?} (bc: {answer:?})", e.pace)),
        }
    }
    println!(
        "bc -l: {values} values agree, {zeros} divisions by zero fail in both, {} disagree",
        bad.len()
    );
    assert!(zeros > 100 && values > 5_000, "the input exercises both");
    assert!(
        bad.is_empty(),
        "{} disagree:\n{}",
        bad.len(),
        bad[..bad.len().min(10)].join("\n")
    );
}
