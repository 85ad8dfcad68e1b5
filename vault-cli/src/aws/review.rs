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
