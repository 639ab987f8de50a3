"""Locust load for voteflow, with the course's own traffic: votes through the ingress to the
REST path, the gRPC path, the 50/50 split routes (`/votes` and `POST /`, what the course's
locustfiles send), and straight to grpc-server over gRPC (grpcio, reported through
Locust's request events).

    locust -f locust/locustfile.py --host http://INGRESS        # web UI on :8089
    locust -f locust/locustfile.py --host http://INGRESS --headless -u 50 -r 10 -t 5m
    locust -f locust/locustfile.py --host http://INGRESS/grpc   # as the course runs it: POST /grpc/

Environment: VOTEFLOW_GRPC_TARGET (host:port of grpc-server for the direct user, default
127.0.0.1:3001), VOTEFLOW_TRAFFIC (a JSON file of votes in any spelling the fronts accept:
`name`, `artist` or `band`; `rank` or `ranked`; strings or numbers; default: generated in
every spelling), VOTEFLOW_USERS (comma list of user classes to run:
rest,grpc,split,root,grpc_direct; default all).
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
# The record spellings the fronts accept (domain/src/vote.rs): band, name or artist; rank or
# ranked; strings or numbers. The course's files use name/rank and artist/ranked, as strings.
SPELLINGS = [
    lambda band, album, year, rank: {"name": band, "album": album, "year": str(year), "rank": f"{rank:.1f}"},
    lambda band, album, year, rank: {"artist": band, "album": album, "year": str(year), "ranked": f"{rank:.1f}"},
    lambda band, album, year, rank: {"band": band, "album": album, "year": year, "rank": rank},
    lambda band, album, year, rank: {"artist": band, "album": album, "year": year, "ranked": rank},
]


def load_traffic():
    """Votes as the course's files write them, or generated in every spelling."""
    path = os.environ.get("VOTEFLOW_TRAFFIC")
    if path:
        with open(path, encoding="utf-8") as traffic:
            votes = json.load(traffic)
        if not votes:
            raise SystemExit(f"{path}: no votes")
        return votes
    return [spell(band, album, year, step / 2)
            for band, album, year in CATALOGUE for step in range(0, 21) for spell in SPELLINGS]


TRAFFIC = load_traffic()


def next_vote():
    """A vote from the traffic, with a fresh vote_id (the idempotency key)."""
    vote = dict(random.choice(TRAFFIC))
    vote["vote_id"] = str(uuid.uuid4())
    return vote


def wire_fields(record):
    """The gRPC Vote's fields from a record in any accepted spelling."""
    band = next((record[k] for k in ("band", "name", "artist") if k in record), None)
    rank = next((record[k] for k in ("rank", "ranked") if k in record), None)
    if band is None or rank is None or "album" not in record or "year" not in record:
        raise ValueError(f"a vote needs band|name|artist, album, year and rank|ranked: {record}")
    return {"vote_id": record["vote_id"], "band": str(band), "album": str(record["album"]),
            "year": int(float(record["year"])), "rank": float(rank)}


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


class SplitUser(HttpUser):
    """POST /votes through the ingress, which sends half to each path."""

    wait_time = between(0.05, 0.15)

    @task
    def vote(self):
        self.client.post("/votes", json=next_vote(), name="ingress /votes (split)")


class RootUser(HttpUser):
    """POST to the host's root, as the course's locustfiles do: split 50/50 with
    --host http://INGRESS, or one path with --host http://INGRESS/grpc (or /rust, /rest)."""

    wait_time = between(0.05, 0.15)

    @task
    def vote(self):
        self.client.post("/", json=next_vote(), name="ingress POST / (split)")


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
        request = self.pb.Vote(**wire_fields(next_vote()))
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


def _choose_users(chosen):
    """Leaves only the user classes VOTEFLOW_USERS names (inside a function, so no loop
    variable is left at module level for Locust to take for one more user class)."""
    classes = {"rest": RestUser, "grpc": GrpcPathUser, "split": SplitUser, "root": RootUser,
               "grpc_direct": GrpcDirectUser}
    unknown = set(chosen) - set(classes)
    if unknown:
        raise SystemExit(f"VOTEFLOW_USERS: unknown user classes {sorted(unknown)}; known: {sorted(classes)}")
    for name, cls in classes.items():
        if name not in chosen:
            cls.abstract = True


if os.environ.get("VOTEFLOW_USERS"):
    _choose_users(os.environ["VOTEFLOW_USERS"].split(","))
