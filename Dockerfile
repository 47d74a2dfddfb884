# Multi-stage: build the three single executables, then ship them on a minimal Debian base.
# The executables embed Node and the native addon, so the runtime image needs only glibc.
FROM node:20-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ binutils \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build

FROM debian:bookworm-slim
LABEL org.opencontainers.image.title="sriov-underlay" \
      org.opencontainers.image.description="SR-IOV underlay CNI, device plugin, node agent and ops CLI"
COPY --from=build /src/dist/bin/ /opt/sriov-underlay/bin/
COPY deploy/60-primary.conflist /opt/sriov-underlay/conf/10-sriov-underlay.conflist
COPY scripts/install-cni.sh /opt/sriov-underlay/install-cni.sh
# The node daemon needs root for kubelet's sockets and host paths, and no capabilities (see docs/security.md).
USER 0
ENTRYPOINT ["/opt/sriov-underlay/bin/sriov-underlay-node"]
