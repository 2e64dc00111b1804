// evals view: one page, hash routes, JSON from the local server (evals/view/server.py).
"use strict";

const main = document.getElementById("main");

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

async function api(path) {
  const res = await fetch(path);
  const body = await res.json().catch(() => ({error: res.statusText}));
  if (!res.ok) throw new Error(body.error || res.statusText);
  return body;
}

function fmt(v, digits = 3) {
  if (v === null || v === undefined) return "";
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toFixed(digits);
  return String(v);
}
const money = v => (v === null || v === undefined) ? "" : "$" + Number(v).toPrecision(3);
const scoreClass = s => s === null || s === undefined ? "bad" : s >= 1 ? "ok" : s > 0 ? "mid" : "bad";
const enc = encodeURIComponent;

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, query] = raw.split("?");
  return {parts: path ? path.split("/").map(decodeURIComponent) : [],
          query: new URLSearchParams(query || "")};
}

async function route() {
  const {parts, query} = parseHash();
  main.replaceChildren(h("p", {class: "note"}, "Loading..."));
  try {
    if (parts[0] === "samples") await samplesPage(parts[1], query);
    else if (parts[0] === "sample") await samplePage(parts[1], Number(parts[2]));
    else if (parts[0] === "pair") await pairPage(parts[1], Number(parts[2]), parts[3], Number(parts[4]));
    else if (parts[0] === "differ") await differPage(query);
    else await runsPage();
  } catch (e) {
    main.replaceChildren(h("p", {class: "error", id: "error"}, "Error: " + e.message));
  }
  document.body.dataset.ready = location.hash;  // the browser tests wait for this
}
window.addEventListener("hashchange", route);

// ------------------------------------------------------------------ runs

const METRIC_COLS = ["task", "model", "setting", "metric", "value", "ci_low", "ci_high", "n",
                     "samples", "errors", "tokens", "cost_per_problem"];

async function runsPage() {
  const runs = await api("/api/runs");
  const body = [h("h1", {}, "Runs")];
  const table = h("table", {id: "runs"}, h("tr", {}, ["run", "status", "started", "tasks", "models", "records file", ""].map(c => h("th", {}, c))));
  for (const r of runs) {
    table.append(h("tr", {}, h("td", {}, r.id), h("td", {}, r.status || ""), h("td", {}, r.started || ""),
      h("td", {}, (r.tasks || []).join(", ")), h("td", {}, (r.models || []).join(", ")),
      h("td", {class: "num"}, (r.bytes / 1048576).toFixed(1) + " MiB"),
      h("td", {}, h("a", {href: `#/samples/${enc(r.id)}`, class: "samples-link"}, "samples"))));
  }
  body.push(table);
  for (const r of runs) {
    const box = h("div", {class: "metrics", "data-run": r.id}, h("p", {class: "note"}, "computing metrics..."));
    body.push(h("h2", {}, "Metrics of " + r.id), box);
    loadMetrics(r.id, box);
  }
  main.replaceChildren(...body);
}

async function loadMetrics(run, box) {
  for (;;) {
    const m = await api(`/api/runs/${enc(run)}/metrics`);
    if (m.state === "computing") { await new Promise(r => setTimeout(r, 500)); if (!box.isConnected) return; continue; }
    if (m.state === "failed") { box.replaceChildren(h("p", {class: "error"}, m.error)); return; }
    const t = h("table", {class: "metric-table"}, h("tr", {}, METRIC_COLS.map(c => h("th", {}, c))));
    for (const row of m.rows) {
      t.append(h("tr", {}, METRIC_COLS.map(c => h("td", {class: typeof row[c] === "number" ? "num" : ""},
        c === "cost_per_problem" ? money(row[c]) : fmt(row[c])))));
    }
    box.replaceChildren(t);
    return;
  }
}

// ------------------------------------------------------------------ sample list

const FILTERS = ["task", "model", "setting", "outcome", "score_min", "score_max", "no_answer",
                 "length_cut", "rule", "domain", "subdomain", "cell", "swe", "sort", "desc"];

function select(name, values, current, labels) {
  return h("label", {}, name.replace("_", " "),
    h("select", {name, id: "f-" + name},
      h("option", {value: ""}, "any"),
      values.map((v, i) => h("option", {value: v, selected: String(v) === current}, labels ? labels[i] : v))));
}

