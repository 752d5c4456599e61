// Progressive enhancement only: every page works without this file.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // Show <time datetime="…"> values in the reader's own time zone.
  for (const el of document.querySelectorAll("time[datetime]")) {
    const when = new Date(el.getAttribute("datetime").replace(" UTC", "Z").replace(" ", "T"));
    if (!Number.isNaN(when.getTime())) {
      el.title = el.textContent;
      el.textContent = when.toLocaleString();
    }
  }

  // Forms that destroy or change something important ask first: <form data-confirm="…">.
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }
});
