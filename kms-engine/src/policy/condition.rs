//! Condition blocks: operators, condition keys and IAM's evaluation rules.
//!
//! - Several values for one key: OR. Several keys or operators: AND.
//! - A key missing from the request: positive operators are false, negated
//!   ones (`StringNotEquals`, `StringNotLike`, `NumericNotEquals`, ...) are
//!   true; `...IfExists` makes any operator true; `Null` tests presence.
//! - `ForAnyValue:` holds when some request value satisfies the operator
//!   (false on a missing/empty set unless `IfExists`); `ForAllValues:` when
//!   every request value does (true on a missing/empty set).
//! - A negated operator is the negation of its positive form over all the
//!   condition's values: `StringNotLike ["/a/*", "/b/*"]` holds when the value
//!   is under neither.
//! - Condition key names are case-insensitive; values are case-sensitive.

use super::evaluate::RequestContext;
use super::wildcard;
use std::borrow::Cow;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// `ForAnyValue:` / `ForAllValues:` / neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetQualifier {
    Single,
    ForAnyValue,
    ForAllValues,
}

/// The base operator (without qualifier or `IfExists`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaseOperator {
    StringEquals,
    StringNotEquals,
    StringEqualsIgnoreCase,
    StringNotEqualsIgnoreCase,
    StringLike,
    StringNotLike,
    NumericEquals,
    NumericNotEquals,
    NumericLessThan,
    NumericLessThanEquals,
    NumericGreaterThan,
    NumericGreaterThanEquals,
    DateEquals,
    DateNotEquals,
    DateLessThan,
    DateLessThanEquals,
    DateGreaterThan,
    DateGreaterThanEquals,
    Bool,
    Null,
}

/// What kind of value an operator compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    String,
    Numeric,
    Date,
    Bool,
}

use BaseOperator as B;

impl BaseOperator {
    const ALL: [(&'static str, BaseOperator); 20] = [
        ("StringEquals", B::StringEquals),
        ("StringNotEquals", B::StringNotEquals),
        ("StringEqualsIgnoreCase", B::StringEqualsIgnoreCase),
        ("StringNotEqualsIgnoreCase", B::StringNotEqualsIgnoreCase),
        ("StringLike", B::StringLike),
        ("StringNotLike", B::StringNotLike),
        ("NumericEquals", B::NumericEquals),
        ("NumericNotEquals", B::NumericNotEquals),
        ("NumericLessThan", B::NumericLessThan),
        ("NumericLessThanEquals", B::NumericLessThanEquals),
        ("NumericGreaterThan", B::NumericGreaterThan),
        ("NumericGreaterThanEquals", B::NumericGreaterThanEquals),
        ("DateEquals", B::DateEquals),
        ("DateNotEquals", B::DateNotEquals),
        ("DateLessThan", B::DateLessThan),
        ("DateLessThanEquals", B::DateLessThanEquals),
        ("DateGreaterThan", B::DateGreaterThan),
        ("DateGreaterThanEquals", B::DateGreaterThanEquals),
        ("Bool", B::Bool),
        ("Null", B::Null),
    ];

    fn from_name(name: &str) -> Option<BaseOperator> {
        Self::ALL
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, op)| *op)
    }

    /// The operator's name as written in a policy.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, op)| *op == self)
            .map_or("?", |(n, _)| n)
    }

    /// True for the "not" operators, which hold on a missing key.
    pub fn negated(self) -> bool {
        matches!(
            self,
            B::StringNotEquals
                | B::StringNotEqualsIgnoreCase
                | B::StringNotLike
                | B::NumericNotEquals
                | B::DateNotEquals
        )
    }

    /// The value kind compared (Null's values are booleans).
    pub fn kind(self) -> ValueKind {
        match self {
            B::StringEquals
            | B::StringNotEquals
            | B::StringEqualsIgnoreCase
            | B::StringNotEqualsIgnoreCase
            | B::StringLike
            | B::StringNotLike => ValueKind::String,
            B::NumericEquals
            | B::NumericNotEquals
            | B::NumericLessThan
            | B::NumericLessThanEquals
            | B::NumericGreaterThan
            | B::NumericGreaterThanEquals => ValueKind::Numeric,
            B::DateEquals
            | B::DateNotEquals
            | B::DateLessThan
            | B::DateLessThanEquals
            | B::DateGreaterThan
            | B::DateGreaterThanEquals => ValueKind::Date,
            B::Bool | B::Null => ValueKind::Bool,
        }
    }
}

