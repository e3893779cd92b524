//! Asking the decision point: its endpoints, the service's token, one
//! request and its answer.

use std::time::{Duration, Instant};

use super::{AuthZen, Semantic, discovery, wire};
use discovery::Endpoints;

/// The largest answer read from a decision point.
const MAX_ANSWER: usize = 64 * 1024;
/// After a failed discovery, the next one waits this long.
const RETRY_AFTER: Duration = Duration::from_secs(2);

impl AuthZen {
    /// The endpoints: the default paths, or the metadata's, fetched once.
    /// After a failure the next fetch waits [`RETRY_AFTER`]; the decisions
    /// queued behind a failing fetch fail at once rather than each trying
    /// again (the throttle is checked inside the single flight).
    pub(super) async fn endpoints(&self) -> Result<&Endpoints, String> {
        if let Some(e) = self.0.endpoints.get() {
            return Ok(e);
        }
        let failed_at = || *self.0.failed_at.lock().unwrap_or_else(|e| e.into_inner());
        self.0
            .endpoints
            .get_or_try_init(|| async {
                if failed_at().is_some_and(|at| at.elapsed() < RETRY_AFTER) {
                    return Err(
                        "the decision point's metadata could not be had; not asked again yet"
                            .to_owned(),
                    );
                }
                let result = self.discover().await;
                if result.is_err() {
                    *self.0.failed_at.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some(Instant::now());
                }
                result
            })
            .await
    }

    pub(super) async fn discover(&self) -> Result<Endpoints, String> {
        let url = discovery::metadata_url(&self.0.base)?;
        let response = self
            .0
            .client
            .get(url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| format!("the decision point's metadata: {}", e.without_url()))?;
        let body = read(response).await?;
        discovery::parse_metadata(&self.0.base, &body, self.0.allow_http)
    }

    pub(super) async fn bearer(&self) -> Result<Option<String>, String> {
        let Some((provider, request)) = &self.0.token else {
            return Ok(None);
        };
        let token = provider
            .token(request.clone())
            .await
            .map_err(|e| format!("no token for the decision point: {e}"))?;
        #[cfg(feature = "_aws-lc")]
        if token.dpop_key().is_some() {
            return Err("the decision point's token is DPoP-bound, which is not supported".into());
        }
        Ok(Some(token.secret().to_owned()))
    }

    pub(super) async fn post(
        &self,
        url: &reqwest::Url,
        body: String,
        bearer: Option<&str>,
    ) -> Result<Vec<u8>, String> {
        let mut request = self
            .0
            .client
            .post(url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::ACCEPT, "application/json")
            .body(body);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("the decision point: {}", e.without_url()))?;
        read(response).await
    }

    pub(super) async fn ask_batch(
        &self,
        url: &reqwest::Url,
        body: String,
        bearer: Option<&str>,
        sent: usize,
    ) -> Result<Vec<wire::Decision>, String> {
        let answers = wire::parse_batch(&self.post(url, body, bearer).await?)?;
        let stopped_at_deny = self.0.semantic == Semantic::DenyOnFirstDeny
            && answers.last().is_some_and(|d| !d.decision);
        if answers.len() > sent || (answers.len() < sent && !stopped_at_deny) {
            return Err(format!(
                "the decision point answered {} evaluations for {sent} subjects",
                answers.len()
            ));
        }
        Ok(answers)
    }

    pub(super) async fn ask_each(
        &self,
        url: &reqwest::Url,
        bodies: Vec<String>,
        bearer: Option<&str>,
    ) -> Result<Vec<wire::Decision>, String> {
        let mut answers = Vec::with_capacity(bodies.len());
        for body in bodies {
            let answer = wire::parse_single(&self.post(url, body, bearer).await?)?;
            let denied = !answer.decision;
            answers.push(answer);
            if denied && self.0.semantic == Semantic::DenyOnFirstDeny {
                break;
            }
        }
        Ok(answers)
    }
}

/// The body of a 200 answer, at most [`MAX_ANSWER`] bytes.
async fn read(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
    let status = response.status();
    let body = crate::body::read(&mut response, MAX_ANSWER)
        .await
        .map_err(|e| match e {
            crate::body::BodyError::Network(e) => format!("the decision point's answer: {e}"),
            crate::body::BodyError::TooLarge => {
                format!("the decision point's answer is over {MAX_ANSWER} bytes")
            }
        })?;
    if status != reqwest::StatusCode::OK {
        // Printable ASCII only, briefly: the text may echo what was sent,
        // and it goes into logs.
        let excerpt: String = String::from_utf8_lossy(&body)
            .chars()
            .map(|c| if c.is_ascii_graphic() { c } else { ' ' })
            .take(100)
            .collect();
        return Err(format!("the decision point answered {status}: {excerpt}"));
    }
    Ok(body)
}
