/**
 * Strict reading of the protobuf bytes kubelet sends the device plugin, before protobufjs decodes
 * them. protobufjs decodes a known field sent with the wrong wire type as whatever the bytes happen
 * to spell, accepts invalid UTF-8 in strings, and reports real damage as a bare "index out of
 * range" that grpc-js turns into INTERNAL "Error deserializing request". This walk finds the first
 * problem and names the field and byte offset, so the answer is INVALID_ARGUMENT with a message a
 * human can act on. It also bounds every repeated field at MAX_REPEATED values, so a 1 MiB message
 * of empty strings never becomes half a million objects for zod to report on.
 *
 * Unknown fields are skipped, as proto3 requires (a newer kubelet may send fields we do not know).
 */
import { isUtf8 } from 'node:buffer';
import type * as protobuf from 'protobufjs';

/** Values any one repeated field may carry in one message (1,024 VFs per node is the design size). */
export const MAX_REPEATED = 4096;

const WIRE_NAMES = ['varint', '64-bit', 'length-delimited', 'group start', 'group end', '32-bit', 'wire type 6', 'wire type 7'];
const VARINT = 0;
const FIXED64 = 1;
const LEN = 2;
const FIXED32 = 5;

class WireError extends Error {}

/** The first problem in `buf` read as a `type` message, or null when the bytes are well formed. */
export function wireProblem(type: protobuf.Type, buf: Uint8Array): string | null {
  try {
    walk(type, buf, 0, buf.length, []);
    return null;
  } catch (e) {
    if (e instanceof WireError) return e.message;
    throw e;
  }
}

function expectedWire(f: protobuf.Field): number[] {
  if (f.resolvedType && 'fields' in f.resolvedType) return [LEN]; // a message
  if (f.resolvedType) return f.repeated ? [VARINT, LEN] : [VARINT]; // an enum (repeated: packed or not)
  switch (f.type) {
    case 'string':
    case 'bytes':
      return [LEN];
    case 'double':
    case 'fixed64':
    case 'sfixed64':
      return f.repeated ? [FIXED64, LEN] : [FIXED64];
    case 'float':
    case 'fixed32':
    case 'sfixed32':
      return f.repeated ? [FIXED32, LEN] : [FIXED32];
    default: // int32, int64, uint32, uint64, sint32, sint64, bool
      return f.repeated ? [VARINT, LEN] : [VARINT];
  }
}

/** A varint at `pos`: its value (exact below 2^53, which is all a tag or a length may be) and the next offset. */
function varint(buf: Uint8Array, pos: number, end: number, what: string): [number, number] {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 10; i++) {
    if (pos + i >= end) throw new WireError(`${what} at byte ${pos}: truncated varint`);
    const b = buf[pos + i]!;
    value += (b & 0x7f) * scale;
    scale *= 128;
    if ((b & 0x80) === 0) return [value, pos + i + 1];
  }
  throw new WireError(`${what} at byte ${pos}: varint longer than 10 bytes`);
}

function walk(type: protobuf.Type, buf: Uint8Array, start: number, end: number, path: string[]): void {
  const counts = new Map<number, number>();
  const where = (name: string) => `field "${[...path, name].join('.')}"`;
  let pos = start;
  while (pos < end) {
    const tagAt = pos;
    let tag: number;
    [tag, pos] = varint(buf, pos, end, path.length ? `tag inside field "${path.join('.')}"` : 'tag');
    const num = Math.floor(tag / 8);
    const wire = tag % 8;
    if (num === 0 || num > 0x1fffffff) throw new WireError(`byte ${tagAt}: field number ${num} is not a valid protobuf field number`);
    const f = type.fieldsById[num];
    const n = counts.get(num) ?? 0;
    const label = f ? where(f.repeated ? `${f.name}.${n}` : f.name) : where(`#${num}`);
    if (wire === 3 || wire === 4 || wire > 5) throw new WireError(`${label} at byte ${tagAt}: ${WIRE_NAMES[wire]} is not allowed in proto3`);
    if (f) {
      const expected = expectedWire(f);
      if (!expected.includes(wire)) {
        throw new WireError(`${label} at byte ${tagAt}: sent as ${WIRE_NAMES[wire]}, expected ${expected.map((w) => WIRE_NAMES[w]).join(' or ')} (${f.type})`);
      }
      if (f.repeated) {
        if (n + 1 > MAX_REPEATED) throw new WireError(`${where(f.name)}: more than ${MAX_REPEATED} values`);
        counts.set(num, n + 1);
      }
    }
    switch (wire) {
      case VARINT:
        [, pos] = varint(buf, pos, end, label);
        break;
      case FIXED64:
      case FIXED32: {
        const size = wire === FIXED64 ? 8 : 4;
        if (pos + size > end) throw new WireError(`${label} at byte ${tagAt}: truncated ${WIRE_NAMES[wire]} value`);
        pos += size;
        break;
      }
      default: {
        let len: number;
        [len, pos] = varint(buf, pos, end, `${label} length`);
        if (len > end - pos) throw new WireError(`${label} at byte ${tagAt}: length ${len} runs past the end of its message (${end - pos} bytes left)`);
        if (f?.resolvedType && 'fields' in f.resolvedType) {
          walk(f.resolvedType as protobuf.Type, buf, pos, pos + len, [...path, f.repeated ? `${f.name}.${n}` : f.name]);
        } else if (f?.type === 'string' && !isUtf8(buf.subarray(pos, pos + len))) {
          throw new WireError(`${label} at byte ${tagAt}: not valid UTF-8`);
        }
        pos += len;
      }
    }
  }
}
