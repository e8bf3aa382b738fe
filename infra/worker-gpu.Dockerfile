# Dataflow GPU worker image (custom SDK container): CUDA and cuDNN from NVIDIA's runtime image,
# Python 3.11, Beam's SDK harness boot binary from Beam's own image, TensorFlow with its CUDA
# libraries, this repository's pinned stack and the package itself.
#   docker build -f infra/worker-gpu.Dockerfile -t REGION-docker.pkg.dev/PROJECT/REPOSITORY/worker-gpu:TAG .
#   ... --sdk_container_image REGION-docker.pkg.dev/PROJECT/REPOSITORY/worker-gpu:TAG \
#       --accelerator "type:nvidia-tesla-t4;count:1;install-nvidia-driver"
# Dataflow installs the NVIDIA driver on the VM (install-nvidia-driver); the image brings CUDA.

# The boot binary must come from the SDK image of the job's Beam version (requirements.txt).
FROM apache/beam_python3.11_sdk:2.77.0 AS beam_sdk

FROM nvidia/cuda:12.5.1-cudnn-runtime-ubuntu22.04

# NUMBA_*: numba caches what it compiles in a directory baked into the image, for a generic CPU
# (numba ignores a cache made on another CPU model).
ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    NUMBA_CACHE_DIR=/opt/numba-cache \
    NUMBA_CPU_NAME=generic

# Ubuntu 22.04 ships Python 3.10; the job and its pickled code need 3.11 (deadsnakes).
# build-essential and python3.11-dev: pdqhash builds from source.
RUN apt-get update \
    && apt-get install -y --no-install-recommends software-properties-common gpg-agent \
    && add-apt-repository -y ppa:deadsnakes/ppa \
    && apt-get update \
    && apt-get install -y --no-install-recommends python3.11 python3.11-venv python3.11-dev build-essential \
    && rm -rf /var/lib/apt/lists/*

# A virtualenv first on PATH: the boot binary starts the SDK harness with this `python`.
RUN python3.11 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
RUN pip install --upgrade pip

WORKDIR /opt/deepfake-defense
COPY requirements.txt setup.py README.md ./
# The same TensorFlow as requirements.txt, with the CUDA and cuDNN wheels it is built against.
RUN pip install "tensorflow[and-cuda]==2.21.0" -r requirements.txt

COPY pipelines pipelines
COPY transforms transforms
COPY enforcement enforcement
COPY models models
COPY schemas schemas
COPY warehouse warehouse
COPY policies policies
RUN DEEPFAKE_PACKAGE=serving pip install --no-deps .

# librosa compiles numba code on first use (~20 s): pay it once here, not on every worker.
RUN python -c 'import numpy as np, librosa; librosa.stft(np.zeros(4000, np.float32), n_fft=512)' \
    && chmod -R a+rwX "$NUMBA_CACHE_DIR"

COPY --from=beam_sdk /opt/apache/beam /opt/apache/beam
ENTRYPOINT ["/opt/apache/beam/boot"]