/// A full condition operator: base, qualifier, `IfExists`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operator {
    pub base: BaseOperator,
    pub qualifier: SetQualifier,
    pub if_exists: bool,
}

impl Operator {
    /// Parses e.g. `"ForAnyValue:StringLikeIfExists"`; the error text says
    /// what is wrong with the name.
    pub fn parse(name: &str) -> Result<Operator, String> {
        let (qualifier, rest) = if let Some(r) = name.strip_prefix("ForAnyValue:") {
            (SetQualifier::ForAnyValue, r)
        } else if let Some(r) = name.strip_prefix("ForAllValues:") {
            (SetQualifier::ForAllValues, r)
        } else {
            (SetQualifier::Single, name)
        };
        let (base_name, if_exists) = match rest.strip_suffix("IfExists") {
            Some(b) => (b, true),
            None => (rest, false),
        };
        let base = BaseOperator::from_name(base_name)
            .ok_or_else(|| format!("unknown condition operator {name:?}"))?;
        if base == B::Null && if_exists {
            return Err(
                "NullIfExists is not a valid operator: Null already tests existence".into(),
            );
        }
        if base == B::Null && qualifier != SetQualifier::Single {
            return Err(format!(
                "{name:?}: the ForAnyValue/ForAllValues qualifiers cannot be used with Null"
            ));
        }
        Ok(Operator {
            base,
            qualifier,
            if_exists,
        })
    }
}

/// A condition key the engine supplies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConditionKey {
    /// `kms:EncryptionContext:KEY` (the KEY part is matched case-insensitively,
    /// an exact-case match preferred).
    EncryptionContext(String),
    /// `kms:EncryptionContextKeys` (multi-valued).
    EncryptionContextKeys,
    /// `kms:CallerUid`: the caller's uid (local extension).
    CallerUid,
    /// `kms:CallerGid`: the caller's primary gid (local extension).
    CallerGid,
    /// `kms:GrantOperations` (multi-valued; CreateGrant only).
    GrantOperations,
    /// `kms:GranteePrincipal` (CreateGrant only).
    GranteePrincipal,
    /// `kms:RetiringPrincipal` (CreateGrant only).
    RetiringPrincipal,
    /// `kms:RequestAlias`: the alias the caller named the key by.
    RequestAlias,
    /// `kms:KeySpec`, e.g. `SYMMETRIC_DEFAULT`.
    KeySpec,
    /// `kms:KeyUsage`, e.g. `ENCRYPT_DECRYPT`.
    KeyUsage,
    /// `kms:EncryptionAlgorithm`.
    EncryptionAlgorithm,
    /// `kms:KeyOrigin`.
    KeyOrigin,
    /// `kms:SigningAlgorithm` (Sign, Verify).
    SigningAlgorithm,
    /// `kms:MacAlgorithm` (GenerateMac, VerifyMac).
    MacAlgorithm,
    /// `kms:KeyAgreementAlgorithm` (DeriveSharedSecret).
    KeyAgreementAlgorithm,
    /// `kms:MessageType` (Sign, Verify).
    MessageType,
    /// `kms:DataKeyPairSpec` (GenerateDataKeyPair*).
    DataKeyPairSpec,
    /// `kms:WrappingAlgorithm` (GetParametersForImport).
    WrappingAlgorithm,
    /// `kms:WrappingKeySpec` (GetParametersForImport).
    WrappingKeySpec,
    /// `kms:ExpirationModel` (ImportKeyMaterial).
    ExpirationModel,
    /// `kms:ValidTo` (ImportKeyMaterial; a timestamp, compared with the
    /// Numeric or Date operators).
    ValidTo,
    /// `kms:BypassPolicyLockoutSafetyCheck` (PutKeyPolicy/CreateKey only).
    BypassPolicyLockoutSafetyCheck,
    /// `aws:CurrentTime`.
    CurrentTime,
    /// `aws:EpochTime`.
    EpochTime,
}

