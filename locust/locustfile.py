"""Locust load for voteflow: votes through the ingress to the REST path and the gRPC path,
and straight to grpc-server over gRPC (grpcio, reported through Locust's request events).

    locust -f locust/locustfile.py --host http://INGRESS        # web UI on :8089
    locust -f locust/locustfile.py --host http://INGRESS --headless -u 50 -r 10 -t 5m

Environment: VOTEFLOW_GRPC_TARGET (host:port of grpc-server for the direct user, default
127.0.0.1:3001), VOTEFLOW_TRAFFIC (a JSON file of votes in the course format, a list of
{"name","album","year","rank"} with string values; default: generated), VOTEFLOW_USERS
(comma list of user classes to run: rest,grpc,grpc_direct; default all).
"""

import json
import os
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

from locust import HttpUser, User, between, events, task

HERE = Path(__file__).resolve().parent
PROTO_DIR = HERE.parent / "proto"

CATALOGUE = [
    ("Radiohead", "OK Computer", 1997),
    ("The Beatles", "Abbey Road", 1969),
    ("Pink Floyd", "The Dark Side of the Moon", 1973),
    ("Nirvana", "Nevermind", 1991),
    ("Fleetwood Mac", "Rumours", 1977),
    ("Daft Punk", "Discovery", 2001),
    ("Björk", "Homogenic", 1997),
    ("Portishead", "Dummy", 1994),
]


def load_traffic():
    """Votes in the course format: string values, `name` for the band."""
    path = os.environ.get("VOTEFLOW_TRAFFIC")
    if path:
        with open(path, encoding="utf-8") as traffic:
            votes = json.load(traffic)
        if not votes:
            raise SystemExit(f"{path}: no votes")
        return votes
    return [
        {"name": band, "album": album, "year": str(year), "rank": f"{rank / 2:.1f}"}
        for band, album, year in CATALOGUE
        for rank in range(0, 21)
    ]


TRAFFIC = load_traffic()


def next_vote():
    """A vote from the traffic, with a fresh vote_id (the idempotency key)."""
    vote = dict(random.choice(TRAFFIC))
    vote["vote_id"] = str(uuid.uuid4())
    return vote


class RestUser(HttpUser):
    """POST /rest/votes through the ingress."""

    wait_time = between(0.05, 0.15)

    @task
    def vote(self):
        self.client.post("/rest/votes", json=next_vote(), name="ingress /rest/votes")


class GrpcPathUser(HttpUser):
    """POST /grpc/votes through the ingress: grpc-client turns it into a gRPC call."""

    wait_time = between(0.05, 0.15)

    @task
    def vote(self):
        self.client.post("/grpc/votes", json=next_vote(), name="ingress /grpc/votes")


def grpc_stubs():
    """vote_pb2 / vote_pb2_grpc, generated from proto/vote.proto into a temp dir at start
    (generated code is not committed)."""
    from grpc_tools import protoc  # pylint: disable=import-outside-toplevel
    import grpc_tools  # pylint: disable=import-outside-toplevel

    out = Path(tempfile.mkdtemp(prefix="voteflow-locust-"))
    include = Path(grpc_tools.__file__).parent / "_proto"
    code = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{PROTO_DIR}",
            f"-I{include}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            str(PROTO_DIR / "vote.proto"),
        ]
    )
    if code != 0:
        raise SystemExit(f"protoc failed on {PROTO_DIR / 'vote.proto'}")
    sys.path.insert(0, str(out))
    import vote_pb2  # pylint: disable=import-outside-toplevel,import-error
    import vote_pb2_grpc  # pylint: disable=import-outside-toplevel,import-error

    return vote_pb2, vote_pb2_grpc


class GrpcDirectUser(User):
    """CastVote straight to grpc-server (no ingress, no HTTP front)."""

    wait_time = between(0.05, 0.15)

    def on_start(self):
        import grpc  # pylint: disable=import-outside-toplevel

        self.grpc = grpc
        self.pb, pb_grpc = grpc_stubs()
        target = os.environ.get("VOTEFLOW_GRPC_TARGET", "127.0.0.1:3001")
        self.channel = grpc.insecure_channel(target)
        self.stub = pb_grpc.VoteServiceStub(self.channel)

    def on_stop(self):
        self.channel.close()

    @task
    def vote(self):
        course = next_vote()
        request = self.pb.Vote(
            vote_id=course["vote_id"],
            band=course["name"],
            album=course["album"],
            year=int(course["year"]),
            rank=float(course["rank"]),
        )
        started = time.perf_counter()
        exception = None
        try:
            self.stub.CastVote(request, timeout=5)
        except self.grpc.RpcError as error:
            exception = error
        events.request.fire(
            request_type="grpc",
            name="grpc-server CastVote",
            response_time=(time.perf_counter() - started) * 1000,
            response_length=0,
            exception=exception,
            context={},
        )


_CHOSEN = os.environ.get("VOTEFLOW_USERS")
if _CHOSEN:
    _ALL = {"rest": RestUser, "grpc": GrpcPathUser, "grpc_direct": GrpcDirectUser}
    for _name, _cls in _ALL.items():
        if _name not in _CHOSEN.split(","):
            _cls.abstract = True
