// A streaming reader of tar headers (ustar, GNU long names, PAX paths):
// enough to list a directory from the archive API and to pull one file out.
const dec = new TextDecoder();

function str(b, off, len) {
  const s = b.subarray(off, off + len);
  const z = s.indexOf(0);
  return dec.decode(z >= 0 ? s.subarray(0, z) : s);
}
function octal(b, off, len) {
  const s = str(b, off, len).trim();
  return s ? parseInt(s, 8) : 0;
}

// onEntry({name, type, size, linkname, mode, mtime}) per entry; if it
// returns true the entry's data is collected and given to onData(entry, bytes).
export class TarReader {
  constructor(onEntry, onData) {
    this.onEntry = onEntry; this.onData = onData || (() => {});
    this.buf = new Uint8Array(0); this.need = 512; this.state = 'header';
    this.entry = null; this.keep = false; this.parts = []; this.longName = null; this.pax = null; this.ended = false;
  }
  feed(chunk) {
    if (this.ended) return;
    const b = new Uint8Array(this.buf.length + chunk.length);
    b.set(this.buf); b.set(chunk, this.buf.length);
    let at = 0;
    while (!this.ended && b.length - at >= this.need) {
      const block = b.subarray(at, at + this.need);
      at += this.need;
      if (this.state === 'header') this.header(block); else this.data(block);
    }
    this.buf = b.slice(at);
  }
  header(h) {
    if (h.every((x) => x === 0)) { this.ended = true; return; }
    const size = octal(h, 124, 12);
    const type = String.fromCharCode(h[156] || 48);
    let name = str(h, 0, 100);
    const prefix = str(h, 257, 6).startsWith('ustar') ? str(h, 345, 155) : '';
    if (prefix) name = prefix + '/' + name;
    const e = { name, type, size, linkname: str(h, 157, 100), mode: octal(h, 100, 8), mtime: octal(h, 136, 12) };
    if (type === 'L' || type === 'x' || type === 'g') { this.meta = type; this.keep = true; }
    else {
      if (this.longName) { e.name = this.longName; this.longName = null; }
      if (this.pax) { if (this.pax.path) e.name = this.pax.path; if (this.pax.linkpath) e.linkname = this.pax.linkpath; if (this.pax.size) e.size = +this.pax.size; this.pax = null; }
      this.meta = null;
      this.keep = !!this.onEntry(e);
    }
    this.entry = e;
    this.parts = [];
    this.left = e.size;
    if (this.left > 0) { this.state = 'data'; this.need = Math.ceil(this.left / 512) * 512; }
    else this.done();
  }
  data(block) {
    if (this.keep) this.parts.push(block.subarray(0, this.left).slice());
    this.done();
  }
  done() {
    this.state = 'header'; this.need = 512;
    if (!this.keep) return;
    const all = new Uint8Array(this.parts.reduce((n, p) => n + p.length, 0));
    let o = 0;
    for (const p of this.parts) { all.set(p, o); o += p.length; }
    if (this.meta === 'L') this.longName = str(all, 0, all.length);
    else if (this.meta === 'x') this.pax = parsePax(all);
    else if (this.meta !== 'g') this.onData(this.entry, all);
    this.keep = false; this.meta = null;
  }
}

function parsePax(b) {
  const out = {};
  const s = dec.decode(b);
  let i = 0;
  while (i < s.length) {
    const sp = s.indexOf(' ', i);
    if (sp < 0) break;
    const len = parseInt(s.slice(i, sp), 10);
    if (!len) break;
    const rec = s.slice(sp + 1, i + len - 1);
    const eq = rec.indexOf('=');
    if (eq > 0) out[rec.slice(0, eq)] = rec.slice(eq + 1);
    i += len;
  }
  return out;
}
