//! Specifications of the engine, on an in-memory host.

use std::path::{Path, PathBuf};

use super::event::{Event, RecordingSink};
use super::*;
use crate::host::dry_run::{DryRunCommands, DryRunFiles, DryRunServices};
use crate::host::memory::{MemoryCommands, MemoryFiles, MemoryServices};
use crate::host::{Files, FixedClock, Host};

struct Data {
    greeting: String,
    skip_b: bool,
}

fn file(path: &str) -> Artefact {
    Artefact::File(PathBuf::from(path))
}

fn writer(path: &'static str) -> impl Fn(&mut PhaseCtx<'_, Data>) -> Result<(), PhaseError> {
    move |context| {
        let contents = format!("{} from {}\n", context.data.greeting, context.phase());
        context.ensure_file(Path::new(path), contents.as_bytes(), 0o644)?;
        Ok(())
    }
}

/// `a` makes /a; `b` (children `b/one`, `b/two`) reads /a; `c` needs /b/two.
fn workflow() -> Workflow<Data> {
    Workflow::new("test")
        .phase(
            Phase::new("a", "Make a")
                .makes(|_| vec![file("/a")])
                .run(writer("/a")),
        )
        .phase(
            Phase::new("b", "Make b files")
                .skip_if(|data: &Data| data.skip_b.then(|| "b is switched off".to_owned()))
                .child(
                    Phase::new("one", "Make b/one")
                        .needs(|_| vec![file("/a")])
                        .makes(|_| vec![file("/b/one")])
                        .run(writer("/b/one")),
                )
                .child(
                    Phase::new("two", "Make b/two")
                        .makes(|_| vec![file("/b/two")])
                        .run(writer("/b/two")),
                ),
        )
        .phase(
            Phase::new("c", "Make c")
                .needs(|_| vec![file("/b/two")])
                .makes(|_| vec![file("/c")])
                .run(writer("/c")),
        )
}

fn data() -> Data {
    Data {
        greeting: "hello".to_owned(),
        skip_b: false,
    }
}

fn host(files: &MemoryFiles) -> Host {
    Host {
        files: Box::new(files.clone()),
        commands: Box::new(MemoryCommands::default()),
        services: Box::new(MemoryServices::default()),
        clock: Box::new(FixedClock(std::time::SystemTime::UNIX_EPOCH)),
        description: "memory".to_owned(),
        dry_run: false,
    }
}

fn dry_host(files: &MemoryFiles) -> Host {
    Host {
        files: Box::new(DryRunFiles::new(Box::new(files.clone()))),
        commands: Box::new(DryRunCommands::new(Box::new(MemoryCommands::default()))),
        services: Box::new(DryRunServices::new(Box::new(MemoryServices::default()))),
        clock: Box::new(FixedClock(std::time::SystemTime::UNIX_EPOCH)),
        description: "memory (dry run)".to_owned(),
        dry_run: true,
    }
}

fn outcomes(report: &RunReport) -> Vec<(String, Outcome)> {
    report
        .phases
        .iter()
        .flat_map(|phase| phase.artefacts.iter())
        .map(|artefact| (artefact.artefact.clone(), artefact.outcome))
        .collect()
}

#[test]
fn full_names_join_the_path_in_pre_order() {
    assert_eq!(workflow().names(), ["a", "b", "b/one", "b/two", "c"]);
}

#[test]
fn every_need_is_made_earlier_in_the_workflow() {
    assert_eq!(
        workflow().ordering_violations(&data()),
        Vec::<String>::new()
    );
    let reversed = Workflow::new("bad")
        .phase(Phase::<Data>::new("reader", "").needs(|_| vec![file("/x")]))
        .phase(Phase::new("writer", "").makes(|_| vec![file("/x")]));
    assert_eq!(
        reversed.ordering_violations(&data()),
        ["reader needs /x, which writer makes later"]
    );
}

#[test]
fn a_second_run_changes_nothing() {
    let files = MemoryFiles::default();
    let sink = RecordingSink::default();
    let first = run(
        &workflow(),
        &data(),
        &host(&files),
        &sink,
        &RunOptions::default(),
    )
    .expect("first run");
    assert!(outcomes(&first)
        .iter()
        .all(|(_, outcome)| *outcome == Outcome::Created));
    let before = files.snapshot();
    let writes = files.write_count();
    let second = run(
        &workflow(),
        &data(),
        &host(&files),
        &sink,
        &RunOptions::default(),
    )
    .expect("second run");
    assert!(!second.changed());
    assert_eq!(outcomes(&second).len(), 4);
    assert!(outcomes(&second)
        .iter()
        .all(|(_, outcome)| *outcome == Outcome::Unchanged));
    assert_eq!(
        files.snapshot(),
        before,
        "bytes, modes or mtimes changed on the second run"
    );
    assert_eq!(files.write_count(), writes);
}

