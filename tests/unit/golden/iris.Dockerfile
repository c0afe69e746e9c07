# Rendered by Conduit for iris. Do not edit: change conduit.yaml or override a block.

# The engine's uv helper image: `conduit build` names it by the image id it recorded when it
# made it (conduit_build/image/uv.py), never by its tag, which anyone on the engine can move.
# The tag is the default for a `docker build` of this context by hand.
ARG CONDUIT_UV_IMAGE=conduit-uv:0.13.9
FROM $CONDUIT_UV_IMAGE AS uv
FROM python:3.11-slim AS builder
# Package indexes, find-links and certificates live in this stage only: the runtime stage
# below copies the finished venv and nothing else from here. Only the index settings that are
# set are declared (each instruction is a step of its own, a third of a second on a busy engine).
ENV UV_SYSTEM_CERTS=1 UV_NO_PROGRESS=1 UV_NO_CACHE=1 UV_LINK_MODE=hardlink UV_PYTHON=/opt/venv/bin/python NO_COLOR=1
# uv, pinned, from the engine's helper image (conduit_build/image/uv.py makes it once, like a
# base image, and names it by the id it recorded): no pip install of uv in every cold build.
# It never leaves this stage.
COPY --from=uv /uv /opt/uv/bin/uv
# Python deps, resolved here (no conduit.lock): rebuilt only when requirements.txt changes. What
# was resolved is kept as a lock in the venv (`conduit lock --from-image` reads it), then installed.
COPY requirements.txt lock-header.txt /tmp/conduit/
RUN python3 -m venv --without-pip /opt/venv && cd /tmp/conduit \
 && /opt/uv/bin/uv pip compile --quiet --generate-hashes --no-header requirements.txt -o resolved.txt \
 && { ! grep -q '^nvidia-' resolved.txt || { echo "conduit: CUDA wheels resolved for a cpu target:" $(grep -o '^nvidia-[a-z0-9-]*' resolved.txt | head -3) >&2; exit 1; }; } \
 && cat lock-header.txt resolved.txt > /opt/venv/conduit.lock \
 && /opt/uv/bin/uv pip sync --require-hashes /opt/venv/conduit.lock \
 && { /opt/venv/bin/python -m compileall -q -j 0 --invalidation-mode unchecked-hash -x '/tests?/' /opt/venv/lib || true; } \
 && find /opt/venv -exec touch -h -d @0 {} + && touch -h -d @0 /opt /tmp
# The server runtime, byte-compiled here because the runtime user cannot write .pyc files.
COPY conduit_runtime/ /opt/conduit/conduit_runtime/
COPY main.py /opt/conduit/main.py
RUN python3 -m compileall -q --invalidation-mode unchecked-hash /opt/conduit && find /opt/conduit -exec touch -h -d @0 {} + && touch -h -d @0 /opt

FROM python:3.11-slim

RUN useradd --system --uid 10001 --gid 0 --home-dir /app --no-create-home conduit
COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /opt/conduit /opt/conduit
ENV PATH=/opt/venv/bin:$PATH PYTHONPATH=/opt/conduit PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
# The root filesystem may be read-only (docker run --read-only, Kubernetes' readOnlyRootFilesystem)
# with a tmpfs on /tmp: libraries that cache under $HOME (Hugging Face, torch, matplotlib) write there.
ENV HOME=/tmp/conduit-home XDG_CACHE_HOME=/tmp/conduit-home/.cache
WORKDIR /app
USER 10001
EXPOSE 8000
# Docker's health is liveness (deploys gate on /ready themselves): /live turns 503 once the
# server was wedged for server.wedge_restart_s, so `unhealthy` means "restart me".
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/live', timeout=2)"]
LABEL org.opencontainers.image.title="iris" \
      org.opencontainers.image.description="Model server built by Conduit" \
      org.opencontainers.image.base.name="python:3.11-slim" \
      org.opencontainers.image.vendor="Conduit"
CMD ["python3", "/opt/conduit/main.py"]
# Model files before code: editing a hook leaves these layers cached.
COPY model/ /app/
COPY code/ /app/
COPY conduit.json /app/conduit.json
