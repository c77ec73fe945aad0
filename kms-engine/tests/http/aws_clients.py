"""boto3 and the aws CLI against a kmsfs engine's HTTPS endpoint.

Usage: aws_clients.py ENDPOINT_URL CA_BUNDLE ALICE_KEY ALICE_SECRET BOB_KEY BOB_SECRET

Runs every check, prints one line per check and a closing
'N passed, N failed' line; exits 1 if any failed.
"""
import base64
import json
import os
import subprocess
import sys
import traceback

import boto3
import botocore.config
import botocore.exceptions

URL, CA, ALICE_KEY, ALICE_SECRET, BOB_KEY, BOB_SECRET = sys.argv[1:7]
REGION = os.environ.get("KMSFS_TEST_REGION", "local")


def client(key=ALICE_KEY, secret=ALICE_SECRET):
    return boto3.client(
        "kms",
        endpoint_url=URL,
        region_name=REGION,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        verify=CA,
        config=botocore.config.Config(retries={"max_attempts": 1}),
    )


alice = client()
bob = client(BOB_KEY, BOB_SECRET)
CHECKS = []


def check(f):
    CHECKS.append(f)
    return f


def expect_code(code, fn, *args, **kwargs):
    """An error AWS does not model for KMS (AccessDeniedException ...):
    botocore raises ClientError with its code."""
    e = expect_error(botocore.exceptions.ClientError, fn, *args, **kwargs)
    assert e.response["Error"]["Code"] == code, e.response
    return e


