//! Table-driven tests of grants: operations, constraints, retire rules,
//! tokens and the idempotent Name.

use super::*;
use crate::context::context_from;
use crate::principal::Unresolved;

fn alice() -> Principal {
    Principal {
        uid: 1000,
        gid: 1000,
        groups: vec![50],
        user_name: Some("alice".into()),
        group_names: vec!["alice".into(), "staff".into()],
        unresolved: Unresolved::default(),
        invoked_by: None,
    }
}

fn bob() -> Principal {
    Principal::from_ids(1001, 1001, vec![])
}

fn request(grantee: &str, ops: &[GrantOperation]) -> GrantRequest {
    GrantRequest {
        key_id: "k1".into(),
        grantee_principal: grantee.into(),
        retiring_principal: None,
        operations: ops.to_vec(),
        constraints: None,
        name: None,
    }
}

fn make(req: GrantRequest) -> Grant {
    req.into_grant(&Principal::from_ids(0, 0, vec![]), 1_700_000_000)
        .unwrap()
}

#[test]
fn operation_names_round_trip() {
    for op in GrantOperation::ALL {
        assert_eq!(op.as_str().parse::<GrantOperation>().unwrap(), op);
        assert_eq!(GrantOperation::from_action(op.as_str()), Some(op));
        assert_eq!(
            GrantOperation::from_action(&format!("kms:{}", op.as_str().to_lowercase())),
            Some(op)
        );
        assert_eq!(op.to_string(), op.as_str());
    }
    assert_eq!(GrantOperation::from_action("PutKeyPolicy"), None);
    assert_eq!(GrantOperation::from_action("kms:RevokeGrant"), None);
    let e = "decrypt".parse::<GrantOperation>().unwrap_err();
    assert_eq!(e.exception_name(), "ValidationException");
    assert!(
        e.message().starts_with(
            "unknown grant operation \"decrypt\"; valid operations: Decrypt, Encrypt,"
        )
    );
}

#[test]
fn grantee_and_operation_table() {
    use GrantOperation as G;
    let cases: &[(&str, &[G], G, bool)] = &[
        ("uid:1000", &[G::Decrypt], G::Decrypt, true),
        ("user:alice", &[G::Decrypt], G::Decrypt, true),
        ("group:staff", &[G::Decrypt], G::Decrypt, true),
        ("gid:50", &[G::Decrypt], G::Decrypt, true),
        ("uid:1001", &[G::Decrypt], G::Decrypt, false),
        ("uid:1000", &[G::Encrypt], G::Decrypt, false),
        ("uid:1000", &[G::Encrypt, G::Decrypt], G::Decrypt, true),
        ("uid:1000", &[G::DescribeKey], G::DescribeKey, true),
    ];
    for (grantee, ops, op, want) in cases {
        let g = make(request(grantee, ops));
        assert_eq!(
            g.allows(&alice(), *op, None),
            *want,
            "{grantee} {ops:?} {op}"
        );
    }
}

