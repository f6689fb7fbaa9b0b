"""Build rows: `docker compose build` through each daemon's BuildKit, and
the classic builder (`DOCKER_BUILDKIT=0 docker build --no-cache`)."""

import os
import subprocess
import time

from lib.catalog import Target, ms, row
from lib.daemon import paired, timed
from rows.containers import ensure_busybox

# -- docker compose build through each daemon's BuildKit ---------------------

# Ten instructions; the build arg NONCE changes every sample and is used by
# the first RUN, so no step after FROM can come from the cache.
COMPOSE_DOCKERFILE = """FROM busybox:latest
ARG NONCE
RUN echo "$NONCE" > /nonce
WORKDIR /app
COPY a.txt ./
ENV GREETING=hello
RUN cat a.txt /nonce > both.txt
COPY b.txt ./
RUN wc -c both.txt b.txt > sizes.txt
LABEL bench=compose-build
"""
COMPOSE_YAML = """services:
  app:
    build:
      context: .
      args:
        NONCE: ${NONCE:-0}
"""


def compose_project(base):
    path = os.path.join(base, "compose-build")
    if os.path.exists(path):
        return path
    os.makedirs(path)
    for name, text in (("Dockerfile", COMPOSE_DOCKERFILE), ("compose.yaml", COMPOSE_YAML),
                       ("a.txt", "a" * 4096 + "\n"), ("b.txt", "b" * 65536 + "\n")):
        with open(os.path.join(path, name), "w") as f:
            f.write(text)
    return path


def compose_build(dm, path, nonce):
    """`docker compose build` as a user runs it: no DOCKER_BUILDKIT, no
    COMPOSE_BAKE, so Compose uses the daemon's BuildKit (docker driver)."""
    env = dict(os.environ, DOCKER_HOST=dm.host, DOCKER_CLI_HINTS="false", NONCE=str(nonce),
               DOCKER_CONFIG=os.path.join(dm.dir, "docker-config"), COMPOSE_ANSI="never")
    for k in ("DOCKER_API_VERSION", "DOCKER_BUILDKIT", "COMPOSE_BAKE", "BUILDX_BUILDER",
              "DOCKER_CONTEXT", "COMPOSE_FILE", "COMPOSE_PROJECT_NAME"):
        env.pop(k, None)
    r = subprocess.run(["docker", "compose", "-p", "benchbuild", "--progress", "plain", "build"],
                       cwd=path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=300)
    out = r.stdout.decode(errors="replace")
    if r.returncode != 0:
        raise RuntimeError(f"{dm.label}: docker compose build failed:\n{out[-2000:]}")
    return out


@row("docker compose build, 10 steps, BuildKit (uncached)")
def r_compose_build(b, d, ctx):
    ensure_busybox(b, d)
    path = compose_project(os.path.dirname(b.dir))
    nonce = [0]

    def once(dm):
        nonce[0] += 1
        t0 = time.perf_counter()
        out = compose_build(dm, path, nonce[0])
        t = time.perf_counter() - t0
        # Through the daemon's own BuildKit, every step built anew (the
        # FROM of a local image may show as CACHED).
        if "instance using docker driver" not in out or out.count("CACHED") > 1:
            raise RuntimeError(f"{dm.label}: not an uncached docker-driver build:\n{out[-2000:]}")
        return t

    try:
        return ms(*paired(b, d, lambda: once(b), lambda: once(d), ctx.runs))
    finally:
        for dm in (b, d):
            dm.docker("rmi", "-f", "benchbuild-app", check=False)
            dm.docker("builder", "prune", "-af", check=False)


# -- the classic builder: ten RUN steps, each a container, none cached ------

CLASSIC_DOCKERFILE = "FROM busybox:latest\n" + "".join(
    f"RUN echo step{i} > /step{i}\n" for i in range(1, 11))
CLASSIC_TAG = "berth-bench/classic:latest"


def classic_context(base):
    path = os.path.join(base, "classic-build")
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "Dockerfile"), "w") as f:
        f.write(CLASSIC_DOCKERFILE)
    return path


def classic_build(dm, path):
    r = dm.docker("build", "--no-cache", "-t", CLASSIC_TAG, ".", cwd=path, check=False,
                  env=dm.env(DOCKER_BUILDKIT="0"), timeout=300)
    if r.returncode != 0 or r.stdout.count(b"Step ") < 11:
        raise RuntimeError(f"{dm.label}: classic build failed:\n"
                           f"{(r.stdout + r.stderr).decode(errors='replace')[-2000:]}")


@row("classic build, 10 RUN steps, no cache (DOCKER_BUILDKIT=0)", target=Target("<=", 0.3))
def r_classic_build(b, d, ctx):
    ensure_busybox(b, d)
    path = classic_context(os.path.dirname(b.dir))
    try:
        return ms(*paired(b, d, lambda: timed(lambda: classic_build(b, path)),
                          lambda: timed(lambda: classic_build(d, path)), min(ctx.runs, 10)))
    finally:
        for dm in (b, d):
            dm.docker("rmi", "-f", CLASSIC_TAG, check=False)
            dm.docker("image", "prune", "-f", check=False)
