//! Component command lines as kubeadm builds them (util/arguments.go): defaults, then the user's extra arguments,
//! where an extra argument's name replaces every default of that name and may itself repeat (v1beta4); the result
//! is rendered `--name=value`, sorted by name and then value.

use bosun_config::Arg;

/// Merges `extra` into `defaults` and renders sorted `--name=value` words.
pub fn command_line(defaults: &[Arg], extra: &[Arg]) -> Vec<String> {
    let mut merged: Vec<&Arg> = defaults
        .iter()
        .filter(|default| !extra.iter().any(|argument| argument.name == default.name))
        .chain(extra.iter())
        .collect();
    merged.sort_by(|left, right| {
        left.name
            .cmp(&right.name)
            .then_with(|| left.value.cmp(&right.value))
    });
    merged
        .into_iter()
        .map(|argument| format!("--{}={}", argument.name, argument.value))
        .collect()
}

/// The value of the last argument called `name` in `arguments`, if any.
pub fn value_of<'a>(arguments: &'a [Arg], name: &str) -> Option<&'a str> {
    arguments
        .iter()
        .rev()
        .find(|argument| argument.name == name)
        .map(|argument| argument.value.as_str())
}

/// Builds an argument list from `(name, value)` pairs.
pub fn args<N: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (N, V)>) -> Vec<Arg> {
    pairs
        .into_iter()
        .map(|(name, value)| Arg::new(name, value))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_extra_argument_replaces_every_default_of_its_name() {
        let defaults = args([
            ("b", "2"),
            ("a", "1"),
            ("tls-cipher-suites", "X"),
            ("tls-cipher-suites", "Y"),
        ]);
        let extra = args([("tls-cipher-suites", "Z"), ("c", "3")]);
        assert_eq!(
            command_line(&defaults, &extra),
            ["--a=1", "--b=2", "--c=3", "--tls-cipher-suites=Z"]
        );
    }

    #[test]
    fn repeated_extra_arguments_are_kept_and_sorted_by_value() {
        let extra = args([("feature-gates", "B=true"), ("feature-gates", "A=false")]);
        assert_eq!(
            command_line(&args([("feature-gates", "C=true")]), &extra),
            ["--feature-gates=A=false", "--feature-gates=B=true"]
        );
    }

    #[test]
    fn the_last_value_of_a_name_wins_for_lookups() {
        let arguments = args([("bind-address", "0.0.0.0"), ("bind-address", "::")]);
        assert_eq!(value_of(&arguments, "bind-address"), Some("::"));
        assert_eq!(value_of(&arguments, "port"), None);
    }
}
