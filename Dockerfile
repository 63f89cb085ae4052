# svd-demo GPU image (also usable as a Hugging Face Spaces Docker image).
#
#   docker build -t svd-demo .
#   docker run --gpus all -p 7860:7860 -v svd-data:/data svd-demo          # then open http://127.0.0.1:7860
#   docker run --gpus all -p 7860:7860 -v svd-data:/data -e HF_TOKEN svd-demo   # gated models: pass the token at run time
#
# Base: the official PyTorch runtime image with exactly the torch that requirements.txt pins (2.13.0), so the pip
# step below keeps the image's CUDA build instead of downloading torch again. CUDA 12.6 runs on the widest range of
# drivers; pass --build-arg BASE_IMAGE=pytorch/pytorch:2.13.0-cuda13.0-cudnn9-runtime for a newer CUDA.
ARG BASE_IMAGE=pytorch/pytorch:2.13.0-cuda12.6-cudnn9-runtime
FROM ${BASE_IMAGE}

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_BREAK_SYSTEM_PACKAGES=1 \
    GRADIO_ANALYTICS_ENABLED=False \
    GRADIO_SERVER_NAME=0.0.0.0 \
    GRADIO_SERVER_PORT=7860 \
    HF_HOME=/data/hf-cache

# Hugging Face Spaces runs the container as uid 1000. Ubuntu 24.04 based images already have a user ("ubuntu") with
# that uid: replace it with "user". The model cache lives in /data, a volume (Spaces mounts persistent storage there).
RUN existing="$(getent passwd 1000 | cut -d: -f1)" \
    && if [ -n "$existing" ]; then userdel --remove "$existing" 2>/dev/null || userdel "$existing"; fi \
    && useradd --create-home --uid 1000 --shell /bin/bash user \
    && mkdir -p /data/hf-cache \
    && chown -R user:user /data

# Dependencies before the code: editing the code re-runs only the layers from `COPY . .` on.
COPY requirements.txt /tmp/requirements.txt
RUN python -m pip install -r /tmp/requirements.txt

# The code belongs to root and is read-only to the app's user (outside its home, so that it cannot move the folder
# away either): a compromised app process cannot rewrite what runs after a restart. The app writes only to its
# temporary folders, its home and /data.
WORKDIR /app
COPY . .
RUN chmod -R u=rwX,go=rX /app
USER user
ENV HOME=/home/user

VOLUME /data
EXPOSE 7860

# No curl in the image: Python fetches the page (the port follows GRADIO_SERVER_PORT when it is overridden).
HEALTHCHECK --interval=30s --timeout=10s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('GRADIO_SERVER_PORT', '7860') + '/', timeout=8)"]

CMD ["python", "app.py"]
