//! What the pace-bench tests share: the `pace` binary they measure and the
//! broker they run on.

use std::path::{Path, PathBuf};

/// The `pace` binary `cargo test --workspace` built beside this test.
pub fn pace_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps")
        .join("pace");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo test --workspace` (or `cargo build --bin pace`) first",
        bin.display()
    );
    bin
}

/// The broker `make test` started.
pub fn brokers() -> String {
    std::env::var("PACE_TEST_BROKERS").expect(
        "PACE_TEST_BROKERS is not set: run `make test`, or `make kafka-up` and \
         export PACE_TEST_BROKERS=127.0.0.1:19092",
    )
}
