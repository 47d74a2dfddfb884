# For users with a registry and a Docker/BuildKit builder. `npm run image` builds the same image
# without either (docs/packaging.md, "The container image"): both take their contents from
# scripts/image-contents.mjs, through `scripts/image.mjs --rootfs`, and test/unit/dockerfile.test.ts
# keeps the lines below in step with that list.
#   docker build --build-arg REVISION=$(git rev-parse HEAD) \
#     --build-arg CREATED=$(git log -1 --format=%cI) -t REGISTRY/sriov-underlay:0.1.0 .
FROM node:20-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ binutils dash coreutils diffutils ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build && node scripts/image.mjs --rootfs /rootfs

# Nothing but the list: the executables, the libraries ldd names, sh and the coreutils that
# install-cni.sh runs, CA certificates, passwd/group, the install script and the conflists.
FROM scratch
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=1970-01-01T00:00:00Z
COPY --from=build /rootfs/ /
LABEL org.opencontainers.image.title="sriov-underlay" \
      org.opencontainers.image.description="SR-IOV underlay CNI, device plugin, node agent and ops CLI" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
WORKDIR /
# The node daemon needs root for kubelet's sockets and host paths, and no capabilities (see docs/security.md).
USER 0:0
ENTRYPOINT ["/opt/sriov-underlay/bin/sriov-underlay-node"]
