# syntax=docker/dockerfile:1
# The GPU quantization worker: the CPU worker plus @tensorflow/tfjs-node-gpu, which the engine
# picks up as its `tensorflow-gpu` backend. tfjs-node-gpu 4.x links libtensorflow 2.9, built
# for CUDA 11.2+ and cuDNN 8, hence the CUDA 11.8 base. onnxruntime-node's CUDA provider
# needs CUDA 12 and cuDNN 9, which this base lacks: the worker's onnxruntime runs on the CPU,
# and GPU inference belongs to a gateway image built with --onnxruntime-node-install=cuda12.
#   docker build -f deploy/docker/worker-gpu.Dockerfile -t vit-gateway-worker-gpu .
# Run with the NVIDIA container toolkit (docker run --gpus all, or a nvidia.com/gpu request).

FROM node:20-bookworm-slim AS node

# Native modules are built against the runtime's glibc (Ubuntu 22.04), so the build runs on the same base.
FROM nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04 AS build
RUN apt-get update && apt-get install -y --no-install-recommends build-essential python3 ca-certificates \
  && rm -rf /var/lib/apt/lists/*
COPY --from=node /usr/local/bin/node /usr/local/bin/node
COPY --from=node /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/npm
RUN ln -s /usr/local/lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm
WORKDIR /app
COPY package.json package-lock.json ./
# Optional dependencies included: tfjs-node-gpu downloads its libtensorflow (GPU) here;
# onnxruntime-node's CUDA 12 provider would not load on this CUDA 11 base, so it is skipped.
RUN ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY gateway gateway
COPY plugins plugins
COPY schema schema
COPY workers workers
COPY migrations migrations
RUN npm run build && npm prune --omit=dev

FROM nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04
COPY --from=node /usr/local/bin/node /usr/local/bin/node
ENV NODE_ENV=production \
    DATA_DIR=/data
RUN useradd --uid 1000 --create-home worker && mkdir -p /data && chown worker:worker /data
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules node_modules
COPY --from=build /app/dist dist
USER worker
VOLUME ["/data"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "const u=new URL(process.env.NATS_URL);require('net').connect(Number(u.port)||4222,u.hostname).on('connect',()=>process.exit(0)).on('error',()=>process.exit(1))"]
CMD ["node", "dist/workers/main.js"]
