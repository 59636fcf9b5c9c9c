// The labeling page: one item or scene at a time, keyboard first, against the same API as scripts
// (session cookie + CSRF header). Server data comes from the json_script "label-page-data"; every
// string from the server (labels, reference ids, metadata) is put in the page with textContent.
//
// Prefetch: the server lets a labeler hold one task per dataset, so the next task cannot be taken
// ahead of time. Instead the page asks `ahead/` which tasks `next/` would probably hand out after
// the current one (nothing is reserved) and loads and decodes their images while the labeler works.
// On Enter one request, submit-and-next/, stores the answers and claims the next task, and the next
// image, already decoded, is swapped in as soon as it answers. When another labeler took a
// previewed task first, the server hands out another one and its image loads then.

import { formatValue, parseRows } from "./metadata_editor.js";

const data = JSON.parse(document.getElementById("label-page-data").textContent);
const page = document.getElementById("label-page");
const isScene = data.dataset.kind === "scenes";
const $ = (id) => document.getElementById(id);

const DRAFT_DELAY_MS = 800;
const AHEAD_LIMIT = 3;
const MAX_PRELOADED = 40;
const ZOOM_STEP = 1.25;
const HISTORY_KEY = `label-page:history:${data.dataset.id}`;
const HISTORY_MAX = 200;
// The page's keys come from the server (taxonomies.models.PAGE_KEYS, which also decides which keys a
// label cannot take as its hotkey): key -> what it does.
const KEY_ACTIONS = new Map(Object.entries(data.keys).flatMap(([action, keys]) => keys.map((key) => [key, action])));

const state = {
  task: null, // the task on screen (next/ or tasks/<reference_id>/ answer)
  past: false, // true when it is an earlier item of the history, not the held one
  answers: new Map(), // taxonomy_name -> {label, labels: Set, answered, metadata, stored, finished}
  current: 0, // index of the current taxonomy
  history: loadHistory(), // reference ids submitted or skipped, oldest first
  cursor: 0, // position in history while going back; history.length on the held item
  busy: false,
  dirty: false,
  draftTimer: null,
  leaseTimer: null,
  frame: 0,
  playTimer: null,
  helpOpen: false,
  sessionStart: Date.now(),
  sessionCount: 0,
  progress: { ...data.progress },
  // Tasks waiting for their images' check, and those that failed it: from the page's progress, then
  // from the headers of the answer that says nothing is left (next/'s 204, submit-and-next/'s null next).
  waiting: { checking: data.progress.checking, failed: data.progress.failed_images },
};
state.cursor = state.history.length;

// --- API ----------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body) {
    const errors = body && Array.isArray(body.errors) ? body.errors : [];
    const detail = body && typeof body.detail === "string" ? body.detail : "";
    super(errors.map((e) => e.message).join(" ") || detail || `The server answered ${status}.`);
    this.status = status;
  }
}

