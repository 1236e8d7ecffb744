//! The documentation pages stay true to the code.

#[test]
fn the_exit_code_page_lists_every_code() {
    let page = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/exit-codes.md"))
        .expect("read page");
    for (code, name, _) in bosun::exit::TABLE {
        let row = format!("| {code} | {name} |");
        assert!(
            page.contains(&row),
            "docs/exit-codes.md lacks the row starting {row:?}"
        );
    }
}

#[test]
fn every_command_has_a_page_with_an_example() {
    let command = bosun::cli::command();
    for subcommand in command
        .get_subcommands()
        .filter(|sub| !sub.is_hide_set() && sub.get_name() != "help")
    {
        let path = format!(
            "{}/docs/{}.md",
            env!("CARGO_MANIFEST_DIR"),
            subcommand.get_name()
        );
        let page = std::fs::read_to_string(&path).unwrap_or_else(|_| panic!("{path} is missing"));
        assert!(page.contains("## Example"), "{path} has no worked example");
    }
}