#[test]
fn constraints_table() {
    let ctx = |pairs: &[(&str, &str)]| Some(context_from(pairs.iter().copied()));
    let eq = |pairs: &[(&str, &str)]| GrantConstraints {
        encryption_context_equals: Some(context_from(pairs.iter().copied())),
        ..Default::default()
    };
    let sub = |pairs: &[(&str, &str)]| GrantConstraints {
        encryption_context_subset: Some(context_from(pairs.iter().copied())),
        ..Default::default()
    };
    let prefix = |p: &str| GrantConstraints {
        kmsfs_path_prefix: Some(p.into()),
        ..Default::default()
    };
    let path = |p: &str| ctx(&[("kmsfs:volume", "v1"), ("kmsfs:path", p)]);
    let cases: Vec<(&str, GrantConstraints, Option<EncryptionContext>, bool)> = vec![
        (
            "Equals exact",
            eq(&[("a", "1"), ("b", "2")]),
            ctx(&[("b", "2"), ("a", "1")]),
            true,
        ),
        (
            "Equals extra pair",
            eq(&[("a", "1")]),
            ctx(&[("a", "1"), ("b", "2")]),
            false,
        ),
        (
            "Equals missing pair",
            eq(&[("a", "1"), ("b", "2")]),
            ctx(&[("a", "1")]),
            false,
        ),
        (
            "Equals key case-insensitive",
            eq(&[("Dept", "x")]),
            ctx(&[("dept", "x")]),
            true,
        ),
        (
            "Equals value case-sensitive",
            eq(&[("dept", "X")]),
            ctx(&[("dept", "x")]),
            false,
        ),
        ("Equals no context", eq(&[("a", "1")]), None, false),
        ("Subset exact", sub(&[("a", "1")]), ctx(&[("a", "1")]), true),
        (
            "Subset superset",
            sub(&[("a", "1")]),
            ctx(&[("a", "1"), ("b", "2")]),
            true,
        ),
        (
            "Subset missing",
            sub(&[("a", "1"), ("c", "3")]),
            ctx(&[("a", "1"), ("b", "2")]),
            false,
        ),
        (
            "Subset wrong value",
            sub(&[("a", "1")]),
            ctx(&[("a", "2")]),
            false,
        ),
        (
            "Subset key case-insensitive",
            sub(&[("A", "1")]),
            ctx(&[("a", "1")]),
            true,
        ),
        (
            "Subset value case-sensitive",
            sub(&[("a", "x")]),
            ctx(&[("a", "X")]),
            false,
        ),
        ("Subset no context", sub(&[("a", "1")]), None, false),
        (
            "prefix equals path",
            prefix("/shared"),
            path("/shared"),
            true,
        ),
        ("prefix below", prefix("/shared"), path("/shared/a/b"), true),
        (
            "prefix sibling name",
            prefix("/shared"),
            path("/shared2/a"),
            false,
        ),
        ("prefix elsewhere", prefix("/shared"), path("/hr/a"), false),
        (
            "prefix trailing slash, below",
            prefix("/shared/"),
            path("/shared/a"),
            true,
        ),
        (
            "prefix trailing slash, itself",
            prefix("/shared/"),
            path("/shared"),
            true,
        ),
        (
            "prefix trailing slash, sibling",
            prefix("/shared/"),
            path("/sharedx"),
            false,
        ),
        (
            "prefix root matches all",
            prefix("/"),
            path("/anything/at/all"),
            true,
        ),
        (
            "prefix dot-dot escape",
            prefix("/shared"),
            path("/shared/../hr/x"),
            false,
        ),
        (
            "prefix case-sensitive",
            prefix("/shared"),
            path("/Shared/a"),
            false,
        ),
        (
            "prefix without kmsfs:path",
            prefix("/shared"),
            ctx(&[("kmsfs:volume", "v1")]),
            false,
        ),
        ("prefix no context", prefix("/"), None, false),
        (
            "prefix context key case-insensitive",
            prefix("/shared"),
            ctx(&[("KMSFS:PATH", "/shared/a")]),
            true,
        ),
        ("no constraint", GrantConstraints::default(), None, true),
        (
            "prefix AND subset, both",
            GrantConstraints {
                encryption_context_subset: Some(context_from([("kmsfs:volume", "v1")])),
                kmsfs_path_prefix: Some("/p".into()),
                ..Default::default()
            },
            path("/p/x"),
            true,
        ),
        (
            "prefix AND subset, wrong volume",
            GrantConstraints {
                encryption_context_subset: Some(context_from([("kmsfs:volume", "v2")])),
                kmsfs_path_prefix: Some("/p".into()),
                ..Default::default()
            },
            path("/p/x"),
            false,
        ),
    ];
    for (name, c, context, want) in &cases {
        assert!(c.validate().is_ok(), "{name}");
        assert_eq!(c.allow(context.as_ref()), *want, "constraint {name}");
        let mut r = request(
            "uid:1000",
            &[GrantOperation::Decrypt, GrantOperation::DescribeKey],
        );
        r.constraints = Some(c.clone());
        let g = make(r);
        assert_eq!(
            g.allows(&alice(), GrantOperation::Decrypt, context.as_ref()),
            *want,
            "grant {name}"
        );
        // constraints never apply to operations without an encryption context
        assert!(
            g.allows(&alice(), GrantOperation::DescribeKey, context.as_ref()),
            "DescribeKey {name}"
        );
    }
}