#[test]
fn a_changed_input_updates_only_what_differs() {
    let files = MemoryFiles::default();
    let sink = RecordingSink::default();
    run(
        &workflow(),
        &data(),
        &host(&files),
        &sink,
        &RunOptions::default(),
    )
    .expect("first run");
    files
        .write_atomic(Path::new("/b/two"), b"tampered\n", 0o644)
        .expect("tamper");
    let report = run(
        &workflow(),
        &data(),
        &host(&files),
        &sink,
        &RunOptions::default(),
    )
    .expect("rerun");
    assert_eq!(
        outcomes(&report),
        [
            ("/a".to_owned(), Outcome::Unchanged),
            ("/b/one".to_owned(), Outcome::Unchanged),
            ("/b/two".to_owned(), Outcome::Updated),
            ("/c".to_owned(), Outcome::Unchanged),
        ]
    );
}

#[test]
fn skip_phases_removes_a_whole_subtree() {
    let files = MemoryFiles::default();
    files
        .write_atomic(Path::new("/b/two"), b"x", 0o644)
        .expect("seed");
    let options = RunOptions {
        target: None,
        skip: vec!["b".to_owned()],
    };
    let report = run(
        &workflow(),
        &data(),
        &host(&files),
        &RecordingSink::default(),
        &options,
    )
    .expect("run");
    let ran: Vec<&str> = report
        .phases
        .iter()
        .map(|phase| phase.phase.as_str())
        .collect();
    assert_eq!(ran, ["a", "c"]);
}

#[test]
fn phase_target_runs_only_that_subtree() {
    let files = MemoryFiles::default();
    files
        .write_atomic(Path::new("/a"), b"x", 0o644)
        .expect("seed");
    let options = RunOptions {
        target: Some("b".to_owned()),
        skip: Vec::new(),
    };
    let report = run(
        &workflow(),
        &data(),
        &host(&files),
        &RecordingSink::default(),
        &options,
    )
    .expect("run");
    let ran: Vec<&str> = report
        .phases
        .iter()
        .map(|phase| phase.phase.as_str())
        .collect();
    assert_eq!(ran, ["b/one", "b/two"]);
    let options = RunOptions {
        target: Some("B/Two".to_owned()),
        skip: Vec::new(),
    };
    let report = run(
        &workflow(),
        &data(),
        &host(&files),
        &RecordingSink::default(),
        &options,
    )
    .expect("run");
    assert_eq!(report.phases.len(), 1);
    assert_eq!(report.phases[0].phase, "b/two");
}

#[test]
fn an_unknown_phase_name_lists_the_valid_ones() {
    let files = MemoryFiles::default();
    let options = RunOptions {
        target: None,
        skip: vec!["b/three".to_owned()],
    };
    let error = run(
        &workflow(),
        &data(),
        &host(&files),
        &RecordingSink::default(),
        &options,
    )
    .expect_err("must fail");
    assert_eq!(
        error.to_string(),
        "invalid phase name \"b/three\" for `test`; valid names are: a, b, b/one, b/two, c"
    );
}

#[test]
fn a_missing_need_is_reported_before_anything_changes() {
    let files = MemoryFiles::default();
    let options = RunOptions {
        target: None,
        skip: vec!["b/two".to_owned()],
    };
    let error = run(
        &workflow(),
        &data(),
        &host(&files),
        &RecordingSink::default(),
        &options,
    )
    .expect_err("must fail");
    assert_eq!(
        error.to_string(),
        "phase c needs /b/two, which is not on the host and is made by phase b/two, which is not selected"
    );
    assert!(
        files.snapshot().is_empty(),
        "the host changed before the needs check"
    );
}

#[test]
fn a_need_already_on_the_host_is_met() {
    let files = MemoryFiles::default();
    files
        .write_atomic(Path::new("/b/two"), b"made by hand\n", 0o644)
        .expect("seed");
    let options = RunOptions {
        target: Some("c".to_owned()),
        skip: Vec::new(),
    };
    run(
        &workflow(),
        &data(),
        &host(&files),
        &RecordingSink::default(),
        &options,
    )
    .expect("run");
    assert!(files.exists(Path::new("/c")).expect("exists"));
}

