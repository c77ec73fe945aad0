"""SigV4 against a kmsfs engine's HTTPS endpoint, with boto3 and the aws CLI.

Usage: sigv4_clients.py ENDPOINT_URL CA_BUNDLE KEY_ID ADMIN_KEY ADMIN_SECRET
       ALLOWED_KEY ALLOWED_SECRET DENIED_KEY DENIED_SECRET INACTIVE_KEY INACTIVE_SECRET

ADMIN acts as root (a key administrator), ALLOWED and DENIED as the two
users KEY_ID's policy allows and leaves out; INACTIVE was deactivated.
Every refused request tries to change something (CreateKey with a
description starting "refused", ScheduleKeyDeletion of KEY_ID), so the
caller can check that none ran. Prints one line per check and a closing
'N passed, N failed' line; exits 1 if any failed.
"""
import datetime
import os
import subprocess
import sys
import traceback
import unittest.mock

import boto3
import botocore
import botocore.auth
import botocore.config
import botocore.exceptions

(URL, CA, KEY_ID, ADMIN_KEY, ADMIN_SECRET, ALLOWED_KEY, ALLOWED_SECRET, DENIED_KEY,
 DENIED_SECRET, INACTIVE_KEY, INACTIVE_SECRET) = sys.argv[1:12]
REGION = "local"
WRONG_SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
UNKNOWN_KEY = "AKIAAAAAAAAAAAAAAAAA"


def client(key=ADMIN_KEY, secret=ADMIN_SECRET, **config):
    return boto3.client(
        "kms",
        endpoint_url=URL,
        region_name=REGION,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        verify=CA,
        config=botocore.config.Config(retries={"max_attempts": 1}, **config),
    )


CHECKS = []


def check(f):
    CHECKS.append(f)
    return f


def refused(code, fn, message_start=None, **kwargs):
    """The call raises botocore's ClientError with `code` (KMS does not
    model the authentication errors, so this is what an AWS user catches),
    HTTP status 400."""
    try:
        fn(**kwargs)
    except botocore.exceptions.ClientError as e:
        err = e.response["Error"]
        assert err["Code"] == code, e.response
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 400, e.response
        if message_start:
            assert err["Message"].startswith(message_start), err
        return e
    raise AssertionError(f"{fn.__name__} was not refused")


@check
def a_good_signature_is_accepted():
    keys = [k["KeyId"] for k in client().list_keys()["Keys"]]
    assert KEY_ID in keys, keys


@check
def a_wrong_secret():
    c = client(ADMIN_KEY, WRONG_SECRET)
    refused("InvalidSignatureException", c.create_key,
            "The request signature we calculated does not match", Description="refused: secret")


@check
def a_changed_body():
    c = client()

    def tamper(request, **_):
        # Same length, so Content-Length still fits: only the signature fails.
        assert b"refused: body AAAA" in request.body, request.body
        request.body = request.body.replace(b"AAAA", b"BBBB")

    c.meta.events.register("before-send.kms.CreateKey", tamper)
    refused("InvalidSignatureException", c.create_key, Description="refused: body AAAA")


@check
def a_changed_signed_header():
    # A signed DescribeKey turned into ScheduleKeyDeletion on the way.
    c = client()

    def tamper(request, **_):
        target = request.headers["X-Amz-Target"]
        target = target.decode() if isinstance(target, bytes) else target
        assert target == "TrentService.DescribeKey", target
        signed = request.headers["Authorization"]
        signed = signed.decode() if isinstance(signed, bytes) else signed
        assert "x-amz-target" in signed, signed
        request.headers["X-Amz-Target"] = "TrentService.ScheduleKeyDeletion"

    c.meta.events.register("before-send.kms.DescribeKey", tamper)
    refused("InvalidSignatureException", c.describe_key, KeyId=KEY_ID)
    # An unsigned header (User-Agent) may change: proxies do.
    c2 = client()

    def agent(request, **_):
        request.headers["User-Agent"] = "changed-by-a-proxy"

    c2.meta.events.register("before-send.kms.DescribeKey", agent)
    assert c2.describe_key(KeyId=KEY_ID)["KeyMetadata"]["KeyState"] == "Enabled"


