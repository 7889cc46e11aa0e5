//! Where `AWS-RunPatchBaseline` downloads its payload from, and whether
//! this node can fetch it. The document's Linux script names the payload
//! (`payload_name = "patch-baseline-operations-<version>.tar.gz"`), its
//! prefix, and which regions keep the old `aws-ssm-<region>` bucket; the
//! URL then follows the region:
//!
//! - China: `https://s3.<region>.amazonaws.com.cn/<bucket>/<key>`
//! - GovCloud: `https://s3-fips-<region>.amazonaws.com/<bucket>/<key>`
//! - the regions with the old bucket: `https://s3.dualstack.<region>.amazonaws.com/<bucket>/<key>`
//! - newer regions: `https://aws-patch-manager-<region>.s3-accelerate.dualstack.amazonaws.com/<key>`
//!
//! The download is an anonymous GET; a `HEAD` asks the same of S3 without
//! the bytes. An S3 gateway endpoint or bucket policy that denies the bucket
//! answers 403, which the patch run reports as exit 156, "Unable to
//! download payload".

/// What the document says about its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadSpec {
    pub name: String,
    pub prefix: String,
    /// Regions that keep the `aws-ssm-<region>` bucket.
    pub old_bucket_regions: Vec<String>,
    /// Regions with a bucket of their own name (`if region == …: s3_bucket = …`).
    pub special_buckets: Vec<(String, String)>,
}

/// The text of every string in a JSON document (the script lines of a
/// Command document's steps), one per line.
fn strings(value: &serde_json::Value, out: &mut String) {
    match value {
        serde_json::Value::String(s) => {
            out.push_str(s);
            out.push('\n');
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| strings(v, out)),
        serde_json::Value::Object(o) => o.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

/// The quoted value assigned to `name` in the script (`name = "value"`).
fn assigned<'a>(script: &'a str, name: &str) -> Option<&'a str> {
    script.lines().find_map(|line| {
        let rest = line
            .trim()
            .strip_prefix(name)?
            .trim_start()
            .strip_prefix('=')?;
        let rest = rest.trim().strip_prefix('"')?;
        rest.split('"').next()
    })
}

/// Reads the payload's name, prefix and bucket rules from the document's
/// content (JSON, as `ssm:GetDocument` returns it). `None` when the content
/// does not name a payload (a document this code does not know).
pub fn spec_from_document(content: &str) -> Option<PayloadSpec> {
    let doc: serde_json::Value = serde_json::from_str(content).ok()?;
    let mut script = String::new();
    strings(&doc, &mut script);
    let name = assigned(&script, "payload_name")?.to_string();
    let prefix = assigned(&script, "s3_prefix")?.to_string();
    // OLD_BUCKET_REGIONS = ["…", "…",
    //              "…"]   (the list may span lines)
    let mut old_bucket_regions = Vec::new();
    if let Some(start) = script.find("OLD_BUCKET_REGIONS = [") {
        let list = &script[start..];
        let list = &list[..list.find(']').unwrap_or(list.len())];
        old_bucket_regions = list
            .split('"')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect();
    }
    let mut special_buckets = Vec::new();
    let mut lines = script.lines().peekable();
    while let Some(line) = lines.next() {
        let line = line.trim();
        let region = line
            .strip_prefix("if region == \"")
            .or_else(|| line.strip_prefix("elif region == \""))
            .and_then(|r| r.split('"').next());
        if let (Some(region), Some(next)) = (region, lines.peek()) {
            if let Some(bucket) = assigned(next, "s3_bucket") {
                special_buckets.push((region.to_string(), bucket.to_string()));
            }
        }
    }
    Some(PayloadSpec {
        name,
        prefix,
        old_bucket_regions,
        special_buckets,
    })
}