async function samplesPage(run, query) {
  const facets = await api(`/api/runs/${enc(run)}/facets`);
  const uniq = key => [...new Set(facets.groups.map(g => g[key]))];
  const q = k => query.get(k) || "";
  const form = h("form", {class: "filters", id: "filters"},
    select("task", uniq("task"), q("task")), select("model", uniq("model"), q("model")),
    select("setting", uniq("setting"), q("setting")),
    select("outcome", ["correct", "incorrect", "partial", "unscored"], q("outcome")),
    h("label", {}, "score min", h("input", {type: "number", step: "any", name: "score_min", value: q("score_min")})),
    h("label", {}, "score max", h("input", {type: "number", step: "any", name: "score_max", value: q("score_max")})),
    h("label", {}, "no answer", h("input", {type: "checkbox", name: "no_answer", id: "f-no_answer", checked: q("no_answer") === "1"})),
    h("label", {}, "cut by length", h("input", {type: "checkbox", name: "length_cut", checked: q("length_cut") === "1"})),
    facets.domains.length ? select("domain", facets.domains, q("domain")) : null,
    facets.subdomains.length ? select("subdomain", facets.subdomains, q("subdomain")) : null,
    facets.cells.length ? select("cell", facets.cells, q("cell"), facets.cells.map(c => c.replace(/^\|/, "").replaceAll("|", " / "))) : null,
    h("label", {}, "extraction rule", h("input", {name: "rule", list: "rules", value: q("rule"), size: 12}),
      h("datalist", {id: "rules"}, facets.rules.map(r => h("option", {value: r})))),
    facets.swe.length || q("swe") ? select("swe", facets.swe, q("swe")) :
      h("label", {}, "SWE outcome", h("input", {name: "swe", value: q("swe"), size: 10})),
    select("sort", ["score", "latency", "cost", "tokens", "gen"], q("sort")),
    h("label", {}, "descending", h("input", {type: "checkbox", name: "desc", checked: q("desc") === "1"})),
    h("button", {type: "submit", id: "apply"}, "apply"));
  form.addEventListener("submit", ev => {
    ev.preventDefault();
    const out = new URLSearchParams();
    for (const el of form.elements) {
      if (!el.name) continue;
      const v = el.type === "checkbox" ? (el.checked ? "1" : "") : el.value;
      if (v) out.set(el.name, v);
    }
    location.hash = `#/samples/${enc(run)}?${out}`;
  });
  const offset = Number(query.get("offset") || 0);
  const params = new URLSearchParams(query);
  params.set("offset", offset);
  const page = await api(`/api/runs/${enc(run)}/samples?${params}`);
  const table = h("table", {id: "samples"}, h("tr", {}, ["task", "model", "setting", "sample", "gen", "status", "score", "answer", "target", "rule", "tokens", "latency", "cost"].map(c => h("th", {}, c))));
  for (const r of page.rows) {
    table.append(h("tr", {class: "row", "data-i": r.i, onclick: () => { location.hash = `#/sample/${enc(run)}/${r.i}`; }},
      h("td", {}, r.task), h("td", {}, r.model), h("td", {}, r.setting),
      h("td", {}, h("a", {href: `#/sample/${enc(run)}/${r.i}`}, String(r.sample_id))), h("td", {class: "num"}, r.gen),
      h("td", {}, r.status || "", r.length_cut ? h("span", {class: "badge"}, "length") : null),
      h("td", {class: "num " + scoreClass(r.score)}, fmt(r.score)), h("td", {}, fmt(r.answer)), h("td", {}, fmt(r.target)),
      h("td", {}, r.rule || ""), h("td", {class: "num"}, fmt(r.tokens, 0)), h("td", {class: "num"}, fmt(r.latency, 2)),
      h("td", {class: "num"}, money(r.cost))));
  }
  const go = off => { const p = new URLSearchParams(query); p.set("offset", off); location.hash = `#/samples/${enc(run)}?${p}`; };
  const total = page.exact ? page.total.toLocaleString() : `at least ${page.total.toLocaleString()} (records read within the time budget)`;
  const pager = h("div", {class: "pager"},
    h("button", {id: "prev", disabled: offset <= 0, onclick: () => go(Math.max(0, offset - page.limit))}, "previous"),
    h("span", {id: "count"}, page.rows.length ? `${offset + 1}-${offset + page.rows.length} of ${total}` : `none of ${total}`),
    h("button", {id: "next", disabled: offset + page.rows.length >= page.total && page.exact, onclick: () => go(offset + page.limit)}, "next"));
  main.replaceChildren(h("h1", {}, "Samples of " + run), form, pager, table);
}

// ------------------------------------------------------------------ one sample