@check
def an_old_date():
    real = botocore.auth.get_current_datetime
    old = lambda: real() - datetime.timedelta(minutes=20)  # noqa: E731
    with unittest.mock.patch("botocore.auth.get_current_datetime", old):
        refused("InvalidSignatureException", client().create_key, "Signature expired: ",
                Description="refused: old date")
    # 14 minutes off is within AWS's 15.
    near = lambda: real() - datetime.timedelta(minutes=14)  # noqa: E731
    with unittest.mock.patch("botocore.auth.get_current_datetime", near):
        client().list_keys()


@check
def a_deactivated_key():
    c = client(INACTIVE_KEY, INACTIVE_SECRET)
    refused("UnrecognizedClientException", c.create_key,
            "The security token included in the request is invalid.",
            Description="refused: inactive")


@check
def an_unknown_key_id():
    c = client(UNKNOWN_KEY, ADMIN_SECRET)
    refused("UnrecognizedClientException", c.create_key, Description="refused: unknown")


@check
def no_signature():
    c = client(signature_version=botocore.UNSIGNED)
    refused("MissingAuthenticationTokenException", c.create_key,
            "Missing Authentication Token", Description="refused: unsigned")


@check
def a_session_token():
    c = boto3.client("kms", endpoint_url=URL, region_name=REGION, verify=CA,
                     aws_access_key_id=ADMIN_KEY, aws_secret_access_key=ADMIN_SECRET,
                     aws_session_token="FQoGZXIvYXdzEXAMPLE",
                     config=botocore.config.Config(retries={"max_attempts": 1}))
    refused("UnrecognizedClientException", c.create_key, Description="refused: token")


@check
def two_principals_under_one_policy():
    allowed = client(ALLOWED_KEY, ALLOWED_SECRET)
    blob = allowed.encrypt(KeyId=KEY_ID, Plaintext=b"for nobody")["CiphertextBlob"]
    assert allowed.decrypt(CiphertextBlob=blob)["Plaintext"] == b"for nobody"
    denied = client(DENIED_KEY, DENIED_SECRET)
    refused("AccessDeniedException", denied.decrypt, CiphertextBlob=blob)
    refused("AccessDeniedException", denied.encrypt, KeyId=KEY_ID, Plaintext=b"x")


@check
def the_aws_cli_sees_the_same_exceptions():
    def aws(key, secret, *args):
        env = dict(os.environ, AWS_ACCESS_KEY_ID=key, AWS_SECRET_ACCESS_KEY=secret,
                   AWS_DEFAULT_REGION=REGION, AWS_CA_BUNDLE=CA, AWS_MAX_ATTEMPTS="1")
        env.pop("AWS_PROFILE", None)
        return subprocess.run(["aws", "--endpoint-url", URL, "kms", *args], env=env,
                              capture_output=True, text=True, timeout=120)

    ok = aws(ADMIN_KEY, ADMIN_SECRET, "describe-key", "--key-id", KEY_ID,
             "--query", "KeyMetadata.KeyState", "--output", "text")
    assert ok.returncode == 0 and ok.stdout.strip() == "Enabled", (ok.stdout, ok.stderr)
    bad = aws(ADMIN_KEY, WRONG_SECRET, "create-key", "--description", "refused: cli")
    assert bad.returncode != 0 and "(InvalidSignatureException)" in bad.stderr, bad.stderr
    gone = aws(INACTIVE_KEY, INACTIVE_SECRET, "create-key", "--description", "refused: cli")
    assert gone.returncode != 0 and "(UnrecognizedClientException)" in gone.stderr, gone.stderr


def main():
    passed = failed = 0
    for f in CHECKS:
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