async function api(method, url, body, { keepalive = false } = {}) {
  const headers = { Accept: "application/json", "X-CSRFToken": data.csrf_token };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(url, {
    method,
    headers,
    credentials: "same-origin",
    keepalive,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.headers.has("Queue-Checking")) {
    state.waiting = { checking: Number(response.headers.get("Queue-Checking")), failed: Number(response.headers.get("Queue-Failed")) };
  }
  if (response.status === 204) return null;
  const payload = await response.json().catch(() => null);
  if (response.status === 401) throw new ApiError(401, { detail: "You are signed out: reload the page to sign in again." });
  if (!response.ok) throw new ApiError(response.status, payload);
  return payload;
}

const taskUrl = (referenceId) => data.urls.task.replace("__reference_id__", encodeURIComponent(referenceId));

// --- Taxonomies and answers -----------------------------------------------------------------------

// The taxonomies on screen: all of them, or for an item sent back for new classes only what it
// asks (see viewFor). Sections are built again when it changes.
let taxonomies = data.taxonomies;
const sections = [];

function buildTaxonomies() {
  const container = $("taxonomies");
  container.replaceChildren();
  sections.length = 0;
  taxonomies.forEach((taxonomy, index) => {
    const section = $("taxonomy-template").content.firstElementChild.cloneNode(true);
    section.dataset.taxonomy = taxonomy.taxonomy_name;
    section.querySelector(".taxonomy-name").textContent = taxonomy.taxonomy_name;
    section.querySelector(".taxonomy-kind").textContent = taxonomy.asking ? "new classes only" : taxonomy.multi_label ? "any number" : "one";
    section.querySelector(".required-mark").textContent = taxonomy.required ? "required" : "optional";
    section.classList.toggle("required", taxonomy.required);
    const list = section.querySelector(".labels");
    const choices = taxonomy.labels.map((label) => ({ name: label.name, hotkey: label.hotkey }));
    if (taxonomy.multi_label) choices.push({ name: "None of these", hotkey: "", none: true });
    choices.forEach((choice, position) => {
      const item = $("label-template").content.firstElementChild.cloneNode(true);
      const button = item.querySelector("button");
      button.dataset.position = String(position);
      if (choice.none) button.classList.add("none");
      item.querySelector(".label-name").textContent = choice.name;
      item.querySelector(".digit").textContent = position < 9 ? String(position + 1) : "";
      item.querySelector(".hotkey").textContent = choice.hotkey || "";
      button.addEventListener("click", () => {
        setCurrent(index, { focus: false });
        choose(index, position);
      });
      list.append(item);
    });
    section.addEventListener("click", () => setCurrent(index, { focus: false }));
    section.querySelector(".add-metadata").addEventListener("click", () => addMetadataRow(index, "", "", true));
    section.querySelector(".metadata-toggle").addEventListener("click", () => {
      setCurrent(index, { focus: false });
      toggleMetadataEditor();
    });
    container.append(section);
    sections.push(section);
  });
}

// An item sent back for the classes added since (its answers say which: `new_classes`) shows only
// those classes, and the taxonomies it has no finished answer for; its other finished answers are
// sent again as they are (restatedRows), so nothing else changes.
function viewFor(task) {
  const annotations = task.annotations || [];
  const asked = new Map(annotations.filter((a) => a.new_classes).map((a) => [a.taxonomy_name, a.new_classes]));
  if (!asked.size) return data.taxonomies;
  const finished = new Set(annotations.filter((a) => a.status === "finished").map((a) => a.taxonomy_name));
  return data.taxonomies
    .filter((taxonomy) => asked.has(taxonomy.taxonomy_name) || !finished.has(taxonomy.taxonomy_name))
    .map((taxonomy) => {
      if (!asked.has(taxonomy.taxonomy_name)) return taxonomy;
      const known = new Map(taxonomy.labels.map((label) => [label.name, label]));
      // A class added after this page loaded is not in its data yet: shown by its name alone.
      const labels = asked.get(taxonomy.taxonomy_name).map((name) => known.get(name) || { name, hotkey: "" });
      return { ...taxonomy, labels, asking: true };
    });
}

function emptyAnswer() {
  return { label: null, labels: new Set(), answered: false, metadata: {}, stored: false, finished: false };
}

function answersFrom(annotations) {
  const answers = new Map(taxonomies.map((t) => [t.taxonomy_name, emptyAnswer()]));
  for (const annotation of annotations || []) {
    const answer = answers.get(annotation.taxonomy_name);
    if (!answer) continue;
    if (annotation.new_classes) {
      // Only the new classes are asked, afresh; the answers on the others stand on the server.
      answer.metadata = annotation.metadata || {};
      continue;
    }
    answer.stored = true;
    answer.finished = annotation.status === "finished";
    answer.metadata = annotation.metadata || {};
    if (Array.isArray(annotation.labels)) {
      answer.labels = new Set(annotation.labels);
      answer.answered = true;
    } else {
      answer.label = annotation.label ?? null;
      answer.answered = answer.label !== null;
    }
  }
  return answers;
}

function choose(index, position) {
  const taxonomy = taxonomies[index];
  const answer = state.answers.get(taxonomy.taxonomy_name);
  if (!answer || !state.task) return;
  if (taxonomy.multi_label) {
    if (position === taxonomy.labels.length) {
      answer.labels.clear();
    } else {
      const name = taxonomy.labels[position].name;
      if (answer.labels.has(name)) answer.labels.delete(name);
      else answer.labels.add(name);
    }
    answer.answered = true;
  } else {
    answer.label = taxonomy.labels[position].name;
    answer.answered = true;
    // A single label is one decision: move on to the next taxonomy.
    if (index === state.current && index + 1 < taxonomies.length) setCurrent(index + 1);
  }
  say("");
  renderAnswers();
  changed();
}

function clearCurrent() {
  const taxonomy = taxonomies[state.current];
  const answer = taxonomy && state.answers.get(taxonomy.taxonomy_name);
  if (!answer) return;
  if (answer.finished) {
    say(`“${taxonomy.taxonomy_name}” is finished: pick another label to change it.`, "error");
    return;
  }
  answer.label = null;
  answer.labels.clear();
  answer.answered = false;
  renderAnswers();
  changed();
}

function pickByKey(key) {
  const order = [state.current, ...taxonomies.keys()].filter((i, n, all) => all.indexOf(i) === n);
  for (const index of order) {
    const position = taxonomies[index].labels.findIndex((label) => label.hotkey && label.hotkey === key);
    if (position >= 0) {
      setCurrent(index, { focus: false });
      choose(index, position);
      focusCurrent();
      return true;
    }
  }
  return false;
}

function missingRequired() {
  return taxonomies.findIndex((taxonomy) => taxonomy.required && !state.answers.get(taxonomy.taxonomy_name).answered);
}

function rowFor(taxonomy, answer) {
  const row = { taxonomy_name: taxonomy.taxonomy_name, metadata: answer.metadata };
  if (taxonomy.multi_label) {
    row.labels = taxonomy.labels.map((l) => l.name).filter((name) => answer.labels.has(name));
    // The classes on screen: the answer speaks for those (a class added since this page loaded is
    // not claimed "False" by it).
    row.shown = taxonomy.labels.map((l) => l.name);
  } else row.label = answer.label;
  return row;
}

function submitRows() {
  return taxonomies
    .filter((taxonomy) => state.answers.get(taxonomy.taxonomy_name).answered)
    .map((taxonomy) => rowFor(taxonomy, state.answers.get(taxonomy.taxonomy_name)))
    .concat(restatedRows());
}

function restatedRows() {
  // Finished answers not on screen, as they are; a multi-label one speaks only for what it chose.
  const onScreen = new Set(taxonomies.map((taxonomy) => taxonomy.taxonomy_name));
  return (state.task.annotations || [])
    .filter((annotation) => annotation.status === "finished" && !onScreen.has(annotation.taxonomy_name))
    .map((annotation) => Array.isArray(annotation.labels)
      ? { taxonomy_name: annotation.taxonomy_name, labels: annotation.labels, shown: annotation.labels, metadata: annotation.metadata }
      : { taxonomy_name: annotation.taxonomy_name, label: annotation.label, metadata: annotation.metadata });
}

function draftRows() {
  // An answer cleared since it was stored is sent too, so the draft forgets it: "label": null, or
  // for multi-label "labels": null ([] would be "None of these").
  return taxonomies
    .filter((taxonomy) => {
      const answer = state.answers.get(taxonomy.taxonomy_name);
      return !answer.finished && (answer.answered || answer.stored);
    })
    .map((taxonomy) => {
      const answer = state.answers.get(taxonomy.taxonomy_name);
      if (taxonomy.multi_label && !answer.answered) return { taxonomy_name: taxonomy.taxonomy_name, labels: null, metadata: answer.metadata };
      return rowFor(taxonomy, answer);
    });
}

function renderAnswers() {
  taxonomies.forEach((taxonomy, index) => {
    const answer = state.answers.get(taxonomy.taxonomy_name);
    const section = sections[index];
    section.classList.toggle("answered", Boolean(answer && answer.answered));
    section.querySelectorAll("button.label").forEach((button) => {
      const position = Number(button.dataset.position);
      let pressed = false;
      if (answer && taxonomy.multi_label) {
        pressed = position === taxonomy.labels.length ? answer.answered && answer.labels.size === 0 : answer.labels.has(taxonomy.labels[position].name);
      } else if (answer) {
        pressed = answer.label === taxonomy.labels[position].name;
      }
      button.setAttribute("aria-pressed", String(pressed));
    });
  });
  // Beside the submit button, so a required taxonomy scrolled out of the panel is not forgotten.
  const open = taxonomies.filter((t) => t.required && !(state.answers.get(t.taxonomy_name) || {}).answered);
  $("still-to-answer").textContent = open.length ? `Still to answer: ${open.map((t) => t.taxonomy_name).join(", ")}` : "";
}

function setCurrent(index, { focus = true } = {}) {
  if (!taxonomies.length) return;
  state.current = (index + taxonomies.length) % taxonomies.length;
  sections.forEach((section, i) => {
    section.classList.toggle("current", i === state.current);
    if (i === state.current) section.setAttribute("aria-current", "true");
    else section.removeAttribute("aria-current");
  });
  if (focus) focusCurrent();
}

function focusCurrent() {
  const section = sections[state.current];
  if (section) {
    section.focus({ preventScroll: true });
    section.scrollIntoView({ block: "nearest" });
  } else {
    page.focus({ preventScroll: true });
  }
}

// --- Metadata editor (per taxonomy: the annotation's metadata) ------------------------------------

function renderMetadataEditors() {
  taxonomies.forEach((taxonomy, index) => {
    const rows = sections[index].querySelector(".metadata-rows");
    rows.replaceChildren();
    const metadata = state.answers.get(taxonomy.taxonomy_name).metadata;
    for (const [key, value] of Object.entries(metadata)) addMetadataRow(index, key, formatValue(value), false);
    sections[index].querySelector(".metadata-error").textContent = "";
    sections[index].querySelector(".metadata-editor").hidden = Object.keys(metadata).length === 0;
  });
}

function addMetadataRow(index, key, value, focus) {
  const editor = sections[index].querySelector(".metadata-editor");
  editor.hidden = false;
  const row = $("metadata-row-template").content.firstElementChild.cloneNode(true);
  row.querySelector(".metadata-key").value = key;
  row.querySelector(".metadata-value").value = value;
  row.querySelectorAll("input").forEach((input) => input.addEventListener("input", () => readMetadata(index)));
  row.querySelector(".remove-metadata").addEventListener("click", () => {
    row.remove();
    readMetadata(index);
  });
  editor.querySelector(".metadata-rows").append(row);
  if (focus) row.querySelector(".metadata-key").focus();
}

function readMetadata(index) {
  const answer = state.answers.get(taxonomies[index].taxonomy_name);
  const rows = [...sections[index].querySelectorAll(".metadata-row")];
  const typed = rows.map((row) => ({ key: row.querySelector(".metadata-key").value, value: row.querySelector(".metadata-value").value }));
  const { metadata, errors } = parseRows(typed);
  rows.forEach((row, n) => row.classList.toggle("invalid", errors.some((error) => error.row === n)));
  sections[index].querySelector(".metadata-error").textContent = errors.map((error) => error.message).join(" ");
  answer.metadataErrors = errors;
  if (errors.length) return; // kept (and sent) as it last read right; submit waits for a fix
  answer.metadata = metadata;
  changed();
}

// The first taxonomy whose metadata editor holds a refused row, or -1.
function invalidMetadata() {
  return taxonomies.findIndex((taxonomy) => (state.answers.get(taxonomy.taxonomy_name).metadataErrors || []).length > 0);
}

function toggleMetadataEditor() {
  const editor = sections[state.current] && sections[state.current].querySelector(".metadata-editor");
  if (!editor) return;
  const open = !editor.hidden && editor.contains(document.activeElement);
  if (open) {
    focusCurrent();
    return;
  }
  const first = editor.querySelector("input");
  if (first) {
    editor.hidden = false;
    first.focus();
  } else {
    addMetadataRow(state.current, "", "", true);
  }
}

// --- Drafts -------------------------------------------------------------------------------------

function changed() {
  if (state.past || !state.task) return; // an earlier item changes only by submitting it again
  state.dirty = true;
  clearTimeout(state.draftTimer);
  state.draftTimer = setTimeout(() => saveDraft(), DRAFT_DELAY_MS);
  if (missingRequired() < 0) refreshAhead(); // about to submit: freshen the preview
}

function saveDraft({ keepalive = false } = {}) {
  clearTimeout(state.draftTimer);
  if (!state.dirty || state.past || !state.task) return;
  state.dirty = false;
  const referenceId = state.task.reference_id;
  api("POST", data.urls.draft, { reference_id: referenceId, annotations: draftRows() }, { keepalive }).catch((error) => {
    // A draft that lands after its submit is refused; only a draft of what is on screen matters.
    if (state.task && state.task.reference_id === referenceId && !state.past) say(`The draft was not saved: ${error.message}`, "error");
  });
}

addEventListener("pagehide", () => saveDraft({ keepalive: true }));
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "hidden") saveDraft({ keepalive: true });
});

