// The dashboard's page and script (HTML and JavaScript in Swift raw strings). They are compiled
// into the binary, so an installed `reel` serves them wherever it lies: a resource folder would
// be looked up at the path the binary was built in.

enum PageFiles {
    static let indexHTML = ##"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Reel farm</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; background: #fafafa; }
  h1 { font-size: 1.4em; margin: 0 0 .2em; }
  h2 { font-size: 1.1em; margin: 1.5em 0 .5em; }
  #updated { color: #777; font-size: .9em; }
  #problem { color: #b00; font-weight: bold; }
  table { border-collapse: collapse; width: 100%; background: #fff; }
  th, td { text-align: left; padding: .35em .6em; border-bottom: 1px solid #e4e4e4; vertical-align: top; }
  th { font-weight: 600; color: #555; }
  .bar { width: 9em; height: .7em; background: #e6e6e6; border-radius: .35em; overflow: hidden; display: inline-block; }
  .bar > span { display: block; height: 100%; background: #2a7de1; }
  .map { display: inline-grid; gap: 1px; }
  .map > span { width: .9em; height: .9em; display: block; }
  .previews img { width: 64px; height: 64px; image-rendering: pixelated; margin-right: 2px; border: 1px solid #ccc; }
  video { width: 192px; image-rendering: pixelated; }
  button { margin-right: .3em; }
  .state-done { color: #197a30; } .state-failed { color: #b00; } .state-cancelled { color: #777; } .state-paused { color: #b07000; }
</style>
</head>
<body>
<h1>Reel farm</h1>
<div id="updated">connecting…</div>
<div id="problem"></div>
<h2>Jobs</h2>
<table id="jobs">
  <thead><tr><th>Job</th><th>Prompt</th><th>State</th><th>Progress</th><th>ETA</th><th>Priority</th>
  <th>Chunk × step map</th><th>Now</th><th></th></tr></thead>
  <tbody></tbody>
</table>
<h2>Workers</h2>
<table id="workers">
  <thead><tr><th>Worker</th><th>Host</th><th>State</th><th>Load</th><th>Threads</th><th>Models</th>
  <th>Heartbeat</th><th>Shards done</th><th>Build</th></tr></thead>
  <tbody></tbody>
</table>
<script src="dashboard.js"></script>
</body>
</html>
"""##

    static let dashboardJS = ##"""
// The farm dashboard: polls /api/farm every second and redraws the tables. Everything the
// farm reports is put in the page as text, never as markup.
"use strict";

// The token arrives in the address's fragment (#token=…), which browsers never send to a
// server. It is traded once for an HttpOnly cookie (POST /login) and wiped from the address
// bar; every request after that carries the cookie, and no URL ever holds the token.
async function login() {
  const token = new URLSearchParams(location.hash.slice(1)).get("token");
  if (!token) return;
  history.replaceState(null, "", location.pathname);
  const response = await fetch("/login", { method: "POST", headers: { "Content-Type": "text/plain" }, body: token });
  if (!response.ok) document.getElementById("problem").textContent = "login refused: " + await response.text();
}
const videos = new Map();   // job id -> <video>, kept so playback survives redraws

function element(tag, text, attributes) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, value);
  return node;
}

function cell(row, content) {
  const td = element("td");
  if (content instanceof Node) td.appendChild(content); else td.textContent = content ?? "";
  row.appendChild(td);
  return td;
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 60) return seconds.toFixed(0) + " s";
  return Math.floor(seconds / 60) + " min " + Math.round(seconds % 60) + " s";
}

function progressBar(job) {
  const wrapper = element("span");
  const bar = element("span", null, { class: "bar", role: "progressbar", "aria-valuenow": job.stepsDone, "aria-valuemax": job.stepsTotal });
  const fill = element("span");
  fill.style.width = (job.stepsTotal ? 100 * job.stepsDone / job.stepsTotal : 0) + "%";
  bar.appendChild(fill);
  wrapper.appendChild(bar);
  wrapper.appendChild(document.createTextNode(" " + job.stepsDone + "/" + job.stepsTotal));
  // A latent model's job also encodes its prompts first and decodes its video last.
  if (job.promptsTotal) {
    wrapper.appendChild(document.createTextNode(" · prompts " + job.promptsEncoded + "/" + job.promptsTotal
                                                + " · pieces decoded " + job.piecesDecoded + "/" + job.piecesTotal));
  }
  return wrapper;
}

// One cell per region: columns are chunks, rows are tiles; darker is further along. A long job's
// layout pass runs first, one window per shot: its columns lead, in amber. A chunk starts from
// a later step than the first (after the layout pass or an input video's kept steps); until it
// moves past it, its cell stays pale and says what it waits for (the coordinator tells which
// chunks wait for the layout).
function stepMap(job) {
  const map = element("span", null, { class: "map", title: "region steps: " + job.layoutSteps.concat(job.regionSteps).join(" ") });
  const layoutShots = job.tiles > 0 ? job.layoutSteps.length / job.tiles : 0;
  map.style.gridTemplateColumns = "repeat(" + (layoutShots + job.chunks) + ", .9em)";
  const cell = (step = 0, hue, name, first = 0, waitsForLayout = false) => {
    const what = first === 0 || step > first ? "step " + step + "/" + job.steps
               : (waitsForLayout ? "waits for the layout" : "not started") + ", to run steps " + first + "-" + job.steps;
    const square = element("span", null, { title: name + ": " + what });
    const done = (step - first) / Math.max(job.steps - first, 1);
    square.style.background = "hsl(" + hue + ", 75%, " + (92 - 55 * done) + "%)";
    return square;
  };
  for (let tile = 0; tile < job.tiles; tile++) {
    for (let shot = 0; shot < layoutShots; shot++) {
      const name = "layout" + (layoutShots > 1 ? " of shot " + shot : "") + ", tile " + tile;
      map.appendChild(cell(job.layoutSteps[shot * job.tiles + tile], 35, name));
    }
    for (let chunk = 0; chunk < job.chunks; chunk++) {
      map.appendChild(cell(job.regionSteps[chunk * job.tiles + tile], 213, "chunk " + chunk + ", tile " + tile,
                           job.chunkFirstStep, job.waitsForLayout[chunk]));
    }
  }
  return map;
}

function now(job) {
  if (job.state === "done") {
    if (!videos.has(job.id)) {
      videos.set(job.id, element("video", null, { src: "/api/jobs/" + job.id + "/video", controls: "", loop: "", muted: "", class: "video" }));
    }
    return videos.get(job.id);
  }
  if (job.state === "failed") return element("span", job.error);
  const previews = element("span", null, { class: "previews" });
  if (job.waiting) previews.appendChild(element("span", "waits: " + job.waiting, { class: "waiting" }));
  for (const chunk of job.previews) {
    previews.appendChild(element("img", null, {
      src: "/api/jobs/" + job.id + "/preview/" + chunk + "?done=" + job.stepsDone,
      alt: "chunk " + chunk + " at step " + job.regionSteps[chunk * job.tiles], title: "chunk " + chunk,
    }));
  }
  return previews;
}

async function post(path) {
  const response = await fetch(path, { method: "POST" });
  if (!response.ok) document.getElementById("problem").textContent = await response.text();
  refresh();
}

function actions(job) {
  const span = element("span");
  if (job.state === "failed" || job.state === "cancelled") {
    const retry = element("button", "Retry", { title: "submit it again as a new job", "data-action": "retry" });
    retry.onclick = () => post("/api/jobs/" + job.id + "/retry");
    span.append(retry);
    return span;
  }
  if (job.state !== "running" && job.state !== "paused") return span;
  const paused = job.state === "paused";
  const pause = element("button", paused ? "Resume" : "Pause", { "data-action": paused ? "resume" : "pause" });
  pause.onclick = () => post("/api/jobs/" + job.id + "/" + (paused ? "resume" : "pause"));
  const up = element("button", "▲", { title: "raise priority", "data-action": "raise" });
  up.onclick = () => post("/api/jobs/" + job.id + "/priority?value=" + (job.priority + 1));
  const down = element("button", "▼", { title: "lower priority", "data-action": "lower" });
  down.onclick = () => post("/api/jobs/" + job.id + "/priority?value=" + (job.priority - 1));
  const cancel = element("button", "Cancel", { "data-action": "cancel" });
  cancel.onclick = () => { if (confirm("Cancel job " + job.id + "?")) post("/api/jobs/" + job.id + "/cancel"); };
  span.append(up, down, pause, cancel);
  return span;
}

function drawJobs(jobs) {
  const body = document.querySelector("#jobs tbody");
  body.replaceChildren();
  if (jobs.length === 0) {
    const row = element("tr");
    cell(row, "no jobs yet: reel submit …").colSpan = 9;
    body.appendChild(row);
  }
  for (const job of jobs) {
    const row = element("tr", null, { "data-job": job.id, "data-state": job.state });
    cell(row, job.id);
    cell(row, job.prompt + " (" + job.frames + " frames, " + job.width + "×" + job.height + ")");
    cell(row, element("span", job.state, { class: "state-" + job.state }));
    cell(row, progressBar(job));
    cell(row, job.state === "running" ? duration(job.secondsRemaining) : duration(job.secondsElapsed) + " taken");
    cell(row, job.priority);
    cell(row, stepMap(job));
    cell(row, now(job));
    cell(row, actions(job));
    body.appendChild(row);
  }
}

function drawWorkers(workers) {
  const body = document.querySelector("#workers tbody");
  body.replaceChildren();
  if (workers.length === 0) {
    const row = element("tr");
    cell(row, "no workers connected: reel worker --connect …").colSpan = 9;
    body.appendChild(row);
  }
  for (const worker of workers) {
    const row = element("tr", null, { "data-worker": worker.id });
    cell(row, worker.id);
    cell(row, worker.host);
    cell(row, worker.state);
    cell(row, worker.state === "busy" ? worker.job + " region " + worker.region : "–");
    cell(row, worker.threads);
    // Parts show only for a worker holding some, not all, of a latent model's parts.
    cell(row, worker.models.join(", ") + (worker.parts.length && worker.parts.length < 3 ? " (" + worker.parts.join(", ") + ")" : ""));
    cell(row, worker.heartbeatAgeSeconds.toFixed(1) + " s ago");
    cell(row, worker.shardsCompleted);
    cell(row, (worker.build || "–") + ", " + worker.kernel);
    body.appendChild(row);
  }
}

async function refresh() {
  try {
    const response = await fetch("/api/farm", { cache: "no-store" });
    if (response.status === 401) {
      document.getElementById("problem").textContent = "not signed in: open the address the coordinator printed, with #token=… from its token file";
      return;
    }
    if (!response.ok) throw new Error(response.status + " " + await response.text());
    const farm = await response.json();
    drawJobs(farm.jobs);
    drawWorkers(farm.workers);
    document.getElementById("updated").textContent = farm.version + "; updated " + new Date(farm.taken * 1000).toLocaleTimeString();
    document.getElementById("problem").textContent = "";
  } catch (error) {
    document.getElementById("problem").textContent = "cannot reach the coordinator: " + error.message;
  }
}

login().then(() => {
  refresh();
  setInterval(refresh, 1000);
});
"""##
}
