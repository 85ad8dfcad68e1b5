//! `review`'s sources: CloudTrail records of a time window, from the trail's log files in S3
//! (gzipped `{"Records": [...]}` files under `AWSLogs/`, as CloudTrail writes them) or from
//! CloudTrail `LookupEvents`. Both run with the reviewer's own credentials (the standard chain);
//! which records belong to the ceremony is decided by the caller, on the records themselves.

use std::io::Read;

use aws_sdk_cloudtrail::primitives::DateTime;
use aws_sdk_cloudtrail::types::{LookupAttribute, LookupAttributeKey};
use serde_json::Value;

use super::{Caller, admin_config, explain_as};
use crate::exit::{Failure, fail};

/// Where a trail keeps its files.
#[derive(Debug, Clone)]
pub struct TrailBucket {
    /// The bucket.
    pub bucket: String,
    /// The key prefix before `AWSLogs/` (may be empty).
    pub prefix: String,
    /// The organization id of an organization trail.
    pub org: Option<String>,
}

impl TrailBucket {
    /// `PREFIX/AWSLogs/[ORG/]ACCOUNT/CloudTrail/`: where one account's files start.
    fn account_root(&self, account: &str) -> String {
        let mut root = self.prefix.trim_end_matches('/').to_owned();
        if !root.is_empty() {
            root.push('/');
        }
        root.push_str("AWSLogs/");
        if let Some(org) = &self.org {
            root.push_str(org);
            root.push('/');
        }
        root.push_str(account);
        root.push_str("/CloudTrail/");
        root
    }
}

/// Every record in the trail files of `accounts`, all regions, for the UTC days `days`
/// (`YYYY/MM/DD`).
pub async fn records_from_bucket(
    trail: &TrailBucket,
    accounts: &[String],
    days: &[String],
) -> anyhow::Result<Vec<Value>> {
    let config = admin_config(None).await;
    let s3 = aws_sdk_s3::Client::new(&config);
    let mut records = Vec::new();
    for account in accounts {
        let root = trail.account_root(account);
        let regions = list(&s3, &trail.bucket, &root, true).await?;
        for region in regions {
            for day in days {
                let day_prefix = format!("{region}{day}/");
                for key in list(&s3, &trail.bucket, &day_prefix, false).await? {
                    if !key.ends_with(".json.gz") {
                        continue;
                    }
                    records.extend(read_log_file(&s3, &trail.bucket, &key).await?);
                }
            }
        }
    }
    Ok(records)
}

/// Keys under `prefix`, or with `folders` the next level of "folders" (common prefixes).
async fn list(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    folders: bool,
) -> anyhow::Result<Vec<String>> {
    let mut found = Vec::new();
    let mut token = None;
    loop {
        let mut call = s3
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .set_continuation_token(token);
        if folders {
            call = call.delimiter("/");
        }
        let page = call.send().await.map_err(|e| {
            explain_as(
                Caller::Administrator,
                &format!("ListObjectsV2 s3://{bucket}/{prefix}"),
                e,
            )
        })?;
        if folders {
            found.extend(
                page.common_prefixes()
                    .iter()
                    .filter_map(|p| p.prefix().map(str::to_owned)),
            );
        } else {
            found.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
        }
        token = page.next_continuation_token().map(str::to_owned);
        if token.is_none() {
            return Ok(found);
        }
    }
}

/// One CloudTrail log file: gunzipped, `{"Records": [...]}`.
async fn read_log_file(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> anyhow::Result<Vec<Value>> {
    let object = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| {
            explain_as(
                Caller::Administrator,
                &format!("GetObject s3://{bucket}/{key}"),
                e,
            )
        })?;
    let bytes = object
        .body
        .collect()
        .await
        .map_err(|e| fail(Failure::Aws, format!("reading s3://{bucket}/{key}: {e}")))?
        .into_bytes();
    parse_log_file(&bytes).map_err(|problem| {
        fail(
            Failure::Aws,
            format!("s3://{bucket}/{key} is not a CloudTrail log file: {problem}"),
        )
    })
}

/// The records of a gzipped CloudTrail log file.
pub fn parse_log_file(gzipped: &[u8]) -> Result<Vec<Value>, String> {
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(gzipped)
        .read_to_string(&mut text)
        .map_err(|e| format!("not gzipped JSON text ({e})"))?;
    let mut file: Value = serde_json::from_str(&text).map_err(|e| format!("not JSON ({e})"))?;
    match file.get_mut("Records").map(Value::take) {
        Some(Value::Array(records)) => Ok(records),
        _ => Err("no \"Records\" list".to_owned()),
    }
}

