//! What the organization's accounts cost, from AWS Cost Explorer: `GetCostAndUsage`, daily,
//! unblended cost grouped by linked account, asked of the management account (the payer, where
//! Slipway runs). One JSON 1.1 call signed with SigV4 (`aws-sigv4`, as for EC2): the Cost
//! Explorer SDK crate would be a whole generated client for one operation.
//!
//! Cost Explorer is global: its endpoint is in us-east-1 (cn-northwest-1 in China), from
//! `AWS_ENDPOINT_URL_COST_EXPLORER`, else the SDK configuration's endpoint override. Each
//! request costs $0.01, which is why Slipway reads it on a schedule, not per page view.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::json;

use super::cloud::CloudError;
use super::signing;

/// One account's cost on one day, in millionths of a dollar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountDay {
    pub account_id: String,
    pub day: NaiveDate,
    pub usd_micros: i64,
}

/// Cost Explorer as the management account calls it.
pub struct CostExplorer {
    http: reqwest::Client,
    endpoint: String,
    region: &'static str,
    credentials: Credentials,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Answer {
    #[serde(default)]
    results_by_time: Vec<Period>,
    next_page_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Period {
    time_period: Span,
    #[serde(default)]
    groups: Vec<Group>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Span {
    start: NaiveDate,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Group {
    keys: Vec<String>,
    metrics: std::collections::HashMap<String, Amount>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Amount {
    amount: String,
}

/// The metric Slipway reads: what was charged, before credits are shared out.
const METRIC: &str = "UnblendedCost";

impl CostExplorer {
    /// `partition` is the organization's (`aws`, `aws-cn`, …); `configured_endpoint` the SDK
    /// configuration's endpoint override, if any.
    pub fn new(
        partition: &str,
        credentials: Credentials,
        configured_endpoint: Option<&str>,
    ) -> CostExplorer {
        let (region, public) = match partition {
            "aws-cn" => (
                "cn-northwest-1",
                "https://ce.cn-northwest-1.amazonaws.com.cn",
            ),
            _ => ("us-east-1", "https://ce.us-east-1.amazonaws.com"),
        };
        let endpoint = std::env::var("AWS_ENDPOINT_URL_COST_EXPLORER")
            .ok()
            .filter(|url| !url.is_empty())
            .or_else(|| configured_endpoint.map(str::to_owned))
            .unwrap_or_else(|| public.to_owned());
        CostExplorer {
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .timeout(Duration::from_secs(60))
                .build()
                .expect("the HTTP client's settings are valid"),
            endpoint,
            region,
            credentials,
        }
    }

    /// Each linked account's cost per day from `from` up to (not including) `to`, all pages.
    pub async fn daily_by_account(
        &self,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<AccountDay>, CloudError> {
        let mut days = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut body = json!({
                "TimePeriod": {"Start": from.to_string(), "End": to.to_string()},
                "Granularity": "DAILY",
                "Metrics": [METRIC],
                "GroupBy": [{"Type": "DIMENSION", "Key": "LINKED_ACCOUNT"}],
            });
            if let Some(token) = &token {
                body["NextPageToken"] = json!(token);
            }
            let answer: Answer = serde_json::from_str(&self.call(&body.to_string()).await?)
                .map_err(|e| {
                    CloudError::Transient(format!(
                        "ce:GetCostAndUsage answered unreadable JSON: {e}"
                    ))
                })?;
            for period in answer.results_by_time {
                for group in period.groups {
                    let (Some(account), Some(amount)) =
                        (group.keys.first(), group.metrics.get(METRIC))
                    else {
                        continue;
                    };
                    days.push(AccountDay {
                        account_id: account.clone(),
                        day: period.time_period.start,
                        usd_micros: micros(&amount.amount)?,
                    });
                }
            }
            match answer.next_page_token {
                Some(next) if !next.is_empty() => token = Some(next),
                _ => return Ok(days),
            }
        }
    }

    /// One signed call; throttling and Cost Explorer's own faults are tried again, up to three
    /// attempts 0.5 s and 1 s apart (a read: safe to repeat).
    async fn call(&self, body: &str) -> Result<String, CloudError> {
        let mut attempt = 1;
        loop {
            match self.call_once(body).await {
                Err(CloudError::Transient(_)) if attempt < 3 => {
                    tokio::time::sleep(Duration::from_millis(500 * attempt)).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn call_once(&self, body: &str) -> Result<String, CloudError> {
        let what = "ce:GetCostAndUsage";
        let headers = signing::headers(
            &signing::Request {
                endpoint: &self.endpoint,
                region: self.region,
                service: "ce",
                content_type: "application/x-amz-json-1.1",
                target: Some("AWSInsightsIndexService.GetCostAndUsage"),
                body: body.as_bytes(),
            },
            &self.credentials,
            SystemTime::now(),
        )?;
        let mut request = self.http.post(&self.endpoint).body(body.to_owned());
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
        #[derive(Deserialize)]
        struct Fault {
            #[serde(rename = "__type", default)]
            kind: String,
            #[serde(alias = "Message", default)]
            message: String,
        }
        let fault: Fault = serde_json::from_str(&text).unwrap_or(Fault {
            kind: format!("HTTP {}", status.as_u16()),
            message: text.chars().take(200).collect(),
        });
        // `aws.protocol#…Exception` or a bare name: the name is after the last '#'.
        let code = fault.kind.rsplit('#').next().unwrap_or_default().to_owned();
        let message = format!("{what} failed: {code}: {}", fault.message);
        if status.is_server_error()
            || code.contains("Throttling")
            || code == "LimitExceededException"
        {
            Err(CloudError::Transient(message))
        } else {
            Err(CloudError::Permanent(message))
        }
    }
}

/// "12.3456789" dollars as millionths, rounded.
fn micros(amount: &str) -> Result<i64, CloudError> {
    let usd: f64 = amount.parse().map_err(|_| {
        CloudError::Transient(format!("ce:GetCostAndUsage answered the amount {amount:?}"))
    })?;
    Ok((usd * 1_000_000.0).round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_reads_as_each_accounts_days() {
        let answer: Answer = serde_json::from_value(json!({
            "ResultsByTime": [{
                "TimePeriod": {"Start": "2026-12-01", "End": "2026-12-02"},
                "Total": {},
                "Groups": [
                    {"Keys": ["111111111111"], "Metrics": {"UnblendedCost": {"Amount": "12.3456789", "Unit": "USD"}}},
                    {"Keys": ["222222222222"], "Metrics": {"UnblendedCost": {"Amount": "0", "Unit": "USD"}}}
                ],
                "Estimated": true
            }],
            "DimensionValueAttributes": []
        }))
        .unwrap();
        assert_eq!(answer.results_by_time[0].groups.len(), 2);
        assert!(answer.next_page_token.is_none());
        assert_eq!(micros("12.3456789").unwrap(), 12_345_679);
        assert!(micros("twelve").is_err());
    }
}
