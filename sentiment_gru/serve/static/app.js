// The page at /: sends the text to POST /explain and shows the label, its calibrated probability and the words
// that decided it; of a text longer than the model reads, it greys the part that was not read. Plain JS, no
// dependencies; everything it loads comes from this server. When the server needs an API key (a 401), the page asks
// for it and keeps it for this tab only (sessionStorage).
"use strict";

const SHARE = 0.25; // a word is marked when |score| >= SHARE * the largest |score| (as `predict --explain` does)
const FLOOR = 1e-6;
const DEBOUNCE_MS = 350;

const $ = (id) => document.getElementById(id);
let labels = [];
let reading = { length: null, tail: 0 }; // tokens the model reads of a text, and how many of them from its end
let sent = 0; // requests sent; only the newest one's answer is shown
let timer = null;
let apiKey = sessionStorage.getItem("apiKey") || "";

const withKey = (headers = {}) => (apiKey ? { ...headers, authorization: `Bearer ${apiKey}` } : headers);

function askForKey(message) {
  $("key-form").hidden = false;
  $("model").textContent = message;
  $("key").focus();
}

async function loadInfo() {
  try {
    const response = await fetch("/info", { headers: withKey() });
    if (response.status === 401) {
      askForKey(apiKey ? "That API key was refused; enter the server's key." : "This server needs an API key.");
      return;
    }
    if (response.status === 503) {
      const body = await response.json();
      $("model").textContent = body.error;
      setTimeout(loadInfo, 1000);
      return;
    }
    const info = await response.json();
    labels = info.labels;
    reading = { length: info.read_length, tail: info.tail_tokens };
    const accuracy = info.metrics && info.metrics.accuracy !== undefined
      ? ` · ${info.metrics.split} accuracy ${(100 * info.metrics.accuracy).toFixed(1)}%` : "";
    $("model").textContent = `Model: ${info.model} · ${info.labels.join(" / ")} · ${info.backend}${accuracy}`;
    $("text").maxLength = info.limits.max_chars;
  } catch (error) {
    $("model").textContent = "The server cannot be reached.";
    setTimeout(loadInfo, 2000);
  }
}

function schedule() {
  clearTimeout(timer);
  timer = setTimeout(classify, DEBOUNCE_MS);
}

async function classify() {
  clearTimeout(timer);
  const text = $("text").value;
  const mine = ++sent;
  if (!text.trim()) {
    $("result").hidden = true;
    say("");
    return;
  }
  let response, body;
  try {
    response = await fetch("/explain", {
      method: "POST",
      headers: withKey({ "content-type": "application/json" }),
      body: JSON.stringify({ inputs: text }),
    });
    body = await response.json();
  } catch (error) {
    if (mine === sent) say("The server cannot be reached.", true);
    return;
  }
  if (mine !== sent) return; // a newer text is on its way
  if (response.status === 401) askForKey("This server needs an API key.");
  if (!response.ok) {
    say(body.error || `HTTP ${response.status}`, true);
    return;
  }
  show(text, body[0]);
}

function say(message, isError = false) {
  $("message").textContent = message;
  $("message").className = isError ? "error" : "";
}

function show(text, result) {
  const section = $("result");
  if (result.label === null) {
    section.hidden = true;
    say(`No prediction: ${result.error}.`);
    return;
  }
  say("");
  $("label").textContent = result.label;
  $("score").textContent = `probability ${(100 * result.score).toFixed(1)}% (calibrated)`;
  showBars(result.probabilities);
  showWords(text, result);
  showCut(result);
  section.dataset.text = text; // what the shown result is for (the browser check waits on it)
  section.hidden = false;
}

function showBars(probabilities) {
  const bars = $("bars");
  bars.replaceChildren();
  const names = labels.length ? labels : Object.keys(probabilities);
  for (const name of names) {
    const value = probabilities[name];
    const track = document.createElement("div");
    track.className = "bar";
    const fill = document.createElement("span");
    fill.style.width = `${(100 * value).toFixed(1)}%`;
    track.append(fill);
    bars.append(cell(name), track, cell(`${(100 * value).toFixed(1)}%`, "bar-value"));
  }
}