const SIMPLE_KEYS: [(&str, ConditionKey); 23] = [
    (
        "kms:encryptioncontextkeys",
        ConditionKey::EncryptionContextKeys,
    ),
    ("kms:calleruid", ConditionKey::CallerUid),
    ("kms:callergid", ConditionKey::CallerGid),
    ("kms:grantoperations", ConditionKey::GrantOperations),
    ("kms:granteeprincipal", ConditionKey::GranteePrincipal),
    ("kms:retiringprincipal", ConditionKey::RetiringPrincipal),
    ("kms:requestalias", ConditionKey::RequestAlias),
    ("kms:keyspec", ConditionKey::KeySpec),
    ("kms:keyusage", ConditionKey::KeyUsage),
    ("kms:encryptionalgorithm", ConditionKey::EncryptionAlgorithm),
    ("kms:keyorigin", ConditionKey::KeyOrigin),
    ("kms:signingalgorithm", ConditionKey::SigningAlgorithm),
    ("kms:macalgorithm", ConditionKey::MacAlgorithm),
    (
        "kms:keyagreementalgorithm",
        ConditionKey::KeyAgreementAlgorithm,
    ),
    ("kms:messagetype", ConditionKey::MessageType),
    ("kms:datakeypairspec", ConditionKey::DataKeyPairSpec),
    ("kms:wrappingalgorithm", ConditionKey::WrappingAlgorithm),
    ("kms:wrappingkeyspec", ConditionKey::WrappingKeySpec),
    ("kms:expirationmodel", ConditionKey::ExpirationModel),
    ("kms:validto", ConditionKey::ValidTo),
    (
        "kms:bypasspolicylockoutsafetycheck",
        ConditionKey::BypassPolicyLockoutSafetyCheck,
    ),
    ("aws:currenttime", ConditionKey::CurrentTime),
    ("aws:epochtime", ConditionKey::EpochTime),
];

const CONTEXT_PREFIX: &str = "kms:encryptioncontext:";

impl ConditionKey {
    /// Parses a key name (case-insensitive); the error lists what exists.
    pub fn parse(name: &str) -> Result<ConditionKey, String> {
        let lower = name.to_ascii_lowercase();
        if lower.starts_with(CONTEXT_PREFIX) {
            let ctx_key = &name[CONTEXT_PREFIX.len()..];
            if ctx_key.is_empty() {
                return Err(format!(
                    "condition key {name:?} names no encryption context key"
                ));
            }
            return Ok(ConditionKey::EncryptionContext(ctx_key.to_string()));
        }
        SIMPLE_KEYS
            .iter()
            .find(|(n, _)| *n == lower)
            .map(|(_, k)| k.clone())
            .ok_or_else(|| {
                format!(
                    "unknown condition key {name:?}; supported: kms:EncryptionContext:KEY, \
                     kms:EncryptionContextKeys, kms:CallerUid, kms:CallerGid, \
                     kms:GrantOperations, kms:GranteePrincipal, kms:RetiringPrincipal, \
                     kms:RequestAlias, kms:KeySpec, kms:KeyUsage, kms:EncryptionAlgorithm, \
                     kms:KeyOrigin, kms:SigningAlgorithm, kms:MacAlgorithm, \
                     kms:KeyAgreementAlgorithm, kms:MessageType, kms:DataKeyPairSpec, \
                     kms:WrappingAlgorithm, kms:WrappingKeySpec, kms:ExpirationModel, \
                     kms:ValidTo, \
                     kms:BypassPolicyLockoutSafetyCheck, aws:CurrentTime, aws:EpochTime"
                )
            })
    }
}

/// One value from a policy's condition, pre-parsed for its operator.
#[derive(Debug, Clone, PartialEq)]
pub struct ConditionValue {
    pub raw: String,
    number: Option<f64>,
    date: Option<i64>,
    boolean: Option<bool>,
}

impl ConditionValue {
    /// Parses `raw` for `kind`; the error says why it does not fit.
    pub fn new(raw: String, kind: ValueKind) -> Result<ConditionValue, String> {
        let mut v = ConditionValue {
            raw,
            number: None,
            date: None,
            boolean: None,
        };
        match kind {
            ValueKind::String => {}
            ValueKind::Numeric => {
                v.number = Some(
                    parse_number(&v.raw).ok_or_else(|| format!("{:?} is not a number", v.raw))?,
                );
            }
            ValueKind::Date => {
                v.date = Some(parse_date(&v.raw).ok_or_else(|| {
                    format!(
                        "{:?} is not a date (ISO 8601 such as 2026-01-31T12:00:00Z or \
                         2026-01-31, or epoch seconds)",
                        v.raw
                    )
                })?);
            }
            ValueKind::Bool => {
                v.boolean = Some(
                    parse_bool(&v.raw)
                        .ok_or_else(|| format!("{:?} is not \"true\" or \"false\"", v.raw))?,
                );
            }
        }
        Ok(v)
    }
}

fn parse_number(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok().filter(|n| n.is_finite())
}