/// The payload's URL for `region`, as the document builds it.
pub fn url(spec: &PayloadSpec, region: &str) -> String {
    let key = format!("{}/{}", spec.prefix.trim_matches('/'), spec.name);
    let china = region.starts_with("cn-");
    let gov = region.starts_with("us-gov-");
    let old = spec.old_bucket_regions.iter().any(|r| r == region);
    let mut bucket = spec
        .special_buckets
        .iter()
        .find(|(r, _)| r == region)
        .map(|(_, b)| b.clone())
        .unwrap_or_else(|| format!("aws-ssm-{region}"));
    if !old && !china && !gov {
        bucket = format!("aws-patch-manager-{region}");
    }
    if china {
        format!("https://s3.{region}.amazonaws.com.cn/{bucket}/{key}")
    } else if gov {
        format!("https://s3-fips-{region}.amazonaws.com/{bucket}/{key}")
    } else if old {
        format!("https://s3.dualstack.{region}.amazonaws.com/{bucket}/{key}")
    } else {
        format!("https://{bucket}.s3-accelerate.dualstack.amazonaws.com/{key}")
    }
}

/// Where the payload can live in `region` when the document cannot be read
/// (`ssm:GetDocument` denied): the bucket of each host the document's
/// rules can choose, as a URL of the bucket without a key. China and
/// GovCloud have one host each; elsewhere which of the two a region uses is
/// in the document's `OLD_BUCKET_REGIONS`, so both are named.
pub fn candidate_buckets(region: &str) -> Vec<String> {
    if region.starts_with("cn-") {
        vec![format!(
            "https://s3.{region}.amazonaws.com.cn/aws-ssm-{region}/"
        )]
    } else if region.starts_with("us-gov-") {
        vec![format!(
            "https://s3-fips-{region}.amazonaws.com/aws-ssm-{region}/"
        )]
    } else {
        vec![
            format!("https://s3.dualstack.{region}.amazonaws.com/aws-ssm-{region}/"),
            format!("https://aws-patch-manager-{region}.s3-accelerate.dualstack.amazonaws.com/"),
        ]
    }
}

/// The same request sent to `base` instead of the URL's own scheme and
/// host, path-style (`endpoints.urls.payload`: a mirror, or a test's fake).
pub fn redirected(url: &str, base: &str) -> String {
    let without_scheme = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let (host, path) = without_scheme
        .split_once('/')
        .unwrap_or((without_scheme, ""));
    // Virtual-hosted style names the bucket in the host: keep it in the path.
    let path = match host.split_once(".s3-accelerate.") {
        Some((bucket, _)) => format!("{bucket}/{path}"),
        None => path.to_string(),
    };
    format!("{}/{path}", base.trim_end_matches('/'))
}

/// How the payload answered an anonymous HEAD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    Status(u16),
    /// No answer: the sentence names the step (DNS, connect, TLS, proxy, timeout).
    Unreachable(String),
}

pub async fn head(http: &reqwest::Client, url: &str) -> Reach {
    match http.head(url).send().await {
        Ok(r) => Reach::Status(r.status().as_u16()),
        Err(e) => Reach::Unreachable(crate::network::repos::describe_reqwest(&e)),
    }
}

