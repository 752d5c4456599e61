//! EC2 through its Query API, signed with SigV4 (`aws-sigv4`, already used for EKS tokens).
//!
//! Slipway reads subnets and nothing else from EC2. The `aws-sdk-ec2` crate generates code for
//! every one of EC2's several hundred operations (88 MB of source) and was 237 s of an 11-minute
//! cold release build, more than a third of it; this client is one signed form POST and an XML
//! reader. It follows the SDK's rules for what matters here: the same credentials and region,
//! and the endpoint from `AWS_ENDPOINT_URL_EC2`, else `AWS_ENDPOINT_URL` (the SDK configuration's
//! endpoint), else the regional public one. Per-service endpoints set in an AWS profile file are
//! not read: set the environment variable instead.

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_smithy_xml::decode::{Document, ScopedDecoder, try_data};

use super::cloud::CloudError;

/// The API version every request names (the current one; EC2 keeps old versions working).
const API_VERSION: &str = "2016-11-15";

/// A subnet as Slipway uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subnet {
    pub id: String,
    pub vpc_id: String,
    pub availability_zone: String,
}

/// EC2 in one account and region.
pub struct Ec2 {
    http: reqwest::Client,
    endpoint: String,
    region: String,
    credentials: Credentials,
}

impl Ec2 {
    /// `configured_endpoint` is the SDK configuration's endpoint override, if any.
    pub fn new(region: &str, credentials: Credentials, configured_endpoint: Option<&str>) -> Ec2 {
        let endpoint = std::env::var("AWS_ENDPOINT_URL_EC2")
            .ok()
            .filter(|url| !url.is_empty())
            .or_else(|| configured_endpoint.map(str::to_owned))
            .unwrap_or_else(|| public_endpoint(region));
        Ec2 {
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .timeout(Duration::from_secs(60))
                .build()
                .expect("the HTTP client's settings are valid"),
            endpoint,
            region: region.to_owned(),
            credentials,
        }
    }

    /// The subnets matching every filter (`name`, `value`), all pages of them.
    pub async fn describe_subnets(
        &self,
        filters: &[(&str, &str)],
    ) -> Result<Vec<Subnet>, CloudError> {
        let mut params = vec![];
        for (n, (name, value)) in filters.iter().enumerate() {
            let n = n + 1;
            params.push((format!("Filter.{n}.Name"), (*name).to_owned()));
            params.push((format!("Filter.{n}.Value.1"), (*value).to_owned()));
        }
        let mut subnets = vec![];
        let mut next_token: Option<String> = None;
        loop {
            let mut page = params.clone();
            if let Some(token) = &next_token {
                page.push(("NextToken".to_owned(), token.clone()));
            }
            let body = self.call("DescribeSubnets", &page).await?;
            let (items, token) =
                parse_items(&body, "subnetSet").map_err(|e| unreadable("DescribeSubnets", &e))?;
            for item in items {
                subnets.push(Subnet {
                    id: item.get("subnetId")?,
                    vpc_id: item.get("vpcId")?,
                    availability_zone: item.get("availabilityZone")?,
                });
            }
            match token {
                Some(token) if !token.is_empty() => next_token = Some(token),
                _ => return Ok(subnets),
            }
        }
    }

    /// One signed Query API call; the response body, or the error EC2 answered.
    async fn call(&self, action: &str, params: &[(String, String)]) -> Result<String, CloudError> {
        let what = format!("ec2:{action}");
        let body = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("Action", action);
            form.append_pair("Version", API_VERSION);
            for (name, value) in params {
                form.append_pair(name, value);
            }
            form.finish()
        };
        let headers = self.sign(&body, SystemTime::now())?;
        let mut request = self.http.post(&self.endpoint).body(body);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let response = request
            .send()
            .await
            .map_err(|e| CloudError::Transient(format!("{what} failed: {e}")))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| CloudError::Transient(format!("{what} failed reading the answer: {e}")))?;
        if status.is_success() {
            return Ok(text);
        }
        let (code, message) = parse_error(&text).unwrap_or_else(|| {
            (
                format!("HTTP {}", status.as_u16()),
                text.chars().take(200).collect(),
            )
        });
        let message = format!("{what} failed: {code}: {message}");
        // EC2's documented throttling codes, and its own faults, are worth another attempt.
        if status.is_server_error()
            || matches!(
                code.as_str(),
                "RequestLimitExceeded" | "Throttling" | "InternalError" | "Unavailable"
            )
        {
            Err(CloudError::Transient(message))
        } else {
            Err(CloudError::Permanent(message))
        }
    }

    /// The headers that sign a form POST of `body` to the endpoint.
    fn sign(&self, body: &str, now: SystemTime) -> Result<Vec<(String, String)>, CloudError> {
        use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
        let failed =
            |e: &dyn std::fmt::Display| CloudError::Permanent(format!("signing for EC2: {e}"));
        let host = reqwest::Url::parse(&self.endpoint)
            .ok()
            .and_then(|url| {
                url.host_str().map(|host| match url.port() {
                    Some(port) => format!("{host}:{port}"),
                    None => host.to_owned(),
                })
            })
            .ok_or_else(|| failed(&format!("the endpoint {} has no host", self.endpoint)))?;
        let content_type = "application/x-www-form-urlencoded; charset=utf-8";
        let identity = self.credentials.clone().into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("ec2")
            .time(now)
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| failed(&e))?
            .into();
        let unsigned = [("host", host.as_str()), ("content-type", content_type)];
        let signable = SignableRequest::new(
            "POST",
            &self.endpoint,
            unsigned.into_iter(),
            SignableBody::Bytes(body.as_bytes()),
        )
        .map_err(|e| failed(&e))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| failed(&e))?
            .into_parts();
        let mut headers: Vec<(String, String)> = vec![("content-type".into(), content_type.into())];
        headers.extend(
            instructions
                .headers()
                .map(|(name, value)| (name.to_owned(), value.to_owned())),
        );
        Ok(headers)
    }
}

