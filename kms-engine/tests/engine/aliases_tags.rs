//! Aliases, tags, ListKeys paging, descriptions.

use crate::common;
use common::*;
use kms_engine::*;

fn create_alias(f: &Fixture, name: &str, key: &str) -> Result<EmptyResponse, KmsError> {
    f.engine.create_alias(
        &alice(),
        CreateAliasRequest {
            alias_name: name.into(),
            target_key_id: key.into(),
        },
    )
}

#[test]
fn alias_lifecycle() {
    let f = fixture();
    let a = f.new_key();
    let b = f.new_key();
    create_alias(&f, "alias/app", &a).unwrap();
    assert!(matches!(
        create_alias(&f, "alias/app", &b),
        Err(KmsError::AlreadyExists(_))
    ));
    assert!(matches!(
        create_alias(&f, "alias/aws/x", &a),
        Err(KmsError::InvalidAliasName(_))
    ));
    assert!(matches!(
        create_alias(&f, "app", &a),
        Err(KmsError::Validation(_))
    ));
    assert!(matches!(
        create_alias(&f, "alias/", &a),
        Err(KmsError::Validation(_))
    ));
    assert!(matches!(
        create_alias(&f, "alias/sp ace", &a),
        Err(KmsError::Validation(_))
    ));
    assert!(matches!(
        create_alias(&f, "alias/x", "alias/app"),
        Err(KmsError::Validation(_))
    ));
    assert!(matches!(
        create_alias(&f, "alias/x", "00000000-0000-4000-8000-000000000000"),
        Err(KmsError::NotFound(_))
    ));
    let meta = f
        .engine
        .describe_key(
            &alice(),
            DescribeKeyRequest {
                key_id: "alias/app".into(),
                grant_tokens: None,
            },
        )
        .unwrap()
        .key_metadata;
    assert_eq!(meta.key_id, a);
    f.clock.advance_secs(5);
    f.engine
        .update_alias(
            &alice(),
            UpdateAliasRequest {
                alias_name: "alias/app".into(),
                target_key_id: b.clone(),
            },
        )
        .unwrap();
    let list = f
        .engine
        .list_aliases(&alice(), ListAliasesRequest::default())
        .unwrap();
    assert_eq!(list.aliases.len(), 1);
    let e = &list.aliases[0];
    assert_eq!(e.target_key_id, b);
    assert_eq!(e.alias_arn, "arn:aws:kms:local:000000000000:alias/app");
    assert_eq!((e.creation_date, e.last_updated_date), (T0, T0 + 5));
    assert!(matches!(
        f.engine.update_alias(
            &alice(),
            UpdateAliasRequest {
                alias_name: "alias/none".into(),
                target_key_id: b.clone()
            }
        ),
        Err(KmsError::NotFound(_))
    ));
    create_alias(&f, "alias/other", &a).unwrap();
    let only_a = f
        .engine
        .list_aliases(
            &alice(),
            ListAliasesRequest {
                key_id: Some(a.clone()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(only_a.aliases.len(), 1);
    assert_eq!(only_a.aliases[0].alias_name, "alias/other");
    f.engine
        .delete_alias(
            &alice(),
            DeleteAliasRequest {
                alias_name: "alias/app".into(),
            },
        )
        .unwrap();
    assert!(matches!(
        f.engine.delete_alias(
            &alice(),
            DeleteAliasRequest {
                alias_name: "alias/app".into()
            }
        ),
        Err(KmsError::NotFound(_))
    ));
    // DeleteAlias works on a key pending deletion.
    f.engine
        .schedule_key_deletion(
            &alice(),
            ScheduleKeyDeletionRequest {
                key_id: a.clone(),
                pending_window_in_days: None,
            },
        )
        .unwrap();
    f.engine
        .delete_alias(
            &alice(),
            DeleteAliasRequest {
                alias_name: "alias/other".into(),
            },
        )
        .unwrap();
    // Persisted.
    let again = f.reopen().unwrap();
    assert!(
        again
            .list_aliases(&alice(), ListAliasesRequest::default())
            .unwrap()
            .aliases
            .is_empty()
    );
}

#[test]
fn alias_paging() {
    let f = fixture();
    let k = f.new_key();
    for i in 0..7 {
        create_alias(&f, &format!("alias/a{i}"), &k).unwrap();
    }
    let mut names = Vec::new();
    let mut marker = None;
    loop {
        let p = f
            .engine
            .list_aliases(
                &alice(),
                ListAliasesRequest {
                    key_id: None,
                    limit: Some(3),
                    marker: marker.clone(),
                },
            )
            .unwrap();
        names.extend(p.aliases.into_iter().map(|a| a.alias_name));
        if !p.truncated {
            break;
        }
        marker = p.next_marker;
    }
    assert_eq!(
        names,
        (0..7).map(|i| format!("alias/a{i}")).collect::<Vec<_>>()
    );
}

#[test]
fn list_keys_paging() {
    let f = fixture();
    let mut ids: Vec<String> = (0..5).map(|_| f.new_key()).collect();
    ids.sort();
    assert!(matches!(
        f.engine.list_keys(
            &alice(),
            ListKeysRequest {
                limit: Some(0),
                marker: None
            }
        ),
        Err(KmsError::Validation(_))
    ));
    let p1 = f
        .engine
        .list_keys(
            &alice(),
            ListKeysRequest {
                limit: Some(2),
                marker: None,
            },
        )
        .unwrap();
    assert!(p1.truncated);
    let p2 = f
        .engine
        .list_keys(
            &alice(),
            ListKeysRequest {
                limit: Some(2),
                marker: p1.next_marker.clone(),
            },
        )
        .unwrap();
    let p3 = f
        .engine
        .list_keys(
            &alice(),
            ListKeysRequest {
                limit: Some(2),
                marker: p2.next_marker.clone(),
            },
        )
        .unwrap();
    assert!(!p3.truncated && p3.next_marker.is_none());
    let got: Vec<String> = [p1.keys, p2.keys, p3.keys]
        .concat()
        .into_iter()
        .map(|k| k.key_id)
        .collect();
    assert_eq!(got, ids);
    let all = f
        .engine
        .list_keys(&alice(), ListKeysRequest::default())
        .unwrap();
    assert_eq!(all.keys.len(), 5);
    assert!(
        all.keys[0]
            .key_arn
            .starts_with("arn:aws:kms:local:000000000000:key/")
    );
}

#[test]
fn tags() {
    let f = fixture();
    let k = f
        .engine
        .create_key(
            &alice(),
            CreateKeyRequest {
                description: Some("vol key".into()),
                tags: Some(vec![Tag {
                    tag_key: "team".into(),
                    tag_value: "x".into(),
                }]),
                ..Default::default()
            },
        )
        .unwrap()
        .key_metadata;
    assert_eq!(k.description, "vol key");
    let id = k.key_id;
    let tag = |key: &str, v: &str| Tag {
        tag_key: key.into(),
        tag_value: v.into(),
    };
    f.engine
        .tag_resource(
            &alice(),
            TagResourceRequest {
                key_id: id.clone(),
                tags: vec![tag("env", "prod"), tag("team", "y")],
            },
        )
        .unwrap();
    let list = |f: &Fixture| {
        f.engine
            .list_resource_tags(
                &alice(),
                ListResourceTagsRequest {
                    key_id: id.clone(),
                    limit: None,
                    marker: None,
                },
            )
            .unwrap()
            .tags
    };
    assert_eq!(list(&f), vec![tag("env", "prod"), tag("team", "y")]);
    f.engine
        .untag_resource(
            &alice(),
            UntagResourceRequest {
                key_id: id.clone(),
                tag_keys: vec!["env".into()],
            },
        )
        .unwrap();
    assert_eq!(list(&f), vec![tag("team", "y")]);
    assert!(matches!(
        f.engine.tag_resource(
            &alice(),
            TagResourceRequest {
                key_id: id.clone(),
                tags: vec![tag("aws:x", "1")]
            }
        ),
        Err(KmsError::Tag(_))
    ));
    assert!(matches!(
        f.engine.tag_resource(
            &alice(),
            TagResourceRequest {
                key_id: id.clone(),
                tags: vec![tag("", "1")]
            }
        ),
        Err(KmsError::Validation(_))
    ));
    assert!(matches!(
        f.engine.tag_resource(
            &alice(),
            TagResourceRequest {
                key_id: id.clone(),
                tags: vec![tag("k", &"v".repeat(257))]
            }
        ),
        Err(KmsError::Validation(_))
    ));
    let many: Vec<Tag> = (0..50).map(|i| tag(&format!("t{i:02}"), "v")).collect();
    assert!(matches!(
        f.engine.tag_resource(
            &alice(),
            TagResourceRequest {
                key_id: id.clone(),
                tags: many
            }
        ),
        Err(KmsError::LimitExceeded(_))
    ));
    let p = f
        .engine
        .list_resource_tags(
            &alice(),
            ListResourceTagsRequest {
                key_id: id.clone(),
                limit: Some(1),
                marker: None,
            },
        )
        .unwrap();
    assert!(!p.truncated);
    assert_eq!(
        f.reopen()
            .unwrap()
            .list_resource_tags(
                &alice(),
                ListResourceTagsRequest {
                    key_id: id,
                    limit: None,
                    marker: None
                }
            )
            .unwrap()
            .tags,
        vec![tag("team", "y")]
    );
}

#[test]
fn create_key_options() {
    let f = fixture();
    let bad = |r: CreateKeyRequest| f.engine.create_key(&alice(), r);
    // An ECC spec without its usage (the default ENCRYPT_DECRYPT does not
    // fit), a usage without its spec (SYMMETRIC_DEFAULT does not sign).
    assert!(matches!(
        bad(CreateKeyRequest {
            key_spec: Some("ECC_NIST_P256".into()),
            ..Default::default()
        }),
        Err(KmsError::Validation(_))
    ));
    assert!(matches!(
        bad(CreateKeyRequest {
            key_usage: Some("SIGN_VERIFY".into()),
            ..Default::default()
        }),
        Err(KmsError::Validation(_))
    ));
    assert!(matches!(
        bad(CreateKeyRequest {
            policy: Some("{not json".into()),
            ..Default::default()
        }),
        Err(KmsError::MalformedPolicyDocument(_))
    ));
    assert!(matches!(
        bad(CreateKeyRequest {
            description: Some("d".repeat(8193)),
            ..Default::default()
        }),
        Err(KmsError::Validation(_))
    ));
    let ok = bad(CreateKeyRequest {
        key_spec: Some("SYMMETRIC_DEFAULT".into()),
        key_usage: Some("ENCRYPT_DECRYPT".into()),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(ok.key_metadata.key_state, "Enabled");
    assert_eq!(ok.key_metadata.creation_date, T0);
    assert!(
        f.engine
            .list_keys(&alice(), ListKeysRequest::default())
            .unwrap()
            .keys
            .len()
            == 1
    );
}
