#!/usr/bin/env python3
"""An S3 client independent of Caliber (boto3), to check what Caliber wrote and to write what
Caliber reads.

  s3_client.py --endpoint URL --key-id ID --secret S put BUCKET KEY FILE
  s3_client.py ... get BUCKET KEY FILE
  s3_client.py ... stat BUCKET KEY    -> {"size": N, "sha256": "...", "etag": "..."}
  s3_client.py ... list BUCKET [PREFIX] -> ["key", ...]
  s3_client.py ... exists BUCKET KEY   -> true / false

Results go to stdout as JSON; errors to stderr with exit status 1.
"""

import argparse
import hashlib
import json
import os
import sys


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--key-id", required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("command", choices=["put", "get", "stat", "list", "exists"])
    parser.add_argument("bucket")
    parser.add_argument("rest", nargs="*")
    args = parser.parse_args()

    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    os.environ["AWS_CONFIG_FILE"] = os.devnull
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError

    s3 = boto3.client("s3", endpoint_url=args.endpoint, region_name=args.region,
                      aws_access_key_id=args.key_id, aws_secret_access_key=args.secret,
                      config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
    if args.command == "put":
        key, path = args.rest
        with open(path, "rb") as f:
            s3.put_object(Bucket=args.bucket, Key=key, Body=f.read())
        result = True
    elif args.command == "get":
        key, path = args.rest
        body = s3.get_object(Bucket=args.bucket, Key=key)["Body"].read()
        with open(path, "wb") as f:
            f.write(body)
        result = True
    elif args.command == "stat":
        (key,) = args.rest
        response = s3.get_object(Bucket=args.bucket, Key=key)
        body = response["Body"].read()
        result = {"size": len(body), "sha256": hashlib.sha256(body).hexdigest(),
                  "etag": response["ETag"]}
    elif args.command == "list":
        prefix = args.rest[0] if args.rest else ""
        keys = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=args.bucket,
                                                                  Prefix=prefix):
            keys += [c["Key"] for c in page.get("Contents", [])]
        result = keys
    else:
        (key,) = args.rest
        try:
            s3.head_object(Bucket=args.bucket, Key=key)
            result = True
        except ClientError as e:
            if e.response["Error"]["Code"] not in ("404", "NoSuchKey"):
                raise
            result = False
    json.dump(result, sys.stdout)
    print()


if __name__ == "__main__":
    main()
