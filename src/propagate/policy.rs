//! One value for the layer and the reqwest middleware: the destinations,
//! the headers tokens go in, and whether the application's own headers are
//! replaced.

use http::{HeaderName, HeaderValue, Uri};

use super::{BoxError, Destination};

pub(crate) struct Policy {
    pub(super) destinations: Vec<Destination>,
    /// The client talks to one destination only (a tonic `Channel`): requests
    /// without scheme and authority are meant for it.
    pub(super) single: bool,
    pub(super) user_header: HeaderName,
    pub(super) service_header: HeaderName,
    pub(super) overwrite: bool,
}

impl Policy {
    #[cfg(feature = "reqwest")]
    pub(crate) fn destinations(&self) -> &[Destination] {
        &self.destinations
    }

    pub(crate) fn destination_for(&self, uri: &Uri) -> Option<&Destination> {
        if self.single && uri.scheme().is_none() && uri.authority().is_none() {
            return self.destinations.first();
        }
        self.destinations.iter().find(|d| d.matches(uri))
    }
}

fn bearer(token: &str) -> Result<HeaderValue, BoxError> {
    let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| "a token is not a valid header value")?;
    value.set_sensitive(true);
    Ok(value)
}

pub(super) fn set(
    headers: &mut http::HeaderMap,
    name: &HeaderName,
    token: &str,
    overwrite: bool,
) -> Result<(), BoxError> {
    if overwrite || !headers.contains_key(name) {
        headers.insert(name.clone(), bearer(token)?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_are_sensitive() {
        assert!(bearer("abc").unwrap().is_sensitive());
        assert!(bearer("a\nb").is_err());
    }
}
