"""boto3 and the aws CLI against a real `kmsfs engine serve --http` daemon.

Usage: aws_daemon.py ENDPOINT_URL CA_BUNDLE REGION ACCOUNT ALICE_KEY ALICE_SECRET BOB_KEY BOB_SECRET

The access keys were made with `kmsfs kms create-access-key`. Prints one
line per check and a closing 'N passed, N failed' line; exits 1 if any
failed.
"""
import base64
import os
import subprocess
import sys
import tempfile
import traceback

import boto3
import botocore.config
import botocore.exceptions

URL, CA, REGION, ACCOUNT, ALICE_KEY, ALICE_SECRET, BOB_KEY, BOB_SECRET = sys.argv[1:9]


def client(key, secret):
    return boto3.client(
        "kms",
        endpoint_url=URL,
        region_name=REGION,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        verify=CA,
        config=botocore.config.Config(retries={"max_attempts": 1}),
    )


alice = client(ALICE_KEY, ALICE_SECRET)
bob = client(BOB_KEY, BOB_SECRET)
CHECKS = []


def check(f):
    CHECKS.append(f)
    return f


def expect_code(code, fn, **kwargs):
    try:
        fn(**kwargs)
    except botocore.exceptions.ClientError as e:
        assert e.response["Error"]["Code"] == code, e.response
        return e
    raise AssertionError(f"{fn.__name__} did not raise {code}")


def aws(*args, key=ALICE_KEY, secret=ALICE_SECRET):
    """`aws kms ARGS` as an AWS user runs it: endpoint, CA bundle, region
    and the access key in the environment; its standard output."""
    env = dict(os.environ)
    env.pop("AWS_PROFILE", None)
    env.update(
        AWS_ACCESS_KEY_ID=key,
        AWS_SECRET_ACCESS_KEY=secret,
        AWS_DEFAULT_REGION=REGION,
        AWS_CA_BUNDLE=CA,
        AWS_MAX_ATTEMPTS="1",
        AWS_CONFIG_FILE="/nonexistent",
        AWS_SHARED_CREDENTIALS_FILE="/nonexistent",
    )
    out = subprocess.run(
        ["aws", "kms", "--endpoint-url", URL, *args],
        env=env, capture_output=True, text=True,
    )
    if out.returncode != 0:
        raise RuntimeError(f"aws kms {args} exited {out.returncode}: {out.stderr}")
    return out.stdout


@check
def boto3_key_lifecycle_with_the_configured_arns():
    meta = alice.create_key(Description="boto3")["KeyMetadata"]
    assert meta["Arn"] == f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{meta['KeyId']}", meta
    assert meta["AWSAccountId"] == ACCOUNT, meta
    alice.create_alias(AliasName="alias/boto3", TargetKeyId=meta["KeyId"])
    ctx = {"purpose": "test"}
    blob = alice.encrypt(KeyId="alias/boto3", Plaintext=b"hello", EncryptionContext=ctx)[
        "CiphertextBlob"
    ]
    out = alice.decrypt(CiphertextBlob=blob, EncryptionContext=ctx)
    assert out["Plaintext"] == b"hello"
    assert out["KeyId"] == meta["Arn"], out
    expect_code("InvalidCiphertextException", alice.decrypt, CiphertextBlob=blob)
    dk = alice.generate_data_key(KeyId=meta["KeyId"], KeySpec="AES_256")
    assert len(dk["Plaintext"]) == 32
    assert alice.decrypt(CiphertextBlob=dk["CiphertextBlob"])["Plaintext"] == dk["Plaintext"]
    # The key policy admits its creator only: bob's access key is denied.
    expect_code("AccessDeniedException", bob.decrypt, CiphertextBlob=dk["CiphertextBlob"])
    try:
        alice.describe_key(KeyId="alias/none")
    except alice.exceptions.NotFoundException:
        pass
    else:
        raise AssertionError("describe_key of a missing alias succeeded")


@check
def aws_cli_encrypt_and_decrypt_with_query_output_text():
    key = alice.create_key(Description="cli")["KeyMetadata"]["KeyId"]
    with tempfile.TemporaryDirectory() as d:
        plain = os.path.join(d, "plain")
        with open(plain, "wb") as f:
            f.write(b"secret bytes\n")
        b64 = aws("encrypt", "--key-id", key, "--plaintext", f"fileb://{plain}",
                  "--query", "CiphertextBlob", "--output", "text")
        blob = os.path.join(d, "blob")
        with open(blob, "wb") as f:
            f.write(base64.b64decode(b64))
        out = aws("decrypt", "--ciphertext-blob", f"fileb://{blob}",
                  "--query", "Plaintext", "--output", "text")
        assert base64.b64decode(out) == b"secret bytes\n", out
    listed = aws("list-keys", "--query", "Keys[].KeyId", "--output", "text")
    assert key in listed.split(), listed


@check
def signatures_that_do_not_verify_are_refused():
    forged = client(ALICE_KEY, "x" * 40)
    expect_code("InvalidSignatureException", forged.list_keys)
    unknown = client("AKIAKMSFSNOSUCHKEY00", ALICE_SECRET)
    expect_code("UnrecognizedClientException", unknown.list_keys)
    try:
        aws("list-keys", secret="y" * 40)
    except RuntimeError as e:
        assert "InvalidSignatureException" in str(e), e
    else:
        raise AssertionError("the aws CLI with a wrong secret succeeded")


passed = failed = 0
for f in CHECKS:
    try:
        f()
        print(f"ok   {f.__name__}")
        passed += 1
    except Exception:
        print(f"FAIL {f.__name__}")
        traceback.print_exc(file=sys.stdout)
        failed += 1
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
