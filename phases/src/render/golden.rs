//! Golden files for rendered output (test-only): `phases/tests/golden/<name>` holds the expected bytes.
//!
//! A mismatch fails with a unified diff. To accept new output after a deliberate change, run the tests with
//! `BOSUN_UPDATE_GOLDEN=1` and review the diff of `phases/tests/golden/` before committing it.

#![expect(
    clippy::disallowed_methods,
    reason = "golden files are test fixtures read from the source tree"
)]

use std::path::PathBuf;

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

/// Compares `actual` with the golden file `name`, or rewrites it when `BOSUN_UPDATE_GOLDEN=1`.
#[track_caller]
pub(crate) fn assert_golden(name: &str, actual: &str) {
    let path = golden_path(name);
    if std::env::var_os("BOSUN_UPDATE_GOLDEN").is_some_and(|value| value == "1") {
        std::fs::create_dir_all(path.parent().expect("golden dir")).expect("create golden dir");
        std::fs::write(&path, actual).expect("write golden file");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|error| {
        panic!(
            "golden file {} cannot be read ({error}); run with BOSUN_UPDATE_GOLDEN=1 to create it",
            path.display()
        )
    });
    if expected != actual {
        let diff = similar::TextDiff::from_lines(expected.as_str(), actual)
            .unified_diff()
            .header("golden", "actual")
            .to_string();
        panic!(
            "{} differs from the rendered output (BOSUN_UPDATE_GOLDEN=1 accepts it):\n{diff}",
            path.display()
        );
    }
}
