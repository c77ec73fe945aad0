//! Policy evaluation cost per engine call: a realistic key policy (admin,
//! path-scoped readers, a Deny, a condition on the context keys) plus grants,
//! evaluated for the decisions the filesystem's opens produce. Prints the
//! median nanoseconds per evaluation over several batches.

// A benchmark binary: a failed setup is a failed run, like a test.
#![allow(clippy::expect_used)]

use kms_engine::Principal;
use kms_engine::context::context_from;
use kms_engine::grant::{GrantConstraints, GrantOperation, GrantRequest};
use kms_engine::policy::{Policy, RequestContext, evaluate_with_grants};
use std::hint::black_box;
use std::time::Instant;

const ARN: &str = "arn:aws:kms:local:000000000000:key/0b7c6d0e-1111-4222-8333-944445555666";
const KEY: &str = "0b7c6d0e-1111-4222-8333-944445555666";
const BATCHES: usize = 31;
const PER_BATCH: usize = 20_000;

const POLICY: &str = r#"{
  "Version": "2012-10-17",
  "Id": "bench",
  "Statement": [
    {"Sid": "Admin", "Effect": "Allow", "Principal": {"AWS": ["uid:0", "group:kmsadmin"]},
     "Action": "kms:*", "Resource": "*"},
    {"Sid": "ReadShared", "Effect": "Allow", "Principal": {"AWS": ["uid:1000", "group:staff"]},
     "Action": ["kms:Decrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*"], "Resource": "*",
     "Condition": {
       "StringLike": {"kms:EncryptionContext:kmsfs:path": ["/shared/*", "/public/*"]},
       "StringEquals": {"kms:EncryptionContext:kmsfs:volume": "vol-1"},
       "ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["kmsfs:path", "kmsfs:volume"]}
     }},
    {"Sid": "Finance", "Effect": "Allow", "Principal": {"AWS": "group:finance"},
     "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": "*",
     "Condition": {"StringLike": {"kms:EncryptionContext:kmsfs:path": "/finance/*"},
                   "DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}}},
    {"Sid": "NoHR", "Effect": "Deny", "NotPrincipal": {"AWS": "group:hr"},
     "Action": "kms:Decrypt", "Resource": "*",
     "Condition": {"StringLike": {"kms:EncryptionContext:kmsfs:path": "/hr/*"}}},
    {"Sid": "Describe", "Effect": "Allow", "Principal": "*", "Action": "kms:DescribeKey", "Resource": "*"}
  ]
}"#;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let policy = Policy::parse(POLICY).expect("bench policy parses");
    let root = Principal::from_ids(0, 0, vec![]);
    let alice = kms_engine::Resolver::new(
        Box::new(kms_engine::identity::FileAccounts {
            passwd: "alice:x:1000:1000::/h:/bin/sh\n".into(),
            group: "alice:x:1000:\nstaff:x:50:alice\n".into(),
        }),
        kms_engine::identity::DEFAULT_TTL,
    )
    .principal(1000, 1000, None);
    let bob = Principal::from_ids(1001, 1001, vec![]);
    let grants: Vec<_> = (0..10)
        .map(|i| {
            GrantRequest {
                key_id: KEY.into(),
                grantee_principal: format!("uid:{}", 1001 + i),
                retiring_principal: None,
                operations: vec![GrantOperation::Decrypt, GrantOperation::GenerateDataKey],
                constraints: Some(GrantConstraints {
                    kmsfs_path_prefix: Some(format!("/projects/p{i}")),
                    ..Default::default()
                }),
                name: None,
            }
            .into_grant(&root, 0)
            .expect("grant")
        })
        .collect();
    let ctx_shared = context_from([
        ("kmsfs:volume", "vol-1"),
        ("kmsfs:path", "/shared/docs/a.txt"),
    ]);
    let ctx_hr = context_from([
        ("kmsfs:volume", "vol-1"),
        ("kmsfs:path", "/hr/salaries.xlsx"),
    ]);
    let ctx_proj = context_from([
        ("kmsfs:volume", "vol-1"),
        ("kmsfs:path", "/projects/p0/src/main.rs"),
    ]);
    let now = 1_750_000_000;
    let mk =
        |p, action, ec| RequestContext::new(p, action, ARN, KEY, now).with_encryption_context(ec);
    let scenarios: Vec<(&str, RequestContext<'_>, bool)> = vec![
        (
            "allow by conditioned statement (alice /shared)",
            mk(&alice, "Decrypt", &ctx_shared),
            true,
        ),
        (
            "allow by admin statement (root)",
            mk(&root, "Decrypt", &ctx_shared),
            true,
        ),
        (
            "explicit deny (alice /hr)",
            mk(&alice, "Decrypt", &ctx_hr),
            false,
        ),
        (
            "allow by grant, 10 grants (bob /projects/p0)",
            mk(&bob, "Decrypt", &ctx_proj),
            true,
        ),
        (
            "implicit deny after all grants (bob /shared)",
            mk(&bob, "Decrypt", &ctx_shared),
            false,
        ),
    ];
    println!(
        "policy_eval: {} statements, {} grants, median of {BATCHES} batches x {PER_BATCH}",
        policy.statements.len(),
        grants.len()
    );
    for (name, ctx, want) in &scenarios {
        assert_eq!(
            evaluate_with_grants(&policy, &grants, ctx).allowed,
            *want,
            "{name}"
        );
        let mut samples = Vec::with_capacity(BATCHES);
        for _ in 0..BATCHES {
            let start = Instant::now();
            for _ in 0..PER_BATCH {
                black_box(evaluate_with_grants(
                    black_box(&policy),
                    black_box(&grants),
                    black_box(ctx),
                ));
            }
            samples.push(start.elapsed().as_nanos() as f64 / PER_BATCH as f64);
        }
        println!("  {name:<50} {:>8.0} ns/eval", median(samples));
    }
    let mut parse = Vec::with_capacity(BATCHES);
    for _ in 0..BATCHES {
        let start = Instant::now();
        for _ in 0..200 {
            black_box(Policy::parse(black_box(POLICY)).expect("parses"));
        }
        parse.push(start.elapsed().as_nanos() as f64 / 200.0);
    }
    println!(
        "  {:<50} {:>8.0} ns/parse",
        "parse the policy document",
        median(parse)
    );
}