/// What LookupEvents is asked for: events of these access key ids or of these user names
/// (an assumed role's user name is its session name), in a window.
#[derive(Debug, Clone)]
pub struct Lookup {
    /// Session access key ids.
    pub access_key_ids: Vec<String>,
    /// User names (role session names).
    pub user_names: Vec<String>,
    /// Window start, Unix seconds.
    pub start: u64,
    /// Window end, Unix seconds.
    pub end: u64,
}

/// CloudTrail LookupEvents (the last 90 days of management events, in the SDK's region): the
/// records (each event's `CloudTrailEvent` document).
pub async fn records_from_lookup(lookup: &Lookup) -> anyhow::Result<Vec<Value>> {
    let config = admin_config(None).await;
    let cloudtrail = aws_sdk_cloudtrail::Client::new(&config);
    let attributes = lookup
        .access_key_ids
        .iter()
        .map(|id| (LookupAttributeKey::AccessKeyId, id))
        .chain(
            lookup
                .user_names
                .iter()
                .map(|name| (LookupAttributeKey::Username, name)),
        );
    let mut records = Vec::new();
    for (key, value) in attributes {
        let attribute = LookupAttribute::builder()
            .attribute_key(key)
            .attribute_value(value)
            .build()
            .map_err(|e| fail(Failure::Aws, format!("LookupEvents attribute: {e}")))?;
        let mut token = None;
        loop {
            let page = cloudtrail
                .lookup_events()
                .lookup_attributes(attribute.clone())
                .start_time(DateTime::from_secs(lookup.start as i64))
                .end_time(DateTime::from_secs(lookup.end as i64))
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| explain_as(Caller::Administrator, "LookupEvents", e))?;
            for event in page.events() {
                if let Some(Ok(record)) =
                    event.cloud_trail_event().map(serde_json::from_str::<Value>)
                {
                    records.push(record);
                }
            }
            token = page.next_token().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
    }
    Ok(records)
}

/// A resource the ceremony's records name, as AWS Config types it, in the region of the call.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Touched {
    /// The region the call was made in (AWS Config records per region).
    pub region: String,
    /// The AWS Config resource type (`AWS::S3::Bucket`).
    pub resource_type: String,
    /// Its name or id, as the record gives it.
    pub name: String,
}

/// Request parameters that name a resource, with the AWS Config type of what they name.
const NAMED_BY: [(&str, &str); 3] = [
    ("bucketName", "AWS::S3::Bucket"),
    ("userName", "AWS::IAM::User"),
    ("roleName", "AWS::IAM::Role"),
];

/// The resources a CloudTrail record names: its `resources` list (ARN and type), the request
/// parameters of [`NAMED_BY`], and EC2 instance ids.
pub fn touched_by(record: &Value) -> Vec<Touched> {
    let region = record
        .get("awsRegion")
        .and_then(Value::as_str)
        .unwrap_or("us-east-1")
        .to_owned();
    let mut found = Vec::new();
    let mut add = |resource_type: &str, name: &str| {
        if !name.is_empty() {
            found.push(Touched {
                region: region.clone(),
                resource_type: resource_type.to_owned(),
                name: name.to_owned(),
            });
        }
    };
    for resource in record
        .get("resources")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let (Some(kind), Some(arn)) = (
            resource.get("type").and_then(Value::as_str),
            resource.get("ARN").and_then(Value::as_str),
        ) {
            let last = arn.rsplit(':').next().unwrap_or(arn);
            add(kind, last.rsplit('/').next().unwrap_or(last));
        }
    }
    if let Some(request) = record.get("requestParameters") {
        for (parameter, kind) in NAMED_BY {
            if let Some(name) = request.get(parameter).and_then(Value::as_str) {
                add(kind, name);
            }
        }
        for item in request
            .pointer("/instancesSet/items")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(id) = item.get("instanceId").and_then(Value::as_str) {
                add("AWS::EC2::Instance", id);
            }
        }
    }
    found
}

/// One configuration item AWS Config recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigItem {
    /// When Config captured it (RFC 3339), or the text the answer gave.
    pub time: String,
    /// The resource type.
    pub resource_type: String,
    /// The resource id.
    pub resource_id: String,
    /// The resource name, when it has one.
    pub resource_name: Option<String>,
    /// `ResourceDiscovered`, `OK`, `ResourceDeleted`...
    pub status: String,
    /// The CloudTrail event ids Config relates to the change.
    pub related_events: Vec<String>,
    /// The resource's configuration (JSON text), as recorded.
    pub configuration: Option<String>,
}

impl ConfigItem {
    /// Unix seconds of [`ConfigItem::time`], when it is a time this reads.
    fn unix(&self) -> Option<u64> {
        vault_core::clock::parse_rfc3339(&self.time)
    }

