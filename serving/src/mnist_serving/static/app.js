// Drawing page: smooth strokes with pointer events (mouse, touch, pen).
// Digit mode sends the canvas as a PNG data URL to /predict-drawing; Number mode
// sends the wide canvas to /predict-number-drawing and boxes each digit read.
"use strict";
(() => {
  const canvas = document.getElementById("pad");
  const predictButton = document.getElementById("predict");
  const clearButton = document.getElementById("clear");
  const digitOut = document.getElementById("digit");
  const confidenceOut = document.getElementById("confidence");
  const reviewOut = document.getElementById("review");
  const bars = document.getElementById("bars");
  const errorOut = document.getElementById("error");
  const metaOut = document.getElementById("meta");
  const keyInput = document.getElementById("api-key");
  const LINE_WIDTH = 18;
  const REVIEW_TEXT = {
    auto_approved: "Auto-approved",
    secondary_verification: "Needs secondary verification",
    manual_review: "Needs manual review",
  };

  // One drawing surface: smooth strokes on `surface`, black on white.
  function createPad(surface) {
    const ctx = surface.getContext("2d");
    const pad = { inked: false };
    let drawing = false;
    let points = [];

    pad.reset = () => {
      ctx.fillStyle = "#fff";
      ctx.fillRect(0, 0, surface.width, surface.height);
      ctx.strokeStyle = "#000";
      ctx.fillStyle = "#000";
      ctx.lineWidth = LINE_WIDTH;
      ctx.lineCap = "round";
      ctx.lineJoin = "round";
      pad.inked = false;
    };

    function position(event) {
      const rect = surface.getBoundingClientRect();
      return {
        x: ((event.clientX - rect.left) * surface.width) / rect.width,
        y: ((event.clientY - rect.top) * surface.height) / rect.height,
      };
    }

    // Quadratic curves through the midpoints of the last three points: smooth lines.
    function drawSegment() {
      const n = points.length;
      if (n === 1) {
        ctx.beginPath();
        ctx.arc(points[0].x, points[0].y, LINE_WIDTH / 2, 0, 2 * Math.PI);
        ctx.fill();
        return;
      }
      const p0 = points[Math.max(0, n - 3)];
      const p1 = points[n - 2];
      const p2 = points[n - 1];
      const start = n === 2 ? p1 : { x: (p0.x + p1.x) / 2, y: (p0.y + p1.y) / 2 };
      const end = { x: (p1.x + p2.x) / 2, y: (p1.y + p2.y) / 2 };
      ctx.beginPath();
      ctx.moveTo(start.x, start.y);
      ctx.quadraticCurveTo(p1.x, p1.y, end.x, end.y);
      ctx.stroke();
    }

    function finishStroke() {
      const n = points.length;
      if (n >= 2) {
        const a = points[n - 2];
        const b = points[n - 1];
        ctx.beginPath();
        ctx.moveTo((a.x + b.x) / 2, (a.y + b.y) / 2);
        ctx.lineTo(b.x, b.y);
        ctx.stroke();
      }
      points = [];
      drawing = false;
    }

    surface.addEventListener("pointerdown", (event) => {
      event.preventDefault();
      drawing = true;
      pad.inked = true;
      try {
        surface.setPointerCapture(event.pointerId);
      } catch (err) {
        // Some touch pointers cannot be captured; drawing still works without it.
      }
      points = [position(event)];
      drawSegment();
    });
    surface.addEventListener("pointermove", (event) => {
      if (!drawing) return;
      event.preventDefault();
      const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
      for (const e of events.length ? events : [event]) {
        points.push(position(e));
        drawSegment();
      }
    });
    for (const type of ["pointerup", "pointercancel", "pointerleave"]) {
      surface.addEventListener(type, () => drawing && finishStroke());
    }
    pad.reset();
    return pad;
  }

  const digitPad = createPad(canvas);

  // POST the surface as a PNG data URL; the parsed body, or an Error saying why not.
  async function post(path, surface) {
    const headers = { "Content-Type": "application/json" };
    if (keyInput.value) headers["X-API-Key"] = keyInput.value;
    let response;
    try {
      response = await fetch(path, {
        method: "POST",
        headers,
        body: JSON.stringify({ image: surface.toDataURL("image/png") }),
      });
    } catch (err) {
      throw new Error(`Could not reach the server: ${err.message}`);
    }
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      throw new Error(typeof body.detail === "string" ? body.detail : `HTTP ${response.status}`);
    }
    return body;
  }

  function showError(message) {
    errorOut.textContent = message;
    errorOut.hidden = !message;
  }

  function buildBars() {
    bars.replaceChildren();
    for (let d = 0; d < 10; d += 1) {
      const item = document.createElement("li");
      item.dataset.digit = String(d);
      const label = document.createElement("span");
      label.textContent = String(d);
      const track = document.createElement("span");
      track.className = "track";
      const fill = document.createElement("span");
      fill.className = "fill";
      fill.style.display = "block";
      track.append(fill);
      const pct = document.createElement("span");
      pct.className = "pct";
      pct.textContent = "–";
      item.append(label, track, pct);
      bars.append(item);
    }
  }

  function showResult(result) {
    digitOut.textContent = String(result.digit);
    confidenceOut.textContent = `Confidence ${(result.confidence * 100).toFixed(1)}%`;
    reviewOut.textContent = REVIEW_TEXT[result.review] || result.review;
    result.probabilities.forEach((p, d) => {
      const item = bars.children[d];
      item.classList.toggle("top", d === result.digit);
      item.querySelector(".fill").style.width = `${(p * 100).toFixed(1)}%`;
      item.querySelector(".pct").textContent = `${(p * 100).toFixed(1)}%`;
    });
    metaOut.textContent = `Model ${result.model_version} · request ${result.request_id}`;
  }

  function clearResult() {
    digitOut.textContent = "?";
    confidenceOut.textContent = "Draw, then press Predict.";
    reviewOut.textContent = "";
    metaOut.textContent = "";
    buildBars();
    showError("");
  }

  async function predict() {
    if (!digitPad.inked) {
      showError("Draw a digit first.");
      return;
    }
    predictButton.disabled = true;
    showError("");
    try {
      showResult(await post("/predict-drawing", canvas));
    } catch (err) {
      showError(err.message);
    } finally {
      predictButton.disabled = false;
    }
  }

  predictButton.addEventListener("click", predict);

  // Number mode: a wide canvas, one request, a box and a confidence per digit.
  const wide = document.getElementById("wide");
  const boxes = document.getElementById("boxes");
  const boxCtx = boxes.getContext("2d");
  const numberPad = createPad(wide);
  const readButton = document.getElementById("read-number");
  const numberOut = document.getElementById("number");
  const numberConfidence = document.getElementById("number-confidence");
  const numberReview = document.getElementById("number-review");
  const numberDigits = document.getElementById("number-digits");
  const numberError = document.getElementById("number-error");
  const numberMeta = document.getElementById("number-meta");

  function showNumberError(message) {
    numberError.textContent = message;
    numberError.hidden = !message;
  }

  function clearNumber() {
    boxCtx.clearRect(0, 0, boxes.width, boxes.height);
    numberOut.textContent = "?";
    numberConfidence.textContent = "Write a number, then press Read number.";
    numberReview.textContent = "";
    numberMeta.textContent = "";
    numberDigits.replaceChildren();
    showNumberError("");
  }

  function showNumber(result) {
    boxCtx.clearRect(0, 0, boxes.width, boxes.height);
    boxCtx.lineWidth = 3;
    boxCtx.font = "bold 22px system-ui, sans-serif";
    numberDigits.replaceChildren();
    result.digits.forEach((d) => {
      const [x, y, w, h] = d.box;
      boxCtx.strokeStyle = d.review === "auto_approved" ? "#2457d6" : "#c26a00";
      boxCtx.fillStyle = boxCtx.strokeStyle;
      boxCtx.strokeRect(x - 3, y - 3, w + 6, h + 6);
      boxCtx.fillText(`${d.digit} ${(d.confidence * 100).toFixed(0)}%`, x, Math.max(20, y - 8));
      const item = document.createElement("li");
      item.dataset.digit = String(d.digit);
      // `whole`: the model's chance that the crop is one whole digit (not a
      // piece, not two merged); the number's confidence counts it too.
      item.textContent = `${d.digit}: ${(d.confidence * 100).toFixed(1)}%, one whole digit ${(d.whole * 100).toFixed(1)}%`;
      numberDigits.append(item);
    });
    numberOut.textContent = result.number;
    numberConfidence.textContent = `Confidence ${(result.confidence * 100).toFixed(1)}%`;
    const doubts = result.segmentation_doubts.length ? ` · ${result.segmentation_doubts.join("; ")}` : "";
    numberReview.textContent = (REVIEW_TEXT[result.review] || result.review) + doubts;
    numberMeta.textContent = `Model ${result.model_version} · request ${result.request_id}`;
  }

  readButton.addEventListener("click", async () => {
    if (!numberPad.inked) {
      showNumberError("Write a number first.");
      return;
    }
    readButton.disabled = true;
    showNumberError("");
    try {
      showNumber(await post("/predict-number-drawing", wide));
    } catch (err) {
      showNumberError(err.message);
    } finally {
      readButton.disabled = false;
    }
  });
  document.getElementById("clear-number").addEventListener("click", () => {
    numberPad.reset();
    clearNumber();
  });

  const numberMode = document.getElementById("number-mode");
  const digitSections = document.querySelectorAll(".pad, .result");
  const modeButtons = {
    digit: document.getElementById("mode-digit"),
    number: document.getElementById("mode-number"),
  };
  function setMode(mode) {
    numberMode.hidden = mode !== "number";
    digitSections.forEach((section) => {
      section.hidden = mode === "number";
    });
    for (const [name, button] of Object.entries(modeButtons)) {
      button.setAttribute("aria-pressed", String(name === mode));
    }
    const number = mode === "number";
    document.querySelector("h1").textContent = number ? "Write a number" : "Draw a digit";
    document.querySelector(".hint").textContent = number
      ? "Write a number of up to 20 digits, left to right, on the wide canvas."
      : "Write one digit, 0 to 9, with your mouse, finger or pen.";
  }
  modeButtons.digit.addEventListener("click", () => setMode("digit"));
  modeButtons.number.addEventListener("click", () => setMode("number"));
  clearButton.addEventListener("click", () => {
    digitPad.reset();
    clearResult();
  });
  buildBars();
})();