function marked(text, hl, field) {
  if (text === null || text === undefined) return h("pre", {class: field}, h("span", {class: "note"}, "(none)"));
  if (!hl || hl.field !== field) return h("pre", {class: field}, text);
  return h("pre", {class: field}, text.slice(0, hl.start), h("mark", {class: "answer"}, text.slice(hl.start, hl.end)), text.slice(hl.end));
}

function kv(pairs) {
  return h("div", {class: "kv"}, pairs.filter(p => p[1] !== undefined && p[1] !== null && p[1] !== "").flatMap(([k, v]) => [h("b", {}, k), h("span", {}, v)]));
}

function recordPanel(data, compact) {
  const r = data.record, u = r.usage || {}, sm = r.score_metadata || {};
  const parts = [
    h("h2", {}, `${r.model} | ${r.setting}`),
    kv([["task", r.task], ["sample", String(r.sample_id)], ["gen", r.gen], ["status", r.status],
        ["score", h("span", {class: "score " + scoreClass(r.score)}, fmt(r.score))], ["answer", fmt(r.answer)], ["target", fmt(r.target)],
        ["explanation", r.explanation], ["finish", r.finish_reason],
        ["usage", `prompt ${fmt(u.prompt, 0)}, completion ${fmt(u.completion, 0)}, reasoning ${fmt(u.reasoning, 0)}` + (u.cached ? `, cached ${u.cached}` : "")],
        ["cost", money(r.cost)], ["latency", r.latency === null || r.latency === undefined ? "" : fmt(r.latency, 2) + " s"],
        ["error", r.error]]),
  ];
  if (!compact) parts.push(h("h2", {}, "Prompt"), h("div", {id: "prompt"}, h("p", {class: "note"}, "building the prompt from the task...")));
  parts.push(h("h2", {}, "Reasoning"), marked(r.reasoning, data.highlight, "reasoning"),
             h("h2", {}, "Completion"), marked(r.completion, data.highlight, "completion"));
  if (r.redacted) parts.push(h("p", {class: "note"}, "This task redacts its records: no text is kept."));
  if (sm.applied_diff !== undefined || sm.test_log !== undefined || sm.outcome !== undefined) {
    parts.push(h("h2", {}, "SWE"), kv([["outcome", sm.outcome], ["tests", sm.tests ? JSON.stringify(sm.tests) : ""]]),
      h("h3", {}, "Applied diff"), h("pre", {class: "diff"}, sm.applied_diff || "(none)"),
      h("h3", {}, "Reverted files"), h("pre", {class: "reverted"}, (sm.reverted || []).map(x => `${x.path}: ${x.why}`).join("\n") || "(none)"),
      h("h3", {}, "Test log"), h("pre", {class: "test-log"}, sm.test_log || "(none)"));
  }
  const trajectory = r.trajectory || sm.trajectory;
  if (trajectory) parts.push(h("h2", {}, "Trajectory"), h("pre", {class: "trajectory"}, JSON.stringify(trajectory, null, 2)));
  parts.push(h("h2", {}, "Score metadata"), h("pre", {}, JSON.stringify(r.score_metadata, null, 2)),
             h("h2", {}, "Sample metadata"), h("pre", {}, JSON.stringify(r.metadata, null, 2)));
  return parts;
}

async function loadPrompt(run, r) {
  const box = document.getElementById("prompt");
  const p = await api(`/api/runs/${enc(run)}/prompt?task=${enc(r.task)}&sample_id=${enc(r.sample_id)}`);
  if (!box) return;
  if (!p.messages) { box.replaceChildren(h("p", {class: "note"}, "Prompt not available: " + p.why)); return; }
  box.replaceChildren(...p.messages.map(m => [h("div", {class: "meta"}, m.role), h("pre", {class: "prompt"}, typeof m.content === "string" ? m.content : JSON.stringify(m.content, null, 2))]).flat());
}

