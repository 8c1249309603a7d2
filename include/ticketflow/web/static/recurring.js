// The Recurring tickets page (recurring_page.py): everything it shows and changes goes through the
// /ticketflow/recurring API. Writes are same-origin JSON fetches carrying the UI's cookie, as the guard requires.
"use strict";

(() => {
  const main = document.getElementById("recurring");
  const API = main.dataset.api;
  const CAN_EDIT = main.dataset.canEdit === "true";
  const DEFAULT_ZONE = main.dataset.defaultTimezone;
  const PAGE_SIZE = 25;
  const PREVIEW_COUNT = 10;
  const PREVIEW_DELAY_MS = 300;

  const $ = (id) => document.getElementById(id);
  const state = { filter: new URLSearchParams(location.search).get("state") || "", offset: 0, total: 0,
                  templates: new Map(), editing: null, original: null, previewTimer: null, previewSeq: 0 };

  // ---- talking to the API ------------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, detail) {
      super(typeof detail === "string" ? detail : `${status}`);
      this.status = status;
      this.detail = detail;
    }
  }

  async function call(method, path, body) {
    const options = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    const answer = await fetch(API + path, options);
    const text = await answer.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (_) { data = text; }
    if (!answer.ok) throw new ApiError(answer.status, data && data.detail !== undefined ? data.detail : text);
    return data;
  }

  /** The field a 422 entry names: the last part of its `loc` that is a field of the form. */
  function fieldOf(entry) {
    const loc = (entry.loc || []).filter((part) => typeof part === "string" && part !== "body");
    return loc.length ? loc[loc.length - 1] : "*";
  }

  function message(error) {
    if (!(error instanceof ApiError)) return String(error);
    if (Array.isArray(error.detail)) {
      return error.detail.map((entry) => `${(entry.loc || []).slice(1).join(".") || "body"}: ${entry.msg}`).join("; ");
    }
    return `${error.status}: ${error.detail}`;
  }

  function notify(text, failed = false) {
    const notice = $("notice");
    notice.textContent = text;
    notice.classList.toggle("failed", failed);
  }

  // ---- time: wall times in a zone <-> instants ------------------------------------------------------------

  function zoneParts(zone, epochMs) {
    const parts = new Intl.DateTimeFormat("en-US", { timeZone: zone, hourCycle: "h23", year: "numeric",
      month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" })
      .formatToParts(new Date(epochMs));
    const get = (type) => Number(parts.find((part) => part.type === type).value);
    return { year: get("year"), month: get("month"), day: get("day"), hour: get("hour"), minute: get("minute"),
             second: get("second") };
  }

  const pad = (n, width = 2) => String(Math.abs(n)).padStart(width, "0");

  /** A datetime-local input's value as the API takes a local date-time ("2026-12-07T09:00", no offset): the
   *  server reads it in the body's time zone by the job's own rule for wall times (a time DST skips, a time it
   *  repeats), so the page has no second copy of that rule; the preview shows what it made of it. */
  function localDateTime(wall) {
    const match = /^(\d{4,})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(wall || "");
    return match ? `${match[1]}-${match[2]}-${match[3]}T${match[4]}:${match[5]}` : null;
  }

  /** An instant as the wall time of `zone`, for a datetime-local input. */
  function instantToWall(instant, zone) {
    if (!instant) return "";
    const epoch = Date.parse(instant);
    try {
      const p = zoneParts(zone, epoch);
      return `${pad(p.year, 4)}-${pad(p.month)}-${pad(p.day)}T${pad(p.hour)}:${pad(p.minute)}`;
    } catch (_) {
      return instant.slice(0, 16);
    }
  }

  /** How an occurrence's `local` reads in a table: date, time and offset, without the seconds. */
  function shortInstant(text) {
    if (!text) return "–";
    const match = /^(\S+?)T(\d{2}:\d{2})(?::\d{2}(?:\.\d+)?)?(Z|[+-]\d{2}:\d{2})?$/.exec(text);
    if (!match) return text;
    return `${match[1]} ${match[2]}${match[3] === "Z" ? " UTC" : match[3] ? ` (${match[3]})` : ""}`;
  }

  function utcText(instant) {
    if (!instant) return "–";
    const epoch = Date.parse(instant);
    if (Number.isNaN(epoch)) return instant;
    return new Date(epoch).toISOString().replace(/:\d{2}\.\d{3}Z$/, " UTC").replace("T", " ");
  }

  // ---- the list ----------------------------------------------------------------------------------------------

  function scheduleText(template) {
    const s = template.schedule || {};
    if (s.rrule) return s.rrule;
    const unit = { daily: "day", weekly: "week", monthly: "month" }[s.interval] || s.interval;
    return s.every > 1 ? `every ${s.every} ${unit}s` : `every ${unit}`;
  }

  function cell(row, text, className) {
    const td = row.insertCell();
    if (text !== undefined) td.textContent = text;
    if (className) td.className = className;
    return td;
  }

  function button(label, action, id) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = label;
    b.dataset.action = action;
    b.dataset.templateId = id;
    return b;
  }

  function templateRow(t) {
    const row = document.createElement("tr");
    row.dataset.templateId = t.id;
    row.dataset.state = t.state;
    if (t.state === "parked") row.classList.add("parked");
    cell(row, `${t.id}`);
    const subject = cell(row);
    subject.appendChild(document.createTextNode(t.subject));
    const about = [t.department, t.category, t.sub_category].filter(Boolean).join(" / ");
    if (about) {
      const line = document.createElement("div");
      line.className = "muted";
      line.textContent = about;
      subject.appendChild(line);
    }
    if (t.state === "parked") {
      const reason = document.createElement("div");
      reason.className = "parked-reason";
      reason.dataset.parkedReason = "";
      reason.textContent = `Parked: ${t.parked_reason || "no reason recorded"}`;
      subject.appendChild(reason);
    }
    if (t.state === "paused") {
      const paused = document.createElement("div");
      paused.className = "paused-reason";
      paused.textContent = ["Paused", t.paused_by ? ` by ${t.paused_by}` : "",
        t.paused_at ? ` on ${utcText(t.paused_at)}` : "", t.pause_reason ? `: ${t.pause_reason}` : ""].join("");
      subject.appendChild(paused);
    }
    const schedule = cell(row);
    schedule.textContent = scheduleText(t);
    const zone = document.createElement("div");
    zone.className = "muted";
    zone.textContent = t.timezone;
    schedule.appendChild(zone);
    const next = cell(row);
    next.dataset.next = "";
    // `upcoming`, not the job's pointer: a skipped occurrence is not the next one a person will see a ticket for
    next.textContent = t.upcoming ? instantToWallText(t.upcoming, t.timezone) : "–";
    if (t.upcoming) {
      const utc = document.createElement("div");
      utc.className = "muted";
      utc.textContent = utcText(t.upcoming);
      next.appendChild(utc);
    }
    const badge = document.createElement("span");
    badge.className = `badge ${t.state}`;
    badge.dataset.stateBadge = t.state;
    badge.textContent = t.state;
    cell(row).appendChild(badge);
    const actions = cell(row);
    const box = document.createElement("div");
    box.className = "actions";
    actions.appendChild(box);
    if (CAN_EDIT) {
      if (t.state === "parked") box.appendChild(button("Fix schedule", "fix", t.id));
      box.appendChild(button("Edit", "edit", t.id));
      if (t.state === "active" || t.state === "parked") box.appendChild(button("Pause", "pause", t.id));
      if (t.state === "paused") box.appendChild(button("Resume", "resume", t.id));
      if (t.state === "active" || t.state === "paused") box.appendChild(button("Skip…", "skip", t.id));
    }
    const history = button("History", "history", t.id);
    delete history.dataset.action;  // reading, not changing: every reader gets it
    history.dataset.view = "history";
    box.appendChild(history);
    return row;
  }

  function instantToWallText(instant, zone) {
    const wall = instantToWall(instant, zone);
    return wall ? wall.replace("T", " ") : instant;
  }

  async function loadTemplates() {
    const query = new URLSearchParams({ limit: PAGE_SIZE, offset: state.offset });
    if (state.filter) query.set("state", state.filter);
    let data;
    try {
      data = await call("GET", `/templates?${query}`);
    } catch (error) {
      notify(`Could not load the templates: ${message(error)}`, true);
      return;
    }
    state.total = data.total;
    state.templates = new Map(data.templates.map((t) => [t.id, t]));
    const body = $("templates");
    body.replaceChildren(...data.templates.map(templateRow));
    $("empty").hidden = data.templates.length > 0;
    const last = Math.min(state.offset + data.templates.length, data.total);
    $("page-info").textContent = data.total ? `${state.offset + 1}–${last} of ${data.total}` : "";
    $("previous-page").disabled = state.offset === 0;
    $("next-page").disabled = last >= data.total;
    main.dataset.loaded = String(Date.now());
  }

  $("state-filter").value = state.filter;
  $("state-filter").addEventListener("change", (event) => {
    state.filter = event.target.value;
    state.offset = 0;
    const url = new URL(location.href);
    if (state.filter) url.searchParams.set("state", state.filter); else url.searchParams.delete("state");
    history.replaceState(null, "", url);
    loadTemplates();
  });
  $("previous-page").addEventListener("click", () => {
    state.offset = Math.max(0, state.offset - PAGE_SIZE);
    loadTemplates();
  });
  $("next-page").addEventListener("click", () => {
    state.offset += PAGE_SIZE;
    loadTemplates();
  });

  // ---- history (every reader) ------------------------------------------------------------------------------

  async function showHistory(id) {
    const body = $("history");
    body.replaceChildren();
    $("history-title").textContent = `History of #${id}`;
    try {
      const data = await call("GET", `/templates/${id}/history?limit=50`);
      for (const entry of data.entries) {
        const row = body.insertRow();
        for (const text of [utcText(entry.at), entry.kind, shortInstant(entry.occurrence),
          entry.ticket_id === null ? "" : `#${entry.ticket_id}`, entry.by || "", entry.reason || ""]) {
          row.insertCell().textContent = text;
        }
      }
      if (!data.entries.length) body.insertRow().insertCell().textContent = "Nothing yet.";
    } catch (error) {
      body.insertRow().insertCell().textContent = message(error);
    }
    $("history-dialog").showModal();
  }
  $("history-close").addEventListener("click", () => $("history-dialog").close());

  $("templates").addEventListener("click", (event) => {
    const target = event.target.closest("button");
    if (!target) return;
    const id = Number(target.dataset.templateId);
    if (target.dataset.view === "history") showHistory(id);
    else if (CAN_EDIT && target.dataset.action) act(target.dataset.action, id);
  });

  loadTemplates();
  if (!CAN_EDIT) return;  // a reader's page ends here: no form, no actions

  // ---- the form and its live preview -------------------------------------------------------------------------

  const form = $("template-form");
  const field = (name) => form.elements.namedItem(name);
  const FIELDS = ["subject", "description", "department", "category", "sub_category", "priority", "requester"];

  if (typeof Intl.supportedValuesOf === "function") {
    $("zones").replaceChildren(...Intl.supportedValuesOf("timeZone").map((zone) => new Option(zone)));
  }

  function kind() {
    return form.querySelector('input[name="kind"]:checked').value;
  }

  function syncKind() {
    const rrule = kind() === "rrule";
    field("rrule").disabled = !rrule;
    field("every").disabled = rrule;
    field("interval").disabled = rrule;
  }

  function schedule() {
    if (kind() === "rrule") return { interval: null, every: null, rrule: field("rrule").value.trim() };
    const every = field("every").value.trim();
    return { interval: field("interval").value, every: every === "" ? null : Number(every), rrule: null };
  }

  function zone() {
    return field("timezone").value.trim() || DEFAULT_ZONE;
  }

  /** The body the API takes: every field, empty text as null. */
  function body() {
    const out = {};
    for (const name of FIELDS) {
      const value = field(name).value.trim();
      out[name] = value === "" ? null : value;
    }
    out.schedule = schedule();
    out.timezone = zone();
    out.start = localDateTime(field("start").value);
    out.end = localDateTime(field("end").value);
    const lead = field("lead_time_minutes").value.trim();
    out.lead_time_seconds = lead === "" ? 0 : Number(lead) * 60;
    out.missed_policy = field("missed_policy").value;
    return out;
  }

  function changes(before, after) {
    const changed = Object.fromEntries(Object.entries(after)
      .filter(([name, value]) => JSON.stringify(value) !== JSON.stringify(before[name])));
    // The form's times are wall times of the form's zone: a new zone keeps them as typed, read in that zone.
    if ("timezone" in changed) {
      for (const name of ["start", "end"]) if (after[name] !== null) changed[name] = after[name];
    }
    return changed;
  }

  function clearErrors() {
    for (const slot of form.querySelectorAll("[data-error-for]")) slot.textContent = "";
  }

  function showErrors(error) {
    clearErrors();
    const all = form.querySelector('[data-error-for="*"]');
    if (!(error instanceof ApiError) || !Array.isArray(error.detail)) {
      all.textContent = message(error);
      return;
    }
    for (const entry of error.detail) {
      const name = fieldOf(entry);
      const slot = [...form.querySelectorAll("[data-error-for]")]
        .find((s) => s.dataset.errorFor.split(" ").includes(name)) || all;
      slot.textContent = [slot.textContent, entry.msg].filter(Boolean).join("; ");
    }
  }

  function schedulePreview() {
    clearTimeout(state.previewTimer);
    state.previewTimer = setTimeout(preview, PREVIEW_DELAY_MS);
  }

  async function preview() {
    const sequence = ++state.previewSeq;
    const status = $("preview-status");
    const table = $("preview");
    const b = body();
    if (!b.start) {
      table.hidden = true;
      status.textContent = "Fill in the start to see the occurrences.";
      return;
    }
    status.textContent = "Computing…";
    try {
      const data = await call("POST", "/preview", { schedule: b.schedule, timezone: b.timezone, start: b.start,
        end: b.end, count: PREVIEW_COUNT, after: new Date().toISOString() });
      if (sequence !== state.previewSeq) return;  // the user typed on: a newer preview is coming
      const rows = data.occurrences.map((o) => {
        const row = document.createElement("tr");
        row.insertCell().textContent = shortInstant(o.local);
        row.insertCell().textContent = shortInstant(o.utc);
        row.dataset.local = o.local;
        row.dataset.utc = o.utc;
        return row;
      });
      table.tBodies[0].replaceChildren(...rows);
      table.hidden = rows.length === 0;
      status.textContent = rows.length ? `The next ${rows.length} after now, in ${b.timezone} and in UTC:`
        : "No occurrence after now: the series has ended.";
      clearErrors();
    } catch (error) {
      if (sequence !== state.previewSeq) return;
      table.hidden = true;
      status.textContent = "No preview: the schedule is not valid yet.";
      showErrors(error);
    }
  }

  form.addEventListener("input", (event) => {
    if (event.target.name === "kind") syncKind();
    schedulePreview();
  });
  form.addEventListener("change", (event) => {
    if (event.target.name === "kind") { syncKind(); schedulePreview(); }
  });

  function openEditor(template, focus) {
    state.editing = template ? template.id : null;
    form.reset();
    clearErrors();
    $("editor-title").textContent = template ? `Edit #${template.id}` : "New template";
    field("timezone").value = template ? template.timezone : DEFAULT_ZONE;
    if (template) {
      for (const name of FIELDS) field(name).value = template[name] === null ? "" : template[name];
      const s = template.schedule || {};
      form.querySelector(`input[name="kind"][value="${s.rrule ? "rrule" : "interval"}"]`).checked = true;
      field("rrule").value = s.rrule || "";
      if (s.interval) field("interval").value = s.interval;
      field("every").value = s.every === null || s.every === undefined ? 1 : s.every;
      field("start").value = instantToWall(template.start, template.timezone);
      field("end").value = instantToWall(template.end, template.timezone);
      field("lead_time_minutes").value = Math.round(template.lead_time_seconds / 60);
      field("missed_policy").value = template.missed_policy;
    }
    syncKind();
    state.original = template ? body() : null;  // an edit sends only what the user changed
    $("editor").hidden = false;
    (focus === "schedule" ? field(kind() === "rrule" ? "rrule" : "every") : field("subject")).focus();
    $("editor").scrollIntoView({ block: "nearest" });
    preview();
  }

  $("new-template").addEventListener("click", () => openEditor(null));
  $("cancel-edit").addEventListener("click", () => { $("editor").hidden = true; state.editing = null; });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const save = $("save-template");
    save.disabled = true;
    try {
      const saved = state.editing === null ? await call("POST", "/templates", body())
        : await call("PATCH", `/templates/${state.editing}`, changes(state.original, body()));
      $("editor").hidden = true;
      state.editing = null;
      notify(`Saved #${saved.id} "${saved.subject}": ${saved.state}.`);
      await loadTemplates();
    } catch (error) {
      showErrors(error);
    } finally {
      save.disabled = false;
    }
  });

  // ---- pause, resume, skip -------------------------------------------------------------------------------------

  const dialog = $("action-dialog");
  const actionForm = $("action-form");
  const TITLES = { pause: "Pause", resume: "Resume", skip: "Skip one occurrence" };
  const ABOUT = {
    pause: "A paused template makes no ticket until it is resumed.",
    resume: "The job takes it up again from its next occurrence.",
    skip: "That occurrence gets no ticket; the skip is recorded with your name and reason.",
  };

  async function act(action, id) {
    const template = state.templates.get(id);
    if (!template) return;
    if (action === "edit" || action === "fix") {
      try {
        openEditor(await call("GET", `/templates/${id}`), action === "fix" ? "schedule" : "subject");
      } catch (error) {
        notify(message(error), true);
      }
      return;
    }
    actionForm.reset();
    $("action-error").textContent = "";
    $("action-title").textContent = `${TITLES[action]} #${id} "${template.subject}"`;
    $("action-about").textContent = ABOUT[action];
    for (const part of actionForm.querySelectorAll("[data-for]")) {
      part.hidden = !part.dataset.for.split(" ").includes(action);
    }
    if (action === "skip") {
      const select = actionForm.elements.namedItem("occurrence");
      select.replaceChildren();
      try {
        const detail = await call("GET", `/templates/${id}`);
        for (const occurrence of detail.next_occurrences) {
          select.add(new Option(`${shortInstant(occurrence.local)} (${shortInstant(occurrence.utc)})`, occurrence.utc));
        }
      } catch (error) {
        notify(message(error), true);
        return;
      }
    }
    dialog.dataset.action = action;
    dialog.dataset.templateId = id;
    dialog.showModal();
  }

  function actionBody(action) {
    const data = new FormData(actionForm);
    const reason = (data.get("reason") || "").trim();
    if (action === "pause") return { reason: reason || null };
    if (action === "resume") return { missed: data.get("missed") };
    return { occurrence: data.get("occurrence"), reason };
  }

  actionForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const action = dialog.dataset.action;
    const id = Number(dialog.dataset.templateId);
    const confirm = $("action-confirm");
    confirm.disabled = true;
    try {
      await call("POST", `/templates/${id}/${action}`, actionBody(action));
      dialog.close();
      notify(`${TITLES[action]}: #${id} done.`);
      await loadTemplates();
    } catch (error) {
      $("action-error").textContent = message(error);
    } finally {
      confirm.disabled = false;
    }
  });
  $("action-cancel").addEventListener("click", () => dialog.close());
})();