fn parse_bool(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// ISO 8601 (RFC 3339 date-time, or a bare `YYYY-MM-DD` = midnight UTC) or
/// integer epoch seconds, to epoch seconds.
pub fn parse_date(s: &str) -> Option<i64> {
    let s = s.trim();
    if !s.is_empty()
        && s.bytes()
            .enumerate()
            .all(|(i, b)| b.is_ascii_digit() || (i == 0 && b == b'-'))
    {
        return s.parse().ok();
    }
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t.unix_timestamp());
    }
    let d = time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]")).ok()?;
    Some(d.midnight().assume_utc().unix_timestamp())
}

/// One condition: operator, key and the values to compare with.
#[derive(Debug, Clone, PartialEq)]
pub struct ConditionClause {
    /// The operator as written (for explanations).
    pub operator_name: String,
    pub operator: Operator,
    /// The key as written.
    pub key_name: String,
    pub key: ConditionKey,
    pub values: Vec<ConditionValue>,
}

/// A request value for a key.
#[derive(Debug, Clone)]
enum Val<'a> {
    Str(&'a str),
    Int(i64),
    Time(i64),
    Bool(bool),
}

impl Val<'_> {
    fn text(&self) -> Cow<'_, str> {
        match self {
            Val::Str(s) => Cow::Borrowed(s),
            Val::Int(n) => Cow::Owned(n.to_string()),
            Val::Time(t) => Cow::Owned(
                OffsetDateTime::from_unix_timestamp(*t)
                    .ok()
                    .and_then(|d| d.format(&Rfc3339).ok())
                    .unwrap_or_else(|| t.to_string()),
            ),
            Val::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
        }
    }
    fn number(&self) -> Option<f64> {
        match self {
            Val::Str(s) => parse_number(s),
            #[allow(clippy::cast_precision_loss)] // epoch seconds and ids fit f64 exactly
            Val::Int(n) | Val::Time(n) => Some(*n as f64),
            Val::Bool(_) => None,
        }
    }
    fn date(&self) -> Option<i64> {
        match self {
            Val::Str(s) => parse_date(s),
            Val::Int(n) | Val::Time(n) => Some(*n),
            Val::Bool(_) => None,
        }
    }
    fn boolean(&self) -> Option<bool> {
        match self {
            Val::Str(s) => parse_bool(s),
            Val::Bool(b) => Some(*b),
            Val::Int(_) | Val::Time(_) => None,
        }
    }
}

