"""Checks the Redis users of k8s/base/redis-users.acl against a real Redis with ACL DRYRUN:
each user may run what its tool needs (the consumer its script, Grafana's datasource its
reads, Redis Insight INFO, SCAN, TYPE, TTL, MEMORY USAGE and the reads) and nothing that
writes. Each user is set up under a throw-away name, checked, and deleted.

    python3 k8s/redis_acl.py REDIS_PORT
"""

import pathlib
import sys
import uuid

import redis

USERS = pathlib.Path(__file__).resolve().parent / "base/redis-users.acl"
READS = [
    ["GET", "voteflow:total"], ["HGETALL", "voteflow:votes:band"], ["ZRANGE", "voteflow:leaderboard", "0", "-1", "REV",
                                                                      "WITHSCORES"],
    ["XRANGE", "voteflow:history:band", "-", "+"], ["PING"],
]
WRITES = [
    ["SET", "voteflow:total", "0"], ["DEL", "voteflow:total"], ["HSET", "voteflow:votes:band", "x", "1"],
    ["HDEL", "voteflow:votes:band", "x"], ["ZADD", "voteflow:leaderboard", "1", "x"], ["XADD", "voteflow:s", "*", "a", "1"],
    ["EXPIRE", "voteflow:total", "1"], ["RENAME", "voteflow:total", "x"], ["FLUSHALL"], ["FLUSHDB"],
    ["CONFIG", "SET", "maxmemory", "1"], ["EVAL", "return 1", "0"], ["SCRIPT", "FLUSH"], ["KEYS", "*"],
    ["CLIENT", "KILL", "ID", "1"], ["SHUTDOWN"], ["ACL", "SETUSER", "x"],
]
EXPECT = {
    "consumer": {"allowed": READS + [["EVALSHA", "0" * 40, "1", "k"], ["SCRIPT", "LOAD", "return 1"],
                                     ["HINCRBY", "voteflow:votes:band", "x", "1"]], "refused": []},
    "grafana": {"allowed": READS, "refused": WRITES + [["INFO"]]},
    "insight": {
        "allowed": READS + [["INFO"], ["INFO", "keyspace"], ["DBSIZE"], ["SCAN", "0", "MATCH", "voteflow:*", "COUNT", "500"],
                            ["TYPE", "voteflow:total"], ["TTL", "voteflow:total"], ["PTTL", "voteflow:total"],
                            ["MEMORY", "USAGE", "voteflow:total"], ["HSCAN", "voteflow:votes:band", "0"],
                            ["ZSCAN", "voteflow:leaderboard", "0"], ["SSCAN", "voteflow:set", "0"],
                            ["LRANGE", "voteflow:list", "0", "-1"], ["STRLEN", "voteflow:total"], ["HLEN", "voteflow:votes:band"],
                            ["ZCARD", "voteflow:leaderboard"], ["XINFO", "STREAM", "voteflow:history:band"],
                            ["CONFIG", "GET", "maxmemory"], ["CLIENT", "SETNAME", "redisinsight"]],
        "refused": WRITES,
    },
}


def users():
    for line in USERS.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, *rules = line.split()
            yield name, rules


def main():
    client = redis.Redis(port=int(sys.argv[1]), decode_responses=True)
    broken, checked = [], 0
    defined = dict(users())
    if set(defined) != set(EXPECT):
        broken.append(f"users {sorted(defined)}, the check knows {sorted(EXPECT)}")
    for name, rules in defined.items():
        probe = f"voteflow-acl-check-{name}-{uuid.uuid4().hex[:8]}"
        client.execute_command("ACL", "SETUSER", probe, "reset", "on", "nopass", *rules)
        try:
            for want, commands in (("allowed", EXPECT.get(name, {}).get("allowed", [])),
                                   ("refused", EXPECT.get(name, {}).get("refused", []))):
                for command in commands:
                    answer = client.execute_command("ACL", "DRYRUN", probe, *command)
                    allowed = answer == "OK"
                    checked += 1
                    if allowed != (want == "allowed"):
                        broken.append(f"{name} {'may not' if want == 'allowed' else 'may'} run {' '.join(command)}: {answer}")
        finally:
            client.execute_command("ACL", "DELUSER", probe)
    for message in broken:
        print(f"redis users: BROKEN: {message}")
    print(f"redis users: {checked - len(broken)} of {checked} ACL DRYRUN checks hold ({', '.join(defined)})")
    sys.exit(1 if broken else 0)


if __name__ == "__main__":
    main()