// --- Images: preload, zoom and pan ------------------------------------------------------------------

const preloaded = new Map(); // url -> Promise<HTMLImageElement>, decoded

function preload(url) {
  if (!url) return Promise.resolve(null);
  if (!preloaded.has(url)) {
    const image = new Image();
    image.decoding = "async";
    image.alt = "";
    image.src = url;
    preloaded.set(url, image.decode().then(() => image, () => image));
    if (preloaded.size > MAX_PRELOADED) preloaded.delete(preloaded.keys().next().value);
  }
  return preloaded.get(url);
}

const view = { scale: 1, x: 0, y: 0, fit: true, element: null, drag: null };
let showToken = 0;

async function showImage(url, { announce = false } = {}) {
  const token = ++showToken;
  const viewport = $("viewport");
  viewport.classList.add("loading");
  const image = await preload(url);
  if (token !== showToken) return;
  const element = image.parentNode ? image.cloneNode() : image;
  element.className = "stage-image";
  element.draggable = false;
  if (view.element) view.element.replaceWith(element);
  else viewport.prepend(element);
  view.element = element;
  viewport.classList.remove("loading");
  viewport.classList.toggle("broken", !image.naturalWidth);
  $("viewport-status").textContent = image.naturalWidth ? "" : "The image could not be loaded.";
  fitView();
  if (announce) announceShown(token);
}

