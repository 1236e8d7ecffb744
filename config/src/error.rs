//! Configuration errors. Each [`Problem`] is one sentence naming the file, the document (its number and kind), the
//! field path and the line and column, with an optional hint.

use std::fmt;

use serde::Serialize;

/// One thing wrong with a configuration stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The file name as the user gave it (or `<embedded defaults>`).
    pub file: String,
    /// 1-based number of the document in the stream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document: Option<usize>,
    /// The document's kind, when it is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The field path (`networking.podSubnet`, `apiServer.extraArgs[0].name`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// 1-based line and column in the file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    /// What is wrong, as a lower-case fragment.
    pub message: String,
    /// What to do about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Problem {
    pub fn new(file: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem {
            file: file.into(),
            document: None,
            kind: None,
            field: None,
            line: None,
            column: None,
            message: message.into(),
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Problem {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.file)?;
        if let Some(document) = self.document {
            write!(formatter, ", document {document}")?;
            if let Some(kind) = &self.kind {
                write!(formatter, " ({kind})")?;
            }
        } else if let Some(kind) = &self.kind {
            write!(formatter, ", {kind}")?;
        }
        if let Some(field) = &self.field {
            write!(formatter, ", field {field}")?;
        }
        match (self.line, self.column) {
            (Some(line), Some(column)) => write!(formatter, ", line {line} column {column}")?,
            (Some(line), None) => write!(formatter, ", line {line}")?,
            _ => {}
        }
        write!(formatter, ": {}", self.message)
    }
}

/// Why a configuration could not be loaded: one or more problems, in the order they were found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

impl ConfigError {
    pub fn single(problem: Problem) -> ConfigError {
        ConfigError {
            problems: vec![problem],
        }
    }

    /// The first problem's hint.
    pub fn hint(&self) -> Option<&str> {
        self.problems
            .iter()
            .find_map(|problem| problem.hint.as_deref())
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.problems.split_first() {
            None => formatter.write_str("the configuration is invalid"),
            Some((first, [])) => write!(formatter, "{first}"),
            Some((first, rest)) => write!(
                formatter,
                "{first} (and {} more problem{})",
                rest.len(),
                if rest.len() == 1 { "" } else { "s" }
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_is_one_sentence_with_every_location_part() {
        let problem = Problem {
            document: Some(2),
            kind: Some("ClusterConfiguration".to_owned()),
            field: Some("networking.podSubnet".to_owned()),
            line: Some(7),
            column: Some(14),
            ..Problem::new("cluster.yaml", "\"10.244.0.0/33\" is not a valid CIDR")
        };
        assert_eq!(
            problem.to_string(),
            "cluster.yaml, document 2 (ClusterConfiguration), field networking.podSubnet, line 7 column 14: \"10.244.0.0/33\" is not a valid CIDR"
        );
    }
}
