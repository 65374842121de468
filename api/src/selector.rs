//! Kubernetes-style label selectors: `matchLabels` plus `matchExpressions` (In, NotIn, Exists,
//! DoesNotExist), their validation, matching a label set, and the string form used in list calls
//! (`app=web,tier!=db,env in (a,b),!legacy,team`).
//!
//! Matching follows Kubernetes: every term must hold (AND); a selector without terms matches
//! every object. NotIn and `!=` hold for objects without the key, as in Kubernetes, so
//! `tier!=db` also selects objects that have no tier at all.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

mod parse;
mod syntax;
#[cfg(test)]
mod tests;

pub use parse::{ParseError, ParseProblem};
pub use syntax::{
    MAX_DNS_SUBDOMAIN_LEN, MAX_LABEL_NAME_LEN, MAX_LABEL_VALUE_LEN, is_dns_label, is_dns_subdomain,
    validate_label_key, validate_label_value,
};

/// An object's labels.
pub type Labels = BTreeMap<String, String>;

/// A label selector (`matchLabels`, `matchExpressions`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelector {
    /// `key: value` pairs an object must carry exactly.
    pub match_labels: BTreeMap<String, String>,
    /// Further requirements, all of which must hold.
    pub match_expressions: Vec<Requirement>,
}

/// One `matchExpressions` item.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Requirement {
    /// The label key.
    pub key: String,
    /// How the key's value is tested.
    pub operator: Operator,
    /// The values: at least one for In and NotIn, none for Exists and DoesNotExist.
    pub values: Vec<String>,
}

/// A `matchExpressions` operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operator {
    /// The label is present with one of the values.
    In,
    /// The label is absent, or present with none of the values.
    NotIn,
    /// The label is present, with any value.
    Exists,
    /// The label is absent.
    DoesNotExist,
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::In => "In",
            Self::NotIn => "NotIn",
            Self::Exists => "Exists",
            Self::DoesNotExist => "DoesNotExist",
        })
    }
}

impl Requirement {
    /// A requirement on `key`.
    pub fn new<V: Into<String>>(
        key: impl Into<String>,
        operator: Operator,
        values: impl IntoIterator<Item = V>,
    ) -> Self {
        Self {
            key: key.into(),
            operator,
            values: values.into_iter().map(Into::into).collect(),
        }
    }

    /// Whether `labels` satisfy this requirement.
    pub fn matches(&self, labels: &Labels) -> bool {
        let value = labels.get(&self.key);
        match self.operator {
            Operator::In => value.is_some_and(|v| self.values.contains(v)),
            Operator::NotIn => value.is_none_or(|v| !self.values.contains(v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
        }
    }
}

impl LabelSelector {
    /// The selector that matches every object.
    pub fn everything() -> Self {
        Self::default()
    }

    /// A selector of `matchLabels` only.
    pub fn from_labels<K: Into<String>, V: Into<String>>(
        labels: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            match_labels: labels
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            match_expressions: Vec::new(),
        }
    }

    /// The same selector with one more requirement.
    pub fn with_expression(mut self, requirement: Requirement) -> Self {
        self.match_expressions.push(requirement);
        self
    }

    /// Whether the selector has no terms (and so matches every object).
    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }

    /// Whether an object with `labels` is selected.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| r.matches(labels))
    }

    /// Every syntax problem, each named by its path below `field` (e.g.
    /// `spec.networkInterfaceSelector.matchExpressions[0].values[1]`).
    pub fn validate(&self, field: &str) -> Result<(), SelectorErrors> {
        let mut errors = Vec::new();
        for (key, value) in &self.match_labels {
            let path = format!("{field}.matchLabels[{key:?}]");
            if let Err(problem) = validate_label_key(key) {
                errors.push(SelectorError::new(&path, problem));
            }
            if let Err(problem) = validate_label_value(value) {
                errors.push(SelectorError::new(&path, problem));
            }
        }
        for (i, requirement) in self.match_expressions.iter().enumerate() {
            let path = format!("{field}.matchExpressions[{i}]");
            if let Err(problem) = validate_label_key(&requirement.key) {
                errors.push(SelectorError::new(format!("{path}.key"), problem));
            }
            let operator = requirement.operator;
            match operator {
                Operator::In | Operator::NotIn if requirement.values.is_empty() => {
                    errors.push(SelectorError::new(
                        format!("{path}.values"),
                        SelectorProblem::ValuesRequired { operator },
                    ));
                }
                Operator::Exists | Operator::DoesNotExist if !requirement.values.is_empty() => {
                    errors.push(SelectorError::new(
                        format!("{path}.values"),
                        SelectorProblem::ValuesForbidden { operator },
                    ));
                }
                _ => {}
            }
            for (j, value) in requirement.values.iter().enumerate() {
                if let Err(problem) = validate_label_value(value) {
                    errors.push(SelectorError::new(format!("{path}.values[{j}]"), problem));
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(SelectorErrors(errors))
        }
    }

    /// The selector written in the string form, e.g. `app=web,tier!=db,env in (a,b),!legacy`.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        parse::parse(text)
    }
}