#[test]
fn invalid_requests_table() {
    let with = |f: &dyn Fn(&mut GrantRequest)| {
        let mut r = request("uid:1000", &[GrantOperation::Decrypt]);
        f(&mut r);
        r.into_grant(&alice(), 0).unwrap_err().to_string()
    };
    let cases: Vec<(String, &str)> = vec![
        (
            with(&|r| r.operations.clear()),
            "ValidationException: Operations must name at least one grant operation",
        ),
        (
            with(&|r| r.grantee_principal = "*".into()),
            "ValidationException: GranteePrincipal \"*\" must be one of uid:N, user:NAME, gid:N, group:NAME",
        ),
        (
            with(&|r| r.grantee_principal = "bob".into()),
            "ValidationException: GranteePrincipal \"bob\" must be one of uid:N, user:NAME, gid:N, group:NAME",
        ),
        (
            with(&|r| r.retiring_principal = Some("uid:x".into())),
            "ValidationException: RetiringPrincipal \"uid:x\" must be one of uid:N, user:NAME, gid:N, group:NAME",
        ),
        (
            with(&|r| r.name = Some("has space".into())),
            "ValidationException: Name \"has space\" must be 1 to 256 characters of a-z, A-Z, 0-9, ':', '/', '_' or '-'",
        ),
        (
            with(&|r| r.name = Some(String::new())),
            "ValidationException: Name \"\" must be 1 to 256 characters of a-z, A-Z, 0-9, ':', '/', '_' or '-'",
        ),
        (
            with(&|r| {
                r.constraints = Some(GrantConstraints {
                    encryption_context_equals: Some(EncryptionContext::new()),
                    ..Default::default()
                })
            }),
            "ValidationException: Constraints.EncryptionContextEquals must contain at least one pair",
        ),
        (
            with(&|r| {
                r.constraints = Some(GrantConstraints {
                    encryption_context_subset: Some(EncryptionContext::new()),
                    ..Default::default()
                })
            }),
            "ValidationException: Constraints.EncryptionContextSubset must contain at least one pair",
        ),
        (
            with(&|r| {
                r.constraints = Some(GrantConstraints {
                    kmsfs_path_prefix: Some("shared".into()),
                    ..Default::default()
                })
            }),
            "ValidationException: Constraints.KmsfsPathPrefix \"shared\" must be an absolute path without empty, '.' or '..' components",
        ),
        (
            with(&|r| {
                r.constraints = Some(GrantConstraints {
                    kmsfs_path_prefix: Some("/a/../b".into()),
                    ..Default::default()
                })
            }),
            "ValidationException: Constraints.KmsfsPathPrefix \"/a/../b\" must be an absolute path without empty, '.' or '..' components",
        ),
        (
            with(&|r| {
                r.constraints = Some(GrantConstraints {
                    kmsfs_path_prefix: Some("/a//b".into()),
                    ..Default::default()
                })
            }),
            "ValidationException: Constraints.KmsfsPathPrefix \"/a//b\" must be an absolute path without empty, '.' or '..' components",
        ),
    ];
    for (got, want) in cases {
        assert_eq!(got, want);
    }
}