async function samplePage(run, i) {
  const data = await api(`/api/runs/${enc(run)}/records/${i}`);
  const others = data.counterparts.filter(c => !c.same);
  const gen = data.record.gen;
  const choose = h("select", {id: "compare-with"}, h("option", {value: ""}, "compare with..."),
    others.map(c => {
      const same = c.gens.find(g => g.gen === gen) || c.gens[0];
      return h("option", {value: `#/pair/${enc(run)}/${i}/${enc(c.run)}/${same.i}`}, `${c.model} | ${c.setting}${c.run !== run ? " (run " + c.run + ")" : ""}`);
    }));
  choose.addEventListener("change", () => { if (choose.value) location.hash = choose.value; });
  const own = data.counterparts.find(c => c.same);
  const gens = own ? h("div", {class: "gens"}, "generations: ", own.gens.map(g =>
    h("a", {href: `#/sample/${enc(run)}/${g.i}`, class: scoreClass(g.score), style: "margin-right:6px"}, g.gen === gen ? `[${g.gen}]` : String(g.gen)))) : null;
  main.replaceChildren(h("p", {}, h("a", {href: `#/samples/${enc(run)}`}, "back to the samples of " + run)),
    h("div", {class: "toolbar"}, others.length ? choose : h("span", {class: "note"}, "no other setting or model has this problem"), " ", gens),
    ...recordPanel(data, false));
  loadPrompt(run, data.record).catch(e => { const b = document.getElementById("prompt"); if (b) b.textContent = e.message; });
}

async function pairPage(runA, iA, runB, iB) {
  const [a, b] = await Promise.all([api(`/api/runs/${enc(runA)}/records/${iA}`), api(`/api/runs/${enc(runB)}/records/${iB}`)]);
  main.replaceChildren(h("h1", {}, `${a.record.task} / ${a.record.sample_id}: side by side`),
    h("div", {class: "pair", id: "pair"}, h("section", {class: "side-a"}, ...recordPanel(a, true)), h("section", {class: "side-b"}, ...recordPanel(b, true))));
}

// ------------------------------------------------------------------ verdicts that differ

async function differPage(query) {
  const groups = await api("/api/groups");
  const label = g => `${g.task} | ${g.model} | ${g.setting}` + (new Set(groups.map(x => x.run)).size > 1 ? ` (${g.run})` : "");
  const pick = (name, current) => h("label", {}, name, h("select", {name, id: "side-" + name},
    groups.map(g => h("option", {value: `${g.run}:${g.group}`, selected: `${g.run}:${g.group}` === current}, label(g)))));
  const a = query.get("a") || (groups[0] ? `${groups[0].run}:${groups[0].group}` : "");
  const b = query.get("b") || (groups[1] ? `${groups[1].run}:${groups[1].group}` : a);
  const form = h("form", {class: "filters", id: "differ-form"}, pick("a", a), pick("b", b), h("button", {type: "submit", id: "compare"}, "compare"));
  form.addEventListener("submit", ev => {
    ev.preventDefault();
    location.hash = `#/differ?a=${enc(form.elements.a.value)}&b=${enc(form.elements.b.value)}`;
  });
  const body = [h("h1", {}, "Problems whose verdict differs"), form,
    h("p", {class: "note"}, "A problem's verdict is right when its mean score over its generations is at least 0.5. Largest differences first.")];
  if (query.get("a") && query.get("b")) {
    const offset = Number(query.get("offset") || 0);
    const d = await api(`/api/differ?a=${enc(a)}&b=${enc(b)}&offset=${offset}`);
    body.push(h("p", {id: "differ-summary"}, `${d.total} of ${d.common} common problems differ: right only under A ${d.a_right}, only under B ${d.b_right}.`));
    const [ra] = a.split(/:(?=[^:]*$)/), [rb] = b.split(/:(?=[^:]*$)/);
    const t = h("table", {id: "differ"}, h("tr", {}, ["sample", "A mean score", "A n", "B mean score", "B n", ""].map(c => h("th", {}, c))));
    for (const r of d.rows) {
      t.append(h("tr", {class: "row"}, h("td", {}, String(r.sample_id)),
        h("td", {class: "num " + scoreClass(r.a.mean)}, fmt(r.a.mean)), h("td", {class: "num"}, r.a.n),
        h("td", {class: "num " + scoreClass(r.b.mean)}, fmt(r.b.mean)), h("td", {class: "num"}, r.b.n),
        h("td", {}, h("a", {href: `#/pair/${enc(ra)}/${r.a.i}/${enc(rb)}/${r.b.i}`, class: "pair-link"}, "side by side"))));
    }
    body.push(t);
    const go = off => { location.hash = `#/differ?a=${enc(a)}&b=${enc(b)}&offset=${off}`; };
    body.push(h("div", {class: "pager"}, h("button", {disabled: offset <= 0, onclick: () => go(Math.max(0, offset - d.limit))}, "previous"),
      h("button", {disabled: offset + d.rows.length >= d.total, onclick: () => go(offset + d.limit)}, "next")));
  }
  main.replaceChildren(...body);
}

route();
