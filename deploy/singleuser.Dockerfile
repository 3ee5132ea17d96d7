# The attnlab single-user server for Zero to JupyterHub (deploy/z2jh-values.yaml): Debian 12 with Node 20, the attnlab
# build and its native kernels, the attnlab kernel installed system-wide, and Debian's jupyterhub 3.0 single-user server
# (match the hub: z2jh chart 2.x runs JupyterHub 3.x). Build from the repository root:
#   docker build -f deploy/singleuser.Dockerfile -t registry.example.org/attnlab-singleuser:0.1.0 .
FROM node:20-bookworm

ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends jupyterhub jupyter-notebook jupyter-nbconvert python3-nbclient \
      jupyter-client libopenblas-dev g++ make \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/attnlab
COPY package.json package-lock.json tsconfig.json ./
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY bin ./bin
COPY kernel ./kernel
COPY lib ./lib
COPY scripts ./scripts
COPY notebooks ./notebooks
COPY data ./data
RUN node scripts/setup.mjs --build \
 && node bin/attnlab.js kernel install --prefix /usr/local \
 && chmod -R a+rX /opt/attnlab

# One native thread per kernel: the pod's CPU limit is what the student gets.
ENV ATTNLAB_THREADS=1 OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1

# z2jh starts the server as uid 1000 with the student's volume on /home/jovyan.
RUN useradd -m -u 1000 -s /bin/bash jovyan
USER 1000
WORKDIR /home/jovyan
EXPOSE 8888
CMD ["jupyterhub-singleuser"]