#[test]
fn retire_authority_table() {
    use GrantOperation as G;
    let carol = Principal::from_ids(1002, 1002, vec![]);
    type Case<'a> = (
        Option<&'a str>,
        &'a [G],
        &'a Principal,
        Option<RetireAuthority>,
    );
    let cases: &[Case] = &[
        (
            Some("uid:1001"),
            &[G::Decrypt],
            &bob(),
            Some(RetireAuthority::RetiringPrincipal),
        ),
        (Some("uid:1001"), &[G::Decrypt], &alice(), None),
        (
            None,
            &[G::Decrypt, G::RetireGrant],
            &alice(),
            Some(RetireAuthority::Grantee),
        ),
        (None, &[G::Decrypt], &alice(), None),
        (None, &[G::Decrypt, G::RetireGrant], &bob(), None),
        (
            Some("uid:1000"),
            &[G::Decrypt],
            &alice(),
            Some(RetireAuthority::RetiringPrincipal),
        ),
        (
            Some("group:staff"),
            &[G::Decrypt],
            &alice(),
            Some(RetireAuthority::RetiringPrincipal),
        ),
        (Some("uid:1001"), &[G::RetireGrant], &carol, None),
    ];
    for (retiring, ops, caller, want) in cases {
        let mut r = request("uid:1000", ops);
        r.retiring_principal = retiring.map(str::to_string);
        let g = make(r);
        assert_eq!(
            g.retire_authority(caller),
            *want,
            "{retiring:?} {ops:?} {caller}"
        );
    }
}

