# syntax=docker/dockerfile:1
# The gateway: GraphQL control plane, inference data plane, FIMA-Q plugin (jobs over NATS when
# NATS_URL is set). Build from the repository root:
#   docker build -f deploy/docker/gateway.Dockerfile -t vit-gateway .

# Build: dev dependencies and a compiler for native modules, then only what runs is kept.
FROM node:20-bookworm AS build
WORKDIR /app
COPY package.json package-lock.json ./
# The CPU build of onnxruntime-node is in its package (its CUDA provider download is skipped;
# build with ONNXRUNTIME_NODE_INSTALL=cuda12 on a CUDA 12 base for GPU inference); tfjs-node-gpu
# (optional) is the GPU worker's.
RUN ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund --omit=optional
COPY tsconfig.json tsconfig.build.json ./
COPY gateway gateway
COPY plugins plugins
COPY schema schema
COPY workers workers
COPY migrations migrations
RUN npm run build && npm prune --omit=dev --omit=optional

FROM node:20-bookworm-slim
ENV NODE_ENV=production \
    PORT=8080 \
    DATA_DIR=/data
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules node_modules
COPY --from=build /app/dist dist
# The demo models and data: LOCAL_PATH_ROOTS includes them by default.
COPY deploy/demo/models deploy/demo/models
COPY deploy/demo/data deploy/demo/data
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+process.env.PORT+'/v2/health/ready').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
CMD ["node", "dist/gateway/main.js"]