// Tells (tests, measurements) that the item is on screen: at the next frame, once the image is in
// place. A page in the background gets no frames, so a timer stands in after 100 ms.
function announceShown(token) {
  let done = false;
  const announce = () => {
    if (done || token !== showToken) return;
    done = true;
    page.dataset.shownReferenceId = state.task ? state.task.reference_id : "";
    document.dispatchEvent(new CustomEvent("label-page:shown", { detail: { reference_id: page.dataset.shownReferenceId } }));
  };
  requestAnimationFrame(announce);
  setTimeout(announce, 100);
}

function showVideo(url) {
  showToken++;
  const video = document.createElement("video");
  video.className = "stage-video";
  video.controls = true;
  video.preload = "auto";
  video.src = url;
  video.tabIndex = -1;
  if (view.element) view.element.replaceWith(video);
  else $("viewport").prepend(video);
  view.element = video;
  $("viewport").classList.remove("loading", "broken");
  $("viewport-status").textContent = "";
  announceShown(showToken);
}

function applyView() {
  if (view.element && view.element.tagName === "IMG") {
    view.element.style.transform = `translate(${view.x}px, ${view.y}px) scale(${view.scale})`;
  }
}

function fitView() {
  const element = view.element;
  if (!element || element.tagName !== "IMG" || !element.naturalWidth) return;
  const box = $("viewport").getBoundingClientRect();
  view.scale = Math.min(box.width / element.naturalWidth, box.height / element.naturalHeight);
  view.x = (box.width - element.naturalWidth * view.scale) / 2;
  view.y = (box.height - element.naturalHeight * view.scale) / 2;
  view.fit = true;
  applyView();
}

