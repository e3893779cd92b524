//! Where the decision point's endpoints are: its default paths (§10.1), or
//! its metadata at `/.well-known/authzen-configuration` (§9).

use serde::Deserialize;

/// The evaluation endpoints of one decision point.
#[derive(Debug, Clone)]
pub(super) struct Endpoints {
    pub(super) evaluation: reqwest::Url,
    /// Absent when the metadata names no batch endpoint.
    pub(super) evaluations: Option<reqwest::Url>,
}

/// The decision point's identifier as compared with its metadata: the
/// URL as configured, without a trailing `/` (which URL parsing adds
/// after a bare host).
pub(super) fn identifier(url: &reqwest::Url) -> String {
    let text = url.as_str();
    text.strip_suffix('/').unwrap_or(text).to_owned()
}

/// The endpoints at the default paths under `base` (§10.1: the base URL
/// with `/access/v1/evaluation(s)` appended).
pub(super) fn defaults(base: &reqwest::Url) -> Result<Endpoints, String> {
    let id = identifier(base);
    let join = |path: &str| {
        reqwest::Url::parse(&format!("{id}{path}")).map_err(|e| format!("{id}{path}: {e}"))
    };
    Ok(Endpoints {
        evaluation: join("/access/v1/evaluation")?,
        evaluations: Some(join("/access/v1/evaluations")?),
    })
}

/// The metadata URL of `base` (§9.2): the well-known string inserted
/// between the host and the path.
pub(super) fn metadata_url(base: &reqwest::Url) -> Result<reqwest::Url, String> {
    let mut url = base.clone();
    let path = base.path().trim_end_matches('/');
    url.set_path(&format!("/.well-known/authzen-configuration{path}"));
    url.set_query(None);
    url.set_fragment(None);
    Ok(url)
}

#[derive(Deserialize)]
struct Metadata {
    policy_decision_point: String,
    access_evaluation_endpoint: String,
    #[serde(default)]
    access_evaluations_endpoint: Option<String>,
}

/// The endpoints the metadata `body` names, once it is checked: its
/// `policy_decision_point` is the identifier it was fetched for (§9.2.3,
/// against mix-up), and every endpoint is https unless `allow_http`, on
/// the identifier's origin (the service's token goes there).
pub(super) fn parse_metadata(
    base: &reqwest::Url,
    body: &[u8],
    allow_http: bool,
) -> Result<Endpoints, String> {
    let metadata: Metadata = serde_json::from_slice(body)
        .map_err(|e| format!("the decision point's metadata is not usable: {e}"))?;
    let expected = identifier(base);
    let named = metadata.policy_decision_point.trim_end_matches('/');
    if named != expected.trim_end_matches('/') {
        return Err(format!(
            "the decision point's metadata names {:?}, not {expected:?}",
            metadata.policy_decision_point
        ));
    }
    let endpoint = |name: &str, value: &str| {
        let url =
            reqwest::Url::parse(value).map_err(|e| format!("metadata {name} {value:?}: {e}"))?;
        check_scheme(&url, allow_http).map_err(|e| format!("metadata {name}: {e}"))?;
        // The service's token goes to these endpoints: only to the
        // decision point that was configured.
        if url.origin() != base.origin() {
            return Err(format!(
                "metadata {name} {value:?} is not on the decision point's origin"
            ));
        }
        Ok::<_, String>(url)
    };
    Ok(Endpoints {
        evaluation: endpoint(
            "access_evaluation_endpoint",
            &metadata.access_evaluation_endpoint,
        )?,
        evaluations: metadata
            .access_evaluations_endpoint
            .as_deref()
            .map(|v| endpoint("access_evaluations_endpoint", v))
            .transpose()?,
    })
}

/// https, or http when allowed.
pub(super) fn check_scheme(url: &reqwest::Url, allow_http: bool) -> Result<(), String> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if allow_http => Ok(()),
        "http" => Err(format!("{url} is not https (see insecure_allow_http)")),
        other => Err(format!("{url}: the scheme {other:?} is not http(s)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> reqwest::Url {
        reqwest::Url::parse(s).unwrap()
    }

    #[test]
    fn metadata_urls_insert_the_well_known_string_before_the_path() {
        assert_eq!(
            metadata_url(&url("https://pdp.example")).unwrap().as_str(),
            "https://pdp.example/.well-known/authzen-configuration"
        );
        assert_eq!(
            metadata_url(&url("https://pdp.example/tenant1"))
                .unwrap()
                .as_str(),
            "https://pdp.example/.well-known/authzen-configuration/tenant1"
        );
        assert_eq!(
            defaults(&url("https://pdp.example/t/"))
                .unwrap()
                .evaluation
                .as_str(),
            "https://pdp.example/t/access/v1/evaluation"
        );
    }

    #[test]
    fn metadata_for_another_decision_point_is_refused() {
        let base = url("https://pdp.example");
        let good = br#"{"policy_decision_point":"https://pdp.example",
            "access_evaluation_endpoint":"https://pdp.example/e",
            "access_evaluations_endpoint":"https://pdp.example/es"}"#;
        let endpoints = parse_metadata(&base, good, false).unwrap();
        assert_eq!(
            endpoints.evaluations.unwrap().as_str(),
            "https://pdp.example/es"
        );
        let other = br#"{"policy_decision_point":"https://evil.example",
            "access_evaluation_endpoint":"https://evil.example/e"}"#;
        assert!(
            parse_metadata(&base, other, false)
                .unwrap_err()
                .contains("evil")
        );
        let plain = br#"{"policy_decision_point":"https://pdp.example",
            "access_evaluation_endpoint":"http://pdp.example/e"}"#;
        assert!(parse_metadata(&base, plain, false).is_err());
        assert!(parse_metadata(&base, b"{}", false).is_err());
        let elsewhere = br#"{"policy_decision_point":"https://pdp.example",
            "access_evaluation_endpoint":"https://collector.example/e"}"#;
        assert!(
            parse_metadata(&base, elsewhere, false)
                .unwrap_err()
                .contains("origin")
        );
        assert!(parse_metadata(&base, b"<html>", false).is_err());
    }
}