    fn from_sdk(item: &aws_sdk_config::types::ConfigurationItem) -> ConfigItem {
        ConfigItem {
            time: item
                .configuration_item_capture_time()
                .and_then(|t| u64::try_from(t.secs()).ok())
                .map(vault_core::clock::rfc3339)
                .unwrap_or_default(),
            resource_type: item
                .resource_type()
                .map(|t| t.as_str().to_owned())
                .unwrap_or_default(),
            resource_id: item.resource_id().unwrap_or_default().to_owned(),
            resource_name: item.resource_name().map(str::to_owned),
            status: item
                .configuration_item_status()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
            related_events: item.related_events().to_vec(),
            configuration: item.configuration().map(str::to_owned),
        }
    }

    /// An item of an answer's JSON body. AWS writes the capture time as epoch seconds; the
    /// local test endpoint writes it as text (`2026-11-30 18:25:36.055037+00:00`), which the
    /// SDK refuses to parse: UTC text is read here too.
    fn from_json(item: &Value) -> ConfigItem {
        let field = |name: &str| item.get(name).and_then(Value::as_str).map(str::to_owned);
        let time = match item.get("configurationItemCaptureTime") {
            Some(Value::Number(n)) => n
                .as_f64()
                .map(|secs| vault_core::clock::rfc3339(secs as u64))
                .unwrap_or_default(),
            Some(Value::String(text)) => utc_text(text).unwrap_or_else(|| text.clone()),
            _ => String::new(),
        };
        ConfigItem {
            time,
            resource_type: field("resourceType").unwrap_or_default(),
            resource_id: field("resourceId").unwrap_or_default(),
            resource_name: field("resourceName"),
            status: field("configurationItemStatus").unwrap_or_default(),
            related_events: item
                .get("relatedEvents")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|e| e.as_str().map(str::to_owned))
                .collect(),
            configuration: field("configuration"),
        }
    }
}

/// `YYYY-MM-DD[T ]HH:MM:SS[.fraction](Z|+00:00)` as `YYYY-MM-DDTHH:MM:SSZ`.
fn utc_text(text: &str) -> Option<String> {
    let (seconds, zone) = text.split_at(text.find(['Z', '+'])?);
    if zone != "Z" && zone != "+00:00" {
        return None;
    }
    let whole = seconds.split('.').next()?.replacen(' ', "T", 1);
    let time = format!("{whole}Z");
    vault_core::clock::parse_rfc3339(&time).map(|_| time)
}

/// What AWS Config says of one region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegionConfig {
    /// No configuration recorder is recording there: Config has nothing to say.
    NotRecording,
    /// The recorder records: the items captured in the window, and the resources named by the
    /// records that Config has no item for.
    Recorded {
        /// Items captured in the window, in time order.
        items: Vec<ConfigItem>,
        /// Named resources Config has not discovered (a type it does not record, or gone).
        not_discovered: Vec<Touched>,
    },
}

/// AWS Config in `region`, with the reviewer's credentials: whether it records, and what it
/// captured of `touched` between `start` and `end` (Unix seconds).
pub async fn config_changes(
    region: &str,
    touched: &[Touched],
    start: u64,
    end: u64,
) -> anyhow::Result<RegionConfig> {
    let config = admin_config(Some(region)).await;
    let client = aws_sdk_config::Client::new(&config);
    let status = client
        .describe_configuration_recorder_status()
        .send()
        .await
        .map_err(|e| {
            explain_as(
                Caller::Administrator,
                "DescribeConfigurationRecorderStatus",
                e,
            )
        })?;
    if !status
        .configuration_recorders_status()
        .iter()
        .any(|recorder| recorder.recording())
    {
        return Ok(RegionConfig::NotRecording);
    }
    let mut items = Vec::new();
    let mut not_discovered = Vec::new();
    for resource in touched.iter().filter(|t| t.region == region) {
        let ids = discovered_ids(&client, resource).await?;
        if ids.is_empty() {
            not_discovered.push(resource.clone());
        }
        for id in ids {
            items.extend(
                history(&client, &resource.resource_type, &id, start, end)
                    .await?
                    .into_iter()
                    .filter(|item| item.unix().is_none_or(|t| (start..=end).contains(&t))),
            );
        }
    }
    items.sort_by(|a, b| a.time.cmp(&b.time));
    Ok(RegionConfig::Recorded {
        items,
        not_discovered,
    })
}