function zoom(factor, clientX, clientY) {
  if (!view.element || view.element.tagName !== "IMG") return;
  const box = $("viewport").getBoundingClientRect();
  const px = clientX === undefined ? box.width / 2 : clientX - box.left;
  const py = clientY === undefined ? box.height / 2 : clientY - box.top;
  const scale = Math.min(Math.max(view.scale * factor, 0.05), 40);
  // Keep the point under the cursor (or the centre) where it is.
  view.x = px - ((px - view.x) * scale) / view.scale;
  view.y = py - ((py - view.y) * scale) / view.scale;
  view.scale = scale;
  view.fit = false;
  applyView();
}

function setUpViewport() {
  const viewport = $("viewport");
  viewport.addEventListener("wheel", (event) => {
    event.preventDefault();
    zoom(Math.exp(-event.deltaY * 0.0015), event.clientX, event.clientY);
  }, { passive: false });
  viewport.addEventListener("pointerdown", (event) => {
    if (event.button !== 0 || !view.element || view.element.tagName !== "IMG") return;
    view.drag = { x: event.clientX, y: event.clientY };
    viewport.setPointerCapture(event.pointerId);
    viewport.classList.add("dragging");
  });
  viewport.addEventListener("pointermove", (event) => {
    if (!view.drag) return;
    view.x += event.clientX - view.drag.x;
    view.y += event.clientY - view.drag.y;
    view.drag = { x: event.clientX, y: event.clientY };
    view.fit = false;
    applyView();
  });
  const endDrag = () => {
    view.drag = null;
    viewport.classList.remove("dragging");
  };
  viewport.addEventListener("pointerup", endDrag);
  viewport.addEventListener("pointercancel", endDrag);
  addEventListener("resize", () => view.fit && fitView());
}

// --- Scenes: frame strip, scrubbing, playback -----------------------------------------------------

function renderFrames(task) {
  const strip = $("frame-strip");
  const list = $("frames");
  stopPlaying();
  list.replaceChildren();
  strip.hidden = !isScene;
  if (!isScene) return;
  const frames = task.frames || [];
  frames.forEach((frame, index) => {
    const item = $("frame-template").content.firstElementChild.cloneNode(true);
    const button = item.querySelector("button");
    button.dataset.index = String(index);
    button.title = frame.reference_id;
    item.querySelector("img").src = frame.image_url;
    item.querySelector(".frame-number").textContent = String(index + 1);
    button.addEventListener("click", () => showFrame(index));
    list.append(item);
  });
  $("play-button").hidden = !frames.length && !task.video_url;
}

