//! Key state transitions and gating, including the time-driven ones
//! (deletion windows, automatic rotation) moved along with a ManualClock.

use crate::common;
use common::*;
use kms_engine::*;

fn schedule(
    f: &Fixture,
    k: &str,
    days: Option<u32>,
) -> Result<ScheduleKeyDeletionResponse, KmsError> {
    f.engine.schedule_key_deletion(
        &alice(),
        ScheduleKeyDeletionRequest {
            key_id: k.into(),
            pending_window_in_days: days,
        },
    )
}

fn gdk(f: &Fixture, k: &str) -> Result<GenerateDataKeyResponse, KmsError> {
    f.engine.generate_data_key(
        &alice(),
        GenerateDataKeyRequest {
            key_id: k.into(),
            encryption_context: ctx(&[("p", "/x")]),
            key_spec: Some("AES_256".into()),
            number_of_bytes: None,
            grant_tokens: None,
        },
    )
}

#[test]
fn enable_disable_gates_crypto() {
    let f = fixture();
    let k = f.new_key();
    let c = ctx(&[]);
    let blob = f.encrypt(&k, b"x", &c).unwrap();
    f.engine.disable_key(&alice(), f.key_id_req(&k)).unwrap();
    assert_eq!(f.state_of(&k), "Disabled");
    assert!(matches!(
        f.encrypt(&k, b"x", &c),
        Err(KmsError::Disabled(_))
    ));
    assert!(matches!(
        f.decrypt(&blob, &c, None),
        Err(KmsError::Disabled(_))
    ));
    assert!(matches!(gdk(&f, &k), Err(KmsError::Disabled(_))));
    // Disabling twice is fine, as in AWS.
    f.engine.disable_key(&alice(), f.key_id_req(&k)).unwrap();
    // Management ops still work on a disabled key.
    f.engine
        .update_key_description(
            &alice(),
            UpdateKeyDescriptionRequest {
                key_id: k.clone(),
                description: "new".into(),
            },
        )
        .unwrap();
    f.engine.enable_key(&alice(), f.key_id_req(&k)).unwrap();
    assert_eq!(f.state_of(&k), "Enabled");
    assert_eq!(f.decrypt(&blob, &c, None).unwrap(), b"x");
    // Rotation changes need an enabled key.
    f.engine.disable_key(&alice(), f.key_id_req(&k)).unwrap();
    assert!(matches!(
        f.engine.enable_key_rotation(
            &alice(),
            EnableKeyRotationRequest {
                key_id: k.clone(),
                rotation_period_in_days: None
            }
        ),
        Err(KmsError::Disabled(_))
    ));
    assert!(matches!(
        f.engine.rotate_key_on_demand(&alice(), f.key_id_req(&k)),
        Err(KmsError::Disabled(_))
    ));
}

#[test]
fn pending_deletion_gates_everything_and_cancel_returns_disabled() {
    let f = fixture();
    let k = f.new_key();
    let c = ctx(&[]);
    let blob = f.encrypt(&k, b"x", &c).unwrap();
    assert!(matches!(
        schedule(&f, &k, Some(6)),
        Err(KmsError::Validation(_))
    ));
    assert!(matches!(
        schedule(&f, &k, Some(31)),
        Err(KmsError::Validation(_))
    ));
    let r = schedule(&f, &k, None).unwrap();
    assert_eq!(r.pending_window_in_days, 30);
    assert_eq!(r.deletion_date, T0 + 30 * 86_400);
    assert_eq!(r.key_state, "PendingDeletion");
    let meta = f
        .engine
        .describe_key(
            &alice(),
            DescribeKeyRequest {
                key_id: k.clone(),
                grant_tokens: None,
            },
        )
        .unwrap()
        .key_metadata;
    assert_eq!(meta.deletion_date, Some(T0 + 30 * 86_400));
    assert!(!meta.enabled);
    let st = |e: Result<_, KmsError>| matches!(e, Err(KmsError::InvalidState(_)));
    assert!(st(f.encrypt(&k, b"x", &c).map(|_| ())));
    assert!(st(f.decrypt(&blob, &c, None).map(|_| ())));
    assert!(st(gdk(&f, &k).map(|_| ())));
    assert!(st(f
        .engine
        .enable_key(&alice(), f.key_id_req(&k))
        .map(|_| ())));
    assert!(st(f
        .engine
        .disable_key(&alice(), f.key_id_req(&k))
        .map(|_| ())));
    assert!(st(schedule(&f, &k, None).map(|_| ())));
    assert!(st(f
        .engine
        .rotate_key_on_demand(&alice(), f.key_id_req(&k))
        .map(|_| ())));
    assert!(st(f
        .engine
        .tag_resource(
            &alice(),
            TagResourceRequest {
                key_id: k.clone(),
                tags: vec![Tag {
                    tag_key: "a".into(),
                    tag_value: "b".into()
                }]
            }
        )
        .map(|_| ())));
    assert!(st(f
        .engine
        .create_alias(
            &alice(),
            CreateAliasRequest {
                alias_name: "alias/p".into(),
                target_key_id: k.clone()
            }
        )
        .map(|_| ())));
    // Read-only management ops still work.
    f.engine
        .get_key_rotation_status(&alice(), f.key_id_req(&k))
        .unwrap();
    // Cancel -> Disabled, and the window is gone.
    let cancelled = f
        .engine
        .cancel_key_deletion(&alice(), f.key_id_req(&k))
        .unwrap();
    assert!(cancelled.key_id.ends_with(&k));
    assert_eq!(f.state_of(&k), "Disabled");
    assert!(st(f
        .engine
        .cancel_key_deletion(&alice(), f.key_id_req(&k))
        .map(|_| ())));
    f.clock.advance_days(365);
    assert_eq!(f.state_of(&k), "Disabled");
    f.engine.enable_key(&alice(), f.key_id_req(&k)).unwrap();
    assert_eq!(f.decrypt(&blob, &c, None).unwrap(), b"x");
}

