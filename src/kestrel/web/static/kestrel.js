// Kestrel dashboard charts. Each <canvas data-chart="kind" data-source="id"> reads its data
// from the JSON <script id="id"> beside it (no inline scripts: the CSP forbids them), and is
// drawn on page load and again after every htmx swap.
"use strict";

const SEVERITY_COLOURS = { info: "#8a94a6", low: "#3b8c5a", medium: "#c98a14", high: "#d2572b", critical: "#a4161a" };
const PALETTE = ["#2456c8", "#d2572b", "#3b8c5a", "#c98a14", "#7a3fb8", "#a4161a", "#1f8a99"];

function stacked(data) {
  const names = Object.keys(data.series);
  return {
    type: "bar",
    data: { labels: data.labels, datasets: names.map((name, i) => ({
      label: name, data: data.series[name],
      backgroundColor: SEVERITY_COLOURS[name] || PALETTE[i % PALETTE.length] })) },
    options: { animation: false, scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } } },
  };
}

function signals(data) {
  return {
    type: "bar",
    data: { labels: data.labels, datasets: [
      { label: "value", data: data.values, backgroundColor: "#d2572b" },
      { label: "threshold", data: data.thresholds, backgroundColor: "#8a94a6" } ] },
    options: { animation: false, indexAxis: "y", scales: { x: { beginAtZero: true } } },
  };
}

function live(points) {
  return {
    type: "line",
    data: { labels: points.map((p) => p.hour), datasets: [
      { label: "events / hour", data: points.map((p) => p.events), borderColor: "#2456c8", yAxisID: "y" },
      { label: "findings so far", data: points.map((p) => p.findings), borderColor: "#a4161a", yAxisID: "y1" },
      { label: "strongest z-score", data: points.map((p) => p.max_z), borderColor: "#c98a14", yAxisID: "y1" } ] },
    options: { animation: false, scales: { y: { beginAtZero: true, position: "left" },
      y1: { beginAtZero: true, position: "right", grid: { drawOnChartArea: false } } } },
  };
}

const KINDS = { stacked, signals, live };

function drawCharts(root) {
  if (typeof Chart === "undefined") return;
  root.querySelectorAll("canvas[data-chart]").forEach((canvas) => {
    if (canvas.dataset.drawn) return;
    const source = document.getElementById(canvas.dataset.source);
    const make = KINDS[canvas.dataset.chart];
    if (!source || !make) return;
    new Chart(canvas, make(JSON.parse(source.textContent)));
    canvas.dataset.drawn = "1";
  });
}

document.addEventListener("DOMContentLoaded", () => drawCharts(document));
document.addEventListener("htmx:afterSettle", (event) => drawCharts(event.target));
