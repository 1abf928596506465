"""boto3 sessions for the S3 and AMI destinations, with credentials from the usual chain.

Keys come from the environment handed to the distribution (``AWS_ACCESS_KEY_ID`` …), else boto3's
own chain (profiles, ``~/.aws``, instance roles). They are handed to boto3 and nowhere else: errors
name where credentials are looked up, never their values.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError

from kiln.distribute.base import PreflightFailed

WHERE = "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ~/.aws/credentials or an instance role"


def session(environ: Mapping[str, str], region: str) -> boto3.session.Session:
    key, secret = environ.get("AWS_ACCESS_KEY_ID"), environ.get("AWS_SECRET_ACCESS_KEY")
    if key and secret:
        return boto3.session.Session(
            aws_access_key_id=key,
            aws_secret_access_key=secret,
            aws_session_token=environ.get("AWS_SESSION_TOKEN") or None,
            region_name=region,
        )
    return boto3.session.Session(profile_name=environ.get("AWS_PROFILE") or None, region_name=region)


def client(
    environ: Mapping[str, str], service: str, region: str, endpoint: str | None, *, quick: bool = False
) -> Any:
    """A client; ``quick`` (preflight): no retries, short timeouts, so a dead endpoint fails fast."""
    config = Config(
        retries={"max_attempts": 1 if quick else 5, "mode": "standard"},
        connect_timeout=5 if quick else 60,
        read_timeout=10 if quick else 300,
        s3={"addressing_style": "path"} if endpoint else None,
    )
    s = session(environ, region)
    if s.get_credentials() is None:
        raise PreflightFailed(f"no AWS credentials for {service}", hint=f"set {WHERE}")
    make: Any = s.client  # one call for any service name (the stubs overload per literal name)
    return make(service, region_name=region, endpoint_url=endpoint, config=config)


def explain(exc: Exception, what: str) -> str:
    """A one-line reason (error code and message; never request parameters)."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{what}: {error.get('Code', '?')}: {error.get('Message', '')}".rstrip(": ")
    if isinstance(exc, EndpointConnectionError):
        return f"{what}: cannot reach the endpoint {exc.kwargs.get('endpoint_url', '')}"
    if isinstance(exc, NoCredentialsError):
        return f"{what}: no AWS credentials ({WHERE})"
    if isinstance(exc, BotoCoreError):
        return f"{what}: {type(exc).__name__}: {exc}"
    return f"{what}: {type(exc).__name__}: {exc}"


def check_bucket(s3: Any, bucket: str, target: str) -> None:
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("404", "NoSuchBucket"):
            raise PreflightFailed(
                f"target {target}: bucket {bucket} does not exist",
                hint="create it first (Kiln does not create buckets)",
            ) from None
        raise PreflightFailed(f"target {target}: {explain(exc, f'bucket {bucket}')}") from None
    except (BotoCoreError, ValueError) as exc:
        raise PreflightFailed(f"target {target}: {explain(exc, f'bucket {bucket}')}") from None
