#!/usr/bin/env python3
"""The EKS token webhook of the test Kubernetes API server (tests/kube/up).

kube-apiserver sends every bearer token it does not know to this service as a TokenReview. A
token `k8s-aws-v1.<base64url(presigned STS GetCallerIdentity URL)>` is checked the way
aws-iam-authenticator checks it on EKS: the URL must be an STS GetCallerIdentity call for this
cluster (`x-k8s-aws-id` signed), signed less than 15 minutes ago; the URL is then called (here against
moto's STS at AWS_ENDPOINT_URL) and the caller's ARN is mapped to a Kubernetes user and groups
through EKS access entries, as a cluster in authentication mode API does, else through the
access mappings in --access (aws-auth `mapRoles` / `mapUsers` shape, as mode CONFIG_MAP does).
Access entries are read from moto (tests/moto/server.py keeps them; --access-entries-from is its
URL): the entry's Kubernetes groups and username template become the user's, and an entry with
`AmazonEKSClusterAdminPolicy` on the cluster gets `system:masters`.

What it cannot check: one API server stands for every cluster of a test, and the token does
not say which cluster it was made for (x-k8s-aws-id is signed, not sent in the URL), so a
principal's entries on any cluster count; EKS's other access policies (Admin, Edit, View),
which EKS enforces with its own authorizer, are not modelled and grant nothing here. Also: moto
does not verify SigV4 signatures, so a token whose signature was
tampered with, or that was signed for another cluster's `x-k8s-aws-id`, passes here as long as
its access key is real; on EKS, STS refuses both. A token made with
credentials moto does not know is answered with moto's default identity, which no mapping names,
so it is refused as on EKS.
"""

import argparse
import base64
import datetime
import json
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFIX = "k8s-aws-v1."
STS_HOST = re.compile(r"^sts(\.[a-z0-9-]+)?\.amazonaws\.com(\.cn)?$")
MAX_AGE = datetime.timedelta(minutes=15)


class Refused(Exception):
    pass


def canonical_arn(arn):
    """arn:aws:sts::A:assumed-role/R/S -> (arn:aws:iam::A:role/R, S), as aws-iam-authenticator."""
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn":
        raise Refused(f"STS answered with an unusable ARN {arn!r}")
    resource = parts[5]
    if parts[2] == "sts" and resource.startswith("assumed-role/"):
        _, role, session = resource.split("/", 2)
        return f"arn:{parts[1]}:iam::{parts[4]}:role/{role}", session
    return arn, ""


def matches(pattern, arn):
    # `*` in the account field matches every account: member accounts are created by the tests.
    return re.fullmatch(re.escape(pattern).replace(r"\*", r"[0-9]+"), arn) is not None


CLUSTER_ADMIN = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"


