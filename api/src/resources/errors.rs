//! Validation errors: every problem of an object, each with the path of its field.

use std::fmt;

/// One invalid field: `"{path}: {message}"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct FieldError {
    /// The field's path in the proto's JSON names, e.g. `spec.subnets[0].cidr`.
    pub path: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    /// The problem `message` at `path`.
    pub fn new(path: impl Into<String>, message: impl fmt::Display) -> Self {
        Self {
            path: path.into(),
            message: message.to_string(),
        }
    }
}

/// Every invalid field of an object, in the order of its fields; never empty when returned as
/// an error. Displayed as the field errors joined by `"; "`, so the message of an
/// INVALID_ARGUMENT starts with the first field's path.
#[derive(Debug, Clone, PartialEq, Eq, Default, thiserror::Error)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl ValidationErrors {
    /// The paths of the invalid fields, in order.
    pub fn paths(&self) -> Vec<&str> {
        self.0.iter().map(|e| e.path.as_str()).collect()
    }

    /// Whether `path` is one of the invalid fields.
    pub fn has(&self, path: &str) -> bool {
        self.0.iter().any(|e| e.path == path)
    }

    pub(crate) fn push(&mut self, path: impl Into<String>, message: impl fmt::Display) {
        self.0.push(FieldError::new(path, message));
    }

    pub(crate) fn extend(&mut self, other: ValidationErrors) {
        self.0.extend(other.0);
    }

    /// `Ok(value)` when nothing was collected.
    pub(crate) fn or_ok<T>(self, value: T) -> Result<T, ValidationErrors> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }

    /// Runs a conversion, keeping its errors here; `None` when it failed.
    pub(crate) fn take<T>(&mut self, result: Result<T, ValidationErrors>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(e) => {
                self.extend(e);
                None
            }
        }
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}