/// The current `AWS-RunPatchBaseline` content, from SSM.
pub async fn document(ssm: &aws_sdk_ssm::Client) -> Result<String, super::patching::CallError> {
    let out = ssm
        .get_document()
        .name("AWS-RunPatchBaseline")
        .send()
        .await
        .map_err(|e| super::patching::classify(&e, "ssm:GetDocument"))?;
    out.content().map(str::to_string).ok_or_else(|| {
        super::patching::CallError::Failed("ssm:GetDocument returned no content".into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Command document whose script names its payload the way
    /// AWS-RunPatchBaseline's does (written for this test).
    pub fn document_for_test() -> String {
        let lines = [
            "region = os.environ[\"AWS_SSM_REGION_NAME\"]",
            "OLD_BUCKET_REGIONS = [\"eu-west-1\", \"us-east-1\",",
            "             \"me-south-1\"]",
            "s3_bucket = \"aws-ssm-%s\"%(region)",
            "s3_prefix = \"patchbaselineoperations/linux/payloads\"",
            "payload_name = \"patch-baseline-operations-1.80.tar.gz\"",
            "if region == \"me-south-1\":",
            "    s3_bucket = \"aws-patch-manager-me-south-1-a1b2c3\"",
        ];
        serde_json::json!({
            "schemaVersion": "2.2",
            "mainSteps": [{"name": "PatchLinux", "action": "aws:runShellScript", "inputs": {"runCommand": lines}}]
        })
        .to_string()
    }

    #[test]
    fn the_document_names_its_payload() {
        let spec = spec_from_document(&document_for_test()).unwrap();
        assert_eq!(spec.name, "patch-baseline-operations-1.80.tar.gz");
        assert_eq!(spec.prefix, "patchbaselineoperations/linux/payloads");
        assert_eq!(
            spec.old_bucket_regions,
            ["eu-west-1", "us-east-1", "me-south-1"]
        );
        assert_eq!(
            spec.special_buckets,
            [(
                "me-south-1".to_string(),
                "aws-patch-manager-me-south-1-a1b2c3".to_string()
            )]
        );
        assert!(spec_from_document("{\"mainSteps\": []}").is_none());
    }

    #[test]
    fn each_kind_of_region_has_its_url() {
        let spec = spec_from_document(&document_for_test()).unwrap();
        let key = "patchbaselineoperations/linux/payloads/patch-baseline-operations-1.80.tar.gz";
        assert_eq!(
            url(&spec, "eu-west-1"),
            format!("https://s3.dualstack.eu-west-1.amazonaws.com/aws-ssm-eu-west-1/{key}")
        );
        assert_eq!(url(&spec, "me-south-1"), format!("https://s3.dualstack.me-south-1.amazonaws.com/aws-patch-manager-me-south-1-a1b2c3/{key}"));
        assert_eq!(url(&spec, "ap-southeast-5"), format!("https://aws-patch-manager-ap-southeast-5.s3-accelerate.dualstack.amazonaws.com/{key}"));
        assert_eq!(
            url(&spec, "cn-north-1"),
            format!("https://s3.cn-north-1.amazonaws.com.cn/aws-ssm-cn-north-1/{key}")
        );
        assert_eq!(
            url(&spec, "us-gov-west-1"),
            format!("https://s3-fips-us-gov-west-1.amazonaws.com/aws-ssm-us-gov-west-1/{key}")
        );
        assert_eq!(
            redirected(&url(&spec, "ap-southeast-5"), "https://127.0.0.1:8443"),
            format!("https://127.0.0.1:8443/aws-patch-manager-ap-southeast-5/{key}")
        );
        assert_eq!(
            candidate_buckets("ap-southeast-5"),
            [
                "https://s3.dualstack.ap-southeast-5.amazonaws.com/aws-ssm-ap-southeast-5/",
                "https://aws-patch-manager-ap-southeast-5.s3-accelerate.dualstack.amazonaws.com/"
            ]
        );
        assert_eq!(
            candidate_buckets("cn-north-1"),
            ["https://s3.cn-north-1.amazonaws.com.cn/aws-ssm-cn-north-1/"]
        );
        assert_eq!(
            candidate_buckets("us-gov-west-1"),
            ["https://s3-fips-us-gov-west-1.amazonaws.com/aws-ssm-us-gov-west-1/"]
        );
        assert_eq!(
            redirected(&candidate_buckets("eu-west-1")[1], "https://127.0.0.1:8443"),
            "https://127.0.0.1:8443/aws-patch-manager-eu-west-1/"
        );
        assert_eq!(
            redirected(&url(&spec, "eu-west-1"), "https://127.0.0.1:8443/"),
            format!("https://127.0.0.1:8443/aws-ssm-eu-west-1/{key}")
        );
    }
}