impl FromStr for LabelSelector {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Self, ParseError> {
        parse::parse(text)
    }
}

/// The string form: `matchLabels` as `key=value` (in key order), then the expressions in order
/// (`key in (a,b)`, `key notin (a)`, `key`, `!key`), joined by `,`. A valid selector reads back
/// with [`LabelSelector::parse`] into one that matches the same objects; the empty selector is
/// the empty string.
impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut sep = |f: &mut fmt::Formatter<'_>| {
            if first {
                first = false;
                Ok(())
            } else {
                f.write_str(",")
            }
        };
        for (key, value) in &self.match_labels {
            sep(f)?;
            write!(f, "{key}={value}")?;
        }
        for requirement in &self.match_expressions {
            sep(f)?;
            write!(f, "{requirement}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = &self.key;
        let mut values = self.values.join(",");
        // `()` reads as an empty list, which is an error; `(,)` is the same set {""}.
        if values.is_empty() && !self.values.is_empty() {
            values.push(',');
        }
        match self.operator {
            Operator::In => write!(f, "{key} in ({values})"),
            Operator::NotIn => write!(f, "{key} notin ({values})"),
            Operator::Exists => write!(f, "{key}"),
            Operator::DoesNotExist => write!(f, "!{key}"),
        }
    }
}

/// One invalid field of a selector: `"{field}: {problem}"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct SelectorError {
    /// The field's path, e.g. `spec.networkInterfaceSelector.matchLabels["app"]`.
    pub field: String,
    /// What is wrong with it.
    pub problem: SelectorProblem,
}

impl SelectorError {
    fn new(field: impl Into<String>, problem: SelectorProblem) -> Self {
        Self {
            field: field.into(),
            problem,
        }
    }
}

/// Every invalid field of a selector, in order; never empty. Displayed joined by `"; "`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SelectorErrors(pub Vec<SelectorError>);

impl fmt::Display for SelectorErrors {
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

/// What is wrong with a label key, a label value or an expression.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorProblem {
    /// An empty key.
    #[error("a label key must not be empty")]
    EmptyKey,
    /// A key with more than one `/`.
    #[error("key {key:?} has more than one '/' (the form is [prefix/]name)")]
    KeyTooManySlashes {
        /// The key.
        key: String,
    },
    /// A key with an empty prefix (`/name`).
    #[error("key {key:?} has an empty prefix before '/'")]
    KeyPrefixEmpty {
        /// The key.
        key: String,
    },
    /// A key whose prefix is longer than a DNS subdomain may be.
    #[error("key {key:?} has a prefix of {len} characters, more than {MAX_DNS_SUBDOMAIN_LEN}")]
    KeyPrefixTooLong {
        /// The key.
        key: String,
        /// The prefix's length.
        len: usize,
    },
    /// A key whose prefix is not a DNS subdomain.
    #[error(
        "key {key:?} has a prefix that is not a DNS subdomain (lowercase letters, digits, '-' \
         and '.', each dot-separated part starting and ending with a letter or digit)"
    )]
    KeyPrefixInvalid {
        /// The key.
        key: String,
    },
    /// A key with an empty name (`prefix/`).
    #[error("key {key:?} has an empty name after '/'")]
    KeyNameEmpty {
        /// The key.
        key: String,
    },
    /// A key whose name is too long.
    #[error("key {key:?} has a name of {len} characters, more than {MAX_LABEL_NAME_LEN}")]
    KeyNameTooLong {
        /// The key.
        key: String,
        /// The name's length.
        len: usize,
    },
    /// A key whose name has characters outside the label charset.
    #[error(
        "key {key:?} has an invalid name: use letters, digits, '-', '_' and '.', starting and \
         ending with a letter or digit"
    )]
    KeyNameInvalid {
        /// The key.
        key: String,
    },
    /// A value that is too long.
    #[error("value {value:?} has {len} characters, more than {MAX_LABEL_VALUE_LEN}")]
    ValueTooLong {
        /// The value.
        value: String,
        /// Its length.
        len: usize,
    },
    /// A value with characters outside the label charset.
    #[error(
        "value {value:?} is invalid: use letters, digits, '-', '_' and '.', starting and ending \
         with a letter or digit (or leave it empty)"
    )]
    ValueInvalid {
        /// The value.
        value: String,
    },
    /// In or NotIn without values.
    #[error("operator {operator} needs at least one value")]
    ValuesRequired {
        /// The operator.
        operator: Operator,
    },
    /// Exists or DoesNotExist with values.
    #[error("operator {operator} takes no values")]
    ValuesForbidden {
        /// The operator.
        operator: Operator,
    },
}
