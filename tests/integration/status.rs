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

#[test]
fn status_summarises_the_newest_run_of_the_journal() {
    let root = TempRoot::new();
    root.write(
        "/var/lib/bosun/journal.json",
        br#"{"runs":[
          {"started":"2026-01-01T00:00:00Z","finished":"2026-01-01T00:00:01Z","workflow":"init","ok":true,
           "phases":[{"phase":"certs/ca","status":"done","artefacts":[{"artefact":"/etc/kubernetes/pki/ca.crt","outcome":"created"}]}]},
          {"started":"2026-01-02T00:00:00Z","finished":"2026-01-02T00:00:01Z","workflow":"init","ok":false,"error":"it broke",
           "phases":[{"phase":"certs/ca","status":"done","artefacts":[{"artefact":"/etc/kubernetes/pki/ca.crt","outcome":"unchanged"}]},
                     {"phase":"certs/apiserver","status":"failed","error":"it broke","artefacts":[]}]}]}"#,
    );
    assert_eq!(root.listing(), ["/var/lib/bosun/journal.json"]);
    let output = bosun_in(&root, &["status"]);
    assert_success(&output);
    let text = stdout(&output);
    assert!(
        text.starts_with("init run failed (started 2026-01-02T00:00:00Z"),
        "{text}"
    );
    assert!(text.contains("  error: it broke\n"), "{text}");
    assert!(
        text.contains("done: 0 created, 0 updated, 0 removed, 1 unchanged"),
        "{text}"
    );
    assert!(text.contains("FAILED: it broke"), "{text}");
    assert!(
        !text.contains("2026-01-01"),
        "only the newest run is shown without --all: {text}"
    );
    let all = stdout(&bosun_in(&root, &["status", "--all"]));
    assert!(all.contains("2026-01-01"), "{all}");
}

#[test]
fn an_unknown_command_is_a_usage_error() {
    let output = bosun(&["no-such-command"]);
    assert_exit(&output, 2);
    assert!(
        stderr(&output).contains("unrecognized subcommand"),
        "{}",
        stderr(&output)
    );
}
