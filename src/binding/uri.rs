//! `htu` comparison (RFC 9449 §4.3 item 9): the scheme, host, port and path
//! of a URI, without query and fragment, after the syntax- and
//! scheme-based normalisation of RFC 3986 §6.2.2 and §6.2.3 (case of
//! scheme and host, default ports, dot segments, percent-encoding).

use std::fmt::Write as _;

/// A URI reduced to what `htu` names, normalised, for comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NormalizedUri(Box<str>);

impl NormalizedUri {
    /// `text` as an absolute `http` or `https` URI without user info;
    /// query and fragment dropped.
    pub(crate) fn parse(text: &str) -> Option<NormalizedUri> {
        let url = url::Url::parse(text).ok()?;
        if !matches!(url.scheme(), "http" | "https")
            || !url.username().is_empty()
            || url.password().is_some()
        {
            return None;
        }
        let host = url.host_str()?;
        let mut out = String::with_capacity(text.len());
        out.push_str(url.scheme());
        out.push_str("://");
        out.push_str(host);
        // `url` drops the scheme's default port.
        if let Some(port) = url.port() {
            let _ = write!(out, ":{port}");
        }
        normalize_percent(url.path(), &mut out);
        Some(NormalizedUri(out.into_boxed_str()))
    }

    /// The URI of a request that reached `origin` (`scheme://host[:port]`)
    /// with `path` (as received; its query is ignored).
    /// A path with dot segments (`/a/../b`, `/a/%2e%2e/b`) has none: the
    /// router sees it unresolved, so no proof for the resolved path may
    /// pass for it.
    pub(crate) fn of_request(origin: &str, path: &str) -> Option<NormalizedUri> {
        let path = path.split(['?', '#']).next().unwrap_or("");
        if has_dot_segment(path) {
            return None;
        }
        if !path.starts_with('/') {
            return Self::parse(&format!("{origin}/{path}"));
        }
        Self::parse(&format!("{origin}{path}"))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether a segment of `path` is `.` or `..`, plainly or percent-encoded,
/// or the path holds a backslash (which WHATWG parsing reads as `/`).
fn has_dot_segment(path: &str) -> bool {
    path.contains('\\')
        || path.split('/').any(|segment| {
            let s = segment.to_ascii_lowercase().replace("%2e", ".");
            s == "." || s == ".."
        })
}

/// Copy `path`, decoding percent-encoded unreserved characters and
/// upper-casing the hex digits of the rest (RFC 3986 §6.2.2.1, §6.2.2.2).
fn normalize_percent(path: &str, out: &mut String) {
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && bytes[i + 1].is_ascii_hexdigit()
            && bytes[i + 2].is_ascii_hexdigit()
        {
            let hex = |b: u8| (b as char).to_digit(16).unwrap_or(0) as u8;
            let c = hex(bytes[i + 1]) << 4 | hex(bytes[i + 2]);
            if c.is_ascii_alphanumeric() || b"-._~".contains(&c) {
                out.push(c as char);
            } else {
                out.push('%');
                out.push(bytes[i + 1].to_ascii_uppercase() as char);
                out.push(bytes[i + 2].to_ascii_uppercase() as char);
            }
            i += 3;
        } else {
            // `url` left only ASCII in the path.
            out.push(bytes[i] as char);
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Option<String> {
        NormalizedUri::parse(s).map(|u| u.0.into())
    }

    #[test]
    fn normalization_table() {
        let same = [
            ("https://api.example/images", "HTTPS://API.Example/images"),
            (
                "https://api.example/images",
                "https://api.example:443/images",
            ),
            ("http://api.example/images", "http://api.example:80/images"),
            (
                "https://api.example/images",
                "https://api.example/images?x=1#f",
            ),
            ("https://api.example/a/b", "https://api.example/a/./c/../b"),
            ("https://api.example/~me", "https://api.example/%7Eme"),
            ("https://api.example/a%2Fb", "https://api.example/a%2fb"),
            ("https://api.example/", "https://api.example"),
        ];
        for (a, b) in same {
            assert_eq!(n(a), n(b), "{a} vs {b}");
            assert!(n(a).is_some());
        }
        let differ = [
            ("https://api.example/images", "http://api.example/images"),
            (
                "https://api.example/images",
                "https://api.example:8443/images",
            ),
            ("https://api.example/images", "https://other.example/images"),
            ("https://api.example/images", "https://api.example/images/"),
            ("https://api.example/a%2Fb", "https://api.example/a/b"),
        ];
        for (a, b) in differ {
            assert_ne!(n(a), n(b), "{a} vs {b}");
        }
        for bad in [
            "ftp://x/y",
            "/images",
            "https://user:pw@api.example/",
            "not a uri",
        ] {
            assert_eq!(n(bad), None, "{bad}");
        }
    }

    #[test]
    fn request_paths_with_dot_segments_match_nothing() {
        for path in [
            "/a/../admin",
            "/a/%2e%2E/admin",
            "/a/./b",
            "/.",
            "/a\\..\\b",
        ] {
            assert_eq!(
                NormalizedUri::of_request("https://api.example", path),
                None,
                "{path}"
            );
        }
        assert!(NormalizedUri::of_request("https://api.example", "/a/..b/c.d").is_some());
    }

    #[test]
    fn a_request_path_joins_its_origin() {
        let want = NormalizedUri::parse("https://api.example/images/1").unwrap();
        assert_eq!(
            NormalizedUri::of_request("https://api.example", "/images/1?size=2"),
            Some(want)
        );
    }
}