fn public_endpoint(region: &str) -> String {
    let domain = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    format!("https://ec2.{region}.{domain}")
}

fn unreadable(action: &str, error: &dyn std::fmt::Display) -> CloudError {
    CloudError::Transient(format!("ec2:{action} answered unreadable XML: {error}"))
}

/// The text children of one `<item>` of a result set.
struct Item(Vec<(String, String)>);

impl Item {
    fn get(&self, name: &str) -> Result<String, CloudError> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
            .ok_or_else(|| CloudError::Transient(format!("EC2 answered an item without {name}")))
    }
}

/// The `<item>`s of the top-level element `set`, and the `nextToken` beside it.
fn parse_items(
    body: &str,
    set: &str,
) -> Result<(Vec<Item>, Option<String>), aws_smithy_xml::decode::XmlDecodeError> {
    let mut doc = Document::new(body);
    let mut root = doc.root_element()?;
    let mut items = vec![];
    let mut next_token = None;
    while let Some(mut child) = root.next_tag() {
        if child.start_el().matches(set) {
            while let Some(mut item) = child.next_tag() {
                items.push(Item(text_children(&mut item)?));
            }
        } else if child.start_el().matches("nextToken") {
            next_token = Some(try_data(&mut child)?.into_owned());
        }
    }
    Ok((items, next_token))
}

/// The direct children of `element` that hold text (nested sets, such as tags, are skipped).
fn text_children(
    element: &mut ScopedDecoder,
) -> Result<Vec<(String, String)>, aws_smithy_xml::decode::XmlDecodeError> {
    let mut fields = vec![];
    while let Some(mut field) = element.next_tag() {
        let name = field.start_el().local().to_owned();
        // An element with children answers an error here; it is not a field we read.
        if let Ok(value) = try_data(&mut field) {
            fields.push((name, Cow::into_owned(value)));
        }
    }
    Ok(fields)
}

/// The code and message of EC2's `<Response><Errors><Error>` answer.
fn parse_error(body: &str) -> Option<(String, String)> {
    let mut doc = Document::new(body);
    let mut root = doc.root_element().ok()?;
    while let Some(mut errors) = root.next_tag() {
        if !errors.start_el().matches("Errors") {
            continue;
        }
        let mut error = errors.next_tag()?;
        let fields = text_children(&mut error).ok()?;
        let field = |name: &str| {
            fields
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
        };
        return Some((field("Code")?, field("Message").unwrap_or_default()));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_subnets_and_the_next_page_token() {
        let body = r#"<?xml version="1.0" encoding="UTF-8"?>
<DescribeSubnetsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>r-1</requestId>
  <subnetSet>
    <item>
      <subnetId>subnet-1</subnetId><vpcId>vpc-1</vpcId><availabilityZone>us-east-1a</availabilityZone>
      <tagSet><item><key>slipway:eks</key><value>true</value></item></tagSet>
    </item>
    <item><subnetId>subnet-2</subnetId><vpcId>vpc-1</vpcId><availabilityZone>us-east-1b</availabilityZone></item>
  </subnetSet>
  <nextToken>page-2</nextToken>
</DescribeSubnetsResponse>"#;
        let (items, token) = parse_items(body, "subnetSet").unwrap();
        assert_eq!(token.as_deref(), Some("page-2"));
        let ids: Vec<_> = items.iter().map(|i| i.get("subnetId").unwrap()).collect();
        assert_eq!(ids, ["subnet-1", "subnet-2"]);
        assert_eq!(items[1].get("availabilityZone").unwrap(), "us-east-1b");
    }

    #[test]
    fn reads_an_error_answer() {
        let body = "<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>x</RequestID></Response>";
        assert_eq!(
            parse_error(body),
            Some((
                "RequestLimitExceeded".to_owned(),
                "Request limit exceeded.".to_owned()
            ))
        );
        assert_eq!(parse_error("<html>bad gateway</html>"), None);
    }
}
