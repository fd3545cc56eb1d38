// Opens `stablelearn report` pages in headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core from report/web/node_modules) and fails on any JavaScript console error, any chart
// that drew nothing, or page data that disagrees with the run files read here independently.
//
//   node browser_check.cjs WEB_DIR SCREENSHOT_DIR PAGE.html:KIND:RUN_DIR[,RUN_DIR...] ...
// KIND: lfd | cl | diagnose (RUN_DIR: the diagnose CSV).
"use strict";
const fs = require("fs");
const path = require("path");

const [webDir, shotDir, ...specs] = process.argv.slice(2);
const { chromium } = require(path.resolve(webDir, "node_modules", "playwright-core"));

let failures = 0;
function fail(page, msg) { failures++; console.error(`FAIL ${page}: ${msg}`); }
function near(a, b, tol) { return Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)); }

// Independent reads of the run files.
function dtwMatrix(runDir) {
  const s = JSON.parse(fs.readFileSync(path.join(runDir, "summary.json"), "utf8"));
  const out = {};
  for (const [ti, row] of Object.entries(s.median_errors))
    for (const [ej, cell] of Object.entries(row)) out[`${ti.replace("train_task_", "")},${ej.replace("eval_task_", "")}`] = cell.dtw;
  return { cells: out, tasks: s.completed_tasks };
}
function accuracyCsv(runDir) {  // accuracy_matrix.csv: after_task,task_0,...
  const lines = fs.readFileSync(path.join(runDir, "accuracy_matrix.csv"), "utf8").trim().split("\n").slice(1);
  return lines.map((l) => l.split(",").slice(1).map(Number));
}

