//! `bosun status` reads the journal.

use crate::support::*;

#[test]
fn status_on_a_fresh_host_says_nothing_ran() {
    let root = TempRoot::new();
    let output = bosun_in(&root, &["status"]);
    assert_success(&output);
    assert_eq!(stdout(&output), "bosun has not run on this host yet.\n");
    let output = bosun_in(&root, &["status", "-o", "json"]);
    assert_success(&output);
    let journal: serde_json::Value = serde_json::from_str(&stdout(&output)).expect("json");
    assert_eq!(journal["runs"], serde_json::json!([]));
}