function showFrame(index, { announce = false } = {}) {
  const frames = (state.task && state.task.frames) || [];
  if (!frames.length) return;
  state.frame = Math.min(Math.max(index, 0), frames.length - 1);
  const buttons = $("frames").querySelectorAll("button.frame");
  buttons.forEach((button, i) => button.setAttribute("aria-current", i === state.frame ? "true" : "false"));
  const active = buttons[state.frame];
  if (active) active.scrollIntoView({ block: "nearest", inline: "nearest" });
  $("frame-position").textContent = `Frame ${state.frame + 1} of ${frames.length} · ${frames[state.frame].reference_id}`;
  page.dataset.frame = String(state.frame);
  // Neighbours first, so scrubbing never waits.
  preload(frames[state.frame + 1] && frames[state.frame + 1].image_url);
  showImage(frames[state.frame].image_url, { announce });
}

function stepFrame(delta) {
  const video = view.element && view.element.tagName === "VIDEO" ? view.element : null;
  if (video) {
    video.currentTime = Math.max(0, video.currentTime + delta / (state.task.frame_rate || 1));
    return;
  }
  stopPlaying();
  showFrame(state.frame + delta);
}

function togglePlay() {
  const video = view.element && view.element.tagName === "VIDEO" ? view.element : null;
  if (video) {
    if (video.paused) video.play().catch(() => {});
    else video.pause();
    return;
  }
  if (state.playTimer) {
    stopPlaying();
    return;
  }
  const frames = (state.task && state.task.frames) || [];
  if (frames.length < 2) return;
  frames.forEach((frame) => preload(frame.image_url));
  if (state.frame >= frames.length - 1) showFrame(0);
  $("play-button").classList.add("playing");
  page.dataset.playing = "true";
  state.playTimer = setInterval(() => {
    if (state.frame >= frames.length - 1) stopPlaying();
    else showFrame(state.frame + 1);
  }, 1000 / (state.task.frame_rate || 1));
}

function stopPlaying() {
  clearInterval(state.playTimer);
  state.playTimer = null;
  $("play-button").classList.remove("playing");
  delete page.dataset.playing;
}

// --- Showing a task -------------------------------------------------------------------------------

function show(task, { past }) {
  state.task = task;
  state.past = past;
  state.dirty = false;
  clearTimeout(state.draftTimer);
  const view = viewFor(task);
  if (view !== taxonomies) {
    taxonomies = view;
    buildTaxonomies();
  }
  state.answers = answersFrom(task.annotations);
  page.dataset.state = "ready";
  page.dataset.referenceId = task.reference_id;
  page.classList.toggle("past", past);
  $("all-done").hidden = true;
  $("reference-id").textContent = task.reference_id;
  $("past-badge").hidden = !past;
  renderMetadata(task.metadata);
  renderAnswers();
  renderMetadataEditors();
  const first = missingRequired();
  setCurrent(first >= 0 ? first : 0);
  renderFrames(task);
  if (task.kind === "scene") {
    if (task.video_url) showVideo(task.video_url);
    else {
      task.frames.slice(0, 30).forEach((frame) => preload(frame.image_url));
      showFrame(0, { announce: true });
    }
  } else {
    showImage(task.image_url, { announce: true });
  }
  $("back-button").disabled = state.cursor === 0;
  $("skip-button").disabled = past;
}

function renderMetadata(metadata) {
  const list = $("target-metadata");
  list.replaceChildren();
  for (const [key, value] of Object.entries(metadata || {})) {
    const term = document.createElement("dt");
    term.textContent = key;
    const detail = document.createElement("dd");
    detail.textContent = typeof value === "string" ? value : JSON.stringify(value);
    list.append(term, detail);
  }
}

function showAllDone() {
  state.task = null;
  state.past = false;
  stopPlaying();
  page.dataset.state = "done";
  delete page.dataset.referenceId;
  $("all-done").hidden = false;
  $("all-done-session").textContent = state.sessionCount ? `You finished ${state.sessionCount} this session. Thank you!` : "";
  renderWaiting();
  $("all-done").focus();
  document.dispatchEvent(new CustomEvent("label-page:shown", { detail: { reference_id: null } }));
}

// Why "all done" may not be the end: work still being checked, and work that failed its check.
function renderWaiting() {
  const { checking, failed } = state.waiting;
  const what = (n) => (isScene ? (n === 1 ? "1 scene" : `${n} scenes`) : n === 1 ? "1 image" : `${n} images`);
  $("all-done-title").textContent = checking ? "Nothing to label right now" : "All done";
  $("all-done-checking").hidden = !checking;
  $("all-done-checking").textContent = checking === 1
    ? `${what(1)} is still being checked; it comes into the queue when it passes.`
    : `${what(checking)} are still being checked; they come into the queue when they pass.`;
  $("all-done-failed").hidden = !failed;
  $("all-done-failed").textContent = failed === 1
    ? `${what(1)} failed ${isScene ? "the check of a frame" : "its check"}: see the admin.`
    : `${what(failed)} failed ${isScene ? "the check of a frame" : "their check"}: see the admin.`;
}

