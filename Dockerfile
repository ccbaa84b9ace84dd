# The crowdcount worker image: `crowdcount worker` on a TensorFlow GPU base, model weights inside.
#
#   docker build -t crowdcount-worker .                                    # GPU (ECS g4dn.* instances)
#   docker build --build-arg BASE_IMAGE=tensorflow/tensorflow:2.18.0 \
#                -t crowdcount-worker:latest-cpu .                          # CPU variant, same Dockerfile
#
# `crowdcount deploy` builds it (add --cpu for the CPU variant, which swaps the base image for the same
# tag without "-gpu"). The TensorFlow GPU image brings CUDA and cuDNN; the ECS GPU-optimized AMI brings
# the NVIDIA driver and exposes the GPU that the task definition's resourceRequirements reserves.
ARG BASE_IMAGE=tensorflow/tensorflow:2.18.0-gpu
# checkov:skip=CKV_DOCKER_7:the base is pinned to a release (2.18.0) through the BASE_IMAGE build argument, which checkov cannot resolve; the worker image itself is deployed by digest
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_CPP_MIN_LOG_LEVEL=2

# OpenCV (opencv-python) needs libGL and GLib at import time. Their versions are the base release's (pinned by
# BASE_IMAGE): pinning them here would break the build at every security update of the distribution.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# The package and its dependencies. The base image's TensorFlow satisfies `tensorflow>=2.15`, so pip keeps
# it (and its CUDA build); the default models ship inside the package (crowdcount/models/) or inside PyPI
# wheels (mtcnn, face_recognition_models), so nothing is downloaded when a task starts.
COPY pyproject.toml setup.py README.md ./
COPY crowdcount ./crowdcount
# No extras: neither moto's server (crowdcount[sandbox]) nor the Docker SDK (crowdcount[deploy]) is in the image.
# Then fail the build, not the first job, if a default model's weights are missing or do not load.
RUN python -m pip install . \
    && python -c "from crowdcount.config import DEFAULTS, build_detectors; \
[d.load() for d in build_detectors(DEFAULTS['human_detection']['detectors'])]; \
print('default detectors load')"

# The configuration the worker reads (./variables.json); the task definition's CROWDCOUNT_* environment
# variables override the queue, table, bucket and grace period.
COPY variables.json ./

RUN useradd --create-home --uid 10001 --user-group crowdcount
USER 10001:10001

# The worker touches this file at every receive and every heartbeat: unhealthy when it has not for 5 minutes
# (a hung worker; a long job still beats every worker.heartbeat_seconds). The start period covers model loading.
ENV CROWDCOUNT_HEALTH_FILE=/tmp/crowdcount-worker.alive
HEALTHCHECK --interval=60s --timeout=10s --start-period=300s --retries=3 \
    CMD ["python", "-c", "import os, sys, time; sys.exit(time.time() - os.path.getmtime(os.environ['CROWDCOUNT_HEALTH_FILE']) > 300)"]

ENTRYPOINT ["crowdcount", "worker"]
