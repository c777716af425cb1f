# holdfast gateway image: `docker build -t holdfast .` then
#   docker run -p 8080:8080 -e HOLDFAST_TOKEN_SECRET=... holdfast [serve flags...]
# See docs/deploy.md (flags, secrets, read-only root, Kubernetes).
#
# The base image is an argument so that the same file builds from a local base where no
# container registry is reachable (deploy/docker/node-base.sh makes one); the build stages use
# node, npm and /bin/sh from it, the final stage only node.
ARG NODE_IMAGE=node:24-bookworm-slim

# ---- manifests: what `npm ci` needs, and nothing else, so the dependency layers below are
# rebuilt only when a package.json or the lockfile changes, not on every source edit.
FROM ${NODE_IMAGE} AS manifests
WORKDIR /src
COPY package.json package-lock.json ./
COPY packages/protocol/package.json packages/protocol/
COPY packages/server/package.json packages/server/
COPY packages/client/package.json packages/client/
COPY packages/cli/package.json packages/cli/

# ---- production dependencies only (what the final image ships).
# npm takes packages from the registry. A build without network access mounts a populated npm
# cache and passes npm_config_cache/npm_config_offline as build arguments (docs/deploy.md,
# "Building offline"); both are unset in an ordinary build. Install scripts are not run: every
# native dependency ships prebuilt binaries. --omit=optional leaves out the uWebSockets.js
# transport (115 MB of binaries, none for Node 24; docs/transports.md) and ws's utf-8-validate.
FROM manifests AS deps
ARG npm_config_cache
ARG npm_config_offline
RUN ["npm", "ci", "--omit=dev", "--omit=optional", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=warn"]

# ---- build: every dependency of every workspace (TypeScript, esbuild, and what the React
# binding and the CLI's bench compile against), then the packages' dist/ and the demo and
# dashboard bundles. The other workspaces' manifests come in here only, so that none of their
# dependencies reaches the production install above.
FROM manifests AS build
COPY packages/react/package.json packages/react/
COPY bench/package.json bench/
COPY test/package.json test/
COPY fixtures/react18/package.json fixtures/react18/
ARG npm_config_cache
ARG npm_config_offline
RUN ["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=warn"]
COPY tsconfig.base.json ./
COPY packages/ packages/
RUN ["npm", "run", "build"]

# ---- the image: node, the production node_modules, the compiled packages. Owned by root and
# run as an unprivileged user, so the process cannot change its own code; it writes nothing to
# disk (logs go to stdout), so the root filesystem can be mounted read-only.
FROM ${NODE_IMAGE}
ENV NODE_ENV=production
WORKDIR /app
# The manifests with their production node_modules (the root's and any a package keeps nested),
# then each package's compiled output.
COPY --from=deps /src/ ./
COPY --from=build /src/packages/protocol/dist/ packages/protocol/dist/
COPY --from=build /src/packages/server/dist/ packages/server/dist/
COPY --from=build /src/packages/client/dist/ packages/client/dist/
COPY --from=build /src/packages/cli/dist/ packages/cli/dist/
COPY --from=build /src/packages/cli/public/ packages/cli/public/
COPY deploy/docker/healthcheck.mjs ./

# A numeric user (the official image's `node`), so that Kubernetes' runAsNonRoot can verify it.
USER 1000:1000
EXPOSE 8080
# SIGTERM drains: /readyz turns 503, clients are told to reconnect elsewhere over the drain
# window (--drain-ms, default 10 s), then the process exits 0. Give the container a stop timeout
# longer than that (docker stop -t / terminationGracePeriodSeconds; docs/deploy.md).
STOPSIGNAL SIGTERM
# /healthz: the process is alive. Readiness (/readyz) is for load balancers, not for restarts.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 CMD ["node", "/app/healthcheck.mjs"]
# Exec form, no shell: node is PID 1 and gets the signals itself (SIGTERM drains, SIGHUP reloads
# the workers of --workers N). Flags given to `docker run IMAGE ...` are appended.
ENTRYPOINT ["node", "/app/packages/cli/dist/bin.js", "serve", "--host", "0.0.0.0"]
