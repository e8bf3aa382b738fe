# Dataflow worker image: Beam's Python 3.11 SDK image plus this repository's pinned stack.
#   docker build -f infra/worker.Dockerfile -t REGION-docker.pkg.dev/PROJECT/REPO/deepfake-worker:TAG .
#   python -m pipelines.batch ... --runner DataflowRunner --sdk_container_image ...:TAG
# For GPU workers build from a CUDA-enabled base with the same steps and install
# tensorflow[and-cuda]==2.21.0 in place of tensorflow.
FROM apache/beam_python3.11_sdk:2.77.0

WORKDIR /opt/deepfake-defense
COPY requirements.txt setup.py README.md ./
RUN pip install --no-cache-dir -r requirements.txt
COPY pipelines pipelines
COPY transforms transforms
COPY models models
COPY schemas schemas
COPY policies policies
RUN pip install --no-cache-dir --no-deps .
# librosa compiles numba code on first use (~20 s); pay it once at build time, not per worker.
RUN python -c "import numpy as np, librosa; librosa.stft(np.zeros(4000, np.float32), n_fft=512)"
