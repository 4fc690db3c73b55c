// OAR's drawgantt: resources down, time across; one SVG rectangle per job and run of consecutive resources.
"use strict";

const LABEL_WIDTH = 120;
const AXIS = 18;
let jobsById = new Map();

function rowHeight(count) {
  return count > 2000 ? 3 : count > 500 ? 5 : count > 100 ? 9 : 16;
}

// Consecutive rows of a job's resources, as [first, last] pairs.
function runs(rows) {
  const sorted = rows.slice().sort((a, b) => a - b);
  const result = [];
  for (const row of sorted) {
    const last = result[result.length - 1];
    if (last && row === last[1] + 1) last[1] = row;
    else result.push([row, row]);
  }
  return result;
}

function ticks(since, until) {
  const span = until - since;
  const step = span > 48 * 3600 ? 6 * 3600 : span > 12 * 3600 ? 3600 : span > 3 * 3600 ? 1800 : 600;
  const out = [];
  for (let t = Math.ceil(since / step) * step; t < until; t += step) out.push(t);
  return out;
}

async function draw() {
  const now = Date.now() / 1000;
  const before = Number(document.getElementById("before").value);
  const after = Number(document.getElementById("after").value);
  const data = await fetchGantt(Math.floor(now - before * 3600), Math.ceil(now + after * 3600));
  const chart = document.getElementById("chart");
  const width = Math.max(700, chart.clientWidth - 4);
  const h = rowHeight(data.resources.length);
  const height = AXIS + data.resources.length * h + 2;
  const x = (t) => LABEL_WIDTH + ((t - data.since) / (data.until - data.since)) * (width - LABEL_WIDTH);
  const rowOf = new Map(data.resources.map((r, i) => [r.id, i]));
  const y = (row) => AXIS + row * h;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" id="gantt">`,
    '<defs><pattern id="besteffort" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">',
    '<rect width="6" height="6" fill="#ddd"/><rect width="3" height="6" fill="#999"/></pattern></defs>',
  ];
  for (const t of ticks(data.since, data.until)) {
    const date = new Date(t * 1000);
    const label = date.getHours().toString().padStart(2, "0") + ":" + date.getMinutes().toString().padStart(2, "0");
    parts.push(`<line x1="${x(t)}" x2="${x(t)}" y1="${AXIS - 4}" y2="${height}" stroke="#eee"/>`);
    parts.push(`<text x="${x(t) + 2}" y="11">${label}</text>`);
  }
  let host = null;
  data.resources.forEach((r, i) => {
    if (r.host !== host) {
      host = r.host;
      parts.push(`<line class="host" x1="0" x2="${width}" y1="${y(i)}" y2="${y(i)}"/>`);
      parts.push(`<text x="2" y="${y(i) + Math.min(10, Math.max(h, 8))}" data-host="${escapeText(host)}">${escapeText(host)}</text>`);
    }
    if (r.state !== "Alive") {
      parts.push(`<rect class="down ${r.state}" data-resource-id="${r.id}" data-state="${r.state}" x="${LABEL_WIDTH}" ` +
        `y="${y(i)}" width="${width - LABEL_WIDTH}" height="${h}"><title>resource ${r.id} ${r.state}</title></rect>`);
    }
  });
  jobsById = new Map();
  for (const job of data.jobs) {
    const start = Math.max(job.start, data.since);
    const stop = Math.min(Math.max(job.stop, job.start + 1), data.until);
    if (stop <= data.since || start >= data.until) continue;
    jobsById.set(String(job.id), job);
    const kind = jobKind(job);
    const classes = ["job", kind];
    if (job.reservation && job.reservation !== "None") classes.push("reservation");
    if (job.types.includes("besteffort")) classes.push("besteffort");
    const rows = job.resources.map((id) => rowOf.get(id)).filter((row) => row !== undefined);
    for (const [first, last] of runs(rows)) {
      parts.push(`<rect class="${classes.join(" ")}" data-job-id="${job.id}" data-state="${job.state}" ` +
        `data-kind="${kind}" x="${x(start).toFixed(1)}" y="${y(first)}" ` +
        `width="${Math.max(1, x(stop) - x(start)).toFixed(1)}" height="${(last - first + 1) * h - 0.5}" ` +
        `fill="${jobColour(job)}"/>`);
    }
  }
  parts.push(`<line class="now" x1="${x(data.now)}" x2="${x(data.now)}" y1="${AXIS - 6}" y2="${height}"/>`);
  parts.push("</svg>");
  chart.innerHTML = parts.join("");
  return data;
}

function jobUnder(event) {
  const target = event.target.closest ? event.target.closest("rect.job") : null;
  return target ? jobsById.get(target.dataset.jobId) : undefined;
}

window.addEventListener("DOMContentLoaded", () => {
  const chart = document.getElementById("chart");
  const tip = document.getElementById("tip");
  chart.addEventListener("mousemove", (event) => {
    const job = jobUnder(event);
    tip.style.display = job ? "block" : "none";
    if (job) {
      tip.textContent = describe(job);
      tip.style.left = event.clientX + 14 + "px";
      tip.style.top = event.clientY + 10 + "px";
    }
  });
  chart.addEventListener("mouseleave", () => { tip.style.display = "none"; });
  chart.addEventListener("click", (event) => {
    const job = jobUnder(event);
    if (!job) return;
    document.querySelectorAll("rect.job.selected").forEach((r) => r.classList.remove("selected"));
    document.querySelectorAll(`rect.job[data-job-id="${job.id}"]`).forEach((r) => r.classList.add("selected"));
    document.getElementById("details").textContent = describe(job);
  });
  for (const id of ["before", "after"]) document.getElementById(id).addEventListener("change", draw);
  refreshing(draw);
});
