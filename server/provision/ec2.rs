//! EC2 through its Query API, signed with SigV4 (`aws-sigv4`, already used for EKS tokens).
//!
//! Slipway builds each environment's VPC with it (see [`super::vpc`]). The `aws-sdk-ec2` crate generates code for
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

/// Whether a call may be sent again after a failure whose effect is unknown (a timeout, a
/// 5xx, a lost answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Repeat {
    /// Reads, and changes that are the same done twice.
    Safe,
    /// Creations without an idempotency token: repeated, they could make a second resource.
    /// The caller's next attempt looks for what the first made instead.
    OnlyIfRefused,
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
        self.describe("DescribeSubnets", "subnetSet", filters)
            .await?
            .iter()
            .map(|item| {
                Ok(Subnet {
                    id: item.get("subnetId")?,
                    vpc_id: item.get("vpcId")?,
                    availability_zone: item.get("availabilityZone")?,
                })
            })
            .collect()
    }

    /// The items of `set` that `action` lists with every filter (`name`, `value`), all pages.
    pub async fn describe(
        &self,
        action: &str,
        set: &str,
        filters: &[(&str, &str)],
    ) -> Result<Vec<Item>, CloudError> {
        let params = filter_params(filters);
        let mut items = vec![];
        let mut next_token: Option<String> = None;
        loop {
            let mut page = params.clone();
            if let Some(token) = &next_token {
                page.push(("NextToken".to_owned(), token.clone()));
            }
            let body = self.call(action, &page, Repeat::Safe).await?;
            let (found, token) = parse_items(&body, set).map_err(|e| unreadable(action, &e))?;
            items.extend(found);
            match token {
                Some(token) if !token.is_empty() => next_token = Some(token),
                _ => return Ok(items),
            }
        }
    }

    /// The route tables matching every filter, each with the ids of its subnet associations
    /// (a nested set [`Ec2::describe`] does not read).
    pub async fn route_tables(
        &self,
        filters: &[(&str, &str)],
    ) -> Result<Vec<(String, Vec<String>)>, CloudError> {
        let params = filter_params(filters);
        let body = self
            .call("DescribeRouteTables", &params, Repeat::Safe)
            .await?;
        parse_route_tables(&body).map_err(|e| unreadable("DescribeRouteTables", &e))
    }

    /// Calls `action` and returns the text at `path` of its answer (a created resource's id:
    /// `["vpc", "vpcId"]`).
    pub async fn create(
        &self,
        action: &str,
        params: &[(String, String)],
        path: &[&str],
    ) -> Result<String, CloudError> {
        self.create_repeating(action, params, path, Repeat::OnlyIfRefused)
            .await
    }

    /// [`Ec2::create`] for an action with an idempotency token (`ClientToken`): repeated after
    /// an unknown outcome, EC2 answers with what the first call made.
    pub async fn create_with_token(
        &self,
        action: &str,
        params: &[(String, String)],
        path: &[&str],
    ) -> Result<String, CloudError> {
        self.create_repeating(action, params, path, Repeat::Safe)
            .await
    }

    /// [`Ec2::create_with_token`], except that an error whose code is in `taken` is `Ok(None)`:
    /// what the call makes may exist already, made by a call whose answer was lost, where the
    /// server (an emulator) does not honour the token.
    pub async fn create_with_token_unless(
        &self,
        action: &str,
        params: &[(String, String)],
        path: &[&str],
        taken: &[&str],
    ) -> Result<Option<String>, CloudError> {
        match self.call_coded(action, params, Repeat::Safe).await {
            Ok(body) => text_at(&body, path).map(Some).ok_or_else(|| {
                CloudError::Transient(format!("ec2:{action} answered without {}", path.join("/")))
            }),
            Err((Some(code), _)) if taken.contains(&code.as_str()) => Ok(None),
            Err((_, error)) => Err(error),
        }
    }

    async fn create_repeating(
        &self,
        action: &str,
        params: &[(String, String)],
        path: &[&str],
        repeat: Repeat,
    ) -> Result<String, CloudError> {
        let body = self.call(action, params, repeat).await?;
        text_at(&body, path).ok_or_else(|| {
            CloudError::Transient(format!("ec2:{action} answered without {}", path.join("/")))
        })
    }

    /// Calls `action` for its effect; an error whose code is in `done` means the effect is
    /// there already (a re-run) and counts as success.
    pub async fn act(
        &self,
        action: &str,
        params: &[(String, String)],
        done: &[&str],
    ) -> Result<(), CloudError> {
        match self.call_coded(action, params, Repeat::Safe).await {
            Ok(_) => Ok(()),
            Err((Some(code), _)) if done.contains(&code.as_str()) => Ok(()),
            Err((_, error)) => Err(error),
        }
    }

    /// One signed Query API call; the response body, or the error EC2 answered.
    async fn call(
        &self,
        action: &str,
        params: &[(String, String)],
        repeat: Repeat,
    ) -> Result<String, CloudError> {
        self.call_coded(action, params, repeat)
            .await
            .map_err(|(_, e)| e)
    }

    /// [`Ec2::call`], with EC2's error code beside the error. Transient failures are tried
    /// again, up to three attempts 0.5 s and 1 s apart, as the AWS SDKs do; a call that is not
    /// safe to repeat only when EC2 refused it unprocessed (throttled).
    async fn call_coded(
        &self,
        action: &str,
        params: &[(String, String)],
        repeat: Repeat,
    ) -> Result<String, (Option<String>, CloudError)> {
        let mut attempt = 1;
        loop {
            match self.call_once(action, params).await {
                Err((code, CloudError::Transient(m))) if attempt < 3 => {
                    let refused = code
                        .as_deref()
                        .is_some_and(|c| matches!(c, "RequestLimitExceeded" | "Throttling"));
                    if repeat == Repeat::OnlyIfRefused && !refused {
                        return Err((code, CloudError::Transient(m)));
                    }
                    tokio::time::sleep(Duration::from_millis(500 * attempt)).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn call_once(
        &self,
        action: &str,
        params: &[(String, String)],
    ) -> Result<String, (Option<String>, CloudError)> {
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
        let headers = self.sign(&body, SystemTime::now()).map_err(|e| (None, e))?;
        let mut request = self.http.post(&self.endpoint).body(body);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let response = request
            .send()
            .await
            .map_err(|e| (None, CloudError::Transient(format!("{what} failed: {e}"))))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| {
            (
                None,
                CloudError::Transient(format!("{what} failed reading the answer: {e}")),
            )
        })?;
        if status.is_success() {
            return Ok(text);
        }
        let parsed = parse_error(&text);
        let known = parsed.as_ref().map(|(code, _)| code.clone());
        let (code, message) = parsed.unwrap_or_else(|| {
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
            Err((known, CloudError::Transient(message)))
        } else {
            Err((known, CloudError::Permanent(message)))
        }
    }

    /// The headers that sign a form POST of `body` to the endpoint.
    fn sign(&self, body: &str, now: SystemTime) -> Result<Vec<(String, String)>, CloudError> {
        super::signing::headers(
            &super::signing::Request {
                endpoint: &self.endpoint,
                region: &self.region,
                service: "ec2",
                content_type: "application/x-www-form-urlencoded; charset=utf-8",
                target: None,
                body: body.as_bytes(),
            },
            &self.credentials,
            now,
        )
    }
}

/// The `Filter.N.Name` and `Filter.N.Value.1` parameters of a Describe call.
fn filter_params(filters: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut params = vec![];
    for (n, (name, value)) in filters.iter().enumerate() {
        let n = n + 1;
        params.push((format!("Filter.{n}.Name"), (*name).to_owned()));
        params.push((format!("Filter.{n}.Value.1"), (*value).to_owned()));
    }
    params
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
pub struct Item(Vec<(String, String)>);

impl Item {
    pub fn get(&self, name: &str) -> Result<String, CloudError> {
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

/// Each route table's id and the ids of its subnet associations (the main one left out: it
/// cannot be removed and goes with the VPC).
fn parse_route_tables(
    body: &str,
) -> Result<Vec<(String, Vec<String>)>, aws_smithy_xml::decode::XmlDecodeError> {
    let mut doc = Document::new(body);
    let mut root = doc.root_element()?;
    let mut tables = vec![];
    while let Some(mut set) = root.next_tag() {
        if !set.start_el().matches("routeTableSet") {
            continue;
        }
        while let Some(mut item) = set.next_tag() {
            let (mut id, mut associations) = (String::new(), vec![]);
            while let Some(mut field) = item.next_tag() {
                if field.start_el().matches("routeTableId") {
                    id = try_data(&mut field)?.into_owned();
                } else if field.start_el().matches("associationSet") {
                    while let Some(mut association) = field.next_tag() {
                        let fields = text_children(&mut association)?;
                        let value = |name: &str| {
                            fields
                                .iter()
                                .find(|(k, _)| k == name)
                                .map(|(_, v)| v.clone())
                        };
                        if value("main").as_deref() != Some("true")
                            && let Some(association) = value("routeTableAssociationId")
                        {
                            associations.push(association);
                        }
                    }
                }
            }
            tables.push((id, associations));
        }
    }
    Ok(tables)
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

/// The text of the element at `path` below the answer's root.
fn text_at(body: &str, path: &[&str]) -> Option<String> {
    fn descend(element: &mut ScopedDecoder, path: &[&str]) -> Option<String> {
        let (first, rest) = path.split_first()?;
        while let Some(mut child) = element.next_tag() {
            if child.start_el().matches(first) {
                return if rest.is_empty() {
                    try_data(&mut child).ok().map(Cow::into_owned)
                } else {
                    descend(&mut child, rest)
                };
            }
        }
        None
    }
    let mut doc = Document::new(body);
    let mut root = doc.root_element().ok()?;
    descend(&mut root, path)
}

/// The `TagSpecification` parameters that tag a resource of `kind` as it is created.
pub fn tag_specification(kind: &str, tags: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut params = vec![(
        "TagSpecification.1.ResourceType".to_owned(),
        kind.to_owned(),
    )];
    for (n, (key, value)) in tags.iter().enumerate() {
        let n = n + 1;
        params.push((format!("TagSpecification.1.Tag.{n}.Key"), (*key).to_owned()));
        params.push((
            format!("TagSpecification.1.Tag.{n}.Value"),
            (*value).to_owned(),
        ));
    }
    params
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
    fn reads_route_tables_with_their_associations_and_a_created_id() {
        let body = r#"<DescribeRouteTablesResponse><requestId>r</requestId><routeTableSet>
  <item><routeTableId>rtb-1</routeTableId><vpcId>vpc-1</vpcId>
    <routeSet><item><destinationCidrBlock>0.0.0.0/0</destinationCidrBlock></item></routeSet>
    <associationSet>
      <item><routeTableAssociationId>rtbassoc-1</routeTableAssociationId><main>false</main></item>
      <item><routeTableAssociationId>rtbassoc-main</routeTableAssociationId><main>true</main></item>
    </associationSet></item>
  <item><routeTableId>rtb-2</routeTableId><associationSet/></item>
</routeTableSet></DescribeRouteTablesResponse>"#;
        assert_eq!(
            parse_route_tables(body).unwrap(),
            [
                ("rtb-1".to_owned(), vec!["rtbassoc-1".to_owned()]),
                ("rtb-2".to_owned(), vec![])
            ]
        );
        let created = "<CreateVpcResponse><requestId>r</requestId><vpc><vpcId>vpc-9</vpcId><state>pending</state></vpc></CreateVpcResponse>";
        assert_eq!(
            text_at(created, &["vpc", "vpcId"]).as_deref(),
            Some("vpc-9")
        );
        assert_eq!(text_at(created, &["vpc", "cidrBlock"]), None);
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
