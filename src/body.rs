//! Reading an HTTP answer's body with a size limit: JWKS documents, token
//! endpoints, the Transaction Token Service and decision points all stop
//! at their limit rather than buffer what a server sends.

/// Why a body could not be read.
pub(crate) enum BodyError {
    /// The transport failed (reqwest's error, its URL removed).
    Network(reqwest::Error),
    /// The body is longer than the limit.
    TooLarge,
}

/// The body of `response`, at most `max` bytes.
pub(crate) async fn read(
    response: &mut reqwest::Response,
    max: usize,
) -> Result<Vec<u8>, BodyError> {
    if response
        .content_length()
        .is_some_and(|len| len > max as u64)
    {
        return Err(BodyError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| BodyError::Network(e.without_url()))?
    {
        if body.len() + chunk.len() > max {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
