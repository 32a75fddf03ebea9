// Relay admin: progressive enhancement only. Every page works without this file.
"use strict";
document.documentElement.classList.add("js");

// Small screens: the navigation folds behind a Menu button (without JavaScript it simply stays open).
const navToggle = document.querySelector(".nav-toggle");
if (navToggle) {
  navToggle.addEventListener("click", () => {
    const open = navToggle.closest(".nav").classList.toggle("open");
    navToggle.setAttribute("aria-expanded", String(open));
  });
}

// Copy buttons: <button data-copy="element-id">. Reads an input's value or an element's text.
document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const source = document.getElementById(button.dataset.copy);
  if (!source) return;
  const text = "value" in source ? source.value : source.textContent;
  let copied = false;
  try {
    await navigator.clipboard.writeText(text);
    copied = true;
  } catch (_) {
    const range = document.createRange();
    range.selectNodeContents(source);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    if (typeof source.select === "function") source.select();
    copied = document.execCommand("copy");
  }
  const label = button.dataset.label || button.textContent;
  button.dataset.label = label;
  button.textContent = copied ? "Copied" : "Press Ctrl+C";
  setTimeout(() => { button.textContent = label; }, 1600);
});

// Destructive forms ask first: <form data-confirm="Revoke this key?">.
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) event.preventDefault();
});

// Model form: the new-upstream fields only matter when "New upstream" is chosen.
const upstreamSelect = document.getElementById("f-upstream");
const newUpstream = document.getElementById("new-upstream");
if (upstreamSelect && newUpstream) {
  const sync = () => { newUpstream.hidden = upstreamSelect.value !== "new"; };
  upstreamSelect.addEventListener("change", sync);
  sync();
}
