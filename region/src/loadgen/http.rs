//! A hand-written HTTP/1.1 GET for the status listener (no HTTP client among the dependencies),
//! and the reader of one sample of its `/metrics` text.
//!
//! Blocking on purpose: the daemon tests call it from plain loops. From async code, run it with
//! `tokio::task::spawn_blocking`, so that a server on the same runtime can answer meanwhile.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::Context as _;

/// An HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Header lines, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: String,
}

impl Response {
    /// The value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `GET path` with `Connection: close`; every read and write bounded by `timeout`.
pub fn get(addr: SocketAddr, path: &str, timeout: Duration) -> anyhow::Result<Response> {
    let mut s = TcpStream::connect_timeout(&addr, timeout)
        .with_context(|| format!("connecting to {addr}"))?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .with_context(|| format!("reading the answer to GET {path}"))?;
    parse(&raw).with_context(|| format!("the answer to GET {path}"))
}

fn parse(raw: &[u8]) -> anyhow::Result<Response> {
    let text = std::str::from_utf8(raw).context("not UTF-8")?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .with_context(|| format!("no header end in {text:?}"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut r = Response {
        status,
        headers,
        body: body.to_string(),
    };
    if r.header("transfer-encoding") == Some("chunked") {
        r.body = dechunk(&r.body)?;
    }
    Ok(r)
}

fn dechunk(mut s: &str) -> anyhow::Result<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = s.split_once("\r\n").context("bad chunk header")?;
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
            .context("bad chunk size")?;
        if size == 0 {
            return Ok(out);
        }
        out.push_str(rest.get(..size).context("short chunk")?);
        s = rest.get(size + 2..).context("short chunk")?;
    }
}

/// The value of the sample `name` (no labels) in Prometheus / OpenMetrics text.
pub fn metric_value(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let (n, v) = l.split_once(' ')?;
        (n == name).then(|| v.trim().parse().ok()).flatten()
    })
}

/// The sum of every sample of `name`, whatever its labels (0 if there is none).
pub fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter_map(|l| {
            let (n, v) = l.rsplit_once(' ')?;
            let bare = n.split_once('{').map_or(n, |(b, _)| b);
            (bare == name)
                .then(|| v.trim().parse::<f64>().ok())
                .flatten()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn parses_plain_and_chunked_answers() {
        let plain = parse(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nok\n").unwrap();
        assert_eq!((plain.status, plain.body.as_str()), (200, "ok\n"));
        assert_eq!(plain.header("content-type"), Some("text/plain"));
        let chunked =
            parse(b"HTTP/1.1 400 Bad\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x\r\nde\r\n0\r\n\r\n")
                .unwrap();
        assert_eq!((chunked.status, chunked.body.as_str()), (400, "abcde"));
        assert!(parse(b"HTTP/1.1 200 OK\r\n").is_err());
        assert!(parse(b"nonsense\r\n\r\n").is_err());
    }

    #[test]
    fn finds_unlabelled_samples_only() {
        let text = "# TYPE x gauge\nx_total{a=\"b\"} 3\nx 2.5\nxy 7\n";
        assert_eq!(metric_value(text, "x"), Some(2.5));
        assert_eq!(metric_value(text, "xy"), Some(7.0));
        assert_eq!(metric_value(text, "x_total"), None);
        let refused = "r_total{reason=\"a b\"} 2\nr_total{reason=\"c\"} 3\nr_totals 9\n";
        assert_eq!(metric_sum(refused, "r_total"), 5.0);
        assert_eq!(metric_sum(refused, "none"), 0.0);
    }
}
