import { describe, expect, it } from 'vitest';
import { chooseProgram } from '../../exe/programs';

describe('the one executable chooses its program (exe/programs.ts)', () => {
  it('by the name it was invoked as: argv0 first, then the executable path', () => {
    expect(chooseProgram(['/opt/cni/bin/sriov-underlay-cni', '/opt/cni/bin/sriov-underlay-cni'], [])).toEqual({ program: 'cni', args: [] });
    expect(chooseProgram(['/opt/cni/bin/sriov-underlay', '/opt/cni/bin/sriov-underlay-cni'], [])).toEqual({ program: 'cni', args: [] });
    expect(chooseProgram(['kubectl-sriov', '/usr/local/bin/sriov-underlay-node'], ['nodes', '-o', 'json'])).toEqual({ program: 'cli', args: ['nodes', '-o', 'json'] });
    expect(chooseProgram(['sriov-underlay-node', '/x/sriov-underlay-node'], ['--components', 'agent'])).toEqual({ program: 'daemon', args: ['--components', 'agent'] });
    // argv0 set to something unknown (exec -a): a copy named kubectl-sriov is still the CLI.
    expect(chooseProgram(['whatever', '/usr/local/bin/kubectl-sriov'], ['nodes'])).toEqual({ program: 'cli', args: ['nodes'] });
    // A link named sriov-underlay-cni whose target is sriov-underlay-node: the link's name wins.
    expect(chooseProgram(['./sriov-underlay-cni', '/opt/sriov-underlay/bin/sriov-underlay-node'], [])).toEqual({ program: 'cni', args: [] });
  });

  it('by a first argument only when the name says daemon or nothing', () => {
    expect(chooseProgram(['sriov-underlay-node'], ['cni'])).toEqual({ program: 'cni', args: [] });
    expect(chooseProgram(['sriov-underlay-node'], ['cli', 'explain', 'db/x'])).toEqual({ program: 'cli', args: ['explain', 'db/x'] });
    expect(chooseProgram(['sriov-underlay-node'], ['daemon', '--help'])).toEqual({ program: 'daemon', args: ['--help'] });
    expect(chooseProgram(['renamed', '/tmp/renamed'], ['cli', 'nodes'])).toEqual({ program: 'cli', args: ['nodes'] });
    // Under a CLI or CNI name the word is that program's own argument, never a switch of program.
    expect(chooseProgram(['kubectl-sriov'], ['daemon'])).toEqual({ program: 'cli', args: ['daemon'] });
    expect(chooseProgram(['/opt/cni/bin/sriov-underlay'], ['daemon', '--components', 'agent'])).toEqual({ program: 'cni', args: ['daemon', '--components', 'agent'] });
  });

  it('an unknown name and no subcommand is the daemon (which rejects unknown flags itself)', () => {
    expect(chooseProgram(['', ''], [])).toEqual({ program: 'daemon', args: [] });
    expect(chooseProgram(['/tmp/x'], ['--nope'])).toEqual({ program: 'daemon', args: ['--nope'] });
    // Names are whole basenames: no prefix or suffix match, no prototype keys.
    expect(chooseProgram(['sriov-underlay-cni.new', 'kubectl-sriov-old', 'constructor', '__proto__'], ['toString'])).toEqual({ program: 'daemon', args: ['toString'] });
  });
});