def expect_error(exc_class, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except exc_class as e:
        return e
    raise AssertionError(f"{fn.__name__} did not raise {exc_class.__name__}")


@check
def create_describe_list():
    meta = alice.create_key(Description="boto3 key")["KeyMetadata"]
    assert meta["KeyState"] == "Enabled" and meta["Enabled"] is True, meta
    assert meta["Arn"].startswith("arn:aws:kms:"), meta["Arn"]
    assert meta["Arn"].endswith(":key/" + meta["KeyId"]), meta["Arn"]
    # botocore parses epoch-seconds timestamps into datetimes.
    assert meta["CreationDate"].year >= 2024, meta["CreationDate"]
    again = alice.describe_key(KeyId=meta["Arn"])["KeyMetadata"]
    assert again["KeyId"] == meta["KeyId"] and again["Description"] == "boto3 key"
    ids = [k["KeyId"] for k in alice.list_keys()["Keys"]]
    assert meta["KeyId"] in ids, ids
    # The paginator follows NextMarker/Truncated.
    for _ in range(3):
        alice.create_key()
    pages = list(alice.get_paginator("list_keys").paginate(PaginationConfig={"PageSize": 2}))
    assert len(pages) >= 2, pages
    assert sum(len(p["Keys"]) for p in pages) >= 4
    alice.update_key_description(KeyId=meta["KeyId"], Description="renamed")
    assert alice.describe_key(KeyId=meta["KeyId"])["KeyMetadata"]["Description"] == "renamed"


@check
def aliases_and_tags():
    key = alice.create_key(Tags=[{"TagKey": "team", "TagValue": "web"}])["KeyMetadata"]["KeyId"]
    alice.create_alias(AliasName="alias/boto3-web", TargetKeyId=key)
    assert alice.describe_key(KeyId="alias/boto3-web")["KeyMetadata"]["KeyId"] == key
    names = [a["AliasName"] for a in alice.list_aliases(KeyId=key)["Aliases"]]
    assert names == ["alias/boto3-web"], names
    expect_error(alice.exceptions.AlreadyExistsException, alice.create_alias,
                 AliasName="alias/boto3-web", TargetKeyId=key)
    other = alice.create_key()["KeyMetadata"]["KeyId"]
    alice.update_alias(AliasName="alias/boto3-web", TargetKeyId=other)
    assert alice.describe_key(KeyId="alias/boto3-web")["KeyMetadata"]["KeyId"] == other
    alice.delete_alias(AliasName="alias/boto3-web")
    expect_error(alice.exceptions.NotFoundException, alice.describe_key, KeyId="alias/boto3-web")
    alice.tag_resource(KeyId=key, Tags=[{"TagKey": "env", "TagValue": "prod"}])
    tags = {t["TagKey"]: t["TagValue"] for t in alice.list_resource_tags(KeyId=key)["Tags"]}
    assert tags == {"team": "web", "env": "prod"}, tags
    alice.untag_resource(KeyId=key, TagKeys=["team"])
    tags = [t["TagKey"] for t in alice.list_resource_tags(KeyId=key)["Tags"]]
    assert tags == ["env"], tags


@check
def encrypt_decrypt_with_and_without_context():
    key = alice.create_key()["KeyMetadata"]["KeyId"]
    blob = alice.encrypt(KeyId=key, Plaintext=b"hello")["CiphertextBlob"]
    assert isinstance(blob, bytes) and len(blob) > 5
    out = alice.decrypt(CiphertextBlob=blob)
    assert out["Plaintext"] == b"hello" and out["KeyId"].endswith(key), out
    assert out["EncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
    ctx = {"kmsfs:path": "/a/b", "tenant": "t1"}
    blob = alice.encrypt(KeyId=key, Plaintext=b"\x00\xff" * 100, EncryptionContext=ctx)["CiphertextBlob"]
    assert alice.decrypt(CiphertextBlob=blob, EncryptionContext=ctx)["Plaintext"] == b"\x00\xff" * 100
    expect_error(alice.exceptions.InvalidCiphertextException, alice.decrypt, CiphertextBlob=blob)
    expect_error(alice.exceptions.InvalidCiphertextException, alice.decrypt, CiphertextBlob=blob,
                 EncryptionContext={"kmsfs:path": "/a/c", "tenant": "t1"})
    expect_error(alice.exceptions.InvalidCiphertextException, alice.decrypt, CiphertextBlob=b"garbage")
    expect_error(alice.exceptions.NotFoundException, alice.encrypt,
                 KeyId="11111111-2222-4333-8444-555555555555", Plaintext=b"x")


@check
def data_keys_and_random():
    key = alice.create_key()["KeyMetadata"]["KeyId"]
    dk = alice.generate_data_key(KeyId=key, KeySpec="AES_256", EncryptionContext={"f": "1"})
    assert len(dk["Plaintext"]) == 32
    back = alice.decrypt(CiphertextBlob=dk["CiphertextBlob"], EncryptionContext={"f": "1"})
    assert back["Plaintext"] == dk["Plaintext"]
    dk = alice.generate_data_key(KeyId=key, NumberOfBytes=64)
    assert len(dk["Plaintext"]) == 64
    wp = alice.generate_data_key_without_plaintext(KeyId=key, KeySpec="AES_128")
    assert "Plaintext" not in wp
    assert len(alice.decrypt(CiphertextBlob=wp["CiphertextBlob"])["Plaintext"]) == 16
    assert len(alice.generate_random(NumberOfBytes=48)["Plaintext"]) == 48


@check
def re_encrypt_between_keys_and_contexts():
    a = alice.create_key()["KeyMetadata"]["KeyId"]
    b = alice.create_key()["KeyMetadata"]["KeyId"]
    blob = alice.encrypt(KeyId=a, Plaintext=b"move me", EncryptionContext={"p": "/old"})["CiphertextBlob"]
    r = alice.re_encrypt(CiphertextBlob=blob, SourceEncryptionContext={"p": "/old"},
                         DestinationKeyId=b, DestinationEncryptionContext={"p": "/new"})
    assert r["SourceKeyId"].endswith(a) and r["KeyId"].endswith(b), r
    out = alice.decrypt(CiphertextBlob=r["CiphertextBlob"], EncryptionContext={"p": "/new"})
    assert out["Plaintext"] == b"move me"


@check
def rotation():
    key = alice.create_key()["KeyMetadata"]["KeyId"]
    old = alice.encrypt(KeyId=key, Plaintext=b"v1")["CiphertextBlob"]
    assert alice.get_key_rotation_status(KeyId=key)["KeyRotationEnabled"] is False
    alice.enable_key_rotation(KeyId=key, RotationPeriodInDays=90)
    st = alice.get_key_rotation_status(KeyId=key)
    assert st["KeyRotationEnabled"] is True and st["RotationPeriodInDays"] == 90, st
    alice.rotate_key_on_demand(KeyId=key)
    rotations = alice.list_key_rotations(KeyId=key)["Rotations"]
    assert len(rotations) == 1 and rotations[0]["RotationType"] == "ON_DEMAND", rotations
    assert alice.decrypt(CiphertextBlob=old)["Plaintext"] == b"v1"
    alice.disable_key_rotation(KeyId=key)
    assert alice.get_key_rotation_status(KeyId=key)["KeyRotationEnabled"] is False


@check
def policies_and_two_principals():
    key = alice.create_key()["KeyMetadata"]["KeyId"]
    assert alice.list_key_policies(KeyId=key)["PolicyNames"] == ["default"]
    policy = json.loads(alice.get_key_policy(KeyId=key, PolicyName="default")["Policy"])
    assert policy["Statement"], policy
    # bob may encrypt but not decrypt; alice keeps everything.
    policy["Statement"].append({
        "Sid": "bob encrypts", "Effect": "Allow", "Principal": {"AWS": "user:bob"},
        "Action": ["kms:Encrypt", "kms:DescribeKey"], "Resource": "*",
    })
    alice.put_key_policy(KeyId=key, PolicyName="default", Policy=json.dumps(policy))
    blob = bob.encrypt(KeyId=key, Plaintext=b"for alice")["CiphertextBlob"]
    e = expect_code("AccessDeniedException", bob.decrypt, CiphertextBlob=blob)
    assert "user:bob" in str(e), e
    assert alice.decrypt(CiphertextBlob=blob)["Plaintext"] == b"for alice"
    expect_code("AccessDeniedException", bob.put_key_policy, KeyId=key,
                 PolicyName="default", Policy=json.dumps(policy))
    expect_error(alice.exceptions.MalformedPolicyDocumentException, alice.put_key_policy,
                 KeyId=key, PolicyName="default", Policy="{not json")


@check
def grants():
    key = alice.create_key()["KeyMetadata"]["KeyId"]
    blob = alice.encrypt(KeyId=key, Plaintext=b"granted")["CiphertextBlob"]
    expect_code("AccessDeniedException", bob.decrypt, CiphertextBlob=blob)
    g = alice.create_grant(KeyId=key, GranteePrincipal="user:bob", Operations=["Decrypt"],
                           RetiringPrincipal="user:alice")
    assert g["GrantId"] and g["GrantToken"], g
    assert bob.decrypt(CiphertextBlob=blob)["Plaintext"] == b"granted"
    grants = alice.list_grants(KeyId=key)["Grants"]
    assert [x["GrantId"] for x in grants] == [g["GrantId"]], grants
    assert grants[0]["GranteePrincipal"] == "user:bob"
    assert alice.list_retirable_grants(RetiringPrincipal="user:alice")["Grants"]
    alice.revoke_grant(KeyId=key, GrantId=g["GrantId"])
    expect_code("AccessDeniedException", bob.decrypt, CiphertextBlob=blob)
    g2 = alice.create_grant(KeyId=key, GranteePrincipal="user:bob", Operations=["Decrypt"],
                            RetiringPrincipal="user:alice")
    alice.retire_grant(KeyId=key, GrantId=g2["GrantId"])
    assert alice.list_grants(KeyId=key)["Grants"] == []
    expect_error(alice.exceptions.NotFoundException, alice.revoke_grant, KeyId=key, GrantId="0" * 64)


@check
def states_and_scheduled_deletion():
    key = alice.create_key()["KeyMetadata"]["KeyId"]
    alice.disable_key(KeyId=key)
    expect_error(alice.exceptions.DisabledException, alice.encrypt, KeyId=key, Plaintext=b"x")
    alice.enable_key(KeyId=key)
    r = alice.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)
    assert r["KeyState"] == "PendingDeletion" and r["PendingWindowInDays"] == 7, r
    assert r["DeletionDate"].year >= 2024
    expect_error(alice.exceptions.KMSInvalidStateException, alice.encrypt, KeyId=key, Plaintext=b"x")
    alice.cancel_key_deletion(KeyId=key)
    assert alice.describe_key(KeyId=key)["KeyMetadata"]["KeyState"] == "Disabled"
    expect_error(botocore.exceptions.ClientError, alice.schedule_key_deletion, KeyId=key,
                 PendingWindowInDays=3)


@check
def unknown_and_unsupported_operations():
    e = expect_error(botocore.exceptions.ClientError, alice.replicate_key, KeyId="alias/x",
                     ReplicaRegion="eu-west-1")
    assert e.response["Error"]["Code"] == "UnsupportedOperationException", e.response
    assert e.response["ResponseMetadata"]["RequestId"], e.response
    assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 400


@check
def asymmetric_hmac_and_agreement_keys():
    """Sign/Verify, RSA-OAEP, HMAC, ECDH and data key pairs through boto3,
    checked with Python `cryptography` where it is installed: botocore's
    modeled exceptions for a bad signature or MAC and refused combinations."""
    def make(spec, usage):
        return alice.create_key(KeySpec=spec, KeyUsage=usage)["KeyMetadata"]["KeyId"]
    signer = make("ECC_NIST_P256", "SIGN_VERIFY")
    meta = alice.describe_key(KeyId=signer)["KeyMetadata"]
    assert meta["SigningAlgorithms"] == ["ECDSA_SHA_256"], meta
    sig = alice.sign(KeyId=signer, Message=b"release", SigningAlgorithm="ECDSA_SHA_256")["Signature"]
    ok = alice.verify(KeyId=signer, Message=b"release", Signature=sig, SigningAlgorithm="ECDSA_SHA_256")
    assert ok["SignatureValid"] is True, ok
    expect_error(alice.exceptions.KMSInvalidSignatureException, alice.verify, KeyId=signer,
                 Message=b"releasE", Signature=sig, SigningAlgorithm="ECDSA_SHA_256")
    expect_error(alice.exceptions.InvalidKeyUsageException, alice.sign, KeyId=signer,
                 Message=b"m", SigningAlgorithm="RSASSA_PSS_SHA_256")
    expect_code("ValidationException", alice.create_key, KeySpec="HMAC_256", KeyUsage="ENCRYPT_DECRYPT")
    expect_error(alice.exceptions.UnsupportedOperationException, alice.enable_key_rotation, KeyId=signer)
    der = alice.get_public_key(KeyId=signer)["PublicKey"]
    try:
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec, padding
    except ImportError:
        serialization = None
    if serialization:
        serialization.load_der_public_key(der).verify(sig, b"release", ec.ECDSA(hashes.SHA256()))
    rsa = make("RSA_2048", "ENCRYPT_DECRYPT")
    ct = alice.encrypt(KeyId=rsa, Plaintext=b"k" * 190, EncryptionAlgorithm="RSAES_OAEP_SHA_256")
    assert ct["EncryptionAlgorithm"] == "RSAES_OAEP_SHA_256", ct
    pt = alice.decrypt(KeyId=rsa, CiphertextBlob=ct["CiphertextBlob"],
                       EncryptionAlgorithm="RSAES_OAEP_SHA_256")["Plaintext"]
    assert pt == b"k" * 190
    expect_error(alice.exceptions.InvalidKeyUsageException, alice.encrypt, KeyId=rsa, Plaintext=b"x")
    if serialization:
        pub = serialization.load_der_public_key(alice.get_public_key(KeyId=rsa)["PublicKey"])
        theirs = pub.encrypt(b"from python", padding.OAEP(mgf=padding.MGF1(hashes.SHA1()),
                                                          algorithm=hashes.SHA1(), label=None))
        got = alice.decrypt(KeyId=rsa, CiphertextBlob=theirs, EncryptionAlgorithm="RSAES_OAEP_SHA_1")
        assert got["Plaintext"] == b"from python", got
    mac_key = make("HMAC_512", "GENERATE_VERIFY_MAC")
    mac = alice.generate_mac(KeyId=mac_key, Message=b"m", MacAlgorithm="HMAC_SHA_512")["Mac"]
    assert len(mac) == 64
    assert alice.verify_mac(KeyId=mac_key, Message=b"m", Mac=mac, MacAlgorithm="HMAC_SHA_512")["MacValid"]
    expect_error(alice.exceptions.KMSInvalidMacException, alice.verify_mac, KeyId=mac_key,
                 Message=b"n", Mac=mac, MacAlgorithm="HMAC_SHA_512")
    agreer = make("ECC_NIST_P256", "KEY_AGREEMENT")
    if serialization:
        mine = ec.generate_private_key(ec.SECP256R1())
        peer_der = mine.public_key().public_bytes(serialization.Encoding.DER,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo)
        shared = alice.derive_shared_secret(KeyId=agreer, KeyAgreementAlgorithm="ECDH",
                                            PublicKey=peer_der)["SharedSecret"]
        kms_pub = serialization.load_der_public_key(alice.get_public_key(KeyId=agreer)["PublicKey"])
        assert shared == mine.exchange(ec.ECDH(), kms_pub)
    sym = alice.create_key()["KeyMetadata"]["KeyId"]
    pair = alice.generate_data_key_pair(KeyId=sym, KeyPairSpec="ECC_NIST_P384",
                                        EncryptionContext={"app": "boto3"})
    opened = alice.decrypt(CiphertextBlob=pair["PrivateKeyCiphertextBlob"],
                           EncryptionContext={"app": "boto3"})["Plaintext"]
    assert opened == pair["PrivateKeyPlaintext"]
    if serialization:
        priv = serialization.load_der_private_key(pair["PrivateKeyPlaintext"], password=None)
        assert priv.public_key().public_bytes(serialization.Encoding.DER,
                                              serialization.PublicFormat.SubjectPublicKeyInfo) == pair["PublicKey"]
    w = alice.generate_data_key_pair_without_plaintext(KeyId=sym, KeyPairSpec="RSA_2048")
    assert "PrivateKeyPlaintext" not in w, w
    expect_code("AccessDeniedException", bob.sign, KeyId=signer, Message=b"m",
                SigningAlgorithm="ECDSA_SHA_256")
    # The aws CLI with aws's option names and fileb:// input.
    work = os.path.dirname(CA)
    with open(os.path.join(work, "asym-msg"), "wb") as f:
        f.write(b"cli release")
    s = aws("sign", "--key-id", signer, "--message", "fileb://" + f.name, "--signing-algorithm",
            "ECDSA_SHA_256", "--query", "Signature", "--output", "text").stdout.strip()
    with open(os.path.join(work, "asym-sig"), "wb") as g:
        g.write(base64.b64decode(s))
    v = json.loads(aws("verify", "--key-id", signer, "--message", "fileb://" + f.name, "--signature",
                       "fileb://" + g.name, "--signing-algorithm", "ECDSA_SHA_256").stdout)
    assert v["SignatureValid"] is True, v


@check
def import_key_material():
    """AWS's documented import flow with Python `cryptography` (an
    independent implementation of RSA-OAEP and AES key wrap with padding):
    an EXTERNAL key, GetParametersForImport, ImportKeyMaterial with an
    expiry, use, GetKeyLastUsage, DeleteImportedKeyMaterial, re-import, and
    botocore's modeled exceptions for the refusals."""
    import datetime
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding
    from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding

    def wrap(params, alg, material):
        pub = serialization.load_der_public_key(params["PublicKey"])
        h = hashes.SHA256() if alg.endswith("256") else hashes.SHA1()
        oaep = padding.OAEP(mgf=padding.MGF1(algorithm=h), algorithm=h, label=None)
        if alg.startswith("RSAES"):
            return pub.encrypt(material, oaep)
        aes = os.urandom(32)
        return pub.encrypt(aes, oaep) + aes_key_wrap_with_padding(aes, material)

    def params(key, alg, spec):
        return alice.get_parameters_for_import(KeyId=key, WrappingAlgorithm=alg,
                                               WrappingKeySpec=spec)

    exc = alice.exceptions
    meta = alice.create_key(Origin="EXTERNAL", Description="byok")["KeyMetadata"]
    key = meta["KeyId"]
    assert meta["Origin"] == "EXTERNAL" and meta["KeyState"] == "PendingImport", meta
    expect_error(exc.KMSInvalidStateException, alice.encrypt, KeyId=key, Plaintext=b"x")
    material = os.urandom(32)
    p = params(key, "RSA_AES_KEY_WRAP_SHA_256", "RSA_3072")
    valid_to = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=30)
    assert p["ParametersValidTo"] > datetime.datetime.now(datetime.timezone.utc)
    r = alice.import_key_material(KeyId=key, ImportToken=p["ImportToken"],
                                  EncryptedKeyMaterial=wrap(p, "RSA_AES_KEY_WRAP_SHA_256", material),
                                  ExpirationModel="KEY_MATERIAL_EXPIRES", ValidTo=valid_to)
    assert len(r["KeyMaterialId"]) == 64, r
    meta = alice.describe_key(KeyId=key)["KeyMetadata"]
    assert meta["KeyState"] == "Enabled" and meta["ExpirationModel"] == "KEY_MATERIAL_EXPIRES", meta
    assert abs((meta["ValidTo"] - valid_to).total_seconds()) < 2, meta
    blob = alice.encrypt(KeyId=key, Plaintext=b"own key")["CiphertextBlob"]
    assert alice.decrypt(CiphertextBlob=blob)["Plaintext"] == b"own key"
    used = alice.get_key_last_usage(KeyId=key)
    assert used["KeyLastUsage"]["Operation"] == "Decrypt", used
    assert used["KeyCreationDate"] <= used["KeyLastUsage"]["Timestamp"], used

    alice.delete_imported_key_material(KeyId=key)
    assert alice.describe_key(KeyId=key)["KeyMetadata"]["KeyState"] == "PendingImport"
    expect_error(exc.KMSInvalidStateException, alice.decrypt, CiphertextBlob=blob)
    p = params(key, "RSAES_OAEP_SHA_1", "RSA_2048")
    expect_error(exc.IncorrectKeyMaterialException, alice.import_key_material, KeyId=key,
                 ImportToken=p["ImportToken"],
                 EncryptedKeyMaterial=wrap(p, "RSAES_OAEP_SHA_1", os.urandom(32)),
                 ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
    other = alice.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    expect_error(exc.InvalidImportTokenException, alice.import_key_material, KeyId=other,
                 ImportToken=p["ImportToken"],
                 EncryptedKeyMaterial=wrap(p, "RSAES_OAEP_SHA_1", material),
                 ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
    expect_error(exc.InvalidCiphertextException, alice.import_key_material, KeyId=key,
                 ImportToken=p["ImportToken"], EncryptedKeyMaterial=os.urandom(256),
                 ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
    alice.import_key_material(KeyId=key, ImportToken=p["ImportToken"],
                              EncryptedKeyMaterial=wrap(p, "RSAES_OAEP_SHA_1", material),
                              ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
    assert alice.decrypt(CiphertextBlob=blob)["Plaintext"] == b"own key"
    expect_error(exc.UnsupportedOperationException, alice.enable_key_rotation, KeyId=key)
    mine = alice.create_key()["KeyMetadata"]["KeyId"]
    expect_error(exc.UnsupportedOperationException, params, mine, "RSAES_OAEP_SHA_256", "RSA_2048")
    # Bob's policy-less access is denied, as for every other operation.
    expect_code("AccessDeniedException", bob.get_key_last_usage, KeyId=key)
    out = json.loads(aws("get-key-last-usage", "--key-id", key).stdout)
    assert out["KeyLastUsage"]["Operation"] == "Decrypt", out
    out = json.loads(aws("get-parameters-for-import", "--key-id", other, "--wrapping-algorithm",
                         "RSAES_OAEP_SHA_256", "--wrapping-key-spec", "RSA_2048").stdout)
    assert base64.b64decode(out["PublicKey"])[0] == 0x30, out


def aws(*args, key=ALICE_KEY, secret=ALICE_SECRET, check=True):
    env = dict(os.environ, AWS_ACCESS_KEY_ID=key, AWS_SECRET_ACCESS_KEY=secret,
               AWS_DEFAULT_REGION=REGION, AWS_CA_BUNDLE=CA, AWS_ENDPOINT_URL=URL,
               AWS_MAX_ATTEMPTS="1", AWS_CONFIG_FILE="/dev/null",
               AWS_SHARED_CREDENTIALS_FILE="/dev/null")
    p = subprocess.run(["aws", "kms", *args], env=env, capture_output=True, text=True, timeout=120)
    if check and p.returncode != 0:
        raise AssertionError(f"aws kms {' '.join(args)}: {p.returncode} {p.stderr}")
    return p


@check
def aws_cli():
    key = json.loads(aws("create-key", "--description", "cli key").stdout)["KeyMetadata"]["KeyId"]
    aws("create-alias", "--alias-name", "alias/cli", "--target-key-id", key)
    # fileb:// reads raw bytes in CLI v1 and v2 alike.
    work = os.path.dirname(CA)
    with open(os.path.join(work, "cli.txt"), "wb") as f:
        f.write(b"cli data")
    blob = aws("encrypt", "--key-id", "alias/cli", "--plaintext", "fileb://" + f.name,
               "--encryption-context", "app=cli", "--query", "CiphertextBlob", "--output", "text").stdout.strip()
    with open(os.path.join(work, "cli.blob"), "wb") as f:
        f.write(base64.b64decode(blob))
    pt = aws("decrypt", "--ciphertext-blob", "fileb://" + f.name, "--encryption-context", "app=cli",
             "--query", "Plaintext", "--output", "text").stdout.strip()
    assert base64.b64decode(pt) == b"cli data", pt
    listed = json.loads(aws("list-aliases").stdout)["Aliases"]
    assert any(a["AliasName"] == "alias/cli" for a in listed), listed
    p = aws("describe-key", "--key-id", "alias/none", check=False)
    assert p.returncode != 0 and "NotFoundException" in p.stderr, p.stderr
    p = aws("decrypt", "--ciphertext-blob", "fileb://" + f.name, "--encryption-context", "app=cli",
            key=BOB_KEY, secret=BOB_SECRET, check=False)
    assert p.returncode != 0 and "AccessDeniedException" in p.stderr, p.stderr


def main():
    passed = failed = 0
    only = os.environ.get("KMSFS_TEST_ONLY")
    for f in CHECKS:
        if only and f.__name__ != only:
            continue
        try:
            f()
            passed += 1
            print(f"ok   {f.__name__}")
        except Exception:
            failed += 1
            print(f"FAIL {f.__name__}")
            traceback.print_exc()
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
