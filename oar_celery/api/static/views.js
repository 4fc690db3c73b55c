// What the Gantt chart and the node grid share: fetching /gantt, colours, text, the refresh loop.
"use strict";

const STARTED = new Set(["toLaunch", "Launching", "Running", "Suspended", "Resuming", "Finishing"]);

function params() {
  return new URLSearchParams(window.location.search);
}

// The page is served at <root>/drawgantt or <root>/monika: the data is <root>/gantt.
async function fetchGantt(since, until) {
  const query = new URLSearchParams();
  if (since !== undefined) query.set("since", since);
  if (until !== undefined) query.set("until", until);
  const answer = await fetch("gantt?" + query.toString(), { credentials: "same-origin" });
  if (!answer.ok) throw new Error("gantt: HTTP " + answer.status);
  return answer.json();
}

function jobColour(job) {
  if (job.types.includes("besteffort")) return "hsl(0 0% 70%)";
  if (job.reservation && job.reservation !== "None") return "hsl(280 55% 65%)";
  return "hsl(" + ((job.id * 137.5) % 360).toFixed(0) + " 60% 58%)";
}

function jobKind(job) {
  if (job.predicted) return "predicted";
  return STARTED.has(job.state) ? "running" : "other";
}

function escapeText(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

function clock(epoch) {
  return new Date(epoch * 1000).toLocaleString();
}

function describe(job) {
  return [
    "job " + job.id + (job.name ? " (" + job.name + ")" : ""),
    "user: " + job.user + "   queue: " + job.queue,
    "state: " + job.state + (job.predicted ? " (predicted start)" : ""),
    "start: " + clock(job.start),
    "end: " + clock(job.stop) + "   walltime: " + job.walltime + " s",
    "resources: " + job.resources.length + (job.types.length ? "   types: " + job.types.join(",") : ""),
  ].join("\n");
}

// Refresh every ?refresh= seconds (default 10), and say when the last drawing was made.
function refreshing(draw) {
  const every = Math.max(1, Number(params().get("refresh") || 10));
  const summary = document.getElementById("summary");
  let busy = false;
  async function once() {
    if (busy) return;
    busy = true;
    try {
      const data = await draw();
      summary.dataset.updated = String(Date.now());
      summary.dataset.draws = String(Number(summary.dataset.draws || 0) + 1);
      summary.textContent = data.resources.length + " resources, " + data.jobs.length + " jobs, " +
        new Date().toLocaleTimeString();
    } catch (error) {
      summary.textContent = String(error);
    } finally {
      busy = false;
    }
  }
  once();
  setInterval(once, every * 1000);
}
