"""Set-up step of benches/http_decrypt.sh, for one AWS-KMS-compatible endpoint.

Usage: http_decrypt.py URL CA AKID SECRET REGION OUT

Creates a symmetric key through boto3, encrypts 32 bytes under it, checks
that boto3 decrypts them, then writes one SigV4-signed Decrypt request of
that ciphertext to OUT as raw HTTP/1.1 bytes (keep-alive), which
benches/http_load.rs replays. A SigV4 signature is valid for 15 minutes, so
the script signs again before every measurement.
"""
import base64
import json
import sys
import urllib.parse

import boto3
import botocore.config
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

URL, CA, AKID, SECRET, REGION, OUT = sys.argv[1:7]

kms = boto3.client(
    "kms",
    endpoint_url=URL,
    region_name=REGION,
    aws_access_key_id=AKID,
    aws_secret_access_key=SECRET,
    verify=CA,
    config=botocore.config.Config(retries={"max_attempts": 1}),
)
key = kms.create_key(Description="http_decrypt benchmark")["KeyMetadata"]["KeyId"]
plaintext = bytes(range(32))
blob = kms.encrypt(KeyId=key, Plaintext=plaintext)["CiphertextBlob"]
assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == plaintext

host = urllib.parse.urlsplit(URL).netloc
body = json.dumps({"CiphertextBlob": base64.b64encode(blob).decode()})
req = AWSRequest(
    method="POST",
    url=URL + "/",
    data=body,
    headers={
        "Host": host,
        "X-Amz-Target": "TrentService.Decrypt",
        "Content-Type": "application/x-amz-json-1.1",
    },
)
SigV4Auth(Credentials(AKID, SECRET), "kms", REGION).add_auth(req)
head = "POST / HTTP/1.1\r\n"
for name, value in req.headers.items():
    head += f"{name}: {value}\r\n"
head += f"Content-Length: {len(body)}\r\n\r\n"
with open(OUT, "wb") as f:
    f.write(head.encode() + body.encode())