function cell(text, className = "") {
  const span = document.createElement("span");
  span.textContent = text;
  span.className = className;
  return span;
}

const isWordChar = (ch) => ch !== undefined && /[\p{L}\p{N}]/u.test(ch);

// Word pieces that touch (letters or digits on both sides) merged into one span with their scores summed,
// as sentiment_gru.explain.words does. Offsets count code points, as Python's do: index `chars`, not the string.
function words(chars, explanation) {
  const spans = [];
  for (const item of explanation) {
    const last = spans[spans.length - 1];
    if (last && item.start === last.end && item.start > 0 && isWordChar(chars[item.start - 1]) && isWordChar(chars[item.start])) {
      last.end = item.end;
      last.score += item.score;
    } else {
      spans.push({ start: item.start, end: item.end, score: item.score });
    }
  }
  return spans;
}

// Of a text that was cut, the [start, end) code points the model did not read: after its last token read from the
// start, up to its first token read from the end (tail_tokens) or the end of the text. null when it read it all.
function unread(chars, result) {
  const tokens = result.explanation;
  if (!result.truncated || !tokens.length) return null;
  const head = Math.min(tokens.length, (reading.length || tokens.length) - reading.tail);
  return [head > 0 ? tokens[head - 1].end : 0, head < tokens.length ? tokens[head].start : chars.length];
}

function showCut(result) {
  const note = $("truncated");
  note.hidden = !result.truncated;
  if (!result.truncated) return;
  const kept = reading.tail ? `its first ${reading.length - reading.tail} and last ${reading.tail}` : `its first ${reading.length}`;
  note.textContent = `This text is longer than the model reads (${reading.length} tokens): only ${kept} tokens were read; ` +
    "the greyed part did not count.";
}

// Plain text between marked words; the part the model did not read (`cut`, wholly inside one such gap) greyed.
function appendPlain(out, chars, from, to, cut) {
  if (!cut || cut[0] < from || cut[1] > to || cut[0] === cut[1]) {
    out.append(chars.slice(from, to).join(""));
    return;
  }
  const skipped = document.createElement("span");
  skipped.className = "unread";
  skipped.title = "not read: the text is longer than the model reads";
  skipped.textContent = chars.slice(cut[0], cut[1]).join("");
  out.append(chars.slice(from, cut[0]).join(""), skipped, chars.slice(cut[1], to).join(""));
}

function showWords(text, result) {
  const chars = Array.from(text);
  const spans = words(chars, result.explanation);
  const cut = unread(chars, result);
  const largest = Math.max(0, ...spans.map((s) => Math.abs(s.score)));
  const out = $("highlighted");
  out.replaceChildren();
  let cursor = 0;
  for (const span of spans) {
    appendPlain(out, chars, cursor, span.start, cut);
    const word = chars.slice(span.start, span.end).join("");
    const strength = largest > 0 ? Math.abs(span.score) / largest : 0;
    if (Math.abs(span.score) >= Math.max(SHARE * largest, FLOOR)) {
      const mark = document.createElement("mark");
      const side = span.score > 0 ? "for" : "against";
      mark.className = side;
      mark.style.setProperty("--strength", strength.toFixed(3));
      mark.title = `${span.score > 0 ? "+" : ""}${span.score.toFixed(4)}: ${side} ${result.label}`;
      mark.textContent = word;
      out.append(mark);
    } else {
      out.append(word);
    }
    cursor = span.end;
  }
  appendPlain(out, chars, cursor, chars.length, cut);
}

$("text").addEventListener("input", schedule);
$("text").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
    event.preventDefault();
    classify();
  }
});
$("classify").addEventListener("click", classify);
$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  apiKey = $("key").value.trim();
  sessionStorage.setItem("apiKey", apiKey);
  $("key-form").hidden = true;
  loadInfo();
});
for (const button of document.querySelectorAll("button.example")) {
  button.addEventListener("click", () => {
    $("text").value = button.textContent;
    classify();
  });
}
loadInfo();
