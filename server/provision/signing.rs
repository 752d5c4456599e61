//! SigV4 for the calls Slipway makes without an SDK crate (EC2's Query API, Cost Explorer's
//! JSON API): the headers that sign one POST.

use std::time::SystemTime;

use aws_credential_types::Credentials;

use super::cloud::CloudError;

/// A POST to sign.
pub struct Request<'a> {
    pub endpoint: &'a str,
    pub region: &'a str,
    /// The signing name (`ec2`, `ce`).
    pub service: &'a str,
    pub content_type: &'a str,
    /// `X-Amz-Target`, for the JSON protocols.
    pub target: Option<&'a str>,
    pub body: &'a [u8],
}

/// Every header the request needs: its content type (and target), and the signature's.
pub fn headers(
    request: &Request<'_>,
    credentials: &Credentials,
    now: SystemTime,
) -> Result<Vec<(String, String)>, CloudError> {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    let failed = |e: &dyn std::fmt::Display| {
        CloudError::Permanent(format!("signing for {}: {e}", request.service))
    };
    let host = reqwest::Url::parse(request.endpoint)
        .ok()
        .and_then(|url| {
            url.host_str().map(|host| match url.port() {
                Some(port) => format!("{host}:{port}"),
                None => host.to_owned(),
            })
        })
        .ok_or_else(|| failed(&format!("the endpoint {} has no host", request.endpoint)))?;
    let identity = credentials.clone().into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(request.region)
        .name(request.service)
        .time(now)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| failed(&e))?
        .into();
    let mut unsigned = vec![
        ("host", host.as_str()),
        ("content-type", request.content_type),
    ];
    if let Some(target) = request.target {
        unsigned.push(("x-amz-target", target));
    }
    let signable = SignableRequest::new(
        "POST",
        request.endpoint,
        unsigned.iter().copied(),
        SignableBody::Bytes(request.body),
    )
    .map_err(|e| failed(&e))?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| failed(&e))?
        .into_parts();
    let mut headers: Vec<(String, String)> = unsigned
        .iter()
        .filter(|(name, _)| *name != "host")
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect();
    headers.extend(
        instructions
            .headers()
            .map(|(name, value)| (name.to_owned(), value.to_owned())),
    );
    Ok(headers)
}
