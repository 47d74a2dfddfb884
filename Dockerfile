# Multi-stage: build the one executable (node daemon, CLI and standalone CNI, with kubectl-sriov and
# sriov-underlay-cni as links to it) and the shim, then ship them on a minimal Debian base. The
# executable embeds Node and the native addon, so the runtime image needs only glibc
# (docs/packaging.md, "Layout of dist/ and the image").
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
# COPY keeps the links as links: the executable is in the image once.
COPY --from=build /src/dist/bin/ /opt/sriov-underlay/bin/
COPY deploy/60-primary.conflist /opt/sriov-underlay/conf/10-sriov-underlay.conflist
COPY scripts/install-cni.sh /opt/sriov-underlay/install-cni.sh
# Every container of deploy/40-daemonset.yaml runs this entrypoint with its own --components;
# each gets only the capabilities its component needs (see docs/security.md).
USER 0
ENTRYPOINT ["/opt/sriov-underlay/bin/sriov-underlay-node"]