#[test]
fn a_condition_skips_the_phase_and_its_children_with_a_reason() {
    let files = MemoryFiles::default();
    files
        .write_atomic(Path::new("/b/two"), b"x", 0o644)
        .expect("seed");
    let sink = RecordingSink::default();
    let skipped = Data {
        skip_b: true,
        ..data()
    };
    let report = run(
        &workflow(),
        &skipped,
        &host(&files),
        &sink,
        &RunOptions::default(),
    )
    .expect("run");
    let reasons: Vec<(String, String)> = report
        .phases
        .iter()
        .filter_map(|phase| match &phase.status {
            PhaseStatus::Skipped { reason } => Some((phase.phase.clone(), reason.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        reasons,
        [
            ("b".to_owned(), "b is switched off".to_owned()),
            ("b/one".to_owned(), "b is switched off".to_owned()),
            ("b/two".to_owned(), "b is switched off".to_owned()),
        ]
    );
    assert!(!files.exists(Path::new("/b/one")).expect("exists"));
    let announced: Vec<String> = sink
        .events()
        .into_iter()
        .filter_map(|event| match event {
            Event::PhaseSkipped { phase, .. } => Some(phase),
            _ => None,
        })
        .collect();
    assert_eq!(
        announced,
        ["b"],
        "children skipped with their parent are recorded but not announced one by one"
    );
}

#[test]
fn later_conditions_are_checked_after_earlier_ones() {
    let phase = Phase::<Data>::new("p", "")
        .skip_if(|data: &Data| data.skip_b.then(|| "first".to_owned()))
        .skip_if(|data: &Data| (data.greeting == "quiet").then(|| "second".to_owned()));
    let condition = phase.skip_if.as_ref().expect("a condition");
    assert_eq!(condition(&data()), None);
    let both = Data {
        greeting: "quiet".to_owned(),
        skip_b: true,
    };
    assert_eq!(condition(&both).as_deref(), Some("first"));
    let second_only = Data {
        greeting: "quiet".to_owned(),
        skip_b: false,
    };
    assert_eq!(condition(&second_only).as_deref(), Some("second"));
}

#[test]
fn writing_an_undeclared_file_is_refused() {
    let files = MemoryFiles::default();
    let sneaky = Workflow::new("sneaky").phase(
        Phase::<Data>::new("sneak", "Writes what it does not declare")
            .makes(|_| vec![file("/declared")])
            .run(writer("/elsewhere")),
    );
    let error = run(
        &sneaky,
        &data(),
        &host(&files),
        &RecordingSink::default(),
        &RunOptions::default(),
    )
    .expect_err("must fail");
    assert_eq!(
        error.to_string(),
        "error execution phase sneak: phase sneak wrote /elsewhere, which it does not declare in `makes`"
    );
    assert!(files.snapshot().is_empty());
}

#[test]
fn a_dry_run_changes_nothing_and_reports_every_planned_write() {
    let files = MemoryFiles::default();
    let sink = RecordingSink::default();
    let report = run(
        &workflow(),
        &data(),
        &dry_host(&files),
        &sink,
        &RunOptions::default(),
    )
    .expect("dry run");
    assert!(files.snapshot().is_empty(), "a dry run wrote to the host");
    assert_eq!(outcomes(&report).len(), 4);
    let planned: Vec<PathBuf> = sink
        .events()
        .into_iter()
        .filter_map(|event| match event {
            Event::Planned {
                change: crate::host::dry_run::PlannedChange::Write { path, .. },
                ..
            } => Some(path),
            _ => None,
        })
        .collect();
    assert_eq!(
        planned,
        [
            PathBuf::from("/a"),
            PathBuf::from("/b/one"),
            PathBuf::from("/b/two"),
            PathBuf::from("/c")
        ]
    );
}

#[test]
fn a_failing_phase_reports_whether_the_host_had_changed() {
    let files = MemoryFiles::default();
    let failing = Workflow::new("failing")
        .phase(
            Phase::new("a", "")
                .makes(|_| vec![file("/a")])
                .run(writer("/a")),
        )
        .phase(
            Phase::<Data>::new("boom", "")
                .run(|_| Err(PhaseError::failed("it broke").with_hint("fix it"))),
        );
    let error = run(
        &failing,
        &data(),
        &host(&files),
        &RecordingSink::default(),
        &RunOptions::default(),
    )
    .expect_err("must fail");
    let RunError::Phase {
        phase,
        source,
        host_changed,
        report,
    } = error
    else {
        panic!("expected a phase error");
    };
    assert_eq!(phase, "boom");
    assert_eq!(source.hint(), Some("fix it"));
    assert!(host_changed);
    assert_eq!(report.phases.len(), 2);
}
