/**
 * Puts an executable's program header table where every ELF loader looks for it.
 *
 * postject (LIEF) moves the table into the tail of a code segment to make room for the SEA note
 * segment, at a virtual address that is not "first segment's load bias + e_phoff". Loaders that
 * compute AT_PHDR as load bias + e_phoff (Linux before 5.18, qemu-user 7.2) then hand ld.so a wrong
 * table, and it aborts ("Inconsistency detected by ld.so: rtld.c: ... l_libname"). This writes a
 * copy of the table (plus one PT_LOAD that maps it) after the end of the file, at exactly that
 * address, and points e_phoff and PT_PHDR at it: old and new loaders then agree.
 */
import * as fs from 'node:fs';

const PT_LOAD = 1;
const PT_PHDR = 6;
const PF_R = 4;
const PAGE = 0x1000;

function readHeaders(buf, file) {
  if (buf.readUInt32BE(0) !== 0x7f454c46 || buf[4] !== 2 || buf[5] !== 1) throw new Error(`${file}: not a little-endian ELF64 file`);
  const phoff = Number(buf.readBigUInt64LE(0x20));
  const phentsize = buf.readUInt16LE(0x36);
  const phnum = buf.readUInt16LE(0x38);
  const ph = [];
  for (let i = 0; i < phnum; i++) {
    const raw = Buffer.from(buf.subarray(phoff + i * phentsize, phoff + (i + 1) * phentsize));
    ph.push({
      raw,
      type: raw.readUInt32LE(0),
      offset: Number(raw.readBigUInt64LE(8)),
      vaddr: Number(raw.readBigUInt64LE(16)),
      memsz: Number(raw.readBigUInt64LE(40)),
    });
  }
  const firstLoad = ph.find((p) => p.type === PT_LOAD);
  if (!firstLoad) throw new Error(`${file}: no PT_LOAD segment`);
  return { phoff, phentsize, ph, bias: firstLoad.vaddr - firstLoad.offset, phdr: ph.find((p) => p.type === PT_PHDR) };
}

/** Where a loader that computes AT_PHDR as bias + e_phoff finds the table, and where it is. */
export function phdrPlacement(file) {
  const h = readHeaders(fs.readFileSync(file), file);
  return { expected: h.bias + h.phoff, actual: h.phdr?.vaddr ?? h.bias + h.phoff };
}

function setRange(raw, offset, vaddr, size) {
  raw.writeBigUInt64LE(BigInt(offset), 8);
  raw.writeBigUInt64LE(BigInt(vaddr), 16); // p_vaddr
  raw.writeBigUInt64LE(BigInt(vaddr), 24); // p_paddr
  raw.writeBigUInt64LE(BigInt(size), 32); // p_filesz
  raw.writeBigUInt64LE(BigInt(size), 40); // p_memsz
}

/** Rewrites file in place when needed; returns whether it did. */
export function placePhdrForEveryLoader(file) {
  const buf = fs.readFileSync(file);
  const { phentsize, ph, bias, phdr, phoff } = readHeaders(buf, file);
  if (!phdr || phdr.vaddr === bias + phoff) return false;

  const at = Math.ceil(buf.length / PAGE) * PAGE;
  const size = (ph.length + 1) * phentsize;
  const lo = bias + at;
  const loads = ph.filter((p) => p.type === PT_LOAD);
  const clash = loads.find((l) => lo < Math.ceil((l.vaddr + l.memsz) / PAGE) * PAGE && l.vaddr < lo + size);
  if (clash) throw new Error(`${file}: no room for the program headers at 0x${lo.toString(16)} (segment at 0x${clash.vaddr.toString(16)})`);

  setRange(phdr.raw, at, lo, size);
  const load = Buffer.from(loads[0].raw);
  load.writeUInt32LE(PF_R, 4);
  setRange(load, at, lo, size);
  load.writeBigUInt64LE(BigInt(PAGE), 48); // p_align
  // PT_LOAD entries stay sorted by address, as the ELF spec requires.
  const next = ph.findIndex((p) => p.type === PT_LOAD && p.vaddr > lo);
  const entries = ph.map((p) => p.raw);
  entries.splice(next === -1 ? ph.indexOf(loads.at(-1)) + 1 : next, 0, load);

  const header = Buffer.from(buf.subarray(0, 64));
  header.writeBigUInt64LE(BigInt(at), 0x20); // e_phoff
  header.writeUInt16LE(entries.length, 0x38); // e_phnum
  const fd = fs.openSync(file, 'r+');
  try {
    fs.writeSync(fd, Buffer.concat(entries), 0, size, at);
    fs.writeSync(fd, header, 0, header.length, 0);
  } finally {
    fs.closeSync(fd);
  }
  return true;
}