#[test]
fn tokens_name_their_grant_and_differ_per_call() {
    let g = make(request("uid:1000", &[GrantOperation::Decrypt]));
    assert_eq!(g.grant_id.len(), 64);
    assert!(g.grant_id.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(grant_id_from_token(&g.grant_token).unwrap(), g.grant_id);
    let t2 = new_grant_token(&g.grant_id).unwrap();
    assert_ne!(t2, g.grant_token);
    assert_eq!(grant_id_from_token(&t2).unwrap(), g.grant_id);
    let g2 = make(request("uid:1000", &[GrantOperation::Decrypt]));
    assert_ne!(g.grant_id, g2.grant_id);
    for bad in [
        "",
        "not-a-token!",
        "AAAA",
        &g.grant_token[..g.grant_token.len() - 2],
    ] {
        let e = grant_id_from_token(bad).unwrap_err();
        assert_eq!(
            e.to_string(),
            "InvalidGrantTokenException: the grant token is not valid",
            "{bad:?}"
        );
    }
    // wrong version byte
    let mut raw = URL_SAFE_NO_PAD.decode(&g.grant_token).unwrap();
    raw[0] = 9;
    assert!(grant_id_from_token(&URL_SAFE_NO_PAD.encode(raw)).is_err());
    assert_eq!(
        new_grant_token("xyz").unwrap_err().exception_name(),
        "InvalidGrantIdException"
    );
}

#[test]
fn idempotent_name_table() {
    use GrantOperation as G;
    let mut base = request("uid:1000", &[G::Decrypt, G::Encrypt]);
    base.name = Some("nightly-backup".into());
    let g = make(base.clone());
    let variant = |f: &dyn Fn(&mut GrantRequest)| {
        let mut r = base.clone();
        f(&mut r);
        r
    };
    let cases: Vec<(&str, GrantRequest, bool)> = vec![
        ("same request", base.clone(), true),
        (
            "operations in another order",
            variant(&|r| r.operations = vec![G::Encrypt, G::Decrypt, G::Decrypt]),
            true,
        ),
        (
            "other name",
            variant(&|r| r.name = Some("other".into())),
            false,
        ),
        ("no name", variant(&|r| r.name = None), false),
        (
            "other grantee",
            variant(&|r| r.grantee_principal = "uid:1001".into()),
            false,
        ),
        (
            "other operations",
            variant(&|r| r.operations = vec![G::Decrypt]),
            false,
        ),
        ("other key", variant(&|r| r.key_id = "k2".into()), false),
        (
            "retiring principal added",
            variant(&|r| r.retiring_principal = Some("uid:1".into())),
            false,
        ),
        (
            "constraints added",
            variant(&|r| {
                r.constraints = Some(GrantConstraints {
                    kmsfs_path_prefix: Some("/a".into()),
                    ..Default::default()
                })
            }),
            false,
        ),
    ];
    for (name, r, want) in &cases {
        assert_eq!(g.is_retry_of(r), *want, "{name}");
    }
    let mut unnamed = base.clone();
    unnamed.name = None;
    let u = make(unnamed.clone());
    assert!(
        !u.is_retry_of(&unnamed),
        "unnamed requests are never retries"
    );
}

#[test]
fn child_grants_cannot_widen() {
    use GrantOperation as G;
    let pre = |p: &str| GrantConstraints {
        kmsfs_path_prefix: Some(p.into()),
        ..Default::default()
    };
    let mut r = request("uid:1000", &[G::CreateGrant, G::Decrypt, G::Encrypt]);
    r.constraints = Some(pre("/shared"));
    let parent = make(r);
    let (a, b) = (alice(), bob());
    type Case<'a> = (
        &'a str,
        &'a Principal,
        Vec<G>,
        Option<GrantConstraints>,
        bool,
    );
    let cases: Vec<Case> = vec![
        ("same", &a, vec![G::Decrypt], Some(pre("/shared")), true),
        (
            "narrower prefix",
            &a,
            vec![G::Decrypt],
            Some(pre("/shared/team")),
            true,
        ),
        ("wider prefix", &a, vec![G::Decrypt], Some(pre("/")), false),
        (
            "sibling prefix",
            &a,
            vec![G::Decrypt],
            Some(pre("/sharedx")),
            false,
        ),
        ("unconstrained", &a, vec![G::Decrypt], None, false),
        (
            "extra operation",
            &a,
            vec![G::Decrypt, G::ReEncryptTo],
            Some(pre("/shared")),
            false,
        ),
        (
            "not the grantee",
            &b,
            vec![G::Decrypt],
            Some(pre("/shared")),
            false,
        ),
    ];
    for (name, who, ops, c, want) in &cases {
        assert_eq!(
            parent.allows_child_grant(who, ops, c.as_ref()),
            *want,
            "{name}"
        );
    }
    let no_create = make(request("uid:1000", &[G::Decrypt]));
    assert!(!no_create.allows_child_grant(&alice(), &[G::Decrypt], None));
    let open = make(request("uid:1000", &[G::CreateGrant, G::Decrypt]));
    assert!(open.allows_child_grant(&alice(), &[G::Decrypt], None));
    let eq = GrantConstraints {
        encryption_context_equals: Some(context_from([("a", "1")])),
        ..Default::default()
    };
    let sub = GrantConstraints {
        encryption_context_subset: Some(context_from([("a", "1")])),
        ..Default::default()
    };
    assert!(eq.at_least_as_strict_as(&sub));
    assert!(!sub.at_least_as_strict_as(&eq));
}

#[test]
fn path_under_table() {
    let cases = [
        ("/a", "/a", true),
        ("/a/b", "/a", true),
        ("/ab", "/a", false),
        ("/a", "/a/", true),
        ("/x", "/", true),
        ("/a/./b", "/a", false),
        ("/a/../b", "/a", false),
        ("a/b", "/a", false),
    ];
    for (path, prefix, want) in cases {
        assert_eq!(path_under(path, prefix), want, "{path} under {prefix}");
    }
}

#[test]
fn grant_serializes_round_trip() {
    let mut r = request("uid:1000", &[GrantOperation::Decrypt]);
    r.constraints = Some(GrantConstraints {
        kmsfs_path_prefix: Some("/a".into()),
        ..Default::default()
    });
    r.name = Some("n".into());
    let g = make(r);
    let bytes = postcard::to_stdvec(&g).unwrap();
    let back: Grant = postcard::from_bytes(&bytes).unwrap();
    assert_eq!(back, g);
}
