//! Fuzzes the calc language: any bytes, as an expression, must give a value
//! or an error with a reason; never a panic, a hang or a stack overflow.
#![no_main]

#[allow(dead_code, missing_docs)]
#[path = "../../src/jobs/calc.rs"]
mod calc;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match calc::evaluate(&text) {
        Ok(v) => {
            assert!(v.is_finite(), "{text:?} gave {v}");
            let printed = calc::format_number(v);
            assert_eq!(
                printed.parse::<f64>().ok(),
                Some(v),
                "{printed} does not read back"
            );
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
