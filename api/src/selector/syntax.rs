//! The syntax of label keys and values, and of DNS names, as Kubernetes defines them.

use super::SelectorProblem;

/// The longest name part of a label key.
pub const MAX_LABEL_NAME_LEN: usize = 63;
/// The longest label value.
pub const MAX_LABEL_VALUE_LEN: usize = 63;
/// The longest DNS subdomain (and so the longest label key prefix).
pub const MAX_DNS_SUBDOMAIN_LEN: usize = 253;
/// The longest DNS label.
const MAX_DNS_LABEL_LEN: usize = 63;

/// A label key: an optional DNS-subdomain prefix and `/`, then a name of 1 to 63 characters of
/// `[A-Za-z0-9_.-]` starting and ending with a letter or digit.
pub fn validate_label_key(key: &str) -> Result<(), SelectorProblem> {
    if key.is_empty() {
        return Err(SelectorProblem::EmptyKey);
    }
    let owned = || key.to_string();
    let name = match key.split_once('/') {
        None => key,
        Some((prefix, name)) => {
            if name.contains('/') {
                return Err(SelectorProblem::KeyTooManySlashes { key: owned() });
            }
            if prefix.is_empty() {
                return Err(SelectorProblem::KeyPrefixEmpty { key: owned() });
            }
            let len = prefix.chars().count();
            if len > MAX_DNS_SUBDOMAIN_LEN {
                return Err(SelectorProblem::KeyPrefixTooLong { key: owned(), len });
            }
            if !is_dns_subdomain(prefix) {
                return Err(SelectorProblem::KeyPrefixInvalid { key: owned() });
            }
            name
        }
    };
    if name.is_empty() {
        return Err(SelectorProblem::KeyNameEmpty { key: owned() });
    }
    let len = name.chars().count();
    if len > MAX_LABEL_NAME_LEN {
        return Err(SelectorProblem::KeyNameTooLong { key: owned(), len });
    }
    if !is_label_text(name) {
        return Err(SelectorProblem::KeyNameInvalid { key: owned() });
    }
    Ok(())
}

/// A label value: empty, or up to 63 characters of `[A-Za-z0-9_.-]` starting and ending with a
/// letter or digit.
pub fn validate_label_value(value: &str) -> Result<(), SelectorProblem> {
    let len = value.chars().count();
    if len > MAX_LABEL_VALUE_LEN {
        return Err(SelectorProblem::ValueTooLong {
            value: value.to_string(),
            len,
        });
    }
    if !value.is_empty() && !is_label_text(value) {
        return Err(SelectorProblem::ValueInvalid {
            value: value.to_string(),
        });
    }
    Ok(())
}

/// A DNS-1123 subdomain: at most 253 characters, dot-separated DNS labels.
pub fn is_dns_subdomain(text: &str) -> bool {
    !text.is_empty() && text.len() <= MAX_DNS_SUBDOMAIN_LEN && text.split('.').all(dns_label_chars)
}

/// A DNS-1123 label: 1 to 63 of `[a-z0-9-]`, starting and ending with a letter or digit.
pub fn is_dns_label(text: &str) -> bool {
    text.len() <= MAX_DNS_LABEL_LEN && dns_label_chars(text)
}

fn dns_label_chars(part: &str) -> bool {
    let bytes = part.as_bytes();
    let inner = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-';
    let edge = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => edge(first) && edge(last) && bytes.iter().all(inner),
        _ => false,
    }
}

/// `[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?`: the charset of label names and values.
fn is_label_text(text: &str) -> bool {
    let bytes = text.as_bytes();
    let inner = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric() && last.is_ascii_alphanumeric() && bytes.iter().all(inner)
        }
        _ => false,
    }
}