#[test]
fn deletion_window_destroys_key_and_material() {
    let f = fixture();
    let k = f.new_key();
    let keep = f.new_key();
    f.engine
        .create_alias(
            &alice(),
            CreateAliasRequest {
                alias_name: "alias/doomed".into(),
                target_key_id: k.clone(),
            },
        )
        .unwrap();
    let c = ctx(&[("a", "b")]);
    let blob = f.encrypt(&k, b"bye", &c).unwrap();
    schedule(&f, &k, Some(7)).unwrap();
    f.clock.advance_days(7);
    f.clock.advance_secs(-1);
    assert_eq!(f.state_of(&k), "PendingDeletion");
    f.clock.advance_secs(1);
    // Window passed: the engine destroys it at the start of the next op.
    let d = f.engine.describe_key(
        &alice(),
        DescribeKeyRequest {
            key_id: k.clone(),
            grant_tokens: None,
        },
    );
    assert!(matches!(d, Err(KmsError::NotFound(_))), "{d:?}");
    assert!(matches!(
        f.decrypt(&blob, &c, None),
        Err(KmsError::NotFound(_))
    ));
    let aliases = f
        .engine
        .list_aliases(&alice(), ListAliasesRequest::default())
        .unwrap();
    assert!(aliases.aliases.is_empty());
    // Persisted: a reopened engine has no such key and no material for it.
    let again = f.reopen().unwrap();
    let keys = again
        .list_keys(&alice(), ListKeysRequest::default())
        .unwrap()
        .keys;
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].key_id, keep);
}

#[test]
fn deletion_applies_even_if_first_op_after_window_is_a_write() {
    let f = fixture();
    let k = f.new_key();
    schedule(&f, &k, Some(7)).unwrap();
    f.clock.advance_days(8);
    // A failing write (bad tag) still persists the due deletion.
    let _ = f.engine.tag_resource(
        &alice(),
        TagResourceRequest {
            key_id: k.clone(),
            tags: vec![],
        },
    );
    let again = f.reopen().unwrap();
    assert!(
        again
            .list_keys(&alice(), ListKeysRequest::default())
            .unwrap()
            .keys
            .is_empty()
    );
}

