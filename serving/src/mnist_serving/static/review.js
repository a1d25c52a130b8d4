// The reviewer page: one pending item at a time, answered with one keystroke.
// The API key stays in this tab's sessionStorage and goes out as X-API-Key.
"use strict";
(() => {
  const STORAGE = "mnist-review-key";
  const SIDE = 28;
  const login = document.getElementById("login");
  const keyInput = document.getElementById("key");
  const work = document.getElementById("work");
  const canvas = document.getElementById("digit-image");
  const guesses = document.getElementById("guesses");
  const meta = document.getElementById("item-meta");
  const progress = document.getElementById("progress");
  const error = document.getElementById("error");
  const ctx = canvas.getContext("2d");
  const small = document.createElement("canvas");
  small.width = SIDE;
  small.height = SIDE;

  let queue = [];
  let current = null;
  let busy = false;
  let pending = 0;
  const skipped = new Set();
  let labelled = 0;

  function headers() {
    const key = sessionStorage.getItem(STORAGE);
    const result = { "Content-Type": "application/json" };
    if (key) result["X-API-Key"] = key;
    return result;
  }

  function showError(text) {
    error.textContent = text;
    error.hidden = !text;
  }

  function askForKey(reason) {
    work.hidden = true;
    login.hidden = false;
    showError(reason || "");
    keyInput.focus();
  }

  async function detail(response) {
    try {
      const body = await response.json();
      return typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
    } catch {
      return `HTTP ${response.status}`;
    }
  }

  function draw(item) {
    const bytes = Uint8Array.from(atob(item.input), (c) => c.charCodeAt(0));
    const image = small.getContext("2d").createImageData(SIDE, SIDE);
    for (let i = 0; i < bytes.length; i += 1) {
      const shade = 255 - bytes[i]; // dark ink on a light page
      image.data.set([shade, shade, shade, 255], i * 4);
    }
    small.getContext("2d").putImageData(image, 0, 0);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(small, 0, 0, canvas.width, canvas.height);
  }

  function showProgress() {
    const left = Math.max(pending - labelled - skipped.size, 0);
    progress.textContent =
      `${labelled} reviewed · ${skipped.size} skipped · ${left} waiting`;
  }

  function show(item) {
    current = item;
    work.hidden = false;
    login.hidden = true;
    work.dataset.requestId = item ? item.request_id : "";
    if (!item) {
      guesses.replaceChildren();
      meta.textContent = "Nothing waiting for review.";
      ctx.clearRect(0, 0, canvas.width, canvas.height);
      showProgress();
      return;
    }
    draw(item);
    guesses.replaceChildren(
      ...item.guesses.map((guess) => {
        const li = document.createElement("li");
        li.textContent = `${guess.digit} · ${(guess.probability * 100).toFixed(1)}%`;
        return li;
      })
    );
    meta.textContent = `${item.request_id} · ${item.review.replace("_", " ")} · ` +
      `model ${item.model_version}`;
    showProgress();
  }

  async function load() {
    const response = await fetch("/review/items?limit=100", { headers: headers() });
    if (response.status === 401 || response.status === 403) {
      const hadKey = sessionStorage.getItem(STORAGE) !== null;
      sessionStorage.removeItem(STORAGE);
      askForKey(hadKey ? await detail(response) : "");
      return;
    }
    if (!response.ok) {
      showError(await detail(response));
      return;
    }
    const body = await response.json();
    pending = body.pending + labelled;
    queue = body.items.filter((item) => !skipped.has(item.request_id));
    showError("");
    show(queue.shift() || null);
  }

  async function next() {
    if (queue.length) show(queue.shift());
    else await load();
  }

  async function answer(label) {
    if (!current || busy) return;
    busy = true;
    try {
      const response = await fetch("/feedback", {
        method: "POST",
        headers: headers(),
        body: JSON.stringify({ request_id: current.request_id, label }),
      });
      if (response.ok || response.status === 409 || response.status === 404) {
        // 409: someone labelled it first; 404: expired. Either way, move on.
        if (response.ok) labelled += 1;
        showError(response.ok ? "" : await detail(response));
        await next();
      } else if (response.status === 401 || response.status === 403) {
        askForKey(await detail(response));
      } else {
        showError(await detail(response));
      }
    } catch (exc) {
      showError(`The server cannot be reached (${exc.message}); press the key again.`);
    } finally {
      busy = false;
    }
  }

  async function skip() {
    if (!current || busy) return;
    skipped.add(current.request_id);
    await next();
  }

  document.addEventListener("keydown", (event) => {
    if (!login.hidden || event.ctrlKey || event.metaKey || event.altKey) return;
    if (/^[0-9]$/.test(event.key)) {
      event.preventDefault();
      answer(Number(event.key));
    } else if (event.key === "s" || event.key === "S") {
      event.preventDefault();
      skip();
    }
  });
  document.getElementById("skip").addEventListener("click", skip);
  document.getElementById("logout").addEventListener("click", () => {
    sessionStorage.removeItem(STORAGE);
    askForKey("");
  });
  login.addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(STORAGE, keyInput.value.trim());
    keyInput.value = "";
    load();
  });
  load();
})();
