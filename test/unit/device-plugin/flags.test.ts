import { describe, expect, it } from 'vitest';
import { FlagError, parseFlags } from '../../../node/flags';

describe('node daemon flags', () => {
  it('defaults, and values given', () => {
    const f = parseFlags(['--kubelet-dir', '/k', '--metrics-address=', '--rescan-interval-ms=200', '--devinfo-dir=']);
    expect(f).toMatchObject({ components: ['device-plugin'], 'kubelet-dir': '/k', 'sysfs-root': '/sys', 'metrics-address': '', 'rescan-interval-ms': 200, 'devinfo-dir': '', help: false });
    expect(parseFlags(['-h']).help).toBe(true);
  });

  it('names the bad flag and what is wrong', () => {
    expect(() => parseFlags(['--sysfs-root', 'sys'])).toThrow('flags: flag "--sysfs-root": must be an absolute path');
    expect(() => parseFlags(['--components', 'device-plugin,agnet'])).toThrow('flags: flag "--components.1": Invalid option: expected one of "device-plugin"|"agent"');
    expect(() => parseFlags(['--components', 'agent', '--node-name', 'Bad_Name'])).toThrow(/flag "--node-name": must be a Kubernetes node name/);
    expect(() => parseFlags(['--metrics-address', '9410'])).toThrow(/flag "--metrics-address"/);
    expect(() => parseFlags(['--rescan-interval-ms', '5'])).toThrow('flags: flag "--rescan-interval-ms": at least 50 ms');
    expect(() => parseFlags(['--bogus'])).toThrow(FlagError);
  });
});
