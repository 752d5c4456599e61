// Progressive enhancement only: every page works without this file.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // <time datetime="…"> values in the reader's own time zone, in the pages' one format
  // (2026-12-01 22:00 CET); the UTC time stays on hover.
  const zone = (when) =>
    new Intl.DateTimeFormat(undefined, { timeZoneName: "short" })
      .formatToParts(when)
      .find((part) => part.type === "timeZoneName")?.value ?? "";
  const two = (n) => String(n).padStart(2, "0");
  const local = (root) => {
    for (const el of root.querySelectorAll("time[datetime]")) {
      const when = new Date(el.getAttribute("datetime"));
      if (Number.isNaN(when.getTime()) || el.dataset.local) continue;
      const day = `${when.getFullYear()}-${two(when.getMonth() + 1)}-${two(when.getDate())}`;
      el.textContent = `${day} ${two(when.getHours())}:${two(when.getMinutes())} ${zone(when)}`;
      el.dataset.local = "yes";
    }
  };
  local(document);

  // Copy buttons (hidden without JavaScript, where selecting the text does the same):
  // <button data-copy="#id"> copies that element's text and says so.
  for (const button of document.querySelectorAll("button[data-copy]")) {
    button.hidden = false;
    const label = button.textContent;
    button.addEventListener("click", async () => {
      const source = document.querySelector(button.dataset.copy);
      try {
        await navigator.clipboard.writeText(source.textContent.trim());
        button.textContent = "Copied";
      } catch {
        button.textContent = "Select the text to copy it";
      }
      setTimeout(() => (button.textContent = label), 2000);
    });
  }

  // Forms that destroy or change something important ask first: <form data-confirm="…">.
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }

  // Backlog: drag a row to reorder it. Without JavaScript the ↑/↓ buttons do the same.
  const backlog = document.querySelector("table.backlog[data-draggable]");
  if (backlog) {
    const csrf = document.querySelector('meta[name="csrf-token"]').content;
    const rows = () => [...backlog.tBodies[0].rows];
    let dragged = null;
    for (const row of rows()) {
      row.draggable = true;
      row.addEventListener("dragstart", (event) => {
        dragged = row;
        row.classList.add("dragging");
        event.dataTransfer.effectAllowed = "move";
      });
      row.addEventListener("dragend", () => row.classList.remove("dragging"));
      row.addEventListener("dragover", (event) => event.preventDefault());
      row.addEventListener("drop", async (event) => {
        event.preventDefault();
        if (!dragged || dragged === row) return;
        const body = new URLSearchParams({ _csrf: csrf, position: String(rows().indexOf(row)) });
        await fetch(dragged.dataset.moveUrl, { method: "POST", body, redirect: "manual" });
        window.location.reload();
      });
    }
  }

  // Job pages follow the job live (Server-Sent Events); the page itself is the fallback. A
  // change of what [data-announce] says is read out by screen readers (the live region is
  // outside <main>, which is swapped).
  const live = document.querySelector("[data-job-events]");
  const liveRegion = document.getElementById("live-status");
  let announced = document.querySelector("[data-announce]")?.textContent.trim();
  const announce = (root) => {
    const now = root.querySelector("[data-announce]")?.textContent.trim();
    if (liveRegion && now && now !== announced) liveRegion.textContent = `Now ${now}`;
    announced = now;
  };
  if (live && window.EventSource) {
    const events = new EventSource(live.dataset.jobEvents);
    let first = true;
    // One refresh at a time, and one more if news came meanwhile: overlapping fetches could
    // otherwise land out of order and leave an older snapshot on screen.
    let refreshing = false;
    let again = false;
    const refresh = async () => {
      if (refreshing) {
        again = true;
        return;
      }
      refreshing = true;
      try {
        do {
          again = false;
          const response = await fetch(window.location.href, {
            headers: { Accept: "text/html" },
            cache: "no-store",
          });
          const page = new DOMParser().parseFromString(await response.text(), "text/html");
          // Asked before the swap: replaceWith moves the new <main> out of `page`.
          const stillLive = page.querySelector("[data-job-events]") !== null;
          const fresh = page.querySelector("main");
          local(fresh);
          document.querySelector("main").replaceWith(fresh);
          announce(fresh);
          if (!stillLive) {
            events.close();
            again = false;
          }
        } while (again);
      } finally {
        refreshing = false;
      }
    };
    events.addEventListener("progress", () => {
      if (first) {
        first = false; // The page already shows the first snapshot.
        return;
      }
      refresh();
    });
  }

  // A select in a form marked data-autosubmit submits it on change (the button does the same).
  for (const form of document.querySelectorAll("form[data-autosubmit]")) {
    for (const select of form.querySelectorAll("select")) {
      select.addEventListener("change", () => form.submit());
    }
  }

  // The environment request form: the name is checked as it is typed, and the estimate and
  // plan follow the fields. Without JavaScript, "Update estimate and plan" and submitting do both.
  const request = document.querySelector("form[data-preview]");
  if (request) {
    const name = request.querySelector('input[name="name"]');
    const status = request.querySelector("[data-name-status]");
    let nameTimer = null;
    name.addEventListener("input", () => {
      clearTimeout(nameTimer);
      nameTimer = setTimeout(async () => {
        const url = `${request.dataset.nameCheck}?name=${encodeURIComponent(name.value)}`;
        const response = await fetch(url, { headers: { Accept: "application/json" } });
        if (!response.ok) return;
        const verdict = await response.json();
        status.textContent = verdict.message;
        status.classList.toggle("field-error", !verdict.available);
      }, 250);
    });
    let previewTimer = null;
    request.addEventListener("change", () => {
      clearTimeout(previewTimer);
      previewTimer = setTimeout(async () => {
        const body = new URLSearchParams(new FormData(request));
        body.set("intent", "preview");
        const response = await fetch(request.action, { method: "POST", body });
        const page = new DOMParser().parseFromString(await response.text(), "text/html");
        const fresh = page.querySelector(request.dataset.preview);
        if (fresh) document.querySelector(request.dataset.preview).replaceWith(fresh);
      }, 150);
    });
  }
});
