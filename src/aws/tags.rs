//! The node's `Patch Group` (or `PatchGroup`) tag, from wherever it can be
//! read: instance tags in IMDS (which cannot show a key with a space),
//! `ssm:ListTagsForResource` for `mi-` nodes, `ec2:DescribeTags` when the
//! role allows it.
//!
//! `ec2:DescribeTags` is one signed Query request (`aws::query`) rather
//! than aws-sdk-ec2: the SDK would add minutes of build and megabytes of
//! binary for one call (figures in BENCHMARKS.md).

use super::query::xml_values;

pub const KEYS: &[&str] = &["Patch Group", "PatchGroup"];

/// The one value the tags agree on: `None` when there is none or they
/// differ.
pub fn agreed<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let mut values: Vec<&str> = values.into_iter().collect();
    values.sort();
    values.dedup();
    match values.as_slice() {
        [one] => Some(one.to_string()),
        _ => None,
    }
}

/// A tag value and where it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub source: &'static str,
    pub key: String,
    pub value: String,
}

/// A source that could not be read, and why (for the summary).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotRead {
    pub source: &'static str,
    pub why: String,
}

/// Why one source of tags could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TagError {
    #[error(
        "instance tags are not exposed in the instance metadata (InstanceMetadataTags disabled)"
    )]
    NotExposed,
    #[error(transparent)]
    Imds(#[from] super::identity::ImdsError),
    /// An AWS call that gave no usable answer, in one sentence.
    #[error("{0}")]
    Call(String),
}

/// `PatchGroup` from IMDS instance tags. `Err` says why it could not be read.
/// The listing and the value are asked at once (the value is a 404 when
/// the key is absent): one round trip after the session token, not two.
pub async fn from_imds(client: &aws_config::imds::Client) -> Result<Option<Found>, TagError> {
    use super::identity::imds_get;
    let (listing, value) = tokio::join!(
        imds_get(client, "/latest/meta-data/tags/instance"),
        imds_get(client, "/latest/meta-data/tags/instance/PatchGroup"),
    );
    match listing? {
        None => Err(TagError::NotExposed),
        Some(listing) => {
            if !listing.lines().any(|k| k.trim() == "PatchGroup") {
                return Ok(None);
            }
            Ok(value?.map(|v| Found {
                source: "IMDS instance tags",
                key: "PatchGroup".into(),
                value: v.trim().to_string(),
            }))
        }
    }
}

/// Both keys from `ssm:ListTagsForResource` (hybrid `mi-` nodes).
pub async fn from_ssm(
    ssm: &aws_sdk_ssm::Client,
    instance_id: &str,
) -> Result<Vec<Found>, TagError> {
    use aws_sdk_ssm::types::ResourceTypeForTagging;
    let out = ssm
        .list_tags_for_resource()
        .resource_type(ResourceTypeForTagging::ManagedInstance)
        .resource_id(instance_id)
        .send()
        .await
        .map_err(|e| TagError::Call(super::sdk::describe_error(&e, "ssm:ListTagsForResource")))?;
    Ok(out
        .tag_list()
        .iter()
        .filter(|t| KEYS.contains(&t.key()))
        .map(|t| Found {
            source: "ssm:ListTagsForResource",
            key: t.key().to_string(),
            value: t.value().to_string(),
        })
        .collect())
}

/// The form body of `ec2:DescribeTags` for both keys on one instance.
pub fn describe_tags_body(instance_id: &str) -> String {
    format!(
        "Action=DescribeTags&Version=2016-11-15&Filter.1.Name=resource-id&Filter.1.Value.1={instance_id}&Filter.2.Name=key&Filter.2.Value.1=Patch%20Group&Filter.2.Value.2=PatchGroup"
    )
}

/// Both keys from `ec2:DescribeTags`, signed with the instance's credentials.
pub async fn from_ec2(
    http: &reqwest::Client,
    endpoint: &str,
    region: &str,
    credentials: &aws_credential_types::provider::SharedCredentialsProvider,
    instance_id: &str,
) -> Result<Vec<Found>, TagError> {
    let body = describe_tags_body(instance_id);
    let credentials = super::query::resolve(credentials)
        .await
        .map_err(|e| TagError::Call(e.to_string()))?;
    let answer = super::query::post(http, endpoint, region, "ec2", &credentials, &body)
        .await
        .map_err(|e| TagError::Call(format!("ec2:DescribeTags did not answer: {e}")))?;
    if !(200..300).contains(&answer.status) {
        let code = answer
            .error()
            .map(|(code, _)| code)
            .unwrap_or_else(|| format!("HTTP {}", answer.status));
        return Err(TagError::Call(format!("ec2:DescribeTags answered {code}")));
    }
    Ok(parse_describe_tags(&answer.body))
}

/// The `<item>`s of a DescribeTags answer. The answer has one fixed, flat
/// shape, so a scan for its four elements does what an XML crate would.
pub fn parse_describe_tags(xml: &str) -> Vec<Found> {
    xml.split("<item>")
        .skip(1)
        .filter_map(|item| {
            let item = item.split("</item>").next()?;
            let key = xml_values(item, "key").into_iter().next()?;
            let value = xml_values(item, "value")
                .into_iter()
                .next()
                .unwrap_or_default();
            KEYS.contains(&key.as_str()).then_some(Found {
                source: "ec2:DescribeTags",
                key,
                value,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_tags_answers() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<DescribeTagsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>7a62c49f-347e-4fc4-9331-6e8eEXAMPLE</requestId>
  <tagSet>
    <item><resourceId>i-0123</resourceId><resourceType>instance</resourceType><key>Patch Group</key><value>prod &amp; db</value></item>
    <item><resourceId>i-0123</resourceId><resourceType>instance</resourceType><key>Name</key><value>web</value></item>
  </tagSet>
</DescribeTagsResponse>"#;
        assert_eq!(
            parse_describe_tags(xml),
            vec![Found {
                source: "ec2:DescribeTags",
                key: "Patch Group".into(),
                value: "prod & db".into()
            }]
        );
        assert!(
            parse_describe_tags("<DescribeTagsResponse><tagSet/></DescribeTagsResponse>")
                .is_empty()
        );
        assert_eq!(
            xml_values(
                "<Response><Errors><Error><Code>UnauthorizedOperation</Code>",
                "Code"
            ),
            vec!["UnauthorizedOperation"]
        );
    }
}