/// The ids Config knows `resource` by: looked up by name, then as an id (EC2 instances and
/// S3 buckets are named by their id), deleted resources included.
async fn discovered_ids(
    client: &aws_sdk_config::Client,
    resource: &Touched,
) -> anyhow::Result<Vec<String>> {
    let kind = aws_sdk_config::types::ResourceType::from(resource.resource_type.as_str());
    for by_name in [true, false] {
        let call = client
            .list_discovered_resources()
            .resource_type(kind.clone())
            .include_deleted_resources(true);
        let call = if by_name {
            call.resource_name(&resource.name)
        } else {
            call.resource_ids(&resource.name)
        };
        let found = match call.send().await {
            Ok(found) => found,
            // A type this region's Config does not record.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_validation_exception()) =>
            {
                return Ok(Vec::new());
            }
            Err(e) => {
                return Err(explain_as(
                    Caller::Administrator,
                    "ListDiscoveredResources",
                    e,
                ));
            }
        };
        let ids: Vec<String> = found
            .resource_identifiers()
            .iter()
            .filter_map(|r| r.resource_id().map(str::to_owned))
            .collect();
        if !ids.is_empty() {
            return Ok(ids);
        }
    }
    Ok(Vec::new())
}

/// GetResourceConfigHistory of one resource in the window, every page.
async fn history(
    client: &aws_sdk_config::Client,
    resource_type: &str,
    id: &str,
    start: u64,
    end: u64,
) -> anyhow::Result<Vec<ConfigItem>> {
    use aws_sdk_config::primitives::DateTime as ConfigTime;
    let mut items = Vec::new();
    let mut token = None;
    loop {
        let answer = client
            .get_resource_config_history()
            .resource_type(aws_sdk_config::types::ResourceType::from(resource_type))
            .resource_id(id)
            .earlier_time(ConfigTime::from_secs(start as i64))
            .later_time(ConfigTime::from_secs(end as i64))
            .set_next_token(token)
            .send()
            .await;
        match answer {
            Ok(page) => {
                items.extend(page.configuration_items().iter().map(ConfigItem::from_sdk));
                token = page.next_token().map(str::to_owned);
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_discovered_exception()) =>
            {
                return Ok(items);
            }
            Err(aws_sdk_config::error::SdkError::ResponseError(answer))
                if answer.raw().status().is_success() =>
            {
                // An answer the SDK could not parse (see [`ConfigItem::from_json`]).
                let body: Value = answer
                    .raw()
                    .body()
                    .bytes()
                    .and_then(|b| serde_json::from_slice(b).ok())
                    .ok_or_else(|| {
                        fail(
                            Failure::Aws,
                            format!(
                                "GetResourceConfigHistory {resource_type} {id}: the answer is not JSON"
                            ),
                        )
                    })?;
                items.extend(
                    body.get("configurationItems")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .map(ConfigItem::from_json),
                );
                token = body
                    .get("nextToken")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
            }
            Err(e) => {
                return Err(explain_as(
                    Caller::Administrator,
                    "GetResourceConfigHistory",
                    e,
                ));
            }
        }
        if token.is_none() {
            return Ok(items);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_record_names_resources_by_its_resources_list_its_request_and_its_instances() {
        let record = json!({
            "awsRegion": "eu-west-1",
            "resources": [{"type": "AWS::IAM::Role", "ARN": "arn:aws:iam::123456789012:role/ops/app-deploy"},
                          {"type": "AWS::S3::Bucket", "ARN": "arn:aws:s3:::logs"}],
            "requestParameters": {"userName": "idp-admin",
                                  "instancesSet": {"items": [{"instanceId": "i-0abc"}]}},
        });
        let named: Vec<(String, String)> = touched_by(&record)
            .into_iter()
            .inspect(|t| assert_eq!(t.region, "eu-west-1"))
            .map(|t| (t.resource_type, t.name))
            .collect();
        let pairs = [
            ("AWS::IAM::Role", "app-deploy"),
            ("AWS::S3::Bucket", "logs"),
            ("AWS::IAM::User", "idp-admin"),
            ("AWS::EC2::Instance", "i-0abc"),
        ];
        assert_eq!(
            named,
            pairs.map(|(a, b)| (a.to_owned(), b.to_owned())).to_vec()
        );
    }

    #[test]
    fn capture_times_in_utc_text_read_and_others_are_shown_as_written() {
        let item =
            |time: Value| ConfigItem::from_json(&json!({"configurationItemCaptureTime": time}));
        assert_eq!(item(json!(1_796_063_136)).time, "2026-11-30T18:25:36Z");
        assert_eq!(
            item(json!("2026-11-30 18:25:36.055037+00:00")).time,
            "2026-11-30T18:25:36Z"
        );
        assert_eq!(
            item(json!("2026-11-30T18:25:36Z")).time,
            "2026-11-30T18:25:36Z"
        );
        // No zone, or another zone: never guessed, shown as written (and kept by review).
        let naive = item(json!("2026-11-30 18:25:36.5"));
        assert_eq!(
            (naive.time.as_str(), naive.unix()),
            ("2026-11-30 18:25:36.5", None)
        );
        assert_eq!(item(json!("2026-11-30 18:25:36+02:00")).unix(), None);
    }
}
