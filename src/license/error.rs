//! The error of one line of a license or options file: where it is and what is wrong.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One problem in a license or options file, located precisely enough for an admin to fix it:
/// `site.lic:12: feature `vhdl-editor`: field `count`: `25x` is not a whole number`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineError {
    /// The file name (or `<stdin>`, `<inline>`), as the admin knows it.
    pub origin: String,
    /// 1-based line number; for a continued logical line, the line it starts on.
    pub line: usize,
    /// The feature of the FEATURE line, once the line got as far as naming one (never for
    /// an options file): an admin looks a refusal up by its feature as often as by its line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature: Option<String>,
    /// The field or keyword at fault, when there is one.
    pub field: Option<String>,
    /// What is wrong, in words.
    pub message: String,
}

impl LineError {
    /// An error about the line as a whole.
    pub fn line(origin: &str, line: usize, message: impl Into<String>) -> LineError {
        LineError {
            origin: origin.to_owned(),
            line,
            feature: None,
            field: None,
            message: message.into(),
        }
    }

    /// An error about one field of the line.
    pub fn field(
        origin: &str,
        line: usize,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> LineError {
        LineError {
            origin: origin.to_owned(),
            line,
            feature: None,
            field: Some(field.into()),
            message: message.into(),
        }
    }

    /// The same error, naming the feature of its line.
    pub fn with_feature(mut self, feature: &str) -> LineError {
        self.feature = Some(feature.to_owned());
        self
    }
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.origin, self.line)?;
        if let Some(feature) = &self.feature {
            write!(f, "feature `{feature}`: ")?;
        }
        if let Some(field) = &self.field {
            write!(f, "field `{field}`: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for LineError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_names_file_line_feature_and_field() {
        let error = LineError::field("site.lic", 12, "count", "`25x` is not a whole number")
            .with_feature("vhdl-editor");
        assert_eq!(
            error.to_string(),
            "site.lic:12: feature `vhdl-editor`: field `count`: `25x` is not a whole number"
        );
        assert_eq!(LineError::line("site.opt", 3, "bad").to_string(), "site.opt:3: bad");
    }
}
