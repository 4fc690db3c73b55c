// OAR's monika: every node with a cell per core (resource), the job running on it, the node's state.
"use strict";

let gridJobs = new Map();

function nodeState(resources) {
  const states = new Set(resources.map((r) => r.state));
  for (const state of ["Dead", "Suspected", "Absent"]) if (states.has(state)) return state;
  return "Alive";
}

async function draw() {
  const now = Date.now() / 1000;
  const data = await fetchGantt(Math.floor(now - 60), Math.ceil(now + 60));
  const running = new Map();
  gridJobs = new Map();
  for (const job of data.jobs) {
    if (job.predicted || !STARTED.has(job.state)) continue;
    gridJobs.set(String(job.id), job);
    for (const id of job.resources) running.set(id, job);
  }
  const hosts = new Map();
  for (const r of data.resources) {
    if (!hosts.has(r.host)) hosts.set(r.host, []);
    hosts.get(r.host).push(r);
  }
  const parts = [];
  let busy = 0;
  let down = 0;
  for (const [host, resources] of hosts) {
    const state = nodeState(resources);
    parts.push(`<div class="node ${state}" data-host="${escapeText(host)}" data-state="${state}">` +
      `<h2><span>${escapeText(host)}</span><span>${state}</span></h2><div class="cells">`);
    for (const r of resources) {
      const job = running.get(r.id);
      if (r.state !== "Alive") down += 1;
      if (job) {
        busy += 1;
        parts.push(`<div class="cell busy" data-resource-id="${r.id}" data-job-id="${job.id}" ` +
          `style="background:${jobColour(job)}" title="resource ${r.id}: job ${job.id} (${escapeText(job.user)})">${job.id}</div>`);
      } else {
        parts.push(`<div class="cell ${r.state}" data-resource-id="${r.id}" title="resource ${r.id} ${r.state}"></div>`);
      }
    }
    parts.push("</div></div>");
  }
  document.getElementById("grid").innerHTML = parts.join("");
  const counts = document.getElementById("counts");
  counts.textContent = `${hosts.size} nodes, ${busy} busy / ${data.resources.length - busy - down} free / ${down} down`;
  counts.dataset.busy = String(busy);
  return data;
}

window.addEventListener("DOMContentLoaded", () => {
  document.getElementById("grid").addEventListener("click", (event) => {
    const cell = event.target.closest(".cell.busy");
    const job = cell ? gridJobs.get(cell.dataset.jobId) : undefined;
    if (job) document.getElementById("details").textContent = describe(job);
  });
  refreshing(draw);
});
