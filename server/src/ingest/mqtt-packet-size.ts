/**
 * Follows MQTT's framing (a type byte, then the remaining length in one to four 7-bit bytes, then
 * that many bytes) through a connection's bytes as they arrive, so that a packet announcing more
 * than `max` bytes is caught from its header. aedes has no size limit and buffers each packet
 * whole before looking at it: without this, one PUBLISH could take any amount of memory.
 * Returns the feed: the announced length of the first packet over the limit, else undefined.
 */
export function packetSizeLimit(max: number): (chunk: Buffer) => number | undefined {
  /** Body bytes of the current packet still to come. */
  let body = 0;
  /** Remaining-length bytes read so far; -1 before a packet's type byte. */
  let lengthBytes = -1;
  let length = 0;
  return (chunk) => {
    let i = 0;
    while (i < chunk.length) {
      if (body > 0) {
        const skipped = Math.min(body, chunk.length - i);
        body -= skipped;
        i += skipped;
        continue;
      }
      const byte = chunk[i++] as number;
      if (lengthBytes < 0) {
        lengthBytes = 0;
        length = 0;
        continue;
      }
      length += (byte & 0x7f) * 128 ** lengthBytes++;
      // A fifth length byte is malformed: aedes's parser refuses it, so it is taken as the last here.
      if (byte & 0x80 && lengthBytes < 4) continue;
      if (length > max) return length;
      body = length;
      lengthBytes = -1;
    }
    return undefined;
  };
}
