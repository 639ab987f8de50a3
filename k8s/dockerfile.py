"""Checks the Dockerfile the way Docker's build cache treats it: an instruction after an
`ARG` in its stage is keyed on that ARG's value, so any RUN that compiles must not follow
`ARG BIN`, or the five images (one per BIN) compile everything five times.

    python3 k8s/dockerfile.py [Dockerfile]

Also: the build stage compiles every binary the runtime stage can copy, dependencies are
cooked before the sources are copied in, and the runtime stage copies /bins/${BIN}.
Exits 1 with one line per broken promise.
"""

import pathlib
import re
import sys

BINARIES = ["rest-client", "rest-server", "grpc-client", "grpc-server", "consumer"]


def stages(text):
    """[(name, [(instruction, argument text)])], continuation lines joined."""
    out = []
    for line in text.replace("\\\n", " ").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            name = re.search(r"\bAS\s+(\S+)", rest, re.IGNORECASE)
            out.append((name.group(1) if name else str(len(out)), []))
        elif out:
            out[-1][1].append((instruction, rest))
    return out


def main():
    path = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parent.parent / "Dockerfile")
    built = stages(path.read_text())
    broken = []
    for index, (name, instructions) in enumerate(built):
        keyed = False
        last = index == len(built) - 1
        for instruction, rest in instructions:
            if instruction == "ARG" and rest.split("=")[0].strip() == "BIN":
                keyed = True
                if not last:
                    broken.append(f"stage {name}: declares ARG BIN; everything after it is built once per binary")
            if instruction == "RUN" and keyed and ("cargo" in rest or "apt-get" in rest):
                broken.append(f"stage {name}: `{rest[:60]}` runs after ARG BIN, so once per binary")
    build = dict(built).get("build", [])
    runs = [rest for instruction, rest in build if instruction == "RUN"]
    copies = [i for i, (instruction, rest) in enumerate(build) if instruction == "COPY" and rest.startswith(". ")]
    cook = [i for i, (instruction, rest) in enumerate(build) if instruction == "RUN" and "cargo chef cook" in rest]
    if not cook or not copies or cook[0] > copies[0]:
        broken.append("stage build: the dependencies are not cooked before the sources are copied in")
    compile_all = " ".join(r for r in runs if "cargo build" in r)
    for binary in BINARIES:
        if f"target/release/{binary}" not in compile_all:
            broken.append(f"stage build: {binary} is not built and copied to /bins")
    final = built[-1][1] if built else []
    if not any(i == "COPY" and "/bins/${BIN}" in r for i, r in final):
        broken.append("runtime stage: does not copy /bins/${BIN}")
    for message in broken:
        print(f"Dockerfile: BROKEN: {message}")
    if not broken:
        print(f"Dockerfile: {len(built)} stages; nothing is compiled per binary, and the build stage makes all "
              f"{len(BINARIES)} binaries once")
    sys.exit(1 if broken else 0)


if __name__ == "__main__":
    main()
