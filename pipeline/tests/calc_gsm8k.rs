//! The calc language on the calculator annotations people wrote in GSM8K
//! (`<<expression=value>>`, ../shared/data/calc-gsm8k): pace's value must
//! equal the written one, or round to it at the written number of decimals,
//! for at least 99% of them. The exceptions are printed with their reasons.

use std::path::PathBuf;

mod common;

use pace_pipeline::jobs::calc::{evaluate, format_number};

fn data() -> PathBuf {
    common::shared_data().join("calc-gsm8k/gsm8k_test.jsonl")
}

#[derive(PartialEq)]
enum Agreement {
    Equal,
    /// The writer rounded to the decimals they wrote.
    Rounded,
    No,
}

/// Whether `value` is what a person writing `written` meant: equal, or
/// rounded to as many decimals as they wrote.
fn agrees(value: f64, written: &str) -> Agreement {
    let Ok(w) = written.parse::<f64>() else {
        return Agreement::No;
    };
    let decimals = written.split_once('.').map_or(0, |(_, f)| f.len()) as i32;
    let tolerance = 0.5 * 10f64.powi(-decimals) * (1.0 + 1e-9);
    if (value - w).abs() <= 1e-9 * w.abs().max(1.0) {
        Agreement::Equal
    } else if (value - w).abs() <= tolerance {
        Agreement::Rounded
    } else {
        Agreement::No
    }
}

#[test]
#[allow(clippy::print_stdout)] // the report of exceptions is the point
fn gsm8k_annotations_agree_with_what_people_wrote() {
    let text =
        std::fs::read_to_string(data()).expect("../shared/data/calc-gsm8k beside the repository");
    let mut total = 0;
    let mut exceptions = Vec::new();
    let mut rounded = 0;
    for line in text.lines() {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        let answer = record["answer"].as_str().unwrap();
        for ann in answer
            .split("<<")
            .skip(1)
            .filter_map(|s| s.split_once(">>").map(|x| x.0))
        {
            total += 1;
            let Some((expr, written)) = ann.rsplit_once('=') else {
                exceptions.push(format!("{ann:?}: no '=' in the annotation"));
                continue;
            };
            match evaluate(expr) {
                Ok(v) => match agrees(v, written.trim()) {
                    Agreement::Equal => {}
                    Agreement::Rounded => rounded += 1,
                    Agreement::No => exceptions
                        .push(format!("{expr} = {} (written {written})", format_number(v))),
                },
                Err(e) => exceptions.push(format!("{expr}: {e} (written {written})")),
            }
        }
    }
    let agreed = total - exceptions.len();
    println!(
        "GSM8K: {agreed} of {total} annotations agree ({:.2}%; {rounded} of them rounded by the writer); exceptions:",
        100.0 * agreed as f64 / total as f64
    );
    for e in &exceptions {
        println!("  {e}");
    }
    assert!(total > 4000, "the data set is all there");
    assert!(
        agreed * 100 >= total * 99,
        "{agreed} of {total} is under 99%"
    );
}
