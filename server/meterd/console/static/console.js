// Meter console: local time on hover, the overview's charts, the live alert feed. No inline scripts (CSP).
"use strict";

function localTimes(root) {
  root.querySelectorAll("time[datetime]").forEach(function (el) {
    if (!el.dateTime) return;
    var at = new Date(el.dateTime);
    if (!isNaN(at)) el.title = at.toLocaleString() + " (your local time)";
  });
}

var PALETTE = ["#2458c6", "#e07b1a", "#2e9e5b", "#b43fa8", "#c9392c", "#5c6bc0", "#8d6e63", "#00838f", "#9e9d24", "#6d4c41"];

function drawCharts() {
  var holder = document.getElementById("chart-data");
  if (!holder || typeof Chart === "undefined") return;
  var data = JSON.parse(holder.textContent);
  var colour = function (ds, i) { ds.backgroundColor = PALETTE[i % PALETTE.length]; ds.borderColor = PALETTE[i % PALETTE.length]; return ds; };
  var common = { responsive: true, maintainAspectRatio: false, animation: false, plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } } };
  new Chart(document.getElementById("chart-daily"), {
    type: "bar",
    data: { labels: data.daily.labels, datasets: data.daily.datasets.map(colour) },
    options: Object.assign({}, common, { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } } }),
  });
  new Chart(document.getElementById("chart-latency"), {
    type: "bar",
    data: { labels: data.latency.labels, datasets: data.latency.datasets.map(colour) },
    options: Object.assign({}, common, { scales: { y: { beginAtZero: true } } }),
  });
  new Chart(document.getElementById("chart-errors"), {
    type: "bar",
    data: { labels: data.errors.labels, datasets: data.errors.datasets.map(function (ds) { ds.backgroundColor = "#c9392c"; return ds; }) },
    options: Object.assign({}, common, { scales: { y: { beginAtZero: true } } }),
  });
  document.body.dataset.charts = "drawn";
}

function cell(text, tag) {
  var td = document.createElement(tag || "td");
  td.textContent = text;
  return td;
}

function alertFeed() {
  var table = document.getElementById("alert-feed");
  if (!table || typeof EventSource === "undefined") return;
  var body = table.querySelector("tbody");
  var state = document.getElementById("feed-state");
  var seen = new Set();
  var source = new EventSource(table.dataset.stream);
  source.onopen = function () { state.textContent = "live"; state.className = "live on"; };
  source.onerror = function () { state.textContent = "reconnecting…"; state.className = "live"; };
  source.addEventListener("heartbeat", function () { state.textContent = "live"; state.className = "live on"; });
  source.addEventListener("alert", function (event) {
    var a = JSON.parse(event.data);
    if (seen.has(a.id)) return;  // a reconnect replays from the last safe point
    seen.add(a.id);
    var tr = document.createElement("tr");
    tr.className = "new " + a.severity;
    tr.dataset.alertId = a.id;
    var when = document.createElement("td");
    var t = document.createElement("time");
    t.dateTime = a.created_at;
    t.textContent = a.created_utc;
    when.appendChild(t);
    tr.appendChild(when);
    [a.severity, a.kind, a.subject, a.limit_id, a.message].forEach(function (v) { tr.appendChild(cell(v)); });
    body.insertBefore(tr, body.firstChild);
    while (body.rows.length > 200) body.deleteRow(body.rows.length - 1);
    localTimes(tr);
  });
}

// Tables that read the most rows arrive after the page (see pages.SLOW_TABLES).
function deferredTables() {
  document.querySelectorAll("[data-fragment]").forEach(function (slot) {
    fetch(slot.dataset.fragment, { credentials: "same-origin" })
      .then(function (response) { if (!response.ok) throw new Error(response.status); return response.text(); })
      .then(function (html) {
        var holder = document.createElement("div");
        holder.innerHTML = html;  // rendered and escaped by the console's templates
        var table = holder.firstElementChild;
        slot.replaceWith(table);
        localTimes(table);
      })
      .catch(function (err) {
        slot.querySelector(".loading").textContent = "Could not load this table (" + err.message + "); reload to retry.";
      });
  });
}

function confirmations() {
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });
}

document.addEventListener("DOMContentLoaded", function () {
  localTimes(document);
  confirmations();
  deferredTables();
  drawCharts();
  alertFeed();
});
