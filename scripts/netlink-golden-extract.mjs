// Reads an `strace -e write=all` (or read=all) log and prints the netlink messages it dumped, as
// JSON lines {syscall, hex}. Used by gen-netlink-golden.sh; no dependencies.
import { readFileSync } from 'node:fs';

const [file, which = 'sendmsg'] = process.argv.slice(2);
const out = [];
let current = null;
let hex = '';
for (const line of readFileSync(file, 'utf8').split('\n')) {
  const call = /^(?:\[pid\s+\d+\]\s+|\d+\s+)?(sendmsg|recvmsg|sendto|recvfrom)\(/.exec(line);
  if (call) {
    if (current && hex) out.push({ syscall: current, hex });
    current = call[1];
    hex = '';
    continue;
  }
  // " | 00000  34 00 ... 00  ascii |": the hex area is the 49 characters after the offset.
  if (current && /^ \| [0-9a-f]{5} {2}/.test(line)) hex += line.slice(10, 59).replace(/\s+/g, '');
}
if (current && hex) out.push({ syscall: current, hex });
for (const m of out) if (m.syscall === which) console.log(JSON.stringify(m));