#[test]
fn automatic_rotation_with_manual_clock() {
    let f = fixture();
    let k = f.new_key();
    let c = ctx(&[("x", "y")]);
    let status = f
        .engine
        .get_key_rotation_status(&alice(), f.key_id_req(&k))
        .unwrap();
    assert!(!status.key_rotation_enabled);
    assert_eq!(status.next_rotation_date, None);
    for bad in [89, 2561] {
        assert!(matches!(
            f.engine.enable_key_rotation(
                &alice(),
                EnableKeyRotationRequest {
                    key_id: k.clone(),
                    rotation_period_in_days: Some(bad)
                }
            ),
            Err(KmsError::Validation(_))
        ));
    }
    f.engine
        .enable_key_rotation(
            &alice(),
            EnableKeyRotationRequest {
                key_id: k.clone(),
                rotation_period_in_days: None,
            },
        )
        .unwrap();
    let status = f
        .engine
        .get_key_rotation_status(&alice(), f.key_id_req(&k))
        .unwrap();
    assert!(status.key_rotation_enabled);
    assert_eq!(status.rotation_period_in_days, Some(365));
    assert_eq!(status.next_rotation_date, Some(T0 + 365 * 86_400));
    // Change the period: same anchor.
    f.engine
        .enable_key_rotation(
            &alice(),
            EnableKeyRotationRequest {
                key_id: k.clone(),
                rotation_period_in_days: Some(90),
            },
        )
        .unwrap();
    let status = f
        .engine
        .get_key_rotation_status(&alice(), f.key_id_req(&k))
        .unwrap();
    assert_eq!(status.next_rotation_date, Some(T0 + 90 * 86_400));

    let old_blob = f.encrypt(&k, b"v1", &c).unwrap();
    assert_eq!(&old_blob[17..21], &1u32.to_be_bytes());
    f.clock.advance_days(90);
    // The next op finds the rotation due and carries it out.
    let new_blob = f.encrypt(&k, b"v2", &c).unwrap();
    assert_eq!(&new_blob[17..21], &2u32.to_be_bytes());
    assert_eq!(f.decrypt(&old_blob, &c, None).unwrap(), b"v1");
    assert_eq!(f.decrypt(&new_blob, &c, None).unwrap(), b"v2");
    let rot = f
        .engine
        .list_key_rotations(
            &alice(),
            ListKeyRotationsRequest {
                key_id: k.clone(),
                limit: None,
                marker: None,
            },
        )
        .unwrap();
    assert_eq!(rot.rotations.len(), 1);
    assert_eq!(rot.rotations[0].rotation_type, "AUTOMATIC");
    assert_eq!(rot.rotations[0].rotation_date, T0 + 90 * 86_400);
    let status = f
        .engine
        .get_key_rotation_status(&alice(), f.key_id_req(&k))
        .unwrap();
    assert_eq!(status.next_rotation_date, Some(T0 + 180 * 86_400));

    // A disabled key does not rotate; it rotates once re-enabled.
    f.engine.disable_key(&alice(), f.key_id_req(&k)).unwrap();
    f.clock.advance_days(200);
    f.state_of(&k);
    let rot = f
        .engine
        .list_key_rotations(
            &alice(),
            ListKeyRotationsRequest {
                key_id: k.clone(),
                limit: None,
                marker: None,
            },
        )
        .unwrap();
    assert_eq!(rot.rotations.len(), 1);
    f.engine.enable_key(&alice(), f.key_id_req(&k)).unwrap();
    f.state_of(&k);
    let rot = f
        .engine
        .list_key_rotations(
            &alice(),
            ListKeyRotationsRequest {
                key_id: k.clone(),
                limit: None,
                marker: None,
            },
        )
        .unwrap();
    assert_eq!(rot.rotations.len(), 2);

    // Disable rotation: nothing more happens.
    f.engine
        .disable_key_rotation(&alice(), f.key_id_req(&k))
        .unwrap();
    f.clock.advance_days(1000);
    let rot = f
        .engine
        .list_key_rotations(
            &alice(),
            ListKeyRotationsRequest {
                key_id: k.clone(),
                limit: None,
                marker: None,
            },
        )
        .unwrap();
    assert_eq!(rot.rotations.len(), 2);
    // Every version still decrypts after a reopen.
    let again = f.reopen().unwrap();
    let pt = again
        .decrypt(
            &alice(),
            DecryptRequest {
                ciphertext_blob: old_blob,
                encryption_context: c.clone(),
                key_id: None,
                encryption_algorithm: None,
                grant_tokens: None,
            },
        )
        .unwrap();
    assert_eq!(pt.plaintext.as_slice(), b"v1");
}

#[test]
fn on_demand_rotation_limit_and_listing() {
    let f = fixture();
    let k = f.new_key();
    let c = ctx(&[]);
    let mut blobs = vec![f.encrypt(&k, b"0", &c).unwrap()];
    for i in 1..=10u32 {
        f.clock.advance_secs(10);
        f.engine
            .rotate_key_on_demand(&alice(), f.key_id_req(&k))
            .unwrap();
        let b = f.encrypt(&k, i.to_string().as_bytes(), &c).unwrap();
        assert_eq!(&b[17..21], &(i + 1).to_be_bytes());
        blobs.push(b);
    }
    assert!(matches!(
        f.engine.rotate_key_on_demand(&alice(), f.key_id_req(&k)),
        Err(KmsError::LimitExceeded(_))
    ));
    for (i, b) in blobs.iter().enumerate() {
        assert_eq!(f.decrypt(b, &c, None).unwrap(), i.to_string().as_bytes());
    }
    // Paging through ListKeyRotations.
    let mut seen = Vec::new();
    let mut marker = None;
    loop {
        let page = f
            .engine
            .list_key_rotations(
                &alice(),
                ListKeyRotationsRequest {
                    key_id: k.clone(),
                    limit: Some(3),
                    marker: marker.clone(),
                },
            )
            .unwrap();
        assert!(
            page.rotations
                .iter()
                .all(|r| r.rotation_type == "ON_DEMAND")
        );
        seen.extend(page.rotations.iter().map(|r| r.rotation_date));
        if !page.truncated {
            assert!(page.next_marker.is_none());
            break;
        }
        marker = page.next_marker;
    }
    assert_eq!(seen, (1..=10).map(|i| T0 + 10 * i).collect::<Vec<_>>());
    let status = f
        .engine
        .get_key_rotation_status(&alice(), f.key_id_req(&k))
        .unwrap();
    assert!(!status.key_rotation_enabled);
    assert_eq!(status.on_demand_rotation_start_date, None);
}
