#!/usr/bin/env python3
"""A moto S3 server for tests, with signature checking on.

Starts moto (in this process, on 127.0.0.1 and a kernel-chosen free port unless --port is
given). With --auth (the default) moto checks SigV4 signatures and IAM policies: the first
few actions are let through unauthenticated (INITIAL_NO_AUTH_ACTION_COUNT), and this script
spends exactly those on creating an IAM user, a policy allowing s3:*, and an access key. The
buckets are then created with that key, which also proves the setup works.

Prints one JSON line on stdout once the server is ready:
  {"endpoint": "http://127.0.0.1:PORT", "access_key_id": "...", "secret_access_key": "...",
   "region": "us-east-1", "buckets": [...]}
(with --read-only-user also "read_only_access_key_id" and "read_only_secret_access_key": a
second IAM user that may read and list S3 but not write)
then serves until stdin reaches EOF (the test closed the pipe or died) or SIGTERM, so a
crashed test never leaves a server behind.
"""

import argparse
import json
import logging
import os
import signal
import sys

# Three unauthenticated actions per IAM user: CreateUser, PutUserPolicy, CreateAccessKey. moto
# reads the setting when it is imported, so it must be in the environment first.
_NO_AUTH_ACTIONS_PER_USER = 3


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0: a free port")
    parser.add_argument("--no-auth", action="store_true",
                        help="accept any request, signed or not (moto's default)")
    parser.add_argument("--bucket", action="append", default=[],
                        help="bucket to create (repeatable)")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--read-only-user", action="store_true",
                        help="also create a user that may only read and list S3")
    args = parser.parse_args()

    users = 2 if args.read_only_user else 1
    if not args.no_auth:
        os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = str(_NO_AUTH_ACTIONS_PER_USER * users)
    # moto and boto3 must not pick up credentials or endpoints of the machine running tests.
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        os.environ.pop(name, None)
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    os.environ["AWS_CONFIG_FILE"] = os.devnull

    import boto3
    from botocore.config import Config
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=args.port, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"

    def client(service, key_id, secret):
        return boto3.client(service, endpoint_url=endpoint, region_name=args.region,
                            aws_access_key_id=key_id, aws_secret_access_key=secret,
                            config=Config(s3={"addressing_style": "path"}))

    def user(iam, name, actions):
        iam.create_user(UserName=name)
        iam.put_user_policy(
            UserName=name, PolicyName="s3",
            PolicyDocument=json.dumps({
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}],
            }))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return key["AccessKeyId"], key["SecretAccessKey"]

    extra = {}
    if args.no_auth:
        key_id, secret = "testing", "testing"
    else:
        iam = client("iam", "bootstrap", "bootstrap")
        key_id, secret = user(iam, "caliber", "s3:*")
        if args.read_only_user:
            ro_id, ro_secret = user(iam, "reader", ["s3:Get*", "s3:List*", "s3:HeadBucket"])
            extra = {"read_only_access_key_id": ro_id, "read_only_secret_access_key": ro_secret}

    s3 = client("s3", key_id, secret)
    for bucket in args.bucket:
        s3.create_bucket(Bucket=bucket)

    print(json.dumps({"endpoint": endpoint, "access_key_id": key_id,
                      "secret_access_key": secret, "region": args.region,
                      "buckets": args.bucket, **extra}), flush=True)

    # Nothing to flush or save: exit at once rather than wait for the server loop to notice.
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    sys.stdin.read()  # returns at EOF
    os._exit(0)


if __name__ == "__main__":
    main()
