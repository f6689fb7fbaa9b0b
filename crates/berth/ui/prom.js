// The Prometheus text format (0.0.4) read in the page: families with their
// type and samples, histograms regrouped by label set, and quantiles
// estimated from buckets as PromQL's histogram_quantile does.

// A label block `a="x",b="y\"z"` → {a: 'x', b: 'y"z'}; null if malformed.
function parseLabels(s) {
  const out = {};
  let i = 0;
  while (i < s.length) {
    const eq = s.indexOf('=', i);
    if (eq < 0 || s[eq + 1] !== '"') return null;
    const key = s.slice(i, eq).trim();
    let j = eq + 2, v = '';
    for (; j < s.length && s[j] !== '"'; j++) {
      if (s[j] === '\\' && j + 1 < s.length) {
        j++;
        v += s[j] === 'n' ? '\n' : s[j];
      } else v += s[j];
    }
    if (j >= s.length) return null;
    out[key] = v;
    i = j + 1;
    while (i < s.length && (s[i] === ',' || s[i] === ' ')) i++;
  }
  return out;
}

function parseValue(v) {
  if (v === '+Inf') return Infinity;
  if (v === '-Inf') return -Infinity;
  return Number(v);
}

// The family a sample belongs to: a histogram's `_bucket`, `_sum` and
// `_count` (a counter's `_total` is declared with its suffix by some
// clients, without by others) fall under their declared family.
function familyOf(name, fams) {
  if (fams.has(name)) return name;
  for (const suf of ['_bucket', '_sum', '_count', '_total', '_created']) {
    if (name.endsWith(suf) && fams.has(name.slice(0, -suf.length))) return name.slice(0, -suf.length);
  }
  return name;
}

// text → Map(name → {name, type, help, samples: [{name, labels, value}]}).
// Lines it cannot read are skipped.
export function parse(text) {
  const fams = new Map();
  const fam = (name) => {
    if (!fams.has(name)) fams.set(name, { name, type: 'untyped', help: '', samples: [] });
    return fams.get(name);
  };
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line) continue;
    if (line.startsWith('#')) {
      const m = /^#\s+(HELP|TYPE)\s+(\S+)\s*(.*)$/.exec(line);
      if (m && m[1] === 'TYPE') fam(m[2]).type = m[3].trim();
      else if (m) fam(m[2]).help = m[3];
      continue;
    }
    let name, labels = {}, rest;
    const brace = line.indexOf('{');
    if (brace >= 0) {
      const close = line.lastIndexOf('}');
      if (close < brace) continue;
      name = line.slice(0, brace);
      labels = parseLabels(line.slice(brace + 1, close));
      if (!labels) continue;
      rest = line.slice(close + 1).trim();
    } else {
      const sp = line.indexOf(' ');
      if (sp < 0) continue;
      name = line.slice(0, sp);
      rest = line.slice(sp + 1).trim();
    }
    const value = parseValue(rest.split(/\s+/)[0]);
    if (Number.isNaN(value) && rest.split(/\s+/)[0] !== 'NaN') continue;
    fam(familyOf(name, fams)).samples.push({ name, labels, value });
  }
  return fams;
}

// The single value of a family without labels (or the sum of its samples,
// `_created` left out); undefined when the family is missing. A counter
// may be declared with or without its `_total`.
export function scalar(fams, name) {
  const f = fams.get(name) || fams.get(name + '_total');
  if (!f) return undefined;
  return f.samples.filter((s) => !s.name.endsWith('_created')).reduce((n, s) => n + s.value, 0);
}

const keyOf = (labels) => JSON.stringify(Object.keys(labels).filter((k) => k !== 'le').sort().map((k) => [k, labels[k]]));

// A histogram family's series, one per label set (`le` aside), or merged
// over the labels `by` does not keep when `by` is given:
// [{labels, buckets: [[le, cumulative count]] sorted by le, sum, count}].
export function histograms(fams, name, by) {
  const f = fams.get(name);
  if (!f) return [];
  const groups = new Map();
  for (const s of f.samples) {
    const labels = {};
    for (const [k, v] of Object.entries(s.labels)) if (k !== 'le' && (!by || by.includes(k))) labels[k] = v;
    const key = keyOf(labels);
    if (!groups.has(key)) groups.set(key, { labels, le: new Map(), sum: 0, count: 0 });
    const g = groups.get(key);
    if (s.name === name + '_bucket' && s.labels.le !== undefined) {
      const le = parseValue(s.labels.le);
      g.le.set(le, (g.le.get(le) || 0) + s.value);
    } else if (s.name === name + '_sum') g.sum += s.value;
    else if (s.name === name + '_count') g.count += s.value;
  }
  return [...groups.values()].map((g) => ({
    labels: g.labels,
    buckets: [...g.le.entries()].sort((a, b) => a[0] - b[0]),
    sum: g.sum,
    count: g.count,
  }));
}

// The q-quantile (0..1) estimated from cumulative buckets, as PromQL's
// histogram_quantile: linear within the bucket it falls in; in the +Inf
// bucket, the highest finite bound. NaN without observations.
export function quantile(buckets, q) {
  if (!buckets.length) return NaN;
  const total = buckets[buckets.length - 1][1];
  if (!(total > 0)) return NaN;
  const rank = q * total;
  let prevLe = 0, prevCount = 0;
  for (const [le, count] of buckets) {
    if (count >= rank) {
      if (le === Infinity) return prevLe;
      if (count === prevCount) return le;
      return prevLe + (le - prevLe) * ((rank - prevCount) / (count - prevCount));
    }
    prevLe = le;
    prevCount = count;
  }
  return prevLe;
}