async function loadNext() {
  showHeld(await api("POST", data.urls.next));
}

function showHeld(task) {
  state.cursor = state.history.length;
  if (!task) {
    showAllDone();
    return;
  }
  show(task, { past: false });
  scheduleLeaseRenewal(task.lease_expires_at);
  refreshAhead({ force: true });
}

async function loadPast(referenceId) {
  const task = await api("GET", taskUrl(referenceId));
  show(task, { past: true });
}

// --- The preview of what comes next ---------------------------------------------------------------

let aheadAt = 0;
let aheadRequest = null;

function refreshAhead({ force = false } = {}) {
  if (aheadRequest || (!force && Date.now() - aheadAt < 2000)) return;
  aheadAt = Date.now();
  aheadRequest = api("GET", `${data.urls.ahead}?limit=${AHEAD_LIMIT}`)
    .then((tasks) => tasks.forEach((task) => task.image_urls.forEach(preload)))
    .catch(() => {}) // only a preview: next/ still works without it
    .finally(() => (aheadRequest = null));
}

// --- Lease: renewed while the labeler stays on one item ------------------------------------------

function scheduleLeaseRenewal(expiresAt) {
  clearTimeout(state.leaseTimer);
  if (!expiresAt) return;
  const left = new Date(expiresAt).getTime() - Date.now();
  state.leaseTimer = setTimeout(() => renewLease(expiresAt), Math.max(left / 2, 15000));
}

async function renewLease(expiresAt) {
  if (state.busy) {
    state.leaseTimer = setTimeout(() => renewLease(expiresAt), 5000);
    return;
  }
  try {
    const held = await api("POST", data.urls.next);
    if (!held) return;
    scheduleLeaseRenewal(held.lease_expires_at);
    if (!state.past && state.task && held.reference_id !== state.task.reference_id) {
      show(held, { past: false });
      say("Your hold on the last item ran out and it went back to the queue; here is the next one.", "error");
    }
  } catch (error) {
    say(error.message, "error");
    scheduleLeaseRenewal(expiresAt);
  }
}

// --- Actions --------------------------------------------------------------------------------------

async function run(action) {
  if (state.busy) return;
  state.busy = true;
  page.classList.add("busy");
  try {
    await action();
  } catch (error) {
    say(error.message, "error");
  } finally {
    state.busy = false;
    page.classList.remove("busy");
  }
}

function submit() {
  if (!state.task) return;
  const invalid = invalidMetadata();
  if (invalid >= 0) {
    setCurrent(invalid, { focus: false });
    const { row, message } = state.answers.get(taxonomies[invalid].taxonomy_name).metadataErrors[0];
    sections[invalid].querySelectorAll(".metadata-row .metadata-key")[row].focus();
    say(`The metadata of “${taxonomies[invalid].taxonomy_name}”: ${message}`, "error");
    return;
  }
  const missing = missingRequired();
  if (missing >= 0) {
    setCurrent(missing); // focuses it and scrolls the panel to it
    say(`“${taxonomies[missing].taxonomy_name}” is required: choose a label.`, "error");
    sections[missing].classList.add("missing");
    setTimeout(() => sections[missing].classList.remove("missing"), 1500);
    return;
  }
  run(async () => {
    const task = state.task;
    const body = { reference_id: task.reference_id, annotations: submitRows() };
    clearTimeout(state.draftTimer);
    state.dirty = false;
    if (state.past) {
      // A change to an earlier item; then on to the item after it, up to the one held.
      await api("POST", data.urls.submit, body);
      say("");
      state.cursor += 1;
      if (state.cursor < state.history.length) await loadPast(state.history[state.cursor]);
      else await loadNext();
      return;
    }
    // One round trip: the answers are stored, then the next task is claimed and comes back.
    const answer = await api("POST", data.urls["submit-and-next"], body);
    say("");
    remember(task.reference_id);
    state.sessionCount += 1;
    state.progress.done += 1;
    state.progress.mine_today += 1;
    renderProgress();
    showHeld(answer.next);
  });
}

function skip() {
  if (!state.task) return;
  if (state.past) {
    say("Only your current item can be skipped: press Esc to return to it.", "error");
    return;
  }
  run(async () => {
    const referenceId = state.task.reference_id;
    saveDraft();
    await api("POST", data.urls.skip, { reference_id: referenceId });
    remember(referenceId);
    say(`Skipped ${referenceId}: it comes back at the end of your queue.`);
    await loadNext();
  });
}

function back() {
  if (state.cursor === 0) {
    say("There is no earlier item in this session.", "error");
    return;
  }
  run(async () => {
    saveDraft();
    state.cursor -= 1;
    say("");
    await loadPast(state.history[state.cursor]);
  });
}

