# syntax=docker/dockerfile:1
# deployctl: one image, two entry points.
#
#   operator:  ENTRYPOINT deployctl, CMD controller      (manifests/operator/deployment.yaml)
#   demo app:  command: [python, -m, sandbox.demo_app]   (e2e/, examples/services/)
#
# One image rather than a Dockerfile.demo: the demo app is part of the same wheel
# (sandbox/ needs only prometheus-client, a runtime dependency already), so a second
# image would duplicate every layer and be one more thing to build and load into kind.
#
# Runs as a numeric non-root user with a read-only root filesystem: Python writes no
# bytecode at run time (it is compiled at build time) and tempfile uses /tmp, which the
# Deployment mounts as an emptyDir. The final stage has no compiler and no build tools:
# only the base image's Python and the virtualenv copied from the builder.
#
# Reproducible: the base is pinned by digest and the Python packages are installed from
# requirements/runtime.lock with their hashes (pip --require-hashes), so the image built
# next month is the one tested today.
#
# The digest is that of the tag python:3.11-slim-bookworm (multi-platform index) as
# published in a public project's record of registry manifests; it was not fetched from
# this project's build machines, which reach no image registry. Check and refresh it
# where a registry is reachable, and update it deliberately (a reviewed change):
#   docker buildx imagetools inspect python:3.11-slim-bookworm --format '{{json .Manifest.Digest}}'
# or pass another pinned base: docker build --build-arg PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:...
ARG PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# The same path as in the final stage: a virtualenv's scripts hard-code it.
RUN python -m venv /opt/deployctl
# Dependencies first, exactly as locked (each file checked against its hash), so code
# changes reuse this layer.
COPY requirements/runtime.lock ./requirements/
RUN /opt/deployctl/bin/pip install --require-hashes -r requirements/runtime.lock
COPY pyproject.toml README.md ./
COPY controller ./controller
COPY strategies ./strategies
COPY sandbox ./sandbox
# A regular (non-editable) install, bytecode compiled now because the root filesystem
# is read-only at run time; then pip goes: nothing installs packages in production.
RUN /opt/deployctl/bin/pip install --no-deps . \
    && /opt/deployctl/bin/python -m compileall -q /opt/deployctl/lib \
    && /opt/deployctl/bin/pip uninstall -y pip setuptools wheel \
    && /opt/deployctl/bin/deployctl --help > /dev/null

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="deployctl" \
      org.opencontainers.image.description="Progressive delivery for Kubernetes" \
      org.opencontainers.image.source="https://github.com/deployctl/deployctl" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /opt/deployctl /opt/deployctl
ENV PATH=/opt/deployctl/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
# 65532 is the conventional "nonroot" id (distroless); numeric so that the kubelet can
# verify runAsNonRoot without an /etc/passwd lookup.
USER 65532:65532
WORKDIR /tmp
EXPOSE 8080
ENTRYPOINT ["deployctl"]
CMD ["controller"]