class Checker:
    def __init__(self, sts_endpoint, cluster, access, entries_from=None):
        self.sts = urllib.parse.urlsplit(sts_endpoint)
        self.cluster = cluster
        self.access = access
        self.entries_from = entries_from

    def access_entries(self, arn):
        if not self.entries_from:
            return []
        url = (
            self.entries_from.rstrip("/")
            + "/moto-api/slipway/eks-access-entries?principalArn="
            + urllib.parse.quote(arn, safe="")
        )
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return json.loads(response.read())["accessEntries"]
        except (urllib.error.URLError, ValueError, KeyError):
            raise Refused("the access entries could not be read")

    def review(self, token, now):
        if not token.startswith(PREFIX):
            raise Refused("not an EKS token")
        try:
            encoded = token[len(PREFIX):]
            url = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
        except (ValueError, UnicodeDecodeError):
            raise Refused("the token is not base64url")
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme != "https" or not STS_HOST.match(parsed.hostname or ""):
            raise Refused("the token does not point at STS")
        if parsed.path not in ("", "/"):
            raise Refused("the token's path is not /")
        query = {k.lower(): v for k, v in urllib.parse.parse_qsl(parsed.query)}
        if query.get("action") != "GetCallerIdentity":
            raise Refused("the token is not a GetCallerIdentity call")
        signed = query.get("x-amz-signedheaders", "").split(";")
        if "x-k8s-aws-id" not in signed:
            raise Refused("the token does not sign x-k8s-aws-id")
        # As on EKS, a token is good for 15 minutes from its signing, whatever X-Amz-Expires says
        # (clients sign 60 s, and kubectl caches tokens for 14 minutes).
        try:
            issued = datetime.datetime.strptime(query["x-amz-date"], "%Y%m%dT%H%M%SZ")
            issued = issued.replace(tzinfo=datetime.timezone.utc)
            int(query["x-amz-expires"])
        except (KeyError, ValueError):
            raise Refused("the token has no valid X-Amz-Date / X-Amz-Expires")
        if now > issued + MAX_AGE:
            raise Refused("the token has expired")
        target = urllib.parse.urlunsplit(
            (self.sts.scheme, self.sts.netloc, "/", parsed.query, "")
        )
        headers = {"x-k8s-aws-id": self.cluster, "Host": parsed.hostname}
        # moto takes the caller's access key only from an Authorization header, not from a
        # presigned query, so the query's credential and signature are restated as one.
        headers["Authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={query.get('x-amz-credential', '')}, "
            f"SignedHeaders={query.get('x-amz-signedheaders', '')}, "
            f"Signature={query.get('x-amz-signature', '')}"
        )
        request = urllib.request.Request(target, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                body = response.read().decode()
        except urllib.error.HTTPError as e:
            raise Refused(f"STS refused the token ({e.code})")
        match = re.search(r"<Arn>([^<]+)</Arn>", body) or re.search(r'"Arn"\s*:\s*"([^"]+)"', body)
        if not match:
            raise Refused("STS did not name the caller")
        arn, session = canonical_arn(match.group(1))
        account = arn.split(":")[4]
        entries = self.access_entries(arn)
        if entries:
            groups = sorted({g for e in entries for g in e.get("kubernetesGroups", [])})
            if any(
                p["policyArn"] == CLUSTER_ADMIN and p["accessScope"]["type"] == "cluster"
                for e in entries
                for p in e.get("accessPolicies", [])
            ):
                groups.append("system:masters")
            return self.user(
                {"username": entries[0]["username"], "groups": groups}, arn, session, account
            )
        for entry in self.access.get("mapRoles", []):
            if matches(entry["rolearn"], arn):
                return self.user(entry, arn, session, account)
        for entry in self.access.get("mapUsers", []):
            if matches(entry["userarn"], arn):
                return self.user(entry, arn, session, account)
        raise Refused(f"{arn} is not mapped to a Kubernetes user")

    @staticmethod
    def user(entry, arn, session, account):
        def expand(text):
            return text.replace("{{SessionName}}", session).replace("{{AccountID}}", account)

        return {
            "username": expand(entry["username"]),
            "uid": "aws-iam-authenticator:" + arn,
            "groups": [expand(g) for g in entry.get("groups", [])],
            "extra": {"arn": [arn], "accountId": [account]},
        }


def handler_for(checker):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            try:
                length = int(self.headers.get("Content-Length", "0"))
                review = json.loads(self.rfile.read(length))
                token = review["spec"]["token"]
            except (ValueError, KeyError, TypeError):
                self.send_error(400, "expected a TokenReview")
                return
            now = datetime.datetime.now(datetime.timezone.utc)
            try:
                status = {"authenticated": True, "user": checker.review(token, now)}
            except Refused as refused:
                status = {"authenticated": False, "error": str(refused)}
            body = json.dumps(
                {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "status": status}
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # tokens are credentials: never logged
            pass

    return Handler


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--sts-endpoint", required=True)
    parser.add_argument("--cluster", required=True)
    parser.add_argument("--access", required=True)
    parser.add_argument("--access-entries-from")
    args = parser.parse_args()
    with open(args.access) as f:
        access = json.load(f)
    checker = Checker(args.sts_endpoint, args.cluster, access, args.access_entries_from)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler_for(checker))
    print(f"token webhook on 127.0.0.1:{args.port}", file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