function returnToCurrent() {
  if (!state.past) return;
  run(async () => {
    say("");
    await loadNext();
  });
}

function remember(referenceId) {
  state.history = state.history.filter((id) => id !== referenceId).concat(referenceId).slice(-HISTORY_MAX);
  state.cursor = state.history.length;
  try {
    sessionStorage.setItem(HISTORY_KEY, JSON.stringify(state.history));
  } catch {
    // Private mode or full storage: the history then lasts as long as the page.
  }
}

function loadHistory() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(HISTORY_KEY) || "[]");
    return Array.isArray(saved) ? saved.filter((id) => typeof id === "string") : [];
  } catch {
    return [];
  }
}

// --- Messages, progress, help ------------------------------------------------------------------------

function say(text, kind = "info") {
  const message = $("message");
  message.textContent = text;
  message.dataset.kind = kind;
}

function renderProgress() {
  const { done, total, mine_today: mineToday } = state.progress;
  $("progress-bar").max = Math.max(total, 1);
  $("progress-bar").value = done;
  $("progress-text").textContent = `${done} / ${total} finished · ${mineToday} by you today`;
  // The rate says little before a minute has passed: until then only the count shows.
  const minutes = (Date.now() - state.sessionStart) / 60_000;
  const rate = minutes >= 1 ? ` · ${Math.round((state.sessionCount * 60) / minutes)} items/hour` : "";
  $("session-text").textContent = `${state.sessionCount} this session${rate}`;
}

function toggleHelp(open = !state.helpOpen) {
  state.helpOpen = open;
  $("help").hidden = !open;
  if (open) $("help").focus();
  else if (state.task) focusCurrent();
}

// --- Keys -----------------------------------------------------------------------------------------

function onKeyDown(event) {
  if (event.defaultPrevented || event.isComposing || event.ctrlKey || event.metaKey || event.altKey) return;
  const key = event.key;
  const action = KEY_ACTIONS.get(key);
  const handled = () => event.preventDefault();
  if (state.helpOpen) {
    if (action === "leave" || action === "help") {
      handled();
      toggleHelp(false);
    }
    return;
  }
  const field = event.target.closest && event.target.closest("input, textarea, select, [contenteditable]");
  if (field) {
    // Typing in the metadata editor: Esc or Enter goes back to the labels.
    if (action === "leave" || action === "submit") {
      handled();
      focusCurrent();
    }
    return;
  }
  if (action === "help") return handled(), toggleHelp(true);
  if (action === "back") return handled(), back();
  if (!state.task || state.busy) {
    if (action === "submit" || key === "Tab") handled();
    return;
  }
  switch (action) {
    case "submit": return handled(), submit();
    case "skip": return handled(), skip();
    case "leave": return handled(), returnToCurrent();
    case "next_taxonomy": return handled(), setCurrent(state.current + (key === "Tab" && event.shiftKey ? -1 : 1));
    case "previous_taxonomy": return handled(), setCurrent(state.current - 1);
    case "clear": return handled(), clearCurrent();
    case "metadata": return handled(), toggleMetadataEditor();
    case "zoom_in": return handled(), zoom(ZOOM_STEP);
    case "zoom_out": return handled(), zoom(1 / ZOOM_STEP);
    case "fit": return handled(), fitView();
  }
  if (isScene && (action === "previous_frame" || action === "next_frame")) return handled(), stepFrame(action === "previous_frame" ? -1 : 1);
  if (isScene && action === "play") return handled(), togglePlay();
  if (action === "pick") {
    const taxonomy = taxonomies[state.current];
    const position = data.keys.pick.indexOf(key);
    if (taxonomy && position < taxonomy.labels.length + (taxonomy.multi_label ? 1 : 0)) choose(state.current, position);
    return handled();
  }
  if (action === undefined && key.length === 1 && pickByKey(key)) handled();
}

// --- Start ----------------------------------------------------------------------------------------

function start() {
  buildTaxonomies();
  setUpViewport();
  document.addEventListener("keydown", onKeyDown);
  $("submit-button").addEventListener("click", submit);
  $("skip-button").addEventListener("click", skip);
  $("back-button").addEventListener("click", back);
  $("help-button").addEventListener("click", () => toggleHelp());
  $("help").addEventListener("click", (event) => event.target === $("help") && toggleHelp(false));
  $("play-button").addEventListener("click", togglePlay);
  page.tabIndex = -1;
  renderProgress();
  setInterval(renderProgress, 15000);
  if (!taxonomies.length) say("This dataset has no taxonomies yet: ask a dataset admin to add one.", "error");
  run(loadNext);
}

start();
