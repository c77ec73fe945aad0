//! TagResource, UntagResource, ListResourceTags.

use crate::engine::Engine;
use crate::ops::keys::EmptyResponse;
use crate::ops::require_not_pending;
use crate::wire::{Tag, page, page_limit};
use crate::{KmsError, Principal};
use serde::{Deserialize, Serialize};

/// Most tags one key may carry (AWS: 50).
pub const MAX_TAGS: usize = 50;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TagResourceRequest {
    pub key_id: String,
    pub tags: Vec<Tag>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UntagResourceRequest {
    pub key_id: String,
    pub tag_keys: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListResourceTagsRequest {
    pub key_id: String,
    #[serde(default)]
    pub limit: Option<u32>,
    #[serde(default)]
    pub marker: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListResourceTagsResponse {
    pub tags: Vec<Tag>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub next_marker: Option<String>,
    pub truncated: bool,
}

fn validate_tag_key(k: &str) -> Result<(), KmsError> {
    let n = k.chars().count();
    if !(1..=128).contains(&n) {
        return Err(KmsError::Validation(format!(
            "TagKey must be 1 to 128 characters, got {n}"
        )));
    }
    if k.starts_with("aws:") {
        return Err(KmsError::Tag(
            "tag keys beginning with aws: are reserved".into(),
        ));
    }
    Ok(())
}

/// Checks tags as AWS does: key 1–128 characters not starting `aws:`,
/// value 0–256 characters.
pub(crate) fn validate_tags(tags: &[Tag]) -> Result<(), KmsError> {
    for t in tags {
        validate_tag_key(&t.tag_key)?;
        let n = t.tag_value.chars().count();
        if n > 256 {
            return Err(KmsError::Validation(format!(
                "TagValue must be at most 256 characters, got {n}"
            )));
        }
    }
    if tags.len() > MAX_TAGS {
        return Err(KmsError::Tag(format!(
            "a key can have at most {MAX_TAGS} tags"
        )));
    }
    Ok(())
}

impl Engine {
    /// TagResource: adds or replaces tags (Enabled or Disabled keys).
    pub fn tag_resource(
        &self,
        caller: &Principal,
        req: TagResourceRequest,
    ) -> Result<EmptyResponse, KmsError> {
        self.audited(caller, "TagResource", |a| {
            validate_tags(&req.tags)?;
            self.mutate(|st, _| {
                let k = st.resolve_mut(&req.key_id)?;
                a.key(k);
                self.authorize(caller, "kms:TagResource", k, None)?;
                require_not_pending(k)?;
                for t in &req.tags {
                    k.tags.insert(t.tag_key.clone(), t.tag_value.clone());
                }
                if k.tags.len() > MAX_TAGS {
                    return Err(KmsError::LimitExceeded(format!(
                        "a key can have at most {MAX_TAGS} tags"
                    )));
                }
                Ok(EmptyResponse {})
            })
        })
    }

    /// UntagResource (Enabled or Disabled keys).
    pub fn untag_resource(
        &self,
        caller: &Principal,
        req: UntagResourceRequest,
    ) -> Result<EmptyResponse, KmsError> {
        self.audited(caller, "UntagResource", |a| {
            for key in &req.tag_keys {
                validate_tag_key(key)?;
            }
            self.mutate(|st, _| {
                let k = st.resolve_mut(&req.key_id)?;
                a.key(k);
                self.authorize(caller, "kms:UntagResource", k, None)?;
                require_not_pending(k)?;
                for key in &req.tag_keys {
                    k.tags.remove(key);
                }
                Ok(EmptyResponse {})
            })
        })
    }

    /// ListResourceTags (any key state), paged by tag key.
    pub fn list_resource_tags(
        &self,
        caller: &Principal,
        req: ListResourceTagsRequest,
    ) -> Result<ListResourceTagsResponse, KmsError> {
        self.audited(caller, "ListResourceTags", |a| {
            let limit = page_limit(req.limit)?;
            let snap = self.read_snapshot()?;
            let k = snap.resolve(&req.key_id)?;
            a.key(k);
            self.authorize(caller, "kms:ListResourceTags", k, None)?;
            let all: Vec<Tag> = k
                .tags
                .iter()
                .map(|(key, v)| Tag {
                    tag_key: key.clone(),
                    tag_value: v.clone(),
                })
                .collect();
            let (tags, next_marker, truncated) =
                page(&all, req.marker.as_deref(), limit, |t| t.tag_key.clone())?;
            Ok(ListResourceTagsResponse {
                tags,
                next_marker,
                truncated,
            })
        })
    }
}