async function checkPage(browser, spec) {
  const [file, kind, runs] = spec.split(":");
  const runDirs = runs.split(",");
  const name = path.basename(file, ".html");
  const failuresBefore = failures;
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  const errors = [];
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("requestfailed", (r) => errors.push("request failed (the page must need no network): " + r.url()));
  const t0 = Date.now();
  await page.goto("file://" + path.resolve(file));
  await page.waitForSelector("body[data-ready='1']", { timeout: 20000 });
  const result = await page.evaluate(() => {
    const charts = [];
    document.querySelectorAll(".sl-chart").forEach((div) => {
      const inst = echarts.getInstanceByDom(div);
      const info = { title: div.dataset.title, type: div.dataset.type, instance: !!inst, points: 0, inked: 0, width: 0 };
      if (inst) {
        for (const s of inst.getOption().series) for (const d of s.data || []) if (d !== "-" && d !== null) info.points++;
        const canvas = div.querySelector("canvas");
        if (canvas) {
          info.width = canvas.width;
          const ctx = canvas.getContext("2d");
          const px = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
          for (let i = 3; i < px.length; i += 4) if (px[i] > 0) info.inked++;
        }
      }
      charts.push(info);
    });
    return { charts, status: window.SL_REPORT_STATUS, page: window.SL_REPORT, tables: document.querySelectorAll("table.sl-table").length };
  });
  const ms = Date.now() - t0;
  if (errors.length) fail(name, "JavaScript errors:\n  " + errors.join("\n  "));
  if (result.status.errors.length) fail(name, "charts failed: " + result.status.errors.join("; "));
  if (result.status.empty.length) fail(name, "empty charts/tables: " + result.status.empty.join("; "));
  if (!result.charts.length) fail(name, "no charts at all");
  for (const c of result.charts) {
    if (!c.instance) fail(name, `chart '${c.title}' was not drawn`);
    else if (c.points === 0 || c.width === 0 || c.inked < 2000) fail(name, `chart '${c.title}' drew nothing (points ${c.points}, inked pixels ${c.inked})`);
  }
  const data = result.page;
  const all = (pred) => [].concat(...data.runs.map((r) => r.sections), data.comparison_sections).flatMap((s) => s.charts).filter(pred);

  if (kind === "lfd") {
    const m = dtwMatrix(runDirs[0]);
    const hm = all((c) => c.type === "heatmap" && c.metric === "dtw");
    if (hm.length !== 1) fail(name, `expected one DTW heat map, found ${hm.length}`);
    else {
      const n = m.tasks;
      if (hm[0].cells.length !== (n * (n + 1)) / 2) fail(name, `DTW heat map has ${hm[0].cells.length} cells, expected ${(n * (n + 1)) / 2} for ${n} tasks`);
      for (const [j, i, v] of hm[0].cells) {
        const want = m.cells[`${i},${j}`];
        if (!near(v, want, 1e-4)) fail(name, `DTW after task ${i} on task ${j}: page ${v}, summary.json ${want}`);
      }
    }
    const planes = all((c) => c.type === "plane");
    if (planes.length !== m.tasks) fail(name, `${planes.length} skill planes for ${m.tasks} tasks`);
    for (const p of planes)
      for (const kindName of ["demo", "rollout", "stream", "contour"])
        if (!p.layers.some((l) => l.kind === kindName && l.xy.length > 4)) fail(name, `${p.title}: no '${kindName}' layer`);
    // Interaction: hiding a series through the legend removes it from the drawn chart.
    const hidden = await page.evaluate(() => {
      const div = document.querySelector(".sl-chart[data-type='plane']");
      const inst = echarts.getInstanceByDom(div);
      inst.dispatchAction({ type: "legendToggleSelect", name: "demonstrations" });
      return inst.getOption().legend[0].selected["demonstrations"];
    });
    if (hidden !== false) fail(name, "legend toggle did not hide the demonstrations");
    // Stability section: the converged % per task of the bars is the table's k/N, and every task has one.
    const st = all((c) => c.type === "table" && c.title.startsWith("converged fraction, final distances"));
    const bars = all((c) => c.type === "bars" && c.title.startsWith("converged fraction per task"));
    if (st.length !== 1 || bars.length !== 1) fail(name, `expected one stability table and one converged-fraction chart, found ${st.length} and ${bars.length}`);
    else {
      if (st[0].rows.length !== m.tasks) fail(name, `stability table has ${st[0].rows.length} rows for ${m.tasks} tasks`);
      for (const row of st[0].rows) {
        const [k, n] = row[7].split(" ")[0].split("/").map(Number);
        const series = bars[0].series.find((s) => s.name === row[3]);
        const got = series ? series.y[bars[0].categories.indexOf(String(row[0]))] : undefined;
        if (!near(got, (100 * k) / n, 1e-4)) fail(name, `task ${row[0]}: converged ${got} % on the chart, ${k}/${n} in the table`);
      }
    }
    await page.evaluate(() => { const inst = echarts.getInstanceByDom(document.querySelector(".sl-chart[data-type='plane']")); inst.dispatchAction({ type: "legendToggleSelect", name: "demonstrations" }); });
    const el = await page.$(".sl-chart[data-type='plane']");
    await el.screenshot({ path: path.join(shotDir, name + "_skill.png") });
  } else if (kind === "cl") {
    for (const dir of runDirs) {
      const acc = accuracyCsv(dir);
      const runName = path.basename(dir);
      const run = data.runs.find((r) => r.header.name === runName);
      if (!run) { fail(name, `run ${runName} missing from the page`); continue; }
      const hm = run.sections.flatMap((s) => s.charts).filter((c) => c.type === "heatmap");
      if (hm.length !== 1) { fail(name, `${runName}: ${hm.length} heat maps`); continue; }
      const n = acc.length;
      if (hm[0].cells.length !== n * n) fail(name, `${runName}: ${hm[0].cells.length} heat-map cells, expected tasks² = ${n * n}`);
      for (const [j, i, v] of hm[0].cells) if (!near(v, acc[i][j], 1e-5)) fail(name, `${runName}: accuracy (${i}, ${j}) page ${v}, accuracy_matrix.csv ${acc[i][j]}`);
    }
    const table = all((c) => c.type === "table" && c.title.startsWith("end-of-sequence"));
    const strategies = new Set(runDirs.map((d) => JSON.parse(fs.readFileSync(path.join(d, "summary.json"), "utf8")).strategy));
    if (table.length !== 1 || table[0].rows.length !== strategies.size) fail(name, `comparison table should have one row per strategy (${strategies.size})`);
  } else if (kind === "spectra") {
    // Each layer's empirical CCDF starts at P(λ ≥ smallest positive eigenvalue) = (positive count) / count.
    const byLayer = {};
    for (const l of fs.readFileSync(runDirs[0], "utf8").trim().split("\n").slice(1)) {
      const i = l.lastIndexOf(","), layer = l.slice(0, i);
      (byLayer[layer] = byLayer[layer] || []).push(Number(l.slice(i + 1)));
    }
    const tails = all((c) => c.type === "lines" && c.log_x && c.layer);
    if (tails.length !== Object.keys(byLayer).length) fail(name, `${tails.length} ESD tail charts for ${Object.keys(byLayer).length} layers`);
    for (const c of tails) {
      const ev = byLayer[c.layer] || [];
      const pos = ev.filter((v) => v > 0);
      if (!near(c.series[0].y[0], pos.length / ev.length, 1e-4)) fail(name, `${c.layer}: CCDF starts at ${c.series[0].y[0]}, CSV gives ${pos.length / ev.length}`);
      if (c.fit && !c.series.some((s) => s.style === "dashed")) fail(name, `${c.layer}: a fit without its line`);
    }
    if (!tails.some((c) => c.fit)) fail(name, "no layer has a power-law fit drawn");
  } else if (kind === "diagnose") {
    const rows = fs.readFileSync(runDirs[0], "utf8").trim().split("\n").slice(1).map((l) => l.split(",").map(Number));
    const c = all((x) => x.type === "lines")[0];
    if (!c) fail(name, "no density chart");
    else {
      const s = c.series[0];
      if (!near(s.x[0], rows[0][0], 1e-4) || !near(s.y[0], rows[0][1], 1e-4)) fail(name, `first density point ${s.x[0]},${s.y[0]} vs CSV ${rows[0]}`);
      const maxCsv = Math.max(...rows.map((r) => r[1]));
      if (!near(Math.max(...s.y), maxCsv, 1e-4)) fail(name, `density maximum ${Math.max(...s.y)} vs CSV ${maxCsv}`);
    }
  }
  await page.screenshot({ path: path.join(shotDir, name + "_top.png") });
  await page.screenshot({ path: path.join(shotDir, name + ".png"), fullPage: true });
  console.log(`${failures > failuresBefore ? "FAILED" : "ok"} ${name}: ${result.charts.length} charts, ${result.tables} tables, opened and checked in ${ms} ms`);
  await page.close();
}

(async () => {
  fs.mkdirSync(shotDir, { recursive: true });
  const browser = await chromium.launch({
    executablePath: process.env.SL_CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync"],
  });
  try {
    for (const s of specs) await checkPage(browser, s);
  } finally {
    await browser.close();
  }
  if (failures) { console.error(`${failures} failure(s); screenshots in ${shotDir}`); process.exit(1); }
  console.log(`all ${specs.length} pages passed; screenshots in ${shotDir}`);
})().catch((e) => { console.error("FAIL: " + (e && e.stack || e)); process.exit(1); });
