# Dataflow worker image (custom SDK container): Beam's Python 3.11 SDK image, this repository's
# pinned stack and the package itself, with librosa's numba code compiled at build time.
#   docker build -f infra/worker-cpu.Dockerfile -t REGION-docker.pkg.dev/PROJECT/REPOSITORY/worker-cpu:TAG .
#   ... --sdk_container_image REGION-docker.pkg.dev/PROJECT/REPOSITORY/worker-cpu:TAG
# The SDK image's Beam is the job's: its tag is requirements.txt's apache-beam version.
FROM apache/beam_python3.11_sdk:2.77.0

# numba caches what it compiles here, baked into the image and writable by whoever the worker runs
# as; compiled for a generic CPU, since numba ignores a cache made on another CPU model.
ENV NUMBA_CACHE_DIR=/opt/numba-cache \
    NUMBA_CPU_NAME=generic
WORKDIR /opt/deepfake-defense

COPY requirements.txt setup.py README.md ./
RUN pip install --no-cache-dir -r requirements.txt

COPY pipelines pipelines
COPY transforms transforms
COPY enforcement enforcement
COPY models models
COPY schemas schemas
COPY warehouse warehouse
COPY policies policies
RUN DEEPFAKE_PACKAGE=serving pip install --no-cache-dir --no-deps .

# librosa compiles numba code on first use (~20 s): pay it once here, not on every worker.
RUN python -c 'import numpy as np, librosa; librosa.stft(np.zeros(4000, np.float32), n_fft=512)' \
    && chmod -R a+rwX "$NUMBA_CACHE_DIR"