/// The request's values for a key: none (missing), one, or several.
enum Vals<'a> {
    One(Val<'a>),
    Many(Vec<Val<'a>>),
}

impl<'a> Vals<'a> {
    fn as_slice(&self) -> &[Val<'a>] {
        match self {
            Vals::One(v) => std::slice::from_ref(v),
            Vals::Many(v) => v,
        }
    }
}

/// The request's values for `key` (an empty slice = missing).
fn lookup<'a>(key: &ConditionKey, ctx: &'a RequestContext<'a>) -> Vals<'a> {
    let none = || Vals::Many(Vec::new());
    let one = |v: Option<&'a str>| v.map_or_else(none, |s| Vals::One(Val::Str(s)));
    match key {
        ConditionKey::EncryptionContext(k) => {
            let Some(ec) = ctx.encryption_context else {
                return none();
            };
            let v = ec.get(k.as_str()).or_else(|| {
                ec.iter()
                    .find(|(ck, _)| ck.eq_ignore_ascii_case(k))
                    .map(|(_, v)| v)
            });
            one(v.map(String::as_str))
        }
        ConditionKey::EncryptionContextKeys => Vals::Many(
            ctx.encryption_context
                .map(|ec| ec.keys().map(|k| Val::Str(k.as_str())).collect())
                .unwrap_or_default(),
        ),
        ConditionKey::CallerUid => Vals::One(Val::Int(i64::from(ctx.principal.uid))),
        ConditionKey::CallerGid => Vals::One(Val::Int(i64::from(ctx.principal.gid))),
        ConditionKey::GrantOperations => Vals::Many(
            ctx.grant_operations
                .map(|ops| ops.iter().map(|o| Val::Str(o.as_str())).collect())
                .unwrap_or_default(),
        ),
        ConditionKey::GranteePrincipal => one(ctx.grantee_principal),
        ConditionKey::RetiringPrincipal => one(ctx.retiring_principal),
        ConditionKey::RequestAlias => one(ctx.request_alias),
        ConditionKey::KeySpec => one(ctx.key_spec),
        ConditionKey::KeyUsage => one(ctx.key_usage),
        ConditionKey::EncryptionAlgorithm => one(ctx.encryption_algorithm),
        ConditionKey::KeyOrigin => one(ctx.key_origin),
        ConditionKey::SigningAlgorithm => one(ctx.signing_algorithm),
        ConditionKey::MacAlgorithm => one(ctx.mac_algorithm),
        ConditionKey::KeyAgreementAlgorithm => one(ctx.key_agreement_algorithm),
        ConditionKey::MessageType => one(ctx.message_type),
        ConditionKey::DataKeyPairSpec => one(ctx.data_key_pair_spec),
        ConditionKey::WrappingAlgorithm => one(ctx.wrapping_algorithm),
        ConditionKey::WrappingKeySpec => one(ctx.wrapping_key_spec),
        ConditionKey::ExpirationModel => one(ctx.expiration_model),
        ConditionKey::ValidTo => ctx.valid_to.map_or_else(none, |t| Vals::One(Val::Time(t))),
        ConditionKey::BypassPolicyLockoutSafetyCheck => ctx
            .bypass_policy_lockout_safety_check
            .map_or_else(none, |b| Vals::One(Val::Bool(b))),
        ConditionKey::CurrentTime => Vals::One(Val::Time(ctx.now_unix)),
        ConditionKey::EpochTime => Vals::One(Val::Int(ctx.now_unix)),
    }
}

fn eq_ignore_case(a: &str, b: &str) -> bool {
    a.chars()
        .flat_map(char::to_lowercase)
        .eq(b.chars().flat_map(char::to_lowercase))
}

/// The positive form of `op` holds for request value `rv` against `cv`.
fn positive_match(op: BaseOperator, rv: &Val<'_>, cv: &ConditionValue) -> bool {
    use std::cmp::Ordering::{Equal, Greater, Less};
    let num = || {
        rv.number()
            .zip(cv.number)
            .and_then(|(a, b)| a.partial_cmp(&b))
    };
    let date = || rv.date().zip(cv.date).map(|(a, b)| a.cmp(&b));
    match op {
        B::StringEquals | B::StringNotEquals => rv.text() == cv.raw.as_str(),
        B::StringEqualsIgnoreCase | B::StringNotEqualsIgnoreCase => {
            eq_ignore_case(&rv.text(), &cv.raw)
        }
        B::StringLike | B::StringNotLike => wildcard::matches(&cv.raw, &rv.text()),
        B::NumericEquals | B::NumericNotEquals => num() == Some(Equal),
        B::NumericLessThan => num() == Some(Less),
        B::NumericLessThanEquals => matches!(num(), Some(Less | Equal)),
        B::NumericGreaterThan => num() == Some(Greater),
        B::NumericGreaterThanEquals => matches!(num(), Some(Greater | Equal)),
        B::DateEquals | B::DateNotEquals => date() == Some(Equal),
        B::DateLessThan => date() == Some(Less),
        B::DateLessThanEquals => matches!(date(), Some(Less | Equal)),
        B::DateGreaterThan => date() == Some(Greater),
        B::DateGreaterThanEquals => matches!(date(), Some(Greater | Equal)),
        B::Bool => rv.boolean().is_some() && rv.boolean() == cv.boolean,
        B::Null => false,
    }
}

impl ConditionClause {
    /// True when this condition holds for the request.
    pub fn holds(&self, ctx: &RequestContext<'_>) -> bool {
        let found = lookup(&self.key, ctx);
        let vals = found.as_slice();
        let op = self.operator;
        if op.base == B::Null {
            // "true" = the key must be absent, "false" = present; values OR.
            let absent = vals.is_empty();
            return self.values.iter().any(|v| v.boolean == Some(absent));
        }
        // One request value against all of the condition's values.
        let one = |rv: &Val<'_>| {
            let hit = self.values.iter().any(|cv| positive_match(op.base, rv, cv));
            hit != op.base.negated()
        };
        match op.qualifier {
            SetQualifier::Single => {
                if vals.is_empty() {
                    return op.if_exists || op.base.negated();
                }
                let hit = vals
                    .iter()
                    .any(|rv| self.values.iter().any(|cv| positive_match(op.base, rv, cv)));
                hit != op.base.negated()
            }
            SetQualifier::ForAnyValue => {
                if vals.is_empty() {
                    return op.if_exists;
                }
                vals.iter().any(one)
            }
            SetQualifier::ForAllValues => vals.iter().all(one),
        }
    }
}
