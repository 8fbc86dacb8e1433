// Muster console: copy buttons, times in the reader's time zone, and results that page and
// filter in place. Everything works without script too (the server renders whole pages).
document.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-copy]");
  if (!button) return;
  const field = document.getElementById(button.dataset.copy);
  if (!field) return;
  navigator.clipboard.writeText(field.value).then(
    () => { button.textContent = "Copied"; },
    () => { field.select(); button.textContent = "Press Ctrl+C"; }
  );
});

// <time datetime="UTC"> shows the time in the browser's time zone; the UTC value is on hover.
function localTimes(root) {
  for (const t of root.querySelectorAll("time[datetime]")) {
    const d = new Date(t.dateTime);
    if (Number.isNaN(d.getTime())) continue;
    t.title = `${t.dateTime} (UTC)`;
    t.textContent = d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
  }
}
document.addEventListener("DOMContentLoaded", () => localTimes(document));

// A form or link marked data-partial="ID" fetches its page and replaces only the element ID
// (the results), keeping the rest of the page; the address bar follows, so Back and reload work.
async function loadPartial(url, id) {
  const target = document.getElementById(id);
  if (!target) return false;
  target.setAttribute("aria-busy", "true");
  let doc;
  let ok = false;
  try {
    const resp = await fetch(url, { credentials: "same-origin" });
    ok = resp.ok;
    doc = new DOMParser().parseFromString(await resp.text(), "text/html");
  } catch {
    doc = null;
  }
  const fresh = doc?.getElementById(id);
  if (!ok || !fresh) { location.href = url; return true; }
  target.replaceWith(fresh);
  localTimes(fresh);
  history.pushState({ partial: id }, "", url);
  fresh.focus();
  return true;
}
document.addEventListener("click", (event) => {
  const link = event.target.closest("a[data-partial]");
  if (!link || event.ctrlKey || event.metaKey || event.shiftKey) return;
  event.preventDefault();
  loadPartial(link.href, link.dataset.partial);
});
document.addEventListener("submit", (event) => {
  const form = event.target.closest("form[data-partial]");
  // getAttribute: a field named "action" (the sync log's filter has one) shadows form.action.
  if (!form || (form.getAttribute("method") ?? "get").toLowerCase() !== "get") return;
  event.preventDefault();
  const url = new URL(form.getAttribute("action") ?? location.pathname, location.href);
  url.search = new URLSearchParams(new FormData(form)).toString();
  loadPartial(url.toString(), form.dataset.partial);
});
window.addEventListener("popstate", () => location.reload());
