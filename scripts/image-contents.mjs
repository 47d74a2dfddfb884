/**
 * What the sriov-underlay image holds: the one list that `npm run image` (scripts/image.mjs) and the
 * Dockerfile (through `scripts/image.mjs --rootfs`) both build from. Paths in the image are absolute;
 * `src` is relative to the repository. See docs/packaging.md ("The container image").
 *
 * Shared libraries are never listed here: they are whatever `ldd` says each ELF below needs
 * (plus the ELFs in RUNTIME_LOADED), read on the build machine.
 */

export const IMAGE_NAME = 'sriov-underlay';
/** Where everything of ours lives in the image (install-cni.sh's SRC). */
export const PREFIX = '/opt/sriov-underlay';

/**
 * Our executables, from `dist/bin/` (`npm run build`). Change what ships here, and only here.
 * `links` are extra names for the same file (symlinks in the image), for programs that dispatch on
 * their own name.
 */
export const PROGRAMS = [
  // The one executable: the node daemon, and by name the CLI and the standalone CNI.
  {
    src: 'dist/bin/sriov-underlay-node',
    dest: `${PREFIX}/bin/sriov-underlay-node`,
    links: [`${PREFIX}/bin/kubectl-sriov`, `${PREFIX}/bin/sriov-underlay-cni`],
  },
  // The CNI kubelet runs: the static C shim (CNI type `sriov-underlay`), which execs
  // sriov-underlay-cni beside itself when the CNI server cannot take a call.
  { src: 'dist/bin/sriov-underlay', dest: `${PREFIX}/bin/sriov-underlay`, links: [] },
];

/**
 * ELFs that ship inside an executable and are loaded at run time: their libraries must be in the
 * image too, though the file itself is not (the native addon is a SEA asset, see src/native.ts).
 */
export const RUNTIME_LOADED = ['native/build/Release/sriov_native.node'];

/** Plain files of ours. */
export const FILES = [
  { src: 'scripts/install-cni.sh', dest: `${PREFIX}/install-cni.sh`, mode: 0o755 },
  { src: 'deploy/60-primary.conflist', dest: `${PREFIX}/conf/10-sriov-underlay.conflist`, mode: 0o644 },
];

/**
 * Programs from the build machine's Debian that the install script runs (the init container's
 * `command` is `/bin/sh .../install-cni.sh`): dash as /bin/sh, and the coreutils it calls. `package`
 * is checked against dpkg at build time; the Dockerfile's build stage installs these packages.
 */
export const HOST_PROGRAMS = [
  { src: '/bin/dash', dest: '/bin/sh', package: 'dash' },
  { src: '/bin/cp', dest: '/bin/cp', package: 'coreutils' },
  { src: '/bin/mv', dest: '/bin/mv', package: 'coreutils' },
  { src: '/bin/rm', dest: '/bin/rm', package: 'coreutils' },
  { src: '/bin/chmod', dest: '/bin/chmod', package: 'coreutils' },
  { src: '/bin/mkdir', dest: '/bin/mkdir', package: 'coreutils' },
  { src: '/bin/sync', dest: '/bin/sync', package: 'coreutils' },
  { src: '/usr/bin/cmp', dest: '/usr/bin/cmp', package: 'diffutils' },
];

/**
 * The CA bundle, made from the certificates of this Debian package (not the machine's
 * /etc/ssl/certs bundle, which also holds whatever CAs the build machine added locally).
 */
export const CA_BUNDLE = { package: 'ca-certificates', dest: '/etc/ssl/certs/ca-certificates.crt', mode: 0o644 };

/** Files written by the build itself. */
export const GENERATED = [
  { dest: '/etc/passwd', mode: 0o644, text: 'root:x:0:0:root:/root:/sbin/nologin\n' },
  { dest: '/etc/group', mode: 0o644, text: 'root:x:0:\n' },
];

/** Empty directories with their modes (anything else gets 0755 directories). */
export const DIRS = [
  { dest: '/tmp', mode: 0o1777 },
  { dest: '/root', mode: 0o700 },
  { dest: '/run', mode: 0o755 },
];

/**
 * Symlinks of the file system layout (FHS), as Debian's base images have them: /var/run is /run, so
 * a /var/run path (the conflists' agentSocket, a runtime's /var/run/netns) names the same file in
 * the containers as on the host, where the DaemonSet mounts it under /run.
 */
export const SYMLINKS = [{ dest: '/var/run', target: '../run' }];

/** The image's run-time configuration (OCI config `config`), also the Dockerfile's ENTRYPOINT/USER/ENV. */
export const RUNTIME = {
  user: '0:0',
  env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
  entrypoint: [`${PREFIX}/bin/sriov-underlay-node`],
  workingDir: '/',
};

/** Static labels; version, revision and created are added at build time (scripts/image.mjs). */
export const LABELS = {
  'org.opencontainers.image.title': 'sriov-underlay',
  'org.opencontainers.image.description': 'SR-IOV underlay CNI, device plugin, node agent and ops CLI',
};
