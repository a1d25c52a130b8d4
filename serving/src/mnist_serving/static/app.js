// Drawing page: smooth strokes with pointer events (mouse, touch, pen),
// Predict sends the canvas as a PNG data URL to /predict-drawing.
"use strict";
(() => {
  const canvas = document.getElementById("pad");
  const ctx = canvas.getContext("2d");
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
  let drawing = false;
  let points = [];
  let inked = false;

  function reset() {
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.strokeStyle = "#000";
    ctx.fillStyle = "#000";
    ctx.lineWidth = LINE_WIDTH;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    inked = false;
  }

  function position(event) {
    const rect = canvas.getBoundingClientRect();
    return {
      x: ((event.clientX - rect.left) * canvas.width) / rect.width,
      y: ((event.clientY - rect.top) * canvas.height) / rect.height,
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

  canvas.addEventListener("pointerdown", (event) => {
    event.preventDefault();
    drawing = true;
    inked = true;
    try {
      canvas.setPointerCapture(event.pointerId);
    } catch (err) {
      // Some touch pointers cannot be captured; drawing still works without it.
    }
    points = [position(event)];
    drawSegment();
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!drawing) return;
    event.preventDefault();
    const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
    for (const e of events.length ? events : [event]) {
      points.push(position(e));
      drawSegment();
    }
  });
  for (const type of ["pointerup", "pointercancel", "pointerleave"]) {
    canvas.addEventListener(type, () => drawing && finishStroke());
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
    if (!inked) {
      showError("Draw a digit first.");
      return;
    }
    predictButton.disabled = true;
    showError("");
    const headers = { "Content-Type": "application/json" };
    if (keyInput.value) headers["X-API-Key"] = keyInput.value;
    try {
      const response = await fetch("/predict-drawing", {
        method: "POST",
        headers,
        body: JSON.stringify({ image: canvas.toDataURL("image/png") }),
      });
      const body = await response.json().catch(() => ({}));
      if (!response.ok) {
        const detail = typeof body.detail === "string" ? body.detail : `HTTP ${response.status}`;
        showError(detail);
        return;
      }
      showResult(body);
    } catch (err) {
      showError(`Could not reach the server: ${err.message}`);
    } finally {
      predictButton.disabled = false;
    }
  }

  predictButton.addEventListener("click", predict);
  clearButton.addEventListener("click", () => {
    reset();
    clearResult();
  });
  reset();
  buildBars();
})();
