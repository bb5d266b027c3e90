# syntax=docker/dockerfile:1
# The CPU quantization worker: pulls jobs from NATS JetStream (NATS_URL is required here; the
# embedded worker is the gateway's child process instead). tfjs runs on its wasm backend.
#   docker build -f deploy/docker/worker.Dockerfile -t vit-gateway-worker .

FROM node:20-bookworm AS build
WORKDIR /app
COPY package.json package-lock.json ./
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
    DATA_DIR=/data
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules node_modules
COPY --from=build /app/dist dist
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
# A worker has no port; it is healthy while it can reach NATS, where its jobs come from.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "const u=new URL(process.env.NATS_URL);require('net').connect(Number(u.port)||4222,u.hostname).on('connect',()=>process.exit(0)).on('error',()=>process.exit(1))"]
CMD ["node", "dist/workers/main.js"]
