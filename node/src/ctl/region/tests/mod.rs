//! Tests of the `--api` mode: manifests (the seeds' examples, every field, bad documents),
//! conversion both ways (with property tests), output, and the commands against the in-memory
//! fake API ([`super::fake`]) on 127.0.0.1.

#![allow(clippy::unwrap_used)]

mod commands;
mod errors;
mod manifest;
mod output;
mod props;

use super::manifest::{Entry, NamespaceDefault, parse};
use crate::ctl::manifest::Source;

/// Parses `text` as file `t.yaml` with the default namespace.
pub fn entries(text: &str) -> Vec<Entry> {
    parse_in(text, &NamespaceDefault::default()).unwrap()
}

/// Parses `text` as file `t.yaml`.
pub fn parse_in(text: &str, ns: &NamespaceDefault) -> Result<Vec<Entry>, crate::ctl::CtlError> {
    parse(
        &Source {
            name: "t.yaml".into(),
            text: text.into(),
        },
        ns,
    )
}

/// The error message of parsing `text`.
pub fn error(text: &str) -> String {
    match parse_in(text, &NamespaceDefault::default()) {
        Ok(e) => panic!("parsed: {e:?}"),
        Err(e) => {
            assert_eq!(e.exit_code(), crate::ctl::error::exit::USAGE);
            e.to_string()
        }
    }
}
